package credential

import (
	"bytes"
	"errors"
	"testing"
)

func mustSealer(tb testing.TB, key []byte) *Sealer {
	tb.Helper()
	s, err := NewSealer(key)
	if err != nil {
		tb.Fatalf("NewSealer: %v", err)
	}
	return s
}

func TestNewSealerKeyLength(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer(%d bytes) succeeded; want an error", n)
		}
	}
}

func TestSealerRoundTrip(t *testing.T) {
	s := mustSealer(t, testKey(7))
	tests := []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{"totp secret", []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"), []byte("authenticator:42")},
		{"empty plaintext", []byte{}, []byte("authenticator:42")},
		{"nil associated data", []byte("secret"), nil},
		{"large", bytes.Repeat([]byte{0xab}, 1<<16), []byte("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed := s.Seal(tt.plaintext, tt.ad)
			if want := 1 + 12 + len(tt.plaintext) + 16; len(sealed) != want {
				t.Errorf("sealed length %d; want %d", len(sealed), want)
			}
			if sealed[0] != 1 {
				t.Errorf("version byte %d; want 1", sealed[0])
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(sealed, tt.plaintext[:8]) {
				t.Error("sealed value contains the plaintext")
			}
			got, err := s.Open(sealed, tt.ad)
			if err != nil || !bytes.Equal(got, tt.plaintext) {
				t.Fatalf("Open = %q, %v; want the plaintext", got, err)
			}
		})
	}
}

func TestSealerNonceIsFresh(t *testing.T) {
	s := mustSealer(t, testKey(7))
	a, b := s.Seal([]byte("same"), nil), s.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal")
	}
}

func TestSealerOpenRefuses(t *testing.T) {
	s := mustSealer(t, testKey(7))
	other := mustSealer(t, testKey(8))
	ad := []byte("authenticator:42")
	sealed := s.Seal([]byte("JBSWY3DPEHPK3PXP"), ad)
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name   string
		sealer *Sealer
		sealed []byte
		ad     []byte
	}{
		{"wrong associated data", s, sealed, []byte("authenticator:43")},
		{"missing associated data", s, sealed, nil},
		{"wrong key", other, sealed, ad},
		{"version changed", s, flip(0), ad},
		{"nonce changed", s, flip(1), ad},
		{"ciphertext changed", s, flip(13), ad},
		{"tag changed", s, flip(len(sealed) - 1), ad},
		{"truncated", s, sealed[:len(sealed)-1], ad},
		{"shorter than overhead", s, sealed[:28], ad},
		{"empty", s, nil, ad},
		{"extended", s, append(bytes.Clone(sealed), 0), ad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.sealer.Open(tt.sealed, tt.ad)
			if !errors.Is(err, ErrUnseal) || got != nil {
				t.Fatalf("Open = %q, %v; want nil, ErrUnseal", got, err)
			}
		})
	}
}
