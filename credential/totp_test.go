package credential

import (
	"bytes"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"image/png"
	"net/url"
	"testing"
	"time"
)

// rfcSecret is the RFC 6238 SHA-1 test key "12345678901234567890" in base32.
const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

func mustTOTPCode(tb testing.TB, secret string, t time.Time) string {
	tb.Helper()
	code, err := TOTPCode(secret, t)
	if err != nil {
		tb.Fatalf("TOTPCode: %v", err)
	}
	return code
}

func TestTOTPCodeRFC6238(t *testing.T) {
	// RFC 6238 Appendix B, SHA-1, truncated to the last 6 of 8 digits.
	tests := []struct {
		unix int64
		want string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
	}
	for _, tt := range tests {
		if got := mustTOTPCode(t, rfcSecret, time.Unix(tt.unix, 0)); got != tt.want {
			t.Errorf("TOTPCode(T=%d) = %s; want %s", tt.unix, got, tt.want)
		}
	}
	if _, err := TOTPCode("not base32!", time.Unix(59, 0)); err == nil {
		t.Error("TOTPCode accepted an invalid secret")
	}
}

func TestTOTPStep(t *testing.T) {
	tests := []struct {
		unix int64
		want int64
	}{
		{0, 0}, {29, 0}, {30, 1}, {59, 1}, {1700000000, 56666666}, {-1, -1}, {-30, -1}, {-31, -2},
	}
	for _, tt := range tests {
		if got := TOTPStep(time.Unix(tt.unix, 0)); got != tt.want {
			t.Errorf("TOTPStep(%d) = %d; want %d", tt.unix, got, tt.want)
		}
	}
}

func TestMatchTOTP(t *testing.T) {
	now := time.Unix(1700000010, 0) // inside step 56666667
	cur := TOTPStep(now)
	codeAt := func(offset int64) string {
		return mustTOTPCode(t, rfcSecret, time.Unix((cur+offset)*30+7, 0))
	}
	tests := []struct {
		name     string
		code     string
		skew     uint
		wantStep int64
		wantOK   bool
	}{
		{"now", codeAt(0), 1, cur, true},
		{"one step back", codeAt(-1), 1, cur - 1, true},
		{"one step ahead", codeAt(1), 1, cur + 1, true},
		{"two steps back", codeAt(-2), 1, 0, false},
		{"two steps ahead", codeAt(2), 1, 0, false},
		{"two steps back, skew 2", codeAt(-2), 2, cur - 2, true},
		{"skew 0 now", codeAt(0), 0, cur, true},
		{"skew 0 one step back", codeAt(-1), 0, 0, false},
		{"skew capped: 10 ahead", codeAt(10), 1000, cur + 10, true},
		{"skew capped: 11 ahead", codeAt(11), 1000, 0, false},
		{"spaces", codeAt(0)[:3] + " " + codeAt(0)[3:], 1, cur, true},
		{"surrounding spaces", "  " + codeAt(0) + " ", 1, cur, true},
		{"five digits", codeAt(0)[:5], 1, 0, false},
		{"seven digits", codeAt(0) + "0", 1, 0, false},
		{"empty", "", 1, 0, false},
		{"letters", "12345a", 1, 0, false},
		{"sign", "+12345", 1, 0, false},
		{"dash", codeAt(0)[:3] + "-" + codeAt(0)[3:], 1, 0, false},
		{"arabic-indic digits", "١٢٣٤٥٦", 1, 0, false},
		{"fullwidth digits", "１２３４５６", 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step, ok := MatchTOTP(rfcSecret, tt.code, now, tt.skew)
			if step != tt.wantStep || ok != tt.wantOK {
				t.Fatalf("MatchTOTP(%q, skew %d) = %d, %v; want %d, %v", tt.code, tt.skew, step, ok, tt.wantStep, tt.wantOK)
			}
		})
	}
}

func TestMatchTOTPBadSecret(t *testing.T) {
	if step, ok := MatchTOTP("not base32!", "123456", time.Unix(1700000010, 0), 1); ok || step != 0 {
		t.Fatalf("MatchTOTP(bad secret) = %d, %v; want 0, false", step, ok)
	}
}

func TestMatchTOTPNearEpoch(t *testing.T) {
	// Steps before 0 are skipped rather than wrapped around.
	now := time.Unix(10, 0)
	code := mustTOTPCode(t, rfcSecret, now)
	if step, ok := MatchTOTP(rfcSecret, code, now, 2); !ok || step != 0 {
		t.Fatalf("MatchTOTP at the epoch = %d, %v; want 0, true", step, ok)
	}
}

func TestNewTOTPKey(t *testing.T) {
	key, err := NewTOTPKey("Recourse", "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if len(key.Secret) != 32 { // 20 bytes in unpadded base32
		t.Errorf("secret %q has %d characters; want 32", key.Secret, len(key.Secret))
	}
	u, err := url.Parse(key.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for name, want := range map[string]string{
		"scheme": "otpauth", "host": "totp", "secret": key.Secret, "issuer": "Recourse",
		"algorithm": "SHA1", "digits": "6", "period": "30",
	} {
		got := q.Get(name)
		switch name {
		case "scheme":
			got = u.Scheme
		case "host":
			got = u.Host
		}
		if got != want {
			t.Errorf("URL %s = %q; want %q", name, got, want)
		}
	}
	now := time.Unix(1700000010, 0)
	if _, ok := MatchTOTP(key.Secret, mustTOTPCode(t, key.Secret, now), now, 1); !ok {
		t.Error("a code from the new key does not match")
	}
	other, err := NewTOTPKey("Recourse", "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if other.Secret == key.Secret {
		t.Error("two new keys have the same secret")
	}
}

func TestNewTOTPKeyErrors(t *testing.T) {
	tests := []struct{ issuer, account string }{
		{"", "ada@example.org"},
		{"Recourse", ""},
	}
	for _, tt := range tests {
		if _, err := NewTOTPKey(tt.issuer, tt.account); err == nil {
			t.Errorf("NewTOTPKey(%q, %q) succeeded; want an error", tt.issuer, tt.account)
		}
	}
}

func TestTOTPQRCodePNG(t *testing.T) {
	key, err := NewTOTPKey("Recourse", "ada@example.org")
	if err != nil {
		t.Fatal(err)
	}
	data, err := TOTPQRCodePNG(key.URL, 256)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Errorf("image is %dx%d; want 256x256", b.Dx(), b.Dy())
	}
	// A scanner reads back exactly the otpauth URL (ZXing's decoder).
	for _, size := range []int{64, 240, 256, 1000} {
		data, err := TOTPQRCodePNG(key.URL, size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		bmp, err := gozxing.NewBinaryBitmapFromImage(img)
		if err != nil {
			t.Fatal(err)
		}
		res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
		if err != nil {
			t.Fatalf("size %d: the QR code does not decode: %v", size, err)
		}
		if res.GetText() != key.URL {
			t.Fatalf("size %d: the QR code says %q, want %q", size, res.GetText(), key.URL)
		}
	}

	tests := []struct {
		name string
		url  string
		size int
	}{
		{"not otpauth", "https://example.org/", 256},
		{"empty", "", 256},
		{"too small", key.URL, 63},
		{"too large", key.URL, 2049},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := TOTPQRCodePNG(tt.url, tt.size); err == nil {
				t.Fatalf("TOTPQRCodePNG(%q, %d) succeeded; want an error", tt.url, tt.size)
			}
		})
	}
}
