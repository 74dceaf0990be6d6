package credential

import (
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/recourse/recourse"
)

// PasswordParams are the Argon2id cost parameters. They are stored inside
// every hash, so changing them never invalidates existing hashes: old hashes
// keep verifying with their own parameters and are reported as needing a
// rehash (see [VerifyPassword]).
type PasswordParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // degree of parallelism
	KeyLen    uint32 // length of the derived key in bytes
	SaltLen   uint32 // length of the random salt in bytes
}

// DefaultPasswordParams is the OWASP Password Storage Cheat Sheet minimum for
// Argon2id (m=19 MiB, t=2, p=1). Raise MemoryKiB or Time when the hardware
// allows; lowering them weakens every hash made from then on.
var DefaultPasswordParams = PasswordParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}

// Bounds on Argon2id parameters. The upper bounds exist so that a stored hash
// — which may come from a poisoned or corrupt database row — can never make
// the server allocate gigabytes or spin for minutes.
const (
	minPasswordTime    = 1
	maxPasswordTime    = 100
	maxPasswordMemory  = 4 * 1024 * 1024 // KiB, i.e. 4 GiB
	minPasswordKeyLen  = 16
	maxPasswordKeyLen  = 1024
	minPasswordSaltLen = 8
	maxPasswordSaltLen = 1024

	// maxEncodedHashLen bounds the PHC string before any decoding: the
	// longest valid string (1024-byte salt and key, largest numbers) is
	// under 2,800 bytes.
	maxEncodedHashLen = 4096
)

// Validate reports whether p is usable: within the bounds the Argon2id
// specification allows and below the limits that protect the server. It does
// not enforce a security minimum, so tests may use tiny parameters; deployments
// should start from [DefaultPasswordParams]. Errors name the offending field.
func (p PasswordParams) Validate() error {
	switch {
	case p.Time < minPasswordTime || p.Time > maxPasswordTime:
		return fmt.Errorf("credential: PasswordParams.Time is %d; want %d to %d", p.Time, minPasswordTime, maxPasswordTime)
	case p.Threads < 1:
		return fmt.Errorf("credential: PasswordParams.Threads is 0; want at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxPasswordMemory:
		return fmt.Errorf("credential: PasswordParams.MemoryKiB is %d; want %d (8 per thread) to %d", p.MemoryKiB, 8*uint32(p.Threads), maxPasswordMemory)
	case p.KeyLen < minPasswordKeyLen || p.KeyLen > maxPasswordKeyLen:
		return fmt.Errorf("credential: PasswordParams.KeyLen is %d; want %d to %d", p.KeyLen, minPasswordKeyLen, maxPasswordKeyLen)
	case p.SaltLen < minPasswordSaltLen || p.SaltLen > maxPasswordSaltLen:
		return fmt.Errorf("credential: PasswordParams.SaltLen is %d; want %d to %d", p.SaltLen, minPasswordSaltLen, maxPasswordSaltLen)
	}
	return nil
}

// ErrInvalidHash is wrapped by every error [VerifyPassword] returns for a
// stored hash it cannot parse or refuses to compute. Such a hash is a corrupt
// or hostile database row, not a wrong password: callers should log it and
// fail the sign-in as an internal error.
var ErrInvalidHash = errors.New("credential: invalid password hash")

// phcB64 is the PHC string format's base64: standard alphabet, no padding,
// and (Strict) no stray bits, so each byte string has exactly one encoding.
var phcB64 = base64.RawStdEncoding.Strict()

// HashPassword derives an Argon2id hash of password with a fresh random salt
// and returns it in the PHC string format,
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// which records everything [VerifyPassword] needs. The password is hashed as
// given (its UTF-8 bytes); check it with [PasswordRules.Check] first.
func HashPassword(password string, p PasswordParams) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	rand.Read(salt) // never fails; see crypto/rand
	key := argon2ID([]byte(password), salt, p)
	return encodePHC(p, salt, key), nil
}

// argon2Slots bounds the Argon2id computations running at once to the
// number of CPUs. More at once finish no sooner, and each holds MemoryKiB
// (19 MiB by default) until it finishes: unbounded, sixteen concurrent
// sign-ins held over 300 MiB and a flood of them could exhaust memory. The
// extra ones wait their turn, which takes as long as sharing the CPUs would.
var argon2Slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

