package recourse

import (
	"net/mail"
	"regexp"
	"strings"
	"time"
)

// ChannelKind is the medium of a channel.
type ChannelKind string

const (
	ChannelEmail ChannelKind = "email"
	ChannelPhone ChannelKind = "phone"
)

// Channel is an email address or phone number used for notices and recovery
// codes. A channel counts as recovery evidence only once confirmed, and never
// when the same address or number is bound to another account (Shared).
type Channel struct {
	ID         string
	AccountID  string
	Kind       ChannelKind
	Address    string
	Verified   bool
	VerifiedAt *time.Time
	// Shared is computed by the store: another account holds the same address.
	Shared    bool
	CreatedAt time.Time
}

var rePhone = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// NormalizeChannelAddress puts an address in the canonical form it is stored
// and compared in: lowercase email; E.164 phone number without separators.
func NormalizeChannelAddress(kind ChannelKind, s string) string {
	s = strings.TrimSpace(s)
	switch kind {
	case ChannelEmail:
		return strings.ToLower(s)
	case ChannelPhone:
		return strings.Map(func(r rune) rune {
			switch r {
			case ' ', '-', '(', ')', '.':
				return -1
			}
			return r
		}, s)
	}
	return s
}

// ValidateChannelAddress checks a normalised address.
func ValidateChannelAddress(kind ChannelKind, addr string) error {
	switch kind {
	case ChannelEmail:
		a, err := mail.ParseAddress(addr)
		if err != nil || a.Address != addr || a.Name != "" || len(addr) > 254 || !strings.Contains(addr[strings.LastIndexByte(addr, '@'):], ".") {
			return FieldError("email", "%q is not a plain email address like name@example.com", addr)
		}
	case ChannelPhone:
		if !rePhone.MatchString(addr) {
			return FieldError("phone", "%q is not a phone number in international form like +15551234567", addr)
		}
	default:
		return FieldError("kind", "must be %q or %q", ChannelEmail, ChannelPhone)
	}
	return nil
}

// UsableForRecovery reports whether the channel may carry recovery evidence.
func (c Channel) UsableForRecovery() bool { return c.Verified && !c.Shared }
