package client

import (
	"encoding/json"
	"time"

	"github.com/recourse/recourse"
)

// The types below are the API's wire format. The server encodes these very
// types, so client and server cannot drift; the OpenAPI document describes
// them and a test keeps its schemas and these fields in step.

// ErrorBody is the envelope of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong, safely: Message never holds an
// internal detail. RequestID finds the server's log lines.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id"`
}

// Me describes the caller.
type Me struct {
	// Via is "api_key" or "session".
	Via     string         `json:"via"`
	Account AccountSummary `json:"account"`
	// Roles are the Recourse roles the caller may exercise now: for a key,
	// the owner's roles its scopes name.
	Roles  []string `json:"roles"`
	Scopes []string `json:"scopes"`
	Key    *APIKey  `json:"api_key,omitempty"`
}

// AccountSummary names an account.
type AccountSummary struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

// Account is an account in the documented account JSON shape
// (docs/accounts.md) with its state. For callers who are not
// administrators, channel addresses are masked (ChannelsMasked).
type Account struct {
	recourse.AccountJSON
	Locked         bool      `json:"locked"`
	Frozen         bool      `json:"frozen"`
	ChannelsMasked bool      `json:"channels_masked,omitempty"`
	Version        int64     `json:"version"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// AccountList is a page of accounts.
type AccountList struct {
	Accounts   []Account `json:"accounts"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// ImportResult counts what an import did.
type ImportResult struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
}

// Authenticator is an authenticator without its secret.
type Authenticator struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	Status      string     `json:"status"`
	Name        string     `json:"name"`
	DeviceBound bool       `json:"device_bound,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	// UnusedCodes is set for an active recovery-code set.
	UnusedCodes *int `json:"unused_codes,omitempty"`
}

// AuthenticatorList lists an account's authenticators.
type AuthenticatorList struct {
	Authenticators []Authenticator `json:"authenticators"`
}

// Channel is an email address or phone number, masked.
type Channel struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Address    string     `json:"address"`
	Verified   bool       `json:"verified"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	Shared     bool       `json:"shared"`
	// UsableForRecovery is true for a confirmed, unshared channel.
	UsableForRecovery bool `json:"usable_for_recovery"`
}

// ChannelList lists an account's channels.
type ChannelList struct {
	Channels []Channel `json:"channels"`
}

// VerifyCallerRequest carries the code a caller reads from their own
// authenticator app.
type VerifyCallerRequest struct {
	Code string `json:"code"`
}

// VerifyCallerResult says only whether the code was right.
type VerifyCallerResult struct {
	Verified bool `json:"verified"`
}

// OpenRecoveryRequest opens a recovery on a caller's behalf.
type OpenRecoveryRequest struct {
	Account string `json:"account"`
	// Action is a recovery action: password.reset, authenticator.recover,
	// phone.change, email.rebind, recovery_channel.change, credential.reissue.
	Action string `json:"action"`
	// Reason is a reason code: lost_device, forgot_password, new_phone,
	// new_email, locked_out or other.
	Reason string `json:"reason"`
	Note   string `json:"note,omitempty"`
	// Checks are what the agent did, attested (never sufficient alone):
	// caller_verified_totp, called_back_on_record,
	// manager_confirmed_by_phone, id_seen_on_video.
	Checks []string `json:"checks,omitempty"`
}

// Recovery is a recovery request with what it still needs.
type Recovery struct {
	ID          string `json:"id"`
	Account     string `json:"account"`
	Action      string `json:"action"`
	Tier        string `json:"tier"`
	State       string `json:"state"`
	Lost        string `json:"lost,omitempty"`
	Initiator   string `json:"initiator"`
	InitiatorID string `json:"initiator_id,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Outcome     string `json:"outcome,omitempty"`
	// Requirement describes what the policy asks; Missing what is still
	// needed, in words.
	Requirement  string     `json:"requirement,omitempty"`
	Missing      []string   `json:"missing"`
	Evidence     []string   `json:"evidence"`
	Approvals    int        `json:"approvals"`
	Claimed      bool       `json:"claimed"`
	PolicyDigest string     `json:"policy_digest"`
	CoolingUntil *time.Time `json:"cooling_until,omitempty"`
	ExpiresAt    time.Time  `json:"expires_at"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
	Version      int64      `json:"version"`
}

