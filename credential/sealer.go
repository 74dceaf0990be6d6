package credential

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Sealer encrypts small secrets that must be read back, such as TOTP
// secrets, with AES-256-GCM. The associated data binds a sealed value to its
// place — for a TOTP secret, the authenticator id — so that a value copied
// into another row fails to open.
//
// A sealed value is a version byte (1), a random 12-byte nonce, and the
// ciphertext with its 16-byte tag. The version byte leaves room for a later
// change of key or algorithm. Random nonces are safe for up to about 2^32
// seals under one key, far beyond the number of authenticators.
type Sealer struct {
	aead cipher.AEAD
}

const (
	sealVersion  = 1
	sealNonceLen = 12
	// SealerKeyLen is the key length [NewSealer] requires, in bytes.
	SealerKeyLen = 32
)

// ErrUnseal is returned by [Sealer.Open] for any sealed value that fails to
// open: truncated, of an unknown version, tampered with, sealed under
// another key, or opened with other associated data. The causes are
// deliberately not told apart.
var ErrUnseal = errors.New("credential: sealed value cannot be opened")

// NewSealer returns a Sealer using key, which must be exactly 32 random
// bytes (AES-256).
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != SealerKeyLen {
		return nil, fmt.Errorf("credential: sealer key is %d bytes; want %d", len(key), SealerKeyLen)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("credential: sealer: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("credential: sealer: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts and authenticates plaintext, and authenticates
// associatedData without storing it: the same associatedData must be given
// to [Sealer.Open]. Each call uses a fresh random nonce, so sealing the same
// plaintext twice gives different results.
func (s *Sealer) Seal(plaintext, associatedData []byte) []byte {
	out := make([]byte, 1+sealNonceLen, 1+sealNonceLen+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	nonce := out[1 : 1+sealNonceLen]
	rand.Read(nonce) // never fails; see crypto/rand
	return s.aead.Seal(out, nonce, plaintext, associatedData)
}

// Open decrypts sealed, a value from [Sealer.Seal], checking that it was
// sealed with this key and associatedData and not altered since. Any failure
// is [ErrUnseal].
func (s *Sealer) Open(sealed, associatedData []byte) ([]byte, error) {
	if len(sealed) < 1+sealNonceLen+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrUnseal
	}
	nonce := sealed[1 : 1+sealNonceLen]
	plaintext, err := s.aead.Open(nil, nonce, sealed[1+sealNonceLen:], associatedData)
	if err != nil {
		return nil, ErrUnseal
	}
	return plaintext, nil
}
