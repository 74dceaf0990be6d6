package recourse

import (
	"context"
	"time"
)

// Store persists the domain. Implementations only persist: business rules
// live in the service layer. Methods return ErrNotFound and ErrConflict as
// sentinels. Every backend passes the conformance suite in store/storetest.
type Store interface {
	Tx
	// InTx runs fn in one database transaction: all of fn's writes commit
	// together or none do. A returned error rolls back. fn MUST NOT call
	// InTx again.
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// Ping checks the database answers (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// LargeWrite marks ctx for an InTx whose transaction changes many rows in
// many statements: an audit sequencer round, an import. A store may run it
// apart from other writers, in a way that suits large transactions (the
// SQLite store's group commit keeps small transactions' undo journal in
// memory, which costs a large one time quadratic in its size,
// docs/architecture.md). Unmarked large transactions are correct, only
// slower.
func LargeWrite(ctx context.Context) context.Context {
	return context.WithValue(ctx, largeWriteKey{}, true)
}

// IsLargeWrite reports whether ctx was marked by LargeWrite.
func IsLargeWrite(ctx context.Context) bool {
	v, _ := ctx.Value(largeWriteKey{}).(bool)
	return v
}

type largeWriteKey struct{}

// AccountFilter selects accounts for listing. Results are ordered by id;
// After is the id to continue after (cursor pagination).
type AccountFilter struct {
	After string
	Limit int
	// Query matches a prefix of the id, username or display name.
	Query string
}

// Tx is the set of persistence operations, available both inside and outside
// a transaction.
type Tx interface {
	RecoveryTx
	NotifyTx
	APIKeyTx

	// CreateAccount stores a new account with its channels and recovery
	// contacts. ErrConflict when the id or username is taken.
	CreateAccount(ctx context.Context, a *Account) error
	// UpdateAccount replaces the account's attributes, channels and recovery
	// contacts, provided a.Version still matches the stored version (else
	// ErrConflict); on success a.Version is incremented.
	UpdateAccount(ctx context.Context, a *Account) error
	Account(ctx context.Context, id string) (*Account, error)
	AccountByUsername(ctx context.Context, username string) (*Account, error)
	// AccountWithAuthenticators is AccountByUsername with the account's
	// authenticators (as Authenticators lists them), in one statement: a
	// recovery start's job needs both to ask the policy, and on PostgreSQL
	// a statement is a round trip.
	AccountWithAuthenticators(ctx context.Context, username string) (*Account, []*Authenticator, error)
	// AccountByVerifiedEmail finds the one account holding the confirmed,
	// unshared address; ErrNotFound otherwise.
	AccountByVerifiedEmail(ctx context.Context, address string) (*Account, error)
	ListAccounts(ctx context.Context, f AccountFilter) ([]*Account, error)
	// RecordSignInFailure atomically increments the consecutive-failure
	// counter and, when it reaches limit, locks the account. It returns the
	// new count and whether the account is now locked. Concurrent calls
	// never lose an increment.
	RecordSignInFailure(ctx context.Context, accountID string, limit int, at time.Time) (failures int, locked bool, err error)
	// ResetSignInFailures clears the counter (after a full sign-in) without
	// unlocking a locked account.
	ResetSignInFailures(ctx context.Context, accountID string) error
	// UnlockAccount clears the counter and the lock.
	UnlockAccount(ctx context.Context, accountID string) error

	// AddChannel binds an unconfirmed channel to an account.
	AddChannel(ctx context.Context, c *Channel) error
	Channel(ctx context.Context, id string) (*Channel, error)
	DeleteChannel(ctx context.Context, id string) error
	// SetChannelCode stores the hash of a fresh confirmation code and resets
	// the attempt counter.
	SetChannelCode(ctx context.Context, channelID string, hash []byte, expiresAt time.Time) error
	// TakeChannelCodeAttempt atomically consumes one attempt at the channel's
	// confirmation code and returns the stored hash and expiry. ErrNotFound
	// when no code is outstanding; ERATELIMIT when maxAttempts are used up.
	TakeChannelCodeAttempt(ctx context.Context, channelID string, maxAttempts int) (hash []byte, expiresAt time.Time, err error)
	// MarkChannelVerified confirms the channel and clears its code.
	MarkChannelVerified(ctx context.Context, channelID string, at time.Time) error

	CreateAuthenticator(ctx context.Context, a *Authenticator) error
	Authenticator(ctx context.Context, id string) (*Authenticator, error)
	// Authenticators lists an account's authenticators in every status,
	// oldest first.
	Authenticators(ctx context.Context, accountID string) ([]*Authenticator, error)
	AuthenticatorByCredentialID(ctx context.Context, credentialID []byte) (*Authenticator, error)
	// UpdateAuthenticator stores Status, Name, Secret, DeviceBound,
	// LastUsedAt and RevokedAt.
	UpdateAuthenticator(ctx context.Context, a *Authenticator) error
	// AdvanceTOTPStep atomically records step as the last accepted TOTP step,
	// only if it is later than the stored one. false means a replay.
	AdvanceTOTPStep(ctx context.Context, authenticatorID string, step int64, at time.Time) (bool, error)
	// AddAuthenticatorEvent records a lifecycle event and sets e.ID; in a
	// transaction the store may write it with the transaction's other
	// queued inserts instead, leaving e.ID zero (the order of an
	// account's events is kept).
	AddAuthenticatorEvent(ctx context.Context, e *AuthenticatorEvent) error
	// AuthenticatorEvents lists an account's lifecycle events, newest first.
	AuthenticatorEvents(ctx context.Context, accountID string, limit int) ([]*AuthenticatorEvent, error)

	// ReplaceRecoveryCodes stores the hashes as the authenticator's whole set,
	// deleting any earlier codes.
	ReplaceRecoveryCodes(ctx context.Context, authenticatorID string, hashes [][]byte) error
	// UseRecoveryCode atomically marks the unused code with this hash,
	// belonging to one of the account's active recovery-code sets, as used
	// and returns its set's id. ErrNotFound when there is none (wrong or
	// already used): a code is accepted once only, even under races.
	UseRecoveryCode(ctx context.Context, accountID string, hash []byte, at time.Time) (authenticatorID string, err error)
	UnusedRecoveryCodes(ctx context.Context, authenticatorID string) (int, error)

	CreateSession(ctx context.Context, s *Session) error
	SessionByTokenHash(ctx context.Context, hash []byte) (*Session, error)
	// SessionWithAccount is SessionByTokenHash with the session's account
	// (as Account reads it), in one read: every signed-in request needs
	// both. ErrNotFound when no session has the hash.
	SessionWithAccount(ctx context.Context, hash []byte) (*Session, *Account, error)
	Session(ctx context.Context, id string) (*Session, error)
	// Sessions lists the account's unrevoked, unexpired sessions at now.
	Sessions(ctx context.Context, accountID string, now time.Time) ([]*Session, error)
	// UpdateSession stores TokenHash, AAL, Methods, AuthTime, ReauthAt,
	// LastSeenAt, ExpiresAt, IdleTimeout, Restricted and Ceremony of an
	// unrevoked session (else ErrNotFound).
	UpdateSession(ctx context.Context, s *Session) error
	// TouchSession records activity; it never moves LastSeenAt backwards.
	TouchSession(ctx context.Context, id string, at time.Time) error
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// RevokeSessions revokes all the account's sessions except exceptID and
	// returns how many it revoked.
	RevokeSessions(ctx context.Context, accountID, exceptID string, at time.Time) (int, error)
	// DeleteExpiredSessions removes sessions that ended before the time.
	DeleteExpiredSessions(ctx context.Context, before time.Time) (int, error)

	AddOutboxMessage(ctx context.Context, m *OutboxMessage) error
	// DeliverToOutbox stores m in the outbox and n, the notification that
	// records where it went (a final state: sent, or failed for a text
	// with no gateway; its body is not kept, the outbox holds it). In a
	// transaction both are written with the transaction's audit events,
	// before it commits or reads the audit log, the outbox or the
	// notifications, so on PostgreSQL they cost no round trip of their
	// own; n.Seq is not set, and an ErrConflict surfaces then.
	DeliverToOutbox(ctx context.Context, m *OutboxMessage, n *Notification) error
	// OutboxMessages lists the newest messages first.
	OutboxMessages(ctx context.Context, limit int) ([]*OutboxMessage, error)

	// AddAuditEvent stores e, unsequenced, as its canonical encoding. It is
	// called inside the transaction of the change e describes, so the change
	// commits if and only if its record does. ErrConflict when e.ID exists.
	AddAuditEvent(ctx context.Context, e *AuditEvent) error
	// LockAuditSequencer takes the audit sequencer's lock until the end of
	// the transaction and reports whether it got it; false means another
	// sequencer (another replica) holds it, and this one should skip its
	// round. It MUST be called inside InTx.
	LockAuditSequencer(ctx context.Context) (bool, error)
	// UnsequencedAuditEvents returns up to limit unsequenced events whose
	// insertion row is above after (0: all), in insertion order
	// (AuditRecord.Row). A sequencer passes the last row it sequenced, so
	// that it need not step over the rows sequenced before it (on
	// PostgreSQL their index entries stay until a vacuum).
	UnsequencedAuditEvents(ctx context.Context, after int64, limit int) ([]AuditRecord, error)
	// SequenceAuditEvents gives the event at insertion row rows[i] position
	// first+i. ErrConflict when a position is taken or a row is no longer
	// unsequenced.
	SequenceAuditEvents(ctx context.Context, first int64, rows []int64) error
	// AuditBacklog counts the events not yet sequenced.
	AuditBacklog(ctx context.Context) (int64, error)
	// AuditRecords returns up to limit sequenced events with Seq >= from in
	// position order, then insertion order. It hides nothing: a duplicated
	// position appears twice.
	AuditRecords(ctx context.Context, from int64, limit int) ([]AuditRecord, error)
	// ScanAuditRecords calls fn for each sequenced event with
	// from <= Seq < to, in the order of AuditRecords, streaming: data is
	// valid only during the call. An error from fn stops the scan and is
	// returned.
	ScanAuditRecords(ctx context.Context, from, to int64, fn func(seq int64, data []byte) error) error
	// AuditRecordByEventID returns one stored event, sequenced or not.
	AuditRecordByEventID(ctx context.Context, eventID string) (AuditRecord, error)
	// ListAuditEvents returns sequenced events matching f, decoded.
	ListAuditEvents(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)

	// AddAuditHashes stores the Merkle tree's hashes at the consecutive
	// stored-hash indexes start, start+1, … (tlog.StoredHashIndex).
	AddAuditHashes(ctx context.Context, start int64, hashes [][32]byte) error
	// AuditHashes returns the stored hashes at the indexes, in the same
	// order; ErrNotFound when one is missing.
	AuditHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	// AuditHashRange returns the stored hashes with from <= index < to, in
	// index order, with their indexes (a missing one is simply absent).
	AuditHashRange(ctx context.Context, from, to int64) (indexes []int64, hashes [][32]byte, err error)
	// AddAuditCheckpoint stores a signed checkpoint; ErrConflict when one of
	// that size exists.
	AddAuditCheckpoint(ctx context.Context, c *AuditCheckpoint) error
	// LatestAuditCheckpoint returns the checkpoint of the largest size;
	// ErrNotFound before the first.
	LatestAuditCheckpoint(ctx context.Context) (*AuditCheckpoint, error)
	// AuditCheckpoints returns up to limit checkpoints with Size > after, by
	// size.
	AuditCheckpoints(ctx context.Context, after int64, limit int) ([]*AuditCheckpoint, error)
}
