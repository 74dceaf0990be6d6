package credential

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
)

// Hasher makes keyed hashes (HMAC-SHA256) of tokens and codes for storage
// and lookup. Because the key lives outside the database, a dump of the
// database alone does not let anyone brute-force a 6-digit code or confirm a
// guessed token.
type Hasher struct{ key []byte }

// MinHasherKeyLen is the shortest key [NewHasher] accepts, in bytes.
const MinHasherKeyLen = 32

// NewHasher returns a Hasher keyed with a copy of key, which must be at least
// 32 random bytes. Changing the key makes every stored hash unmatchable.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < MinHasherKeyLen {
		return nil, fmt.Errorf("credential: hasher key is %d bytes; want at least %d", len(key), MinHasherKeyLen)
	}
	return &Hasher{key: append([]byte(nil), key...)}, nil
}

// Sum returns HMAC-SHA256(key, purpose + "\x00" + secret), 32 bytes. purpose
// separates kinds of secret ("session", "email-code", …) so that a hash made
// for one can never match a lookup for another; it is a constant of the
// program and must not contain a NUL byte (Sum panics if it does, since the
// encoding would then be ambiguous).
func (h *Hasher) Sum(purpose, secret string) []byte {
	if strings.IndexByte(purpose, 0) >= 0 {
		panic("credential: Hasher.Sum purpose contains a NUL byte")
	}
	mac := hmac.New(sha256.New, h.key)
	mac.Write([]byte(purpose))
	mac.Write([]byte{0})
	mac.Write([]byte(secret))
	return mac.Sum(nil)
}

// Tokens are 32 random bytes (256 bits) in lowercase RFC 4648 base32 without
// padding: 52 characters of a-z and 2-7, safe in URLs, headers and file
// names, and selectable with a double click.
const (
	tokenBytes = 32
	tokenChars = 52 // ceil(256 / 5)
)

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewToken returns prefix followed by 256 random bits in lowercase base32
// without padding (52 characters of a-z2-7). The prefix ("rcs_", "rss_", …)
// says what the token is, so a leaked one is recognisable by secret scanners
// and by people. Store only [Hasher.Sum] of the whole token.
func NewToken(prefix string) string {
	b := make([]byte, tokenBytes)
	rand.Read(b) // never fails; see crypto/rand
	return prefix + tokenEncoding.EncodeToString(b)
}

// ValidToken reports whether token has the shape [NewToken] gives with this
// prefix: the prefix, then exactly 52 characters that decode as canonical
// lowercase base32. It checks shape only, so that garbage is refused before
// any database lookup; it says nothing about whether the token was issued.
func ValidToken(prefix, token string) bool {
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok || len(rest) != tokenChars {
		return false
	}
	b, err := tokenEncoding.DecodeString(rest)
	// Re-encoding refuses the 15 non-canonical spellings of the last
	// character, whose unused low bits are not zero.
	return err == nil && len(b) == tokenBytes && tokenEncoding.EncodeToString(b) == rest
}

// NewNumericCode returns digits uniformly random decimal digits (leading
// zeros included), for codes people type from an email or a text message.
// digits must be between 6 and 10; NewNumericCode panics otherwise, as that
// is a programming error. Such codes are guessable: the caller MUST limit
// attempts and expire them.
func NewNumericCode(digits int) string {
	if digits < 6 || digits > 10 {
		panic(fmt.Sprintf("credential: NewNumericCode(%d): want 6 to 10 digits", digits))
	}
	code := make([]byte, 0, digits)
	var buf [16]byte
	for len(code) < digits {
		rand.Read(buf[:])
		for _, b := range buf {
			// Rejection sampling: 250 is the largest multiple of 10 that
			// fits in a byte, so b%10 is uniform over the bytes kept.
			if b >= 250 {
				continue
			}
			code = append(code, '0'+b%10)
			if len(code) == digits {
				break
			}
		}
	}
	return string(code)
}

// Recovery codes are 80 random bits written as 16 characters of lowercase
// Crockford base32 (no i, l, o or u), grouped for reading aloud and typing:
// "7kq4-m2xv-9df0-hc3w".
const (
	recoveryCodeBytes = 10 // 80 bits
	recoveryCodeChars = 16 // 80 / 5
	recoveryAlphabet  = "0123456789abcdefghjkmnpqrstvwxyz"
)

var recoveryEncoding = base32.NewEncoding(recoveryAlphabet).WithPadding(base32.NoPadding)

// NewRecoveryCodes returns n distinct one-time recovery codes, each 80
// random bits formatted as four dash-separated groups of four lowercase
// Crockford base32 characters. Show them once; store only [Hasher.Sum] of
// each code's [NormalizeRecoveryCode] form. n <= 0 returns nil.
func NewRecoveryCodes(n int) []string {
	if n <= 0 {
		return nil
	}
	codes := make([]string, 0, n)
	seen := make(map[string]bool, n)
	b := make([]byte, recoveryCodeBytes)
	for len(codes) < n {
		rand.Read(b)
		raw := recoveryEncoding.EncodeToString(b)
		if seen[raw] {
			continue // 2^-80; but a duplicate would be one code, not two
		}
		seen[raw] = true
		codes = append(codes, raw[0:4]+"-"+raw[4:8]+"-"+raw[8:12]+"-"+raw[12:16])
	}
	return codes
}

// NormalizeRecoveryCode turns what a person typed into the canonical form of
// a recovery code: 16 lowercase Crockford base32 characters without dashes,
// the form to hash. It trims and lowercases, drops spaces and dashes, and
// maps the look-alikes o to 0 and i and l to 1. ok is false when the result
// is not 16 characters of the alphabet.
func NormalizeRecoveryCode(s string) (code string, ok bool) {
	if len(s) > 64 {
		return "", false // far longer than any plausible typing of a code
	}
	var b strings.Builder
	b.Grow(recoveryCodeChars)
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == ' ' || r == '-':
			continue
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		}
		switch r {
		case 'o':
			r = '0'
		case 'i', 'l':
			r = '1'
		}
		if r > 0x7f || strings.IndexByte(recoveryAlphabet, byte(r)) < 0 {
			return "", false
		}
		if b.Len() == recoveryCodeChars {
			return "", false
		}
		b.WriteByte(byte(r))
	}
	if b.Len() != recoveryCodeChars {
		return "", false
	}
	return b.String(), true
}

// Equal reports whether a and b are equal, in time that depends only on
// their lengths. Use it for every comparison of secrets or their hashes.
func Equal(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}
