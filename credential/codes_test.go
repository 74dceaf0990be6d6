package credential

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestNewHasher(t *testing.T) {
	for _, n := range []int{0, 16, 31} {
		if _, err := NewHasher(make([]byte, n)); err == nil {
			t.Errorf("NewHasher(%d bytes) succeeded; want an error", n)
		}
	}
	for _, n := range []int{32, 64} {
		if _, err := NewHasher(make([]byte, n)); err != nil {
			t.Errorf("NewHasher(%d bytes) = %v; want nil", n, err)
		}
	}
}

func TestHasherSum(t *testing.T) {
	key := testKey(1)
	h, err := NewHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("session\x00rcs_secret"))
	if got, want := h.Sum("session", "rcs_secret"), mac.Sum(nil); !bytes.Equal(got, want) {
		t.Fatalf("Sum = %x; want HMAC-SHA256 %x", got, want)
	}

	key[0] = 2 // the hasher holds its own copy
	if got := h.Sum("session", "rcs_secret"); !bytes.Equal(got, mac.Sum(nil)) {
		t.Error("changing the caller's key slice changed the hasher")
	}

	other, _ := NewHasher(testKey(3))
	base := h.Sum("session", "rcs_secret")
	tests := []struct {
		name string
		sum  []byte
	}{
		{"other purpose", h.Sum("email-code", "rcs_secret")},
		{"other secret", h.Sum("session", "rcs_secreT")},
		{"other key", other.Sum("session", "rcs_secret")},
		{"boundary moved", h.Sum("sessio", "nrcs_secret")},
	}
	for _, tt := range tests {
		if bytes.Equal(tt.sum, base) {
			t.Errorf("%s: same sum", tt.name)
		}
	}

	defer func() {
		if recover() == nil {
			t.Error("Sum with a NUL in purpose did not panic")
		}
	}()
	h.Sum("a\x00b", "c")
}

func TestNewToken(t *testing.T) {
	shape := regexp.MustCompile(`^rcs_[a-z2-7]{52}$`)
	seen := make(map[string]bool)
	for range 100 {
		tok := NewToken("rcs_")
		if !shape.MatchString(tok) {
			t.Fatalf("NewToken = %q; want rcs_ and 52 base32 characters", tok)
		}
		if !ValidToken("rcs_", tok) {
			t.Fatalf("ValidToken(NewToken) = false for %q", tok)
		}
		if seen[tok] {
			t.Fatalf("duplicate token %q", tok)
		}
		seen[tok] = true
	}
}

func TestValidToken(t *testing.T) {
	good := "rcs_" + strings.Repeat("a", 51) + "q" // last char holds 1 bit: a or q
	tests := []struct {
		name   string
		prefix string
		token  string
		want   bool
	}{
		{"good", "rcs_", good, true},
		{"good, last a", "rcs_", "rcs_" + strings.Repeat("b", 51) + "a", true},
		{"no prefix wanted", "", good[4:], true},
		{"wrong prefix", "rss_", good, false},
		{"prefix only", "rcs_", "rcs_", false},
		{"empty", "rcs_", "", false},
		{"one short", "rcs_", good[:len(good)-1], false},
		{"one long", "rcs_", good + "a", false},
		{"upper case", "rcs_", strings.ToUpper(good[:4]) + strings.ToUpper(good[4:]), false},
		{"upper case body", "rcs_", "rcs_" + strings.ToUpper(good[4:]), false},
		{"digit 1", "rcs_", "rcs_1" + good[5:], false},
		{"digit 8", "rcs_", "rcs_8" + good[5:], false},
		{"padding", "rcs_", good[:len(good)-1] + "=", false},
		{"non-canonical last character", "rcs_", good[:len(good)-1] + "b", false},
		{"newline inside", "rcs_", good[:20] + "\n" + good[21:], false},
		{"unicode", "rcs_", good[:len(good)-2] + "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidToken(tt.prefix, tt.token); got != tt.want {
				t.Fatalf("ValidToken(%q, %q) = %v; want %v", tt.prefix, tt.token, got, tt.want)
			}
		})
	}
}

func TestNewNumericCode(t *testing.T) {
	for digits := 6; digits <= 10; digits++ {
		for range 50 {
			code := NewNumericCode(digits)
			if len(code) != digits || strings.Trim(code, "0123456789") != "" {
				t.Fatalf("NewNumericCode(%d) = %q", digits, code)
			}
		}
	}
	for _, digits := range []int{0, 5, 11} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewNumericCode(%d) did not panic", digits)
				}
			}()
			NewNumericCode(digits)
		}()
	}
}

