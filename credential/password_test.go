package credential

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/recourse/recourse"
)

// tinyParams keep Argon2id cheap in tests; only TestHashPasswordDefaultParams
// pays for DefaultPasswordParams.
var tinyParams = PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}

func mustHash(tb testing.TB, password string, p PasswordParams) string {
	tb.Helper()
	encoded, err := HashPassword(password, p)
	if err != nil {
		tb.Fatalf("HashPassword(%q): %v", password, err)
	}
	return encoded
}

var phcShape = regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashVerifyRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		password string
	}{
		{"ascii", "correct horse battery staple"},
		{"unicode", "пароль для входа 日本語 🔑"},
		{"spaces only", "            "},
		{"empty", ""},
		{"long", strings.Repeat("ab", 500)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded := mustHash(t, tt.password, tinyParams)
			if !phcShape.MatchString(encoded) {
				t.Fatalf("HashPassword = %q; not of the expected PHC shape", encoded)
			}
			ok, rehash, err := VerifyPassword(encoded, tt.password, tinyParams)
			if !ok || rehash || err != nil {
				t.Errorf("VerifyPassword(right password) = %v, %v, %v; want true, false, nil", ok, rehash, err)
			}
			ok, rehash, err = VerifyPassword(encoded, tt.password+"x", tinyParams)
			if ok || rehash || err != nil {
				t.Errorf("VerifyPassword(wrong password) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestHashPasswordSaltsDiffer(t *testing.T) {
	a, b := mustHash(t, "same password", tinyParams), mustHash(t, "same password", tinyParams)
	if a == b {
		t.Fatalf("two hashes of one password are equal: %q", a)
	}
}

func TestHashPasswordDefaultParams(t *testing.T) {
	encoded := mustHash(t, "correct horse battery staple", DefaultPasswordParams)
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(encoded, want) {
		t.Fatalf("HashPassword = %q; want prefix %q", encoded, want)
	}
	ok, rehash, err := VerifyPassword(encoded, "correct horse battery staple", DefaultPasswordParams)
	if !ok || rehash || err != nil {
		t.Fatalf("VerifyPassword = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestPasswordParamsValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*PasswordParams)
		wantErr string // field named in the error; "" for valid
	}{
		{"default", func(p *PasswordParams) { *p = DefaultPasswordParams }, ""},
		{"tiny", func(*PasswordParams) {}, ""},
		{"time zero", func(p *PasswordParams) { p.Time = 0 }, "Time"},
		{"time huge", func(p *PasswordParams) { p.Time = 101 }, "Time"},
		{"threads zero", func(p *PasswordParams) { p.Threads = 0 }, "Threads"},
		{"memory below 8 per thread", func(p *PasswordParams) { p.Threads = 9 }, "MemoryKiB"},
		{"memory over 4 GiB", func(p *PasswordParams) { p.MemoryKiB = 4*1024*1024 + 1 }, "MemoryKiB"},
		{"key short", func(p *PasswordParams) { p.KeyLen = 15 }, "KeyLen"},
		{"key huge", func(p *PasswordParams) { p.KeyLen = 1025 }, "KeyLen"},
		{"salt short", func(p *PasswordParams) { p.SaltLen = 7 }, "SaltLen"},
		{"salt huge", func(p *PasswordParams) { p.SaltLen = 1025 }, "SaltLen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tinyParams
			tt.change(&p)
			err := p.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v; want an error naming %s", err, tt.wantErr)
			}
			if _, err := HashPassword("x", p); err == nil {
				t.Errorf("HashPassword accepted invalid params")
			}
		})
	}
}

func TestVerifyPasswordNeedsRehash(t *testing.T) {
	encoded := mustHash(t, "correct horse battery staple", tinyParams)
	tests := []struct {
		name       string
		current    func(*PasswordParams)
		password   string
		wantOK     bool
		wantRehash bool
	}{
		{"same params", func(*PasswordParams) {}, "correct horse battery staple", true, false},
		{"more time", func(p *PasswordParams) { p.Time = 2 }, "correct horse battery staple", true, true},
		{"more memory", func(p *PasswordParams) { p.MemoryKiB = 128 }, "correct horse battery staple", true, true},
		{"more threads", func(p *PasswordParams) { p.Threads = 2 }, "correct horse battery staple", true, true},
		{"longer key", func(p *PasswordParams) { p.KeyLen = 64 }, "correct horse battery staple", true, true},
		{"longer salt", func(p *PasswordParams) { p.SaltLen = 32 }, "correct horse battery staple", true, true},
		{"wrong password never asks for rehash", func(p *PasswordParams) { p.Time = 2 }, "wrong", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			current := tinyParams
			tt.current(&current)
			ok, rehash, err := VerifyPassword(encoded, tt.password, current)
			if ok != tt.wantOK || rehash != tt.wantRehash || err != nil {
				t.Fatalf("VerifyPassword = %v, %v, %v; want %v, %v, nil", ok, rehash, err, tt.wantOK, tt.wantRehash)
			}
		})
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	valid := mustHash(t, "pw", tinyParams)
	parts := strings.Split(valid, "$")
	salt, hash := parts[4], parts[5]
	with := func(alg, version, params, salt, hash string) string {
		return "$" + alg + "$" + version + "$" + params + "$" + salt + "$" + hash
	}
	tests := []struct {
		name    string
		encoded string
	}{
		{"empty", ""},
		{"not phc", "hello"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"truncated", valid[:len(valid)/2]},
		{"missing leading dollar", valid[1:]},
		{"trailing dollar", valid + "$"},
		{"extra field", with("argon2id", "v=19", "m=64,t=1,p=1", salt, hash) + "$x"},
		{"argon2i", with("argon2i", "v=19", "m=64,t=1,p=1", salt, hash)},
		{"argon2d", with("argon2d", "v=19", "m=64,t=1,p=1", salt, hash)},
		{"upper-case algorithm", with("ARGON2ID", "v=19", "m=64,t=1,p=1", salt, hash)},
		{"version 16", with("argon2id", "v=16", "m=64,t=1,p=1", salt, hash)},
		{"version missing", "$argon2id$m=64,t=1,p=1$" + salt + "$" + hash},
		{"params reordered", with("argon2id", "v=19", "t=1,m=64,p=1", salt, hash)},
		{"param missing", with("argon2id", "v=19", "m=64,t=1", salt, hash)},
		{"extra param", with("argon2id", "v=19", "m=64,t=1,p=1,keyid=x", salt, hash)},
		{"space in params", with("argon2id", "v=19", "m=64, t=1,p=1", salt, hash)},
		{"leading zero", with("argon2id", "v=19", "m=064,t=1,p=1", salt, hash)},
		{"negative", with("argon2id", "v=19", "m=-64,t=1,p=1", salt, hash)},
		{"plus sign", with("argon2id", "v=19", "m=+64,t=1,p=1", salt, hash)},
		{"empty number", with("argon2id", "v=19", "m=,t=1,p=1", salt, hash)},
		{"number overflow", with("argon2id", "v=19", "m=99999999999999999999,t=1,p=1", salt, hash)},
		{"memory over 4 GiB", with("argon2id", "v=19", "m=4194305,t=1,p=1", salt, hash)},
		{"memory 4 GiB in bytes", with("argon2id", "v=19", "m=4294967295,t=1,p=1", salt, hash)},
		{"memory zero", with("argon2id", "v=19", "m=0,t=1,p=1", salt, hash)},
		{"memory below 8 per lane", with("argon2id", "v=19", "m=64,t=1,p=9", salt, hash)},
		{"time zero", with("argon2id", "v=19", "m=64,t=0,p=1", salt, hash)},
		{"time over 100", with("argon2id", "v=19", "m=64,t=101,p=1", salt, hash)},
		{"threads zero", with("argon2id", "v=19", "m=64,t=1,p=0", salt, hash)},
		{"threads over 255", with("argon2id", "v=19", "m=4096,t=1,p=256", salt, hash)},
		{"salt empty", with("argon2id", "v=19", "m=64,t=1,p=1", "", hash)},
		{"salt too short", with("argon2id", "v=19", "m=64,t=1,p=1", "AAAAAA", hash)},
		{"salt padded", with("argon2id", "v=19", "m=64,t=1,p=1", salt+"==", hash)},
		{"salt url alphabet", with("argon2id", "v=19", "m=64,t=1,p=1", "____________________AA", hash)},
		{"salt stray bits", with("argon2id", "v=19", "m=64,t=1,p=1", salt[:21]+"B", hash)},
		{"hash empty", with("argon2id", "v=19", "m=64,t=1,p=1", salt, "")},
		{"hash too short", with("argon2id", "v=19", "m=64,t=1,p=1", salt, "AAAAAAAAAAAAAAAAAAAA")},
		{"hash too long", with("argon2id", "v=19", "m=64,t=1,p=1", salt, strings.Repeat("A", 1368))},
		{"hash not base64", with("argon2id", "v=19", "m=64,t=1,p=1", salt, "!"+hash[1:])},
		{"huge input", valid + strings.Repeat("A", 5000)},
		{"nul bytes", "$argon2id\x00$v=19$m=64,t=1,p=1$" + salt + "$" + hash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := VerifyPassword(tt.encoded, "pw", tinyParams)
			if ok || rehash || !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("VerifyPassword(%q) = %v, %v, %v; want false, false, ErrInvalidHash", tt.encoded, ok, rehash, err)
			}
		})
	}
}

