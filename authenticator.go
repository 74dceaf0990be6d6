package recourse

import (
	"crypto/rand"
	"encoding/base32"
	"time"
)

// AuthenticatorKind is the type of an authenticator.
type AuthenticatorKind string

const (
	AuthPassword      AuthenticatorKind = "password"
	AuthTOTP          AuthenticatorKind = "totp"
	AuthWebAuthn      AuthenticatorKind = "webauthn"
	AuthRecoveryCodes AuthenticatorKind = "recovery_codes"
)

// AuthenticatorStatus is where an authenticator is in its lifecycle.
type AuthenticatorStatus string

const (
	// AuthPending is an enrolment that has not been confirmed yet (a TOTP
	// secret shown but no code returned); it proves nothing.
	AuthPending  AuthenticatorStatus = "pending"
	AuthActive   AuthenticatorStatus = "active"
	AuthReplaced AuthenticatorStatus = "replaced"
	AuthRevoked  AuthenticatorStatus = "revoked"
)

// Authenticator is something an account holder proves possession or
// knowledge of. Secret never holds a plain secret: a password is an Argon2id
// PHC string, a TOTP key is sealed (encrypted and bound to the
// authenticator's id), a WebAuthn credential holds only public data.
type Authenticator struct {
	ID        string
	AccountID string
	Kind      AuthenticatorKind
	Status    AuthenticatorStatus
	// Name is the holder's label ("YubiKey", "Phone").
	Name   string
	Secret []byte
	// CredentialID is the WebAuthn credential id; unique across accounts.
	CredentialID []byte
	// DeviceBound marks a WebAuthn credential that cannot be synced (not
	// backup-eligible); with a password it reaches AAL3.
	DeviceBound bool
	// LastStep is the last TOTP time step accepted; codes at or before it are
	// refused as replays.
	LastStep   int64
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// AuthenticatorEventType names a step in an authenticator's lifecycle.
type AuthenticatorEventType string

const (
	AuthEventBound    AuthenticatorEventType = "bound"
	AuthEventUsed     AuthenticatorEventType = "used"
	AuthEventReplaced AuthenticatorEventType = "replaced"
	AuthEventRevoked  AuthenticatorEventType = "revoked"
)

// AuthenticatorEvent is one entry of an authenticator's lifecycle history.
type AuthenticatorEvent struct {
	ID              int64
	AuthenticatorID string
	AccountID       string
	Kind            AuthenticatorKind
	Type            AuthenticatorEventType
	At              time.Time
	IP              string
	UserAgent       string
}

// RecoveryCodeSetSize is how many saved recovery codes a set holds.
const RecoveryCodeSetSize = 10

// idEncoding is base32 with its digits first, so that the text of two ids
// sorts as their bytes do.
var idEncoding = base32.NewEncoding("234567abcdefghijklmnopqrstuvwxyz").WithPadding(base32.NoPadding)

// NewID returns an identifier with the given prefix (e.g. "au_"): the
// millisecond it was made, then 80 random bits, so ids are never guessable
// and ids made one after the other sort together. The order is what the
// databases' indexes need: a random key lands on a random page of every
// index it is in, so each new request, code, message and token dirtied
// pages all over the indexes, each written again at every commit; keys in
// creation order land on the last page, which a group of commits shares
// (docs/architecture.md). The time in an id is when the server made it, which
// reveals no more than the object's creation.
func NewID(prefix string) string {
	var r [10]byte
	_, _ = rand.Read(r[:])
	return IDFrom(prefix, time.Now(), r)
}

// IDFrom makes the id NewID would make at t from the random bits r; the
// load generator uses it to make ids from a seeded generator.
func IDFrom(prefix string, t time.Time, r [10]byte) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	copy(b[6:], r[:])
	return prefix + idEncoding.EncodeToString(b[:])
}
