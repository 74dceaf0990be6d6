package recourse

import (
	"context"
	"time"
)

// RecoveryState is where a request is in its lifecycle:
//
//	collecting → awaiting_approval → cooling_off → ready → completed
//	any open state → cancelled | denied | expired
type RecoveryState string

const (
	RecoveryCollecting       RecoveryState = "collecting"
	RecoveryAwaitingApproval RecoveryState = "awaiting_approval"
	RecoveryCoolingOff       RecoveryState = "cooling_off"
	RecoveryReady            RecoveryState = "ready"
	RecoveryCompleted        RecoveryState = "completed"
	RecoveryCancelled        RecoveryState = "cancelled"
	RecoveryDenied           RecoveryState = "denied"
	RecoveryExpired          RecoveryState = "expired"
)

// Open reports whether the request can still move.
func (s RecoveryState) Open() bool {
	switch s {
	case RecoveryCollecting, RecoveryAwaitingApproval, RecoveryCoolingOff, RecoveryReady:
		return true
	}
	return false
}

// Recovery is a request to change an account's credentials or channels: a
// self-service or recovery action that runs through the policy.
type Recovery struct {
	ID        string
	AccountID string
	// Action is a policy catalogue action, e.g. "password.reset".
	Action string
	Tier   string
	State  RecoveryState
	// Lost is what the subject said they lost: password, device, phone, email.
	Lost string
	// Initiator is "self", "help_desk", "api" or "admin"; InitiatorID the
	// agent's or client's account.
	Initiator   string
	InitiatorID string
	// Reason is the help desk's reason code and note.
	Reason string
	// Change describes exactly what would change (e.g. the new phone
	// number); ChangeDigest binds approvals to it.
	Change       map[string]string
	ChangeDigest string
	// The policy decision that governs the request.
	PolicyDigest      string
	Rule              string
	Requirement       []byte // policy.Requirement as JSON
	RequirementDigest string
	// BrowserHash is the HMAC of the secret in the browser that drives the
	// request; nil until a browser claims it.
	BrowserHash []byte
	// Ceremony holds an unfinished WebAuthn assertion's state.
	Ceremony     []byte
	CoolingUntil *time.Time
	ExpiresAt    time.Time
	// Outcome explains a terminal state (why denied, cancelled, expired).
	Outcome     string
	IP          string
	UserAgent   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	CompletedAt *time.Time
	// Version guards read-modify-write races.
	Version int64
}

// RecoveryEvidence is one piece of evidence a request has collected. Detail
// is the policy's JSON for it (possession, code, …); it never holds a secret.
type RecoveryEvidence struct {
	ID        int64
	RequestID string
	Kind      string
	Detail    []byte
	ActorID   string
	CreatedAt time.Time
}

// RecoveryVote is one approver's vote, bound to the exact change.
type RecoveryVote struct {
	RequestID    string
	ApproverID   string
	ChangeDigest string
	// Vote is "approve" or "deny".
	Vote      string
	Roles     []string
	Comment   string
	CreatedAt time.Time
}

// Challenge is a code sent to a channel for a request, stored as an HMAC.
type Challenge struct {
	ID        string
	RequestID string
	ChannelID string
	// Kind is "email" or "sms".
	Kind      string
	CodeHash  []byte
	Attempts  int
	ExpiresAt time.Time
	UsedAt    *time.Time
	CreatedAt time.Time
}

// Token is a single-use bearer secret, stored as an HMAC, bound to one
// purpose, one request or account, and optionally one browser.
type Token struct {
	ID          string
	Hash        []byte
	Purpose     string
	RequestID   string
	AccountID   string
	BrowserHash []byte
	ExpiresAt   time.Time
	UsedAt      *time.Time
	RevokedAt   *time.Time
	CreatedAt   time.Time
}

// Token purposes.
const (
	TokenCompletion = "completion"
	TokenCancel     = "cancel"
	TokenAccessPass = "access_pass"
)

