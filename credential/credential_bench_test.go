package credential

import (
	"strings"
	"testing"
	"time"
)

// The in-process cost of minting and redeeming the secrets every flow
// handles; docs/benchmarks.md has the figures. A redeem is the lookup form
// of a secret (Hasher.Sum) and a constant-time comparison with the stored
// hash; the database lookup around it is in the store benchmarks.

func benchHasher(b *testing.B) *Hasher {
	b.Helper()
	h, err := NewHasher([]byte(strings.Repeat("k", 32)))
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkTokenMint: a 256-bit token and its stored HMAC (a session, a
// completion or a "this wasn't me" token).
func BenchmarkTokenMint(b *testing.B) {
	h := benchHasher(b)
	b.ReportAllocs()
	for b.Loop() {
		t := NewToken("rct_")
		_ = h.Sum("token", t)
	}
}

// BenchmarkTokenRedeem: the shape check, the HMAC and the comparison with
// the stored hash.
func BenchmarkTokenRedeem(b *testing.B) {
	h := benchHasher(b)
	t := NewToken("rct_")
	stored := h.Sum("token", t)
	b.ReportAllocs()
	for b.Loop() {
		if !ValidToken("rct_", t) || !Equal(h.Sum("token", t), stored) {
			b.Fatal("token not redeemed")
		}
	}
}

// BenchmarkCodeMint: a 6-digit code sent to a channel and its stored HMAC
// (keyed per challenge, as the service does).
func BenchmarkCodeMint(b *testing.B) {
	h := benchHasher(b)
	b.ReportAllocs()
	for b.Loop() {
		c := NewNumericCode(6)
		_ = h.Sum("challenge:chl_abcdefghijklmnopqrstuvwx", c)
	}
}

// BenchmarkCodeRedeem: checking a typed code against the outstanding
// challenges of a request (two: an email and a text message).
func BenchmarkCodeRedeem(b *testing.B) {
	h := benchHasher(b)
	code := NewNumericCode(6)
	stored := [][]byte{h.Sum("challenge:chl_a", NewNumericCode(6)), h.Sum("challenge:chl_b", code)}
	ids := []string{"chl_a", "chl_b"}
	b.ReportAllocs()
	for b.Loop() {
		match := false
		for i, s := range stored {
			if Equal(s, h.Sum("challenge:"+ids[i], code)) {
				match = true
			}
		}
		if !match {
			b.Fatal("code not matched")
		}
	}
}

// BenchmarkTOTPMatch: checking an authenticator-app code with one step of
// skew (three HMAC-SHA1 computations, no early exit).
func BenchmarkTOTPMatch(b *testing.B) {
	key, err := NewTOTPKey("Recourse", "bench")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	code, err := TOTPCode(key.Secret, now)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := MatchTOTP(key.Secret, code, now, 1); !ok {
			b.Fatal("code not matched")
		}
	}
}

// BenchmarkPasswordVerify: one Argon2id verification at the default
// parameters (time 2, 19 MiB, 1 thread), the cost every password sign-in
// pays, and an unknown account too (DummyPasswordVerify).
func BenchmarkPasswordVerify(b *testing.B) {
	hash, err := HashPassword("violet-lantern-carousel", DefaultPasswordParams)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := VerifyPassword(hash, "violet-lantern-carousel", DefaultPasswordParams); !ok || err != nil {
			b.Fatal("password not verified", err)
		}
	}
}

// BenchmarkPasswordVerifyParallel: the same on every core, as concurrent
// sign-ins run; it bounds sign-ins per second per machine.
func BenchmarkPasswordVerifyParallel(b *testing.B) {
	hash, err := HashPassword("violet-lantern-carousel", DefaultPasswordParams)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, err := VerifyPassword(hash, "violet-lantern-carousel", DefaultPasswordParams); !ok || err != nil {
				b.Error("password not verified", err)
				return
			}
		}
	})
}

// BenchmarkTOTPQRCode: the QR code of a new authenticator app's secret,
// rendered at the size the enrolment page shows (240 px).
func BenchmarkTOTPQRCode(b *testing.B) {
	key, err := NewTOTPKey("Recourse", "bench0000042")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TOTPQRCodePNG(key.URL, 240); err != nil {
			b.Fatal(err)
		}
	}
}
