package policy

import (
	"testing"
	"time"

	"github.com/recourse/recourse"
)

// BenchmarkDecide measures one decision on the built-in policy for a
// privileged account asking for a password reset (classes, common rules and
// the action's rules all evaluated).
func BenchmarkDecide(b *testing.B) {
	p := Default()
	now := time.Now()
	a := &recourse.Account{ID: "r.patel", Username: "r.patel", DisplayName: "Riya", Kind: recourse.KindHuman, Status: recourse.StatusActive,
		Employment: recourse.EmploymentEmployee, IAL: 3, Groups: []string{"admins", "engineering"}, Roles: []string{"admin"}, CreatedAt: now.Add(-time.Hour),
		Emails: []recourse.Channel{{Kind: recourse.ChannelEmail, Address: "r@example.com", Verified: true}}}
	in := Input{Account: a, Authenticators: []AuthenticatorFact{{Type: "password", BoundAt: now}, {Type: "totp", BoundAt: now}},
		Request: Request{Initiator: "self", Time: now}}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Decide(ctx, "authenticator.recover", in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSatisfied measures checking a full evidence set against the
// privileged recovery requirement.
func BenchmarkSatisfied(b *testing.B) {
	p := Default()
	a := &recourse.Account{ID: "r", Username: "r", DisplayName: "R", Kind: recourse.KindHuman, Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 3, Groups: []string{"admins"}}
	d, err := p.Decide(b.Context(), "authenticator.recover", Input{Account: a, Request: Request{Initiator: "self"}})
	if err != nil {
		b.Fatal(err)
	}
	ev := Evidence{Codes: []Code{{Channel: "email"}}, Approvals: []Approval{{"m", []string{"manager"}}, {"s", []string{"group:security"}}}}
	b.ReportAllocs()
	for b.Loop() {
		if !Satisfied(d.Requirement, ev).Satisfied {
			b.Fatal("not satisfied")
		}
	}
}
