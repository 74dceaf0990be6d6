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

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random identifier with the given prefix (e.g. "au_"),
// carrying 100 bits of entropy so ids are never guessable.
func NewID(prefix string) string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return prefix + idEncoding.EncodeToString(b[:])
}
