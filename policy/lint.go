package policy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/recourse/recourse"
)

// Severity of a lint finding.
type Severity string

const (
	// SeverityError marks a policy Recourse refuses to run.
	SeverityError Severity = "error"
	// SeverityWarning marks a legal but unsafe policy.
	SeverityWarning Severity = "warning"
)

// Finding is one lint result.
type Finding struct {
	Severity Severity
	Line     int
	Action   string
	Rule     string
	Msg      string
}

func (f Finding) String() string {
	loc := ""
	if f.Line > 0 {
		loc = fmt.Sprintf("%d: ", f.Line)
	}
	return fmt.Sprintf("%s%s: %s (action %s, rule %s)", loc, f.Severity, f.Msg, f.Action, f.Rule)
}

// Persona is a synthetic subject the linter and `policy show` ask the
// policy about.
type Persona struct {
	Name           string
	Account        *recourse.Account
	Authenticators []AuthenticatorFact
}

// Personas returns representative subjects: employees at each AAL,
// privileged people at each AAL, a contractor, a service account.
func Personas(now time.Time) []Persona {
	base := func(id string) *recourse.Account {
		return &recourse.Account{ID: id, Username: id, DisplayName: id, Kind: recourse.KindHuman, Status: recourse.StatusActive,
			Employment: recourse.EmploymentEmployee, IAL: 2, ManagerID: "manager", CreatedAt: now.Add(-365 * 24 * time.Hour),
			Emails: []recourse.Channel{{Kind: recourse.ChannelEmail, Address: id + "@example.com", Verified: true}},
			Phones: []recourse.Channel{{Kind: recourse.ChannelPhone, Address: "+15550000000", Verified: true}}}
	}
	year := now.Add(-365 * 24 * time.Hour)
	pw := AuthenticatorFact{Type: "password", BoundAt: year}
	totp := AuthenticatorFact{Type: "totp", BoundAt: year}
	key := AuthenticatorFact{Type: "webauthn", PhishingResistant: true, DeviceBound: true, BoundAt: year}
	priv := func(id string) *recourse.Account {
		a := base(id)
		a.Groups = []string{"admins", "privileged", "executives", "finance", "security"}
		a.Roles = []string{recourse.RoleAdmin}
		return a
	}
	con := base("contractor")
	con.Employment, con.SponsorID = recourse.EmploymentContractor, "sponsor"
	end := now.Add(90 * 24 * time.Hour)
	con.ContractEnd = &end
	svc := base("service")
	svc.Kind, svc.Owners, svc.Emails, svc.Phones = recourse.KindService, []string{"owner"}, nil, nil
	return []Persona{
		{"employee at AAL1", base("employee1"), []AuthenticatorFact{pw}},
		{"employee at AAL2", base("employee2"), []AuthenticatorFact{pw, totp}},
		{"employee at AAL3", base("employee3"), []AuthenticatorFact{pw, totp, key}},
		{"privileged at AAL1", priv("privileged1"), []AuthenticatorFact{pw}},
		{"privileged at AAL2", priv("privileged2"), []AuthenticatorFact{pw, totp}},
		{"privileged at AAL3", priv("privileged3"), []AuthenticatorFact{pw, key}},
		{"contractor", con, []AuthenticatorFact{pw, totp}},
		{"service account", svc, nil},
	}
}

func (p *Policy) isPrivileged(ps Persona, now time.Time) bool {
	d, err := p.Decide(context.Background(), "password.change", Input{Account: ps.Account, Authenticators: ps.Authenticators, Request: Request{Initiator: "self", Time: now}})
	return err == nil && slices.Contains(d.Classes, "privileged")
}

// Synthetic evidence sets for the checks.
var (
	allRoles          = []string{"manager", "recovery_contact", "sponsor", "owner", "group:security", "group:admins"}
	onlyAttestations  = Evidence{Attestations: []Attestation{{"a1"}, {"a2"}, {"a3"}}}
	smsAndAttestation = Evidence{Codes: []Code{{Channel: "sms", ChannelAge: 10 * 365 * 24 * time.Hour}}, Attestations: onlyAttestations.Attestations}
	oneEmailCode      = Evidence{Codes: []Code{{Channel: "email", ChannelAge: 10 * 365 * 24 * time.Hour}}}
	onlySession       = Evidence{Sessions: []SessionProof{{AAL: 3}}}
	everything        = Evidence{
		Possessions:           []Possession{{Type: "webauthn", PhishingResistant: true, AAL: 3}, {Type: "totp", AAL: 2}},
		Codes:                 []Code{{Channel: "email", ChannelAge: 10 * 365 * 24 * time.Hour}, {Channel: "sms", ChannelAge: 10 * 365 * 24 * time.Hour}},
		RecoveryCodes:         2,
		Approvals:             []Approval{{"p1", allRoles}, {"p2", allRoles}, {"p3", allRoles}, {"p4", allRoles}},
		IdentityVerifications: []IdentityVerification{{IAL: 3}},
		Attestations:          []Attestation{{"a1"}},
		Sessions:              []SessionProof{{AAL: 3}},
	}
	oneApproverAndCodes = Evidence{
		Codes:                 []Code{{Channel: "email", ChannelAge: 10 * 365 * 24 * time.Hour}, {Channel: "sms", ChannelAge: 10 * 365 * 24 * time.Hour}},
		RecoveryCodes:         2,
		Approvals:             []Approval{{"p1", allRoles}},
		IdentityVerifications: []IdentityVerification{{IAL: 3}},
		Attestations:          []Attestation{{"a1"}},
		Sessions:              []SessionProof{{AAL: 3}},
	}
)