func argon2ID(password, salt []byte, p PasswordParams) []byte {
	argon2Slots <- struct{}{}
	defer func() { <-argon2Slots }()
	return argon2.IDKey(password, salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
}

func encodePHC(p PasswordParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		phcB64.EncodeToString(salt), phcB64.EncodeToString(key))
}

// VerifyPassword reports whether password matches encoded, a PHC string made
// by [HashPassword]. The hash is recomputed with the parameters stored in
// encoded and compared in constant time.
//
// needsRehash is true only when ok is true and the stored parameters differ
// from current; the caller should then store HashPassword(password, current).
// It is never true for a wrong password, so a caller cannot be tricked into
// replacing a hash with one of a wrong password.
//
// err is non-nil (and wraps [ErrInvalidHash]) only when encoded is malformed
// or asks for absurd work; a wrong password is ok == false with a nil err.
func VerifyPassword(encoded, password string, current PasswordParams) (ok bool, needsRehash bool, err error) {
	stored, salt, want, err := parsePHC(encoded)
	if err != nil {
		return false, false, err
	}
	got := argon2ID([]byte(password), salt, stored)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	return true, stored != current, nil
}

// parsePHC is a strict parser of the one form encodePHC writes: algorithm
// argon2id, version 19, exactly the parameters m, t and p in that order as
// canonical decimals, and canonical unpadded base64 salt and hash. Any other
// form, including ones other PHC writers would accept, is refused: this
// service only ever reads hashes it wrote.
func parsePHC(encoded string) (p PasswordParams, salt, key []byte, err error) {
	fail := func(format string, args ...any) (PasswordParams, []byte, []byte, error) {
		return PasswordParams{}, nil, nil, fmt.Errorf("%w: %s", ErrInvalidHash, fmt.Sprintf(format, args...))
	}
	if len(encoded) > maxEncodedHashLen {
		return fail("longer than %d bytes", maxEncodedHashLen)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return fail("want 5 fields of the form $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	if parts[1] != "argon2id" {
		return fail("algorithm is %q; want argon2id", truncate(parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return fail("version field is %q; want v=%d", truncate(parts[2]), argon2.Version)
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return fail("parameters are %q; want m=…,t=…,p=…", truncate(parts[3]))
	}
	var nums [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return fail("parameter %d is %q; want %s=…", i+1, truncate(params[i]), name)
		}
		n, ok := parseDecimal(v)
		if !ok {
			return fail("parameter %s is %q; want a decimal number without leading zeros", name, truncate(v))
		}
		nums[i] = n
	}
	switch {
	case nums[0] > maxPasswordMemory:
		return fail("memory m=%d KiB is above the limit of %d", nums[0], maxPasswordMemory)
	case nums[1] > maxPasswordTime:
		return fail("time t=%d is above the limit of %d", nums[1], maxPasswordTime)
	case nums[2] > 255:
		return fail("parallelism p=%d is above the limit of 255", nums[2])
	}
	if salt, err = phcB64.DecodeString(parts[4]); err != nil {
		return fail("salt is not canonical unpadded base64")
	}
	if key, err = phcB64.DecodeString(parts[5]); err != nil {
		return fail("hash is not canonical unpadded base64")
	}
	p = PasswordParams{
		Time:      uint32(nums[1]),
		MemoryKiB: uint32(nums[0]),
		Threads:   uint8(nums[2]),
		KeyLen:    uint32(len(key)),
		SaltLen:   uint32(len(salt)),
	}
	if err := p.Validate(); err != nil {
		return PasswordParams{}, nil, nil, fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	return p, salt, key, nil
}

// parseDecimal parses a canonical non-negative decimal: digits only, no sign,
// no leading zero (except "0" itself), at most 10 digits.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// truncate shortens untrusted text quoted in an error message.
func truncate(s string) string {
	const max = 32
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// dummyHash is a hash of a random password, made once per parameter set.
type dummyHash struct {
	once    sync.Once
	encoded string
}

var dummyHashes sync.Map // PasswordParams -> *dummyHash

// DummyPasswordVerify does the work of [VerifyPassword] against a hash made
// with p, and discards the result. Call it when a sign-in names an account
// that does not exist (or has no password), so that the response takes as
// long as for a real account and does not reveal which accounts exist.
//
// The dummy hash for p is made on first use, so the first call costs two
// hashes; call it once at start-up to warm it. Invalid p falls back to
// [DefaultPasswordParams].
func DummyPasswordVerify(password string, p PasswordParams) {
	if p.Validate() != nil {
		p = DefaultPasswordParams
	}
	v, _ := dummyHashes.LoadOrStore(p, new(dummyHash))
	d := v.(*dummyHash)
	d.once.Do(func() {
		d.encoded, _ = HashPassword(rand.Text(), p)
	})
	_, _, _ = VerifyPassword(d.encoded, password, p)
}

// PasswordRules are the checks a new password must pass, following NIST SP
// 800-63B-4: a minimum and maximum length, no composition rules (all
// printable Unicode and spaces are allowed), and a refusal of passwords that
// are common, breached, or derived from the account's own names.
type PasswordRules struct {
	MinLength int // in characters (Unicode code points)
	MaxLength int // in characters (Unicode code points); 0 means no maximum
}

// DefaultPasswordRules allow 12 to 256 characters. NIST asks for at least 15
// when a password is the only factor and at least 8 otherwise; 12 is the
// Recourse compromise for accounts that usually also have a second factor.
var DefaultPasswordRules = PasswordRules{MinLength: 12, MaxLength: 256}

// minContextLen is the length under which a context string is too short to
// be meaningful in a password ("al", "bob") and is ignored.
const minContextLen = 4

// Check reports why password is not acceptable, or nil. context holds strings
// the password must not contain, compared case-insensitively: the username,
// the display name, the email address and the like. Each is also split into
// words at spaces and at . _ - +, and of an email address only the local part
// counts, so "Ada Lovelace" refuses passwords containing "lovelace" and
// "ada.byron@example.org" refuses ones containing "byron". Strings and words
// shorter than four characters are ignored.
//
// Errors are [recourse.FieldError]s on the field "password" whose messages
// are fit to show the person choosing the password; they never repeat the
// password or the context.
//
// Passwords must be valid UTF-8 without control characters (tabs, newlines
// and the like are nearly always pasting accidents). Length is counted in
// code points without Unicode normalisation.
func (r PasswordRules) Check(password string, context ...string) error {
	if password == "" {
		return recourse.FieldError("password", "Enter a password.")
	}
	if !utf8.ValidString(password) {
		return recourse.FieldError("password", "The password contains characters that cannot be read. Type it again.")
	}
	n := utf8.RuneCountInString(password)
	if n < r.MinLength {
		return recourse.FieldError("password", "Use at least %d characters.", r.MinLength)
	}
	if r.MaxLength > 0 && n > r.MaxLength {
		return recourse.FieldError("password", "Use at most %d characters.", r.MaxLength)
	}
	if strings.IndexFunc(password, unicode.IsControl) >= 0 {
		return recourse.FieldError("password", "The password contains a tab, line break or other control character. Remove it.")
	}
	if repeatsOneRune(password) {
		return recourse.FieldError("password", "Do not use a single character repeated.")
	}
	lower := strings.ToLower(password)
	if _, common := commonPasswords()[lower]; common {
		return recourse.FieldError("password", "This password is too common and is among the first that attackers try. Choose another.")
	}
	for _, c := range context {
		for _, word := range contextWords(c) {
			if strings.Contains(lower, word) {
				return recourse.FieldError("password", "Do not use your name, username or email address in your password.")
			}
		}
	}
	return nil
}

func repeatsOneRune(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	for _, r := range s {
		if r != first {
			return false
		}
	}
	return true
}

// contextWords returns the lowercased string (only its local part if it is
// an email address) and its words, keeping those of at least minContextLen
// characters.
func contextWords(s string) []string {
	s = strings.ToLower(strings.TrimSpace(s))
	if local, _, ok := strings.Cut(s, "@"); ok {
		s = local
	}
	var words []string
	add := func(w string) {
		if utf8.RuneCountInString(w) >= minContextLen {
			words = append(words, w)
		}
	}
	add(s)
	fields := strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("._-+", r)
	})
	if len(fields) > 1 {
		for _, f := range fields {
			add(f)
		}
	}
	return words
}

//go:embed common-passwords.txt
var commonPasswordsFile string

// commonPasswords is the embedded list as a set of lowercased entries. Lines
// that are empty or start with '#' are ignored.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 1024)
	for line := range strings.Lines(commonPasswordsFile) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
})