// RecoveryTx is the persistence of the recovery workflow. Every single-use
// secret and every counter is enforced by one conditional statement, never
// by check-then-act.
type RecoveryTx interface {
	CreateRecovery(ctx context.Context, r *Recovery) error
	// Recovery reads a request; inside a transaction on PostgreSQL it locks
	// the row.
	Recovery(ctx context.Context, id string) (*Recovery, error)
	// RecoveryWithAccount reads a request with its subject's account (as
	// Account reads it) in one read, locking neither: a submission reads
	// both before its transaction, which reads the request again, locked.
	// ErrNotFound when there is no such request.
	RecoveryWithAccount(ctx context.Context, id string) (*Recovery, *Account, error)
	// UpdateRecovery stores r if r.Version still matches (else
	// ErrConflict) and increments r.Version.
	UpdateRecovery(ctx context.Context, r *Recovery) error
	// Recoveries lists an account's requests, newest first; openOnly keeps
	// those in an open state.
	Recoveries(ctx context.Context, accountID string, openOnly bool) ([]*Recovery, error)
	// OpenRecoveries lists open requests in the given states, oldest first.
	OpenRecoveries(ctx context.Context, states []RecoveryState, limit int) ([]*Recovery, error)
	// ExpiredRecoveries lists the ids of open requests whose expiry is at
	// or before now, soonest first (the hygiene sweep expires them).
	ExpiredRecoveries(ctx context.Context, now time.Time, limit int) ([]string, error)
	// DeleteExpiredSecrets deletes the tokens and recovery codes that
	// expired before before (used or not: they can never work again), and
	// returns how many.
	DeleteExpiredSecrets(ctx context.Context, before time.Time) (int, error)

	AddRecoveryEvidence(ctx context.Context, e *RecoveryEvidence) error
	RecoveryEvidence(ctx context.Context, requestID string) ([]*RecoveryEvidence, error)
	// AddRecoveryVote records a vote; ErrConflict if this approver already
	// voted on this change.
	AddRecoveryVote(ctx context.Context, v *RecoveryVote) error
	RecoveryVotes(ctx context.Context, requestID string) ([]*RecoveryVote, error)
	// RecoveryProof returns what RecoveryEvidence and RecoveryVotes return
	// for a request, and the kinds of its subject's (accountID's) active
	// authenticators, in one read: what a request's state, and what its
	// browser is offered, are decided from.
	RecoveryProof(ctx context.Context, requestID, accountID string) (*RecoveryProof, error)
	// RecoveryWithProof reads a request with its proof (as RecoveryProof
	// reads it for the request's account) in one read, locking nothing.
	// ErrNotFound when there is no such request.
	RecoveryWithProof(ctx context.Context, id string) (*Recovery, *RecoveryProof, error)

	CreateChallenge(ctx context.Context, c *Challenge) error
	// TakeChallengeAttempts atomically counts one attempt against every
	// usable challenge of the request (unused, unexpired, under
	// maxAttempts) and returns them for comparison.
	TakeChallengeAttempts(ctx context.Context, requestID string, maxAttempts int, now time.Time) ([]*Challenge, error)
	// UseChallenge marks the challenge used; false if it already was.
	UseChallenge(ctx context.Context, id string, now time.Time) (bool, error)
	Challenges(ctx context.Context, requestID string) ([]*Challenge, error)

	CreateToken(ctx context.Context, t *Token) error
	// UseToken atomically consumes an unused, unrevoked, unexpired token of
	// the purpose; ErrNotFound otherwise. Exactly one of any number of
	// racing callers succeeds.
	UseToken(ctx context.Context, hash []byte, purpose string, now time.Time) (*Token, error)
	// RevokeTokens revokes every outstanding token of the account except
	// the one with exceptID.
	RevokeTokens(ctx context.Context, accountID, exceptID string, now time.Time) (int, error)
	// RevokeAccessPasses revokes the account's outstanding access passes
	// (one active per account).
	RevokeAccessPasses(ctx context.Context, accountID string, now time.Time) (int, error)

	// RecordRecoveryFailure counts a wrong recovery code for the account,
	// atomically; a resend does not reset it.
	RecordRecoveryFailure(ctx context.Context, accountID string) (int, error)
	ResetRecoveryFailures(ctx context.Context, accountID string) error
	// SetAccountFrozen freezes (or unfreezes, at == nil) an account: a
	// frozen account cannot sign in or recover until security lifts it.
	SetAccountFrozen(ctx context.Context, accountID string, at *time.Time) error
	// AccountsInGroup lists the accounts in a directory group.
	AccountsInGroup(ctx context.Context, group string, limit int) ([]*Account, error)
}

// Audit actions of the recovery workflow.
const (
	ActionRecoveryStart    = "recovery.start"
	ActionRecoveryEvidence = "recovery.evidence"
	ActionRecoveryComplete = "recovery.complete"
	ActionRecoveryCancel   = "recovery.cancel"
	ActionCallerVerify     = "helpdesk.verify_caller"
)

// RecoveryProof is a request's evidence and votes with what else its
// subject could prove (RecoveryTx.RecoveryProof).
type RecoveryProof struct {
	Evidence []*RecoveryEvidence
	Votes    []*RecoveryVote
	// Means are the kinds of the subject's active authenticators, each
	// once, in kind order: the possession the subject could still prove.
	Means []AuthenticatorKind
}