func oneCode() []Evidence {
	age := 10 * 365 * 24 * time.Hour
	return []Evidence{
		{Codes: []Code{{Channel: "email", ChannelAge: age}}},
		{Codes: []Code{{Channel: "sms", ChannelAge: age}}},
		{RecoveryCodes: 1},
	}
}

func hasApproval(n *Node) bool {
	if n == nil {
		return false
	}
	if n.Approval != nil {
		return true
	}
	for _, c := range append(append(slices.Clone(n.All), n.Any...), nofOf(n)...) {
		if hasApproval(c) {
			return true
		}
	}
	return false
}

func nofOf(n *Node) []*Node {
	if n.NOf == nil {
		return nil
	}
	return n.NOf.Of
}

// Lint checks the policy for requirements Recourse refuses (errors) and for
// legal but unsafe choices (warnings). It asks the policy about synthetic
// subjects, so the checks follow the policy's own class definitions.
func (p *Policy) Lint() []Finding {
	var out []Finding
	seen := map[string]bool{}
	add := func(f Finding) {
		k := f.String()
		if !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	// Structural checks on every requirement.
	check := func(action string, r *Rule) {
		if r.Require == nil {
			return
		}
		req := r.Require.resolve(3)
		if Satisfied(req, onlyAttestations).Satisfied {
			add(Finding{SeverityError, r.Line, action, r.Name, "a help-desk attestation alone would satisfy this requirement; attestations are recorded, never sufficient"})
		}
		if Satisfied(req, smsAndAttestation).Satisfied {
			add(Finding{SeverityError, r.Line, action, r.Name, "an SMS code alone would satisfy this requirement; SMS may only be required together with something else"})
		}
		if slices.Contains(TrustAnchorActions, action) && Satisfied(req, onlySession).Satisfied {
			add(Finding{SeverityError, r.Line, action, r.Name, "a signed-in session alone would change a trust anchor; trust-anchor changes are never routine"})
		}
	}
	for _, r := range p.CommonRules {
		for _, a := range Actions() {
			check(a, r)
		}
	}
	for _, name := range Actions() {
		a := p.Actions[name]
		for _, r := range a.Rules {
			check(name, r)
		}
		if len(a.Rules) == 0 {
			continue
		}
		if last := a.Rules[len(a.Rules)-1]; last.When != "" {
			add(Finding{SeverityWarning, last.Line, name, last.Name, "no catch-all last rule: requests no rule covers are denied (add a final rule without when to make that explicit)"})
		}
	}
	// Behavioural checks against synthetic subjects.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, ps := range Personas(now) {
		privileged := p.isPrivileged(ps, now)
		for _, name := range Actions() {
			a := p.Actions[name]
			for _, init := range []string{"self", "help_desk"} {
				for _, aal := range []int{0, 3} {
					d, err := p.Decide(context.Background(), name, Input{Account: ps.Account, Authenticators: ps.Authenticators,
						Request: Request{Initiator: init, Time: now, SessionAAL: aal}})
					if err != nil {
						add(Finding{SeverityError, 0, name, "", fmt.Sprintf("evaluating for %s: %v", ps.Name, err)})
						continue
					}
					if d.Outcome != Require {
						continue
					}
					line := p.ruleLine(name, d.Rule)
					req := d.Requirement
					if Satisfied(req, oneEmailCode).Satisfied && a.Tier != TierRoutine {
						add(Finding{SeverityWarning, line, name, d.Rule, "an email code is the only factor needed (" + ps.Name + "); mailboxes are a common takeover path"})
					}
					if privileged && a.Tier != TierRoutine {
						for _, ev := range oneCode() {
							if Satisfied(req, ev).Satisfied {
								add(Finding{SeverityWarning, line, name, d.Rule, "a recovery for a privileged account (" + ps.Name + ") can be completed with one code"})
								break
							}
						}
					}
					if a.Tier == TierCritical && hasApproval(req.Evidence) && Satisfied(req, oneApproverAndCodes).Satisfied {
						add(Finding{SeverityWarning, line, name, d.Rule, "a critical action can be completed with a single approver (" + ps.Name + ")"})
					}
					if privileged && slices.Contains(TrustAnchorActions, name) {
						if res := Satisfied(req, everything); res.Satisfied && res.Delay == 0 {
							add(Finding{SeverityWarning, line, name, d.Rule, "a trust-anchor change for a privileged account (" + ps.Name + ") has no cooling-off delay"})
						}
					}
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		if a.Severity != b.Severity {
			if a.Severity == SeverityError {
				return -1
			}
			return 1
		}
		return a.Line - b.Line
	})
	return out
}

func (p *Policy) ruleLine(action, rule string) int {
	for _, r := range append(slices.Clone(p.CommonRules), p.Actions[action].Rules...) {
		if r.Name == rule {
			return r.Line
		}
	}
	return 0
}