func TestVerifyPasswordTampered(t *testing.T) {
	valid := mustHash(t, "pw", tinyParams)
	parts := strings.Split(valid, "$")
	flip := func(s string) string { // change the first character, keeping it valid base64
		if s[0] == 'A' {
			return "B" + s[1:]
		}
		return "A" + s[1:]
	}
	tests := []struct {
		name    string
		encoded string
	}{
		{"salt changed", strings.Join([]string{"", parts[1], parts[2], parts[3], flip(parts[4]), parts[5]}, "$")},
		{"hash changed", strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], flip(parts[5])}, "$")},
		{"time changed", strings.Join([]string{"", parts[1], parts[2], "m=64,t=2,p=1", parts[4], parts[5]}, "$")},
		{"memory changed", strings.Join([]string{"", parts[1], parts[2], "m=72,t=1,p=1", parts[4], parts[5]}, "$")},
		{"threads changed", strings.Join([]string{"", parts[1], parts[2], "m=64,t=1,p=2", parts[4], parts[5]}, "$")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := VerifyPassword(tt.encoded, "pw", tinyParams)
			if ok || rehash || err != nil {
				t.Fatalf("VerifyPassword(%q) = %v, %v, %v; want false, false, nil", tt.encoded, ok, rehash, err)
			}
		})
	}
}