// RecoveryList is a page of requests.
type RecoveryList struct {
	Recoveries []Recovery `json:"recoveries"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// CancelRecoveryRequest cancels a request, with a reason for its subject.
type CancelRecoveryRequest struct {
	Reason string `json:"reason,omitempty"`
}

// Approval is a request waiting for the caller's vote: exactly what would
// change, who asked, and the votes so far.
type Approval struct {
	RequestID    string            `json:"request_id"`
	Subject      AccountSummary    `json:"subject"`
	Action       string            `json:"action"`
	Tier         string            `json:"tier"`
	State        string            `json:"state"`
	Change       map[string]string `json:"change"`
	ChangeDigest string            `json:"change_digest"`
	Initiator    string            `json:"initiator"`
	InitiatorID  string            `json:"initiator_id,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	IP           string            `json:"ip,omitempty"`
	Roles        []string          `json:"roles"`
	Requirement  string            `json:"requirement"`
	Evidence     []string          `json:"evidence"`
	Missing      []string          `json:"missing"`
	Votes        []Vote            `json:"votes"`
	// Voted is the caller's own vote on the current change, if any.
	Voted     string    `json:"voted,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Vote is one approver's vote.
type Vote struct {
	Approver  string    `json:"approver"`
	Vote      string    `json:"vote"`
	Roles     []string  `json:"roles"`
	Comment   string    `json:"comment,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// ApprovalList is a page of approvals.
type ApprovalList struct {
	Approvals  []Approval `json:"approvals"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// VoteRequest approves or denies a request's current change.
type VoteRequest struct {
	// Vote is "approve" or "deny".
	Vote    string `json:"vote"`
	Comment string `json:"comment,omitempty"`
}

// Session is one of the caller's sessions.
type Session struct {
	ID         string    `json:"id"`
	AAL        int       `json:"aal"`
	Methods    []string  `json:"methods"`
	AuthTime   time.Time `json:"auth_time"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	IP         string    `json:"ip,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
	Restricted bool      `json:"restricted,omitempty"`
	// Current marks the session making the call.
	Current bool `json:"current,omitempty"`
}

// SessionList lists sessions.
type SessionList struct {
	Sessions   []Session `json:"sessions"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// APIKey is an API key without its secret.
type APIKey struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Owner  string   `json:"owner"`
	Scopes []string `json:"scopes"`
	// Hint is the secret's first characters, to tell keys apart.
	Hint string `json:"hint"`
	// State is "active", "expired" or "revoked".
	State       string     `json:"state"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	LastUsedIP  string     `json:"last_used_ip,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	RotatedFrom string     `json:"rotated_from,omitempty"`
	ReplacedBy  string     `json:"replaced_by,omitempty"`
	Version     int64      `json:"version"`
}

// APIKeyList is a page of keys.
type APIKeyList struct {
	APIKeys    []APIKey `json:"api_keys"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// CreateAPIKeyRequest issues a key.
type CreateAPIKeyRequest struct {
	Name   string   `json:"name"`
	Owner  string   `json:"owner"`
	Scopes []string `json:"scopes"`
	// ExpiresAt defaults to the longest lifetime allowed (90 days unless
	// configured otherwise).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// RotateAPIKeyRequest rotates a key.
type RotateAPIKeyRequest struct {
	// Overlap is how long the old key keeps working, as a Go duration
	// ("24h"); empty means the server's default.
	Overlap string `json:"overlap,omitempty"`
}

// IssuedAPIKey is a new key with its secret, shown this once.
type IssuedAPIKey struct {
	APIKey APIKey `json:"api_key"`
	Secret string `json:"secret"`
}

// ScopeInfo describes a scope.
type ScopeInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Roles       []string `json:"roles,omitempty"`
}

// ScopeList lists every scope.
type ScopeList struct {
	Scopes []ScopeInfo `json:"scopes"`
}

// Policy describes the policy in force.
type Policy struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Source      string   `json:"source"`
	Digest      string   `json:"digest"`
	Actions     []string `json:"actions"`
}

// Decision is what the policy decides for an action and account.
type Decision struct {
	Decision        string         `json:"decision"`
	Reason          string         `json:"reason,omitempty"`
	Rule            string         `json:"rule"`
	Tier            string         `json:"tier"`
	Action          string         `json:"action"`
	Classes         []string       `json:"classes"`
	Requirement     map[string]any `json:"requirement,omitempty"`
	RequirementText string         `json:"requirement_text,omitempty"`
	Delay           string         `json:"delay,omitempty"`
	PolicyDigest    string         `json:"policy_digest"`
}

// StartRecoveryRequest is "Can't sign in?" through the API.
type StartRecoveryRequest struct {
	Identifier string `json:"identifier"`
	// Lost is password, device, phone or email.
	Lost string `json:"lost"`
}

// RecoveryHandle is the answer to a self-service start or claim. It has the
// same shape whether or not the identifier names an account. Secret binds
// the request to this client: send it in the Recourse-Recovery-Secret
// header of every follow-up call. It is shown once.
type RecoveryHandle struct {
	RequestID string `json:"request_id"`
	Secret    string `json:"secret"`
}

// RecoveryStatus is what the client that drives a request may see. Until
// the client proves something (a code), it reveals nothing: known and
// unknown identifiers look the same.
type RecoveryStatus struct {
	ID              string     `json:"id"`
	Revealed        bool       `json:"revealed"`
	State           string     `json:"state"`
	Action          string     `json:"action,omitempty"`
	Tier            string     `json:"tier,omitempty"`
	Outcome         string     `json:"outcome,omitempty"`
	Requirement     string     `json:"requirement,omitempty"`
	Missing         []string   `json:"missing"`
	Evidence        []string   `json:"evidence"`
	Approvals       int        `json:"approvals"`
	CoolingUntil    *time.Time `json:"cooling_until,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	CanTOTP         bool       `json:"can_totp"`
	CanRecoveryCode bool       `json:"can_recovery_code"`
	CanContinue     bool       `json:"can_continue"`
}

// CodeRequest carries a code: one sent to a channel, one from an
// authenticator app, or a saved recovery code.
type CodeRequest struct {
	Code string `json:"code"`
}

// CompletionToken is the single-use token that finishes a ready request.
type CompletionToken struct {
	CompletionToken string `json:"completion_token"`
}

// CompleteRecoveryRequest finishes a ready request.
type CompleteRecoveryRequest struct {
	CompletionToken string `json:"completion_token"`
	// NewPassword is required for password.reset and chosen by the person.
	NewPassword string `json:"new_password,omitempty"`
	// AccessPass asks, after a lost device (authenticator.recover), for a
	// temporary access pass for the new device instead of a session; any
	// other action refuses it (invalid, field access_pass) and the
	// completion token stays good.
	AccessPass bool `json:"access_pass,omitempty"`
}

// CompletedRecovery carries the new session of the person who recovered,
// or the temporary access pass they asked for instead. A session after a
// device recovery, like the pass's, is restricted to enrolling a new
// authenticator.
type CompletedRecovery struct {
	// SessionToken is absent when an access pass was issued.
	SessionToken string `json:"session_token,omitempty"`
	Restricted   bool   `json:"restricted"`
	// AccessPass (tap_…) is shown only in this answer; it signs in once at
	// /signin/pass until AccessPassExpiresAt.
	AccessPass          string     `json:"access_pass,omitempty"`
	AccessPassExpiresAt *time.Time `json:"access_pass_expires_at,omitempty"`
}

// AuditPage is a page of audit events in their canonical encoding.
type AuditPage struct {
	Events     []json.RawMessage `json:"events"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// Webhook is a webhook endpoint without its signing secret.
type Webhook struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	// Source is "config" (set in the configuration file; change it there)
	// or "api".
	Source string `json:"source"`
	// RotatingUntil is set while a replaced secret still signs.
	RotatingUntil  *time.Time `json:"rotating_until,omitempty"`
	Failures       int        `json:"failures"`
	Disabled       bool       `json:"disabled"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// WebhookList lists webhook endpoints.
type WebhookList struct {
	Webhooks   []Webhook `json:"webhooks"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// CreateWebhookRequest adds an endpoint for event types ("recovery.*",
// "*", or exact names).
type CreateWebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

// CreatedWebhook is a new endpoint with its signing secret, shown once.
type CreatedWebhook struct {
	Webhook Webhook `json:"webhook"`
	Secret  string  `json:"secret"`
}

// WebhookSecret is a new signing secret, shown once.
type WebhookSecret struct {
	Secret string `json:"secret"`
}