func TestNewNumericCodeDistribution(t *testing.T) {
	// A sanity check, not a statistical test: 12,000 digits, about 1,200 of
	// each; the bounds are more than ten standard deviations wide.
	var counts [10]int
	for range 2000 {
		for _, c := range NewNumericCode(6) {
			counts[c-'0']++
		}
	}
	for d, n := range counts {
		if n < 800 || n > 1600 {
			t.Errorf("digit %d appeared %d times in 12000; want about 1200", d, n)
		}
	}
}

var recoveryShape = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}$`)

func TestNewRecoveryCodes(t *testing.T) {
	if codes := NewRecoveryCodes(0); codes != nil {
		t.Errorf("NewRecoveryCodes(0) = %v; want nil", codes)
	}
	codes := NewRecoveryCodes(16)
	if len(codes) != 16 {
		t.Fatalf("got %d codes; want 16", len(codes))
	}
	seen := make(map[string]bool)
	for _, c := range codes {
		if !recoveryShape.MatchString(c) {
			t.Errorf("code %q is not xxxx-xxxx-xxxx-xxxx in Crockford base32", c)
		}
		norm, ok := NormalizeRecoveryCode(c)
		if !ok || norm != strings.ReplaceAll(c, "-", "") {
			t.Errorf("NormalizeRecoveryCode(%q) = %q, %v", c, norm, ok)
		}
		if seen[norm] {
			t.Errorf("duplicate code %q", c)
		}
		seen[norm] = true
	}
}

func TestNormalizeRecoveryCode(t *testing.T) {
	const canon = "7kq4m2xv9df0hc31"
	tests := []struct {
		name  string
		input string
		want  string // "" when not ok
	}{
		{"canonical", canon, canon},
		{"display form", "7kq4-m2xv-9df0-hc31", canon},
		{"upper case", "7KQ4-M2XV-9DF0-HC31", canon},
		{"spaces", "7kq4 m2xv 9df0 hc31", canon},
		{"surrounding whitespace", "\t 7kq4-m2xv-9df0-hc31 \n", canon},
		{"extra dashes", "-7kq4--m2xv-9df0-hc31-", canon},
		{"o for zero", "7kq4-m2xv-9dfo-hc31", canon},
		{"O for zero", "7KQ4-M2XV-9DFO-HC31", canon},
		{"i for one", "7kq4-m2xv-9df0-hc3i", canon},
		{"L for one", "7kq4-m2xv-9df0-hc3L", canon},
		{"u is not in the alphabet", "7kq4-m2xv-9df0-hc3u", ""},
		{"one short", "7kq4-m2xv-9df0-hc3", ""},
		{"one long", "7kq4-m2xv-9df0-hc311", ""},
		{"empty", "", ""},
		{"dashes only", "----", ""},
		{"tab inside", "7kq4\tm2xv-9df0-hc31", ""},
		{"underscore", "7kq4_m2xv_9df0_hc31", ""},
		{"unicode look-alike", "7kq4-m2xv-9df0-hc3ı", ""},
		{"fullwidth", "７kq4-m2xv-9df0-hc31", ""},
		{"very long", strings.Repeat("-", 100) + canon, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NormalizeRecoveryCode(tt.input)
			if got != tt.want || ok != (tt.want != "") {
				t.Fatalf("NormalizeRecoveryCode(%q) = %q, %v; want %q, %v", tt.input, got, ok, tt.want, tt.want != "")
			}
		})
	}
}

func FuzzNormalizeRecoveryCode(f *testing.F) {
	for _, s := range []string{"7kq4-m2xv-9df0-hc31", "7KQ4 M2XV 9DFO HC3L", "", "----", "ı", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		code, ok := NormalizeRecoveryCode(s)
		if !ok {
			if code != "" {
				t.Fatalf("NormalizeRecoveryCode(%q) = %q, false; want an empty code", s, code)
			}
			return
		}
		if len(code) != 16 || strings.Trim(code, recoveryAlphabet) != "" {
			t.Fatalf("NormalizeRecoveryCode(%q) = %q; not 16 characters of the alphabet", s, code)
		}
		if again, ok := NormalizeRecoveryCode(code); !ok || again != code {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, code, again, ok)
		}
		display := code[0:4] + "-" + code[4:8] + "-" + code[8:12] + "-" + code[12:16]
		if again, ok := NormalizeRecoveryCode(display); !ok || again != code {
			t.Fatalf("display form %q -> %q, %v; want %q", display, again, ok, code)
		}
	})
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b []byte
		want bool
	}{
		{nil, nil, true},
		{[]byte{}, nil, true},
		{[]byte("abc"), []byte("abc"), true},
		{[]byte("abc"), []byte("abd"), false},
		{[]byte("abc"), []byte("ab"), false},
		{[]byte("a"), nil, false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v; want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
