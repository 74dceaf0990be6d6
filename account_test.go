package recourse_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

func valid() *recourse.Account {
	return &recourse.Account{ID: "j.doe", Username: "j.doe", DisplayName: "Jane Doe", Kind: recourse.KindHuman,
		Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 2}
}

func TestAccountValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(a *recourse.Account)
		field string // "" = valid
	}{
		{"valid", func(a *recourse.Account) {}, ""},
		{"bad id", func(a *recourse.Account) { a.ID = "-x" }, "id"},
		{"id too long", func(a *recourse.Account) { a.ID = strings.Repeat("a", 65) }, "id"},
		{"uppercase username", func(a *recourse.Account) { a.Username = "J.Doe" }, "username"},
		{"empty display name", func(a *recourse.Account) { a.DisplayName = "" }, "display_name"},
		{"newline in display name", func(a *recourse.Account) { a.DisplayName = "a\nb" }, "display_name"},
		{"bad kind", func(a *recourse.Account) { a.Kind = "robot" }, "kind"},
		{"bad status", func(a *recourse.Account) { a.Status = "gone" }, "status"},
		{"bad employment", func(a *recourse.Account) { a.Employment = "intern" }, "employment"},
		{"ial 0", func(a *recourse.Account) { a.IAL = 0 }, "ial"},
		{"ial 4", func(a *recourse.Account) { a.IAL = 4 }, "ial"},
		{"service without owner", func(a *recourse.Account) { a.Kind = recourse.KindService }, "owners"},
		{"human with owner", func(a *recourse.Account) { a.Owners = []string{"x"} }, "owners"},
		{"contractor without sponsor", func(a *recourse.Account) { a.Employment = recourse.EmploymentContractor }, "sponsor"},
		{"own manager", func(a *recourse.Account) { a.ManagerID = "j.doe" }, "manager"},
		{"self as contact", func(a *recourse.Account) { a.RecoveryContacts = []string{"j.doe"} }, "recovery_contacts"},
		{"duplicate contact", func(a *recourse.Account) { a.RecoveryContacts = []string{"x", "x"} }, "recovery_contacts"},
		{"bad group", func(a *recourse.Account) { a.Groups = []string{"Has Space"} }, "groups"},
		{"bad role", func(a *recourse.Account) { a.Roles = []string{"root"} }, "roles"},
		{"bad email", func(a *recourse.Account) {
			a.Emails = []recourse.Channel{{Kind: recourse.ChannelEmail, Address: "Jane <j@example.com>"}}
		}, "email"},
		{"bad phone", func(a *recourse.Account) {
			a.Phones = []recourse.Channel{{Kind: recourse.ChannelPhone, Address: "555-1234"}}
		}, "phone"},
		{"duplicate email", func(a *recourse.Account) {
			a.Emails = []recourse.Channel{{Kind: recourse.ChannelEmail, Address: "j@example.com"}, {Kind: recourse.ChannelEmail, Address: "j@example.com"}}
		}, "emails"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := valid()
			tc.edit(a)
			err := a.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var e *recourse.Error
			if !errors.As(err, &e) || e.Code != recourse.EINVALID || e.Field != tc.field {
				t.Fatalf("Validate() = %v, want EINVALID on field %q", err, tc.field)
			}
		})
	}
}

func TestNormalizeChannelAddress(t *testing.T) {
	tests := []struct {
		kind recourse.ChannelKind
		in   string
		want string
		ok   bool
	}{
		{recourse.ChannelEmail, " Jane@Example.COM ", "jane@example.com", true},
		{recourse.ChannelEmail, "no-at-sign", "no-at-sign", false},
		{recourse.ChannelEmail, "a@localhost", "a@localhost", false},
		{recourse.ChannelPhone, "+1 (555) 123-4567", "+15551234567", true},
		{recourse.ChannelPhone, "5551234567", "5551234567", false},
	}
	for _, tc := range tests {
		got := recourse.NormalizeChannelAddress(tc.kind, tc.in)
		if got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if err := recourse.ValidateChannelAddress(tc.kind, got); (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", got, err, tc.ok)
		}
	}
}

func TestSessionActive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &recourse.Session{LastSeenAt: t0, ExpiresAt: t0.Add(24 * time.Hour), IdleTimeout: time.Hour}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {59 * time.Minute, true}, {time.Hour, false}, {25 * time.Hour, false}} {
		if got := s.Active(t0.Add(tc.at)); got != tc.want {
			t.Errorf("Active(+%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
	now := t0
	s.RevokedAt = &now
	if s.Active(t0) {
		t.Error("revoked session active")
	}
}