func TestDummyPasswordVerify(t *testing.T) {
	p := tinyParams
	p.Time = 3 // a parameter set no other test uses
	DummyPasswordVerify("anything", p)
	DummyPasswordVerify("anything else", p)
	v, ok := dummyHashes.Load(p)
	if !ok {
		t.Fatal("no dummy hash was made for the parameters")
	}
	// The dummy hash must be a real hash with the same parameters, or the
	// dummy verification would do less work than a real one.
	encoded := v.(*dummyHash).encoded
	ok, rehash, err := VerifyPassword(encoded, "anything", p)
	if ok || rehash || err != nil {
		t.Fatalf("VerifyPassword(dummy hash) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
	if stored, _, _, err := parsePHC(encoded); err != nil || stored != p {
		t.Fatalf("dummy hash params = %+v, %v; want %+v", stored, err, p)
	}
}

func TestPasswordRulesCheck(t *testing.T) {
	tests := []struct {
		name     string
		rules    PasswordRules
		password string
		context  []string
		wantMsg  string // substring of the message; "" for acceptable
	}{
		{"passphrase", DefaultPasswordRules, "correct horse battery staple", nil, ""},
		{"no composition rules", DefaultPasswordRules, "alllowercaseletters", nil, ""},
		{"spaces allowed", DefaultPasswordRules, "  spaced   out  words ", nil, ""},
		{"unicode allowed", DefaultPasswordRules, "пароль для входа", nil, ""},
		{"twelve multibyte runes", DefaultPasswordRules, "日本語のパスワードですよ", nil, ""},
		{"eleven multibyte runes", DefaultPasswordRules, "日本語のパスワードです", nil, "at least 12"},
		{"empty", DefaultPasswordRules, "", nil, "Enter a password"},
		{"too short", DefaultPasswordRules, "tr0ub4dor&3", nil, "at least 12"},
		{"exactly max", DefaultPasswordRules, strings.Repeat("ab", 128), nil, ""},
		{"too long", DefaultPasswordRules, strings.Repeat("ab", 128) + "c", nil, "at most 256"},
		{"no maximum", PasswordRules{MinLength: 8}, strings.Repeat("ab", 1000), nil, ""},
		{"invalid utf-8", DefaultPasswordRules, "valid until \xff here", nil, "cannot be read"},
		{"newline", DefaultPasswordRules, "correct horse\nbattery", nil, "control character"},
		{"tab", DefaultPasswordRules, "correct\thorse battery", nil, "control character"},
		{"repeated letter", DefaultPasswordRules, "aaaaaaaaaaaaaaaa", nil, "single character"},
		{"repeated space", DefaultPasswordRules, "                ", nil, "single character"},
		{"repeated emoji", DefaultPasswordRules, strings.Repeat("🔑", 12), nil, "single character"},
		{"common", DefaultPasswordRules, "password1234", nil, "too common"},
		{"common any case", DefaultPasswordRules, "QwertyUiop123", nil, "too common"},
		{"common season", PasswordRules{MinLength: 8}, "Summer2025!", nil, "too common"},
		{"common short with low minimum", PasswordRules{MinLength: 6}, "iloveyou", nil, "too common"},
		{"company name", PasswordRules{MinLength: 8}, "Recourse123", nil, "too common"},
		{"username", DefaultPasswordRules, "my name is adalovelace", []string{"adalovelace"}, "your name"},
		{"username any case", DefaultPasswordRules, "my name is AdaLoveLace", []string{"adalovelace"}, "your name"},
		{"display name part", DefaultPasswordRules, "countess lovelace 1815", []string{"Ada Lovelace"}, "your name"},
		{"email local part", DefaultPasswordRules, "byronic heroes are dull", []string{"ada.byron@example.org"}, "your name"},
		{"email domain is not personal", DefaultPasswordRules, "an example of a phrase", []string{"ada.byron@example.org"}, ""},
		{"short context ignored", DefaultPasswordRules, "ada bob and eve walk", []string{"ada", "Bob", "eve@x.io"}, ""},
		{"empty context ignored", DefaultPasswordRules, "correct horse battery staple", []string{"", "   "}, ""},
		{"unicode context", DefaultPasswordRules, "ich bin JÜRGEN der große", []string{"Jürgen Groß"}, "your name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rules.Check(tt.password, tt.context...)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v; want nil", tt.password, err)
				}
				return
			}
			var e *recourse.Error
			if !errors.As(err, &e) {
				t.Fatalf("Check(%q) = %v; want a *recourse.Error", tt.password, err)
			}
			if e.Code != recourse.EINVALID || e.Field != "password" || !strings.Contains(e.Message, tt.wantMsg) {
				t.Fatalf("Check(%q) = %+v; want EINVALID on password containing %q", tt.password, e, tt.wantMsg)
			}
			if tt.password != "" && strings.Contains(e.Message, tt.password) {
				t.Errorf("message %q repeats the password", e.Message)
			}
		})
	}
}

