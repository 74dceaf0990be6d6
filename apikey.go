package recourse

import (
	"context"
	"time"
)

// APIKey is a credential an integration presents to the JSON API
// (Authorization: Bearer rcs_…). It belongs to a person (Owner), who answers
// for it; it can do only what its Scopes name and its owner's roles allow at
// the time of each call. The secret is shown once at creation; the store
// keeps only its HMAC.
type APIKey struct {
	// ID is "ak_" and 24 random characters; it is the audit actor of every
	// call made with the key.
	ID   string
	Name string
	// OwnerID is the person responsible for the key.
	OwnerID string
	Scopes  []string
	// Hash is the HMAC of the secret; Hint is the secret's first characters
	// ("rcs_abcd"), enough for a person to tell keys apart, far too few to
	// guess the rest.
	Hash []byte
	Hint string
	// CreatedBy is the account (or "cli") that issued the key.
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt *time.Time
	LastUsedIP string
	RevokedAt  *time.Time
	// RotatedFrom names the key this one replaced; ReplacedBy the key that
	// replaced this one (whose expiry was then cut to the overlap window).
	RotatedFrom string
	ReplacedBy  string
	// Version increases on every update; it is the resource's ETag.
	Version int64
}

// Usable reports whether the key may authenticate at now.
func (k *APIKey) Usable(now time.Time) bool {
	return k.RevokedAt == nil && now.Before(k.ExpiresAt)
}

// APIKeyFilter selects keys for listing, ordered by id; After is the id to
// continue after (cursor pagination). Zero fields do not filter.
type APIKeyFilter struct {
	OwnerID string
	After   string
	Limit   int
}

// IdempotencyRecord remembers the outcome of an API write sent with an
// Idempotency-Key, so a retry gets the first answer instead of a second
// change. Status is 0 while the first request is still running. Body is
// sealed (it may hold a secret shown once, such as a new API key).
type IdempotencyRecord struct {
	Caller      string
	Key         string
	RequestHash []byte
	Status      int
	Body        []byte
	CreatedAt   time.Time
}

// APIKeyTx is the persistence of API keys and of idempotent API writes.
type APIKeyTx interface {
	// CreateAPIKey stores a new key; ErrConflict when the id or hash exists.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	APIKey(ctx context.Context, id string) (*APIKey, error)
	// APIKeyByHash finds the key whose secret has this HMAC, in any state.
	APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	ListAPIKeys(ctx context.Context, f APIKeyFilter) ([]*APIKey, error)
	// UpdateAPIKey stores Name, Scopes, ExpiresAt, RevokedAt and ReplacedBy
	// if k.Version still matches (else ErrConflict; ErrNotFound when the
	// key does not exist) and increments k.Version.
	UpdateAPIKey(ctx context.Context, k *APIKey) error
	// TouchAPIKey records a use; it never moves LastUsedAt backwards and
	// does not change Version.
	TouchAPIKey(ctx context.Context, id string, at time.Time, ip string) error

	// ReserveIdempotencyKey stores r (with Status 0) unless a record for
	// (r.Caller, r.Key) exists: then it returns that record and
	// ErrConflict. Exactly one of racing callers reserves.
	ReserveIdempotencyKey(ctx context.Context, r *IdempotencyRecord) (*IdempotencyRecord, error)
	// CompleteIdempotencyKey stores the response of a reserved key.
	CompleteIdempotencyKey(ctx context.Context, caller, key string, status int, body []byte) error
	// ReleaseIdempotencyKey forgets a key (its request failed in a way a
	// retry may repair, or its record is stale).
	ReleaseIdempotencyKey(ctx context.Context, caller, key string) error
	// DeleteIdempotencyKeys forgets every record created before the time
	// and returns how many.
	DeleteIdempotencyKeys(ctx context.Context, before time.Time) (int, error)
}

// Audit actions of the JSON API.
const (
	// ActionAPIRequest records each call made with an API key, before it
	// runs; the actor is the key. The service's own events of the same
	// request share its request id.
	ActionAPIRequest   = "api.request"
	ActionAPIKeyCreate = "api_key.create"
	ActionAPIKeyRotate = "api_key.rotate"
	ActionAPIKeyRevoke = "api_key.revoke"
)
