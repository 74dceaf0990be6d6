package credential

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"rsc.io/qr"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP settings. They are the defaults every common authenticator app
// understands (RFC 6238 with SHA-1), which matters more than the marginal
// strength of SHA-256 or 8 digits that some apps silently ignore.
const (
	totpPeriod     = 30 // seconds per time step
	totpDigits     = otp.DigitsSix
	totpSecretSize = 20 // bytes, the RFC 4226 recommendation

	// MaxTOTPSkew is the largest skew, in time steps either side of now,
	// that [MatchTOTP] honours; larger values are reduced to it.
	MaxTOTPSkew = 10
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}

// TOTPKey is a freshly generated TOTP secret. Secret is the unpadded base32
// secret to seal and store (see [Sealer]); URL is the otpauth:// URL to show
// as a QR code (see [TOTPQRCodePNG]) during enrolment and never again.
type TOTPKey struct {
	Secret string
	URL    string
}

// NewTOTPKey generates a random 20-byte TOTP secret for SHA-1, 6 digits and
// a 30-second period. issuer (the service name) and accountName (what the
// person recognises the account by) are shown in the authenticator app; both
// are required.
func NewTOTPKey(issuer, accountName string) (TOTPKey, error) {
	if issuer == "" || accountName == "" {
		return TOTPKey{}, errors.New("credential: a TOTP key needs an issuer and an account name")
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: accountName,
		Period:      totpPeriod,
		SecretSize:  totpSecretSize,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPKey{}, fmt.Errorf("credential: generate TOTP key: %w", err)
	}
	return TOTPKey{Secret: key.Secret(), URL: key.URL()}, nil
}

// TOTPQRCodePNG renders url, an otpauth:// URL from [NewTOTPKey], as a PNG
// image of a QR code size pixels square. size must be between 64 and 2048
// and large enough for the code (200 suffices for typical URLs).
func TOTPQRCodePNG(url string, size int) ([]byte, error) {
	if !strings.HasPrefix(url, "otpauth://") {
		return nil, errors.New("credential: not an otpauth:// URL")
	}
	if size < 64 || size > 2048 {
		return nil, fmt.Errorf("credential: QR code size %d; want 64 to 2048", size)
	}
	if _, err := otp.NewKeyFromURL(url); err != nil {
		return nil, fmt.Errorf("credential: parse otpauth URL: %w", err)
	}
	// rsc.io/qr encodes in tens of microseconds; the encoder behind
	// otp.Key.Image took 5.6 ms, a quarter of the CPU of a whole recovery
	// (docs/benchmarks.md).
	code, err := qr.Encode(url, qr.M)
	if err != nil {
		return nil, fmt.Errorf("credential: render QR code: %w", err)
	}
	// Whole pixels per module, centred, with at least the four-module quiet
	// zone scanners need; a two-colour paletted PNG.
	n := code.Size
	scale := size / (n + 8)
	if scale < 1 {
		return nil, fmt.Errorf("credential: QR code of %d modules does not fit %d pixels", n, size)
	}
	off := (size - n*scale) / 2
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	for y := range n {
		for x := range n {
			if !code.Black(x, y) {
				continue
			}
			for dy := range scale {
				row := img.Pix[(off+y*scale+dy)*img.Stride:]
				for dx := range scale {
					row[off+x*scale+dx] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := qrEncoder.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("credential: encode QR code: %w", err)
	}
	return buf.Bytes(), nil
}

// qrEncoder reuses its compressor between images: a fresh one allocates
// close to a megabyte, which was most of the encoding's cost.
var qrEncoder = png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngBuffers{}}

// pngBuffers is a png.EncoderBufferPool over a sync.Pool.
type pngBuffers struct{ p sync.Pool }

func (b *pngBuffers) Get() *png.EncoderBuffer {
	v, _ := b.p.Get().(*png.EncoderBuffer)
	return v
}

func (b *pngBuffers) Put(v *png.EncoderBuffer) { b.p.Put(v) }

// TOTPCode returns the 6-digit code for secret at time t, as an
// authenticator app would show it. It exists for tests and the demo; the
// server checks codes with [MatchTOTP].
func TOTPCode(secret string, t time.Time) (string, error) {
	code, err := totp.GenerateCodeCustom(secret, t, totpOpts)
	if err != nil {
		return "", fmt.Errorf("credential: TOTP code: %w", err)
	}
	return code, nil
}

// TOTPStep returns the TOTP time-step counter (Unix seconds / 30) of t.
func TOTPStep(t time.Time) int64 {
	s := t.Unix()
	step := s / totpPeriod
	if s < 0 && s%totpPeriod != 0 {
		step-- // floor, not truncation, before 1970
	}
	return step
}

// MatchTOTP reports whether code is the TOTP code of secret for a time step
// within skew steps of now (skew is capped at [MaxTOTPSkew]), and if so which
// step matched. Spaces in code are ignored ("123 456"); anything but exactly
// six ASCII digits then fails. Every candidate step is computed and compared
// in constant time, with no early exit on a match.
//
// MatchTOTP does not prevent replay: the caller MUST store the last accepted
// step for the authenticator atomically (compare-and-set in the store) and
// refuse any step <= the stored one, so a code cannot be used twice nor an
// older code after a newer one.
//
// An undecodable secret fails like a wrong code.
func MatchTOTP(secret, code string, now time.Time, skew uint) (step int64, ok bool) {
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != int(totpDigits) {
		return 0, false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return 0, false
		}
	}
	if skew > MaxTOTPSkew {
		skew = MaxTOTPSkew
	}
	current := TOTPStep(now)
	matched := false
	for s := current - int64(skew); s <= current+int64(skew); s++ {
		if s < 0 {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false // the secret is bad; the same for every step
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && !matched {
			step, matched = s, true
		}
	}
	if !matched {
		return 0, false
	}
	return step, true
}