func TestCommonPasswordsList(t *testing.T) {
	set := commonPasswords()
	if len(set) < 500 {
		t.Fatalf("common password list has %d entries; want at least 500", len(set))
	}
	for _, want := range []string{"123456", "password", "qwerty", "iloveyou", "password123", "welcome1", "recourse", "summer2024"} {
		if _, ok := set[want]; !ok {
			t.Errorf("common password list lacks %q", want)
		}
	}
	for w := range set {
		if w != strings.TrimSpace(w) || w != strings.ToLower(w) {
			t.Errorf("entry %q is not trimmed lowercase", w)
		}
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add(mustHash(f, "pw", tinyParams))
	f.Add(mustHash(f, "", PasswordParams{Time: 1, MemoryKiB: 16, Threads: 2, KeyLen: 16, SaltLen: 8}))
	f.Add("$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=4194305,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, key, err := parsePHC(encoded)
		if err != nil {
			if !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("parsePHC error %v does not wrap ErrInvalidHash", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsePHC accepted invalid params: %v", err)
		}
		// The parser is strict: whatever it accepts is in canonical form.
		if again := encodePHC(p, salt, key); again != encoded {
			t.Fatalf("parsePHC accepted non-canonical %q (canonical %q)", encoded, again)
		}
		// Only compute cheap hashes; the limits let a stored hash ask for
		// up to 4 GiB, which is the point of having limits, not of fuzzing.
		if p.MemoryKiB <= 1024 && p.Time <= 2 && p.Threads <= 4 {
			if _, _, err := VerifyPassword(encoded, "pw", tinyParams); err != nil {
				t.Fatalf("VerifyPassword after successful parse: %v", err)
			}
		}
	})
}
