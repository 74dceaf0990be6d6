package policy

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

func TestDefaultPolicyCases(t *testing.T) {
	p := Default()
	cf, err := ParseCases(DefaultCases(), "default_cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	results := p.RunCases(t.Context(), cf)
	if WriteResults(&out, "default_cases.yaml", results, false) > 0 {
		t.Fatalf("built-in policy cases failed:\n%s", out.String())
	}
	// Every action is tested for every subject class.
	covered := map[string]bool{}
	for _, c := range cf.Cases {
		d, err := p.Decide(t.Context(), c.Action, Input{Account: c.Account, Authenticators: c.Auths, Request: c.Request})
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range d.Classes {
			covered[c.Action+" × "+cl] = true
		}
	}
	for _, a := range Actions() {
		for _, cl := range p.Classes {
			if !covered[a+" × "+cl.Name] {
				t.Errorf("no case covers %s × %s", a, cl.Name)
			}
		}
	}
}

func TestDefaultPolicyLintsClean(t *testing.T) {
	for _, f := range Default().Lint() {
		t.Errorf("built-in policy: %s", f)
	}
}

func TestRunCasesReportsMismatches(t *testing.T) {
	cases := `cases:
  - name: wrong on purpose
    account: {id: e.two, username: e.two, display_name: Ed Two}
    action: password.reset
    expect:
      decision: deny
      rule: nope
      satisfied_by:
        - {codes: [{channel: sms}]}
`
	cf, err := ParseCases([]byte(cases), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if n := WriteResults(&out, "c.yaml", Default().RunCases(t.Context(), cf), false); n != 1 {
		t.Fatalf("failed = %d, want 1", n)
	}
	for _, want := range []string{"FAIL  wrong on purpose (c.yaml:2", "decision: want deny, got require", `rule: want "nope", got "aal1-account"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// mutate returns the built-in policy text with one replacement, failing the
// test if the text to replace is absent.
func mutate(t *testing.T, old, new string) []byte {
	t.Helper()
	src := string(DefaultYAML())
	if !strings.Contains(src, old) {
		t.Fatalf("built-in policy lacks %q", old)
	}
	return []byte(strings.Replace(src, old, new, 1))
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		src  []byte
		want string // substring of the error, including file:line
	}{
		{"not yaml", []byte("version: [1"), "p.yaml:"},
		{"unknown top-level key", mutate(t, "version: 1", "version: 1\nversoin: 2"), "p.yaml:9: policy: unknown key \"versoin\""},
		{"cel syntax", mutate(t, `when: account.status == "terminated"`, `when: account.status ==`), "class \"terminated\""},
		{"cel typo", mutate(t, `when: account.status == "suspended"`, `when: account.stauts == "suspended"`), "undefined field 'stauts'"},
		{"not boolean", mutate(t, `when: account.status == "suspended"`, `when: account.status`), "must be true or false"},
		{"unknown class", mutate(t, `when: '"terminated" in classes'`, `when: '"terminatd" in classes'`), "class \"terminatd\", which is not defined"},
		{"unknown action", mutate(t, "  password.change:\n", "  password.chnage:\n"), "unknown action \"password.chnage\""},
		{"tier lowered", mutate(t, "tier: critical", "tier: routine"), "below its minimum"},
		{"knowledge question", mutate(t, "- recovery_code: {}\n              - all:", "- question: {text: mother}\n              - all:"), "unknown key \"question\""},
		{"deny and require", mutate(t, "deny: Service accounts cannot receive", "require: {evidence: {recovery_code: {}}}\n        deny: Service accounts cannot receive"), "either deny or require"},
		{"delay without cancel", mutate(t, "          delay: 24h\n          cancel_channels: [email, phone]\n          notify: [account, sponsor]", "          delay: 24h\n          notify: [account, sponsor]"), "needs cancel_channels"},
		{"code ttl too long", mutate(t, "code_ttl: 10m", "code_ttl: 10h"), "codes are short-lived"},
		{"bad approval role", mutate(t, `from: ["group:security"]`, `from: [anyone]`), "approval from \"anyone\""},
		{"n_of too many", mutate(t, "n: 2", "n: 5"), "asks for 5 of 3"},
		{"two atoms in one entry", mutate(t, "- possession: {phishing_resistant: true}", "- {possession: {}, recovery_code: {}}"), "exactly one of"},
		{"too costly", mutate(t, `when: account.status == "suspended"`, `when: account.groups.exists(a, account.groups.exists(b, account.groups.exists(c, a + b + c == "x")))`), "over the budget"},
		{"bad channel", mutate(t, "code: {channel: sms}", "code: {channel: pigeon}"), "email or sms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.src, "p.yaml")
			if err == nil {
				t.Fatal("Load accepted the policy")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("err = %T, want Errors", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLintCatchesUnsafePolicies(t *testing.T) {
	tests := []struct {
		name     string
		src      []byte
		severity Severity
		want     string
	}{
		{"privileged recovery by one code",
			mutate(t, "              - possession: {phishing_resistant: true}\n              - all:\n                  - approval: {from: [manager]}",
				"              - possession: {phishing_resistant: true}\n              - recovery_code: {}\n              - all:\n                  - approval: {from: [manager]}"),
			SeverityWarning, "privileged account (privileged at AAL2) can be completed with one code"},
		{"single approver for a critical action",
			mutate(t, "              - approval: {from: [owner]}\n              - approval: {from: [\"group:security\"]}", "              - approval: {from: [owner, \"group:security\"]}\n              - session: {min_aal: 1}"),
			SeverityWarning, "single approver"},
		{"no delay on privileged trust anchors",
			mutate(t, "          delay: 72h\n          cancel_channels: [email, phone]\n          notify: [account, security, manager]\n      - name: contractor\n        when: '\"contractor\" in classes'\n        require:\n          evidence:\n            all:\n              - approval: {from: [sponsor]}\n              - session",
				"          cancel_channels: [email, phone]\n          notify: [account, security, manager]\n      - name: contractor\n        when: '\"contractor\" in classes'\n        require:\n          evidence:\n            all:\n              - approval: {from: [sponsor]}\n              - session"),
			SeverityWarning, "has no cooling-off delay"},
		{"email code as the only factor",
			mutate(t, "              - all:\n                  - code: {channel: email}\n                  - any:\n                      - code: {channel: sms}\n                      - approval: {from: [manager, recovery_contact]}",
				"              - code: {channel: email}"),
			SeverityWarning, "an email code is the only factor"},
		{"attestation alone",
			mutate(t, "              - recovery_code: {}\n              - all:\n                  - code: {channel: email}", "              - attestation: {}\n              - all:\n                  - code: {channel: email}"),
			SeverityError, "attestation alone"},
		{"sms alone",
			mutate(t, "              - recovery_code: {}\n              - all:\n                  - code: {channel: email}", "              - code: {channel: sms}\n              - all:\n                  - code: {channel: email}"),
			SeverityError, "SMS code alone"},
		{"signed-in session alone changes a trust anchor",
			mutate(t, "            all:\n              - session: {min_aal: account, max_age: 15m}\n              - any:\n                  - possession: {}\n                  - code: {channel: email}\n                  - code: {channel: sms}\n                  - recovery_code: {}",
				"            session: {min_aal: account, max_age: 15m}"),
			SeverityError, "trust-anchor changes are never routine"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Load(tc.src, "p.yaml")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var got []string
			for _, f := range p.Lint() {
				got = append(got, f.String())
				if f.Severity == tc.severity && strings.Contains(f.Msg, tc.want) {
					if f.Line == 0 && f.Severity == SeverityWarning {
						t.Errorf("finding without a line: %s", f)
					}
					return
				}
			}
			t.Fatalf("no %s containing %q; findings:\n%s", tc.severity, tc.want, strings.Join(got, "\n"))
		})
	}
}

func TestDigest(t *testing.T) {
	a := Default()
	reformatted := strings.ReplaceAll(string(DefaultYAML()), "# ", "#  ")
	reformatted = strings.Replace(reformatted, "version: 1\n", "# a new comment\nversion: 1\n", 1)
	b, err := Load([]byte(reformatted), "other-name.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest() != b.Digest() {
		t.Error("comments or the file name changed the digest")
	}
	c, err := Load(mutate(t, "code_ttl: 10m", "code_ttl: 11m"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest() == a.Digest() {
		t.Error("a semantic change kept the digest")
	}
	if len(a.Digest()) != 64 {
		t.Errorf("digest %q", a.Digest())
	}
}

func TestDecide(t *testing.T) {
	p := Default()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	acct := func(edit func(a *recourse.Account)) *recourse.Account {
		a := &recourse.Account{ID: "x", Username: "x", DisplayName: "X", Kind: recourse.KindHuman, Status: recourse.StatusActive,
			Employment: recourse.EmploymentEmployee, IAL: 2, CreatedAt: now.Add(-time.Hour)}
		if edit != nil {
			edit(a)
		}
		return a
	}
	key := AuthenticatorFact{Type: "webauthn", PhishingResistant: true, DeviceBound: true, BoundAt: now}
	tests := []struct {
		name    string
		action  string
		account *recourse.Account
		auths   []AuthenticatorFact
		init    string
		outcome string
		rule    string
		minAAL  int
	}{
		{"routine at account level", "password.change", acct(nil), []AuthenticatorFact{key}, "self", Require, "holder", 3},
		{"help desk refused routine", "authenticator.add", acct(nil), nil, "help_desk", Deny, "holder-only", 0},
		{"api refused routine", "password.change", acct(nil), nil, "api", Deny, "holder-only", 0},
		{"terminated first", "password.reset", acct(func(a *recourse.Account) { a.Status = recourse.StatusTerminated; a.Groups = []string{"admins"} }), nil, "self", Deny, "terminated", 0},
		{"contract ends later", "password.reset", acct(func(a *recourse.Account) {
			a.Employment, a.SponsorID = recourse.EmploymentContractor, "s"
			end := now.Add(time.Hour)
			a.ContractEnd = &end
		}), nil, "self", Require, "contractor", 0},
		{"contract ended", "password.reset", acct(func(a *recourse.Account) {
			a.Employment, a.SponsorID = recourse.EmploymentThirdParty, "s"
			end := now.Add(-time.Hour)
			a.ContractEnd = &end
		}), nil, "self", Deny, "contract-ended", 0},
		{"help-desk role is privileged", "password.reset", acct(func(a *recourse.Account) { a.Roles = []string{recourse.RoleHelpdesk} }), nil, "help_desk", Require, "privileged", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Decide(t.Context(), tc.action, Input{Account: tc.account, Authenticators: tc.auths, Request: Request{Initiator: tc.init, Time: now}})
			if err != nil {
				t.Fatal(err)
			}
			if d.Outcome != tc.outcome || d.Rule != tc.rule || d.PolicyDigest != p.Digest() {
				t.Fatalf("Decide = %s/%s (%s), want %s/%s", d.Outcome, d.Rule, d.Reason, tc.outcome, tc.rule)
			}
			if tc.outcome == Deny && d.Reason == "" {
				t.Error("a denial without a reason")
			}
			if tc.minAAL > 0 && d.Requirement.Evidence.Session.MinAAL != tc.minAAL {
				t.Errorf("min_aal: account resolved to %d, want %d", d.Requirement.Evidence.Session.MinAAL, tc.minAAL)
			}
		})
	}
	if _, err := p.Decide(t.Context(), "account.delete", Input{Account: acct(nil), Request: Request{Initiator: "self"}}); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("unknown action: %v", err)
	}
	if _, err := p.Decide(t.Context(), "password.reset", Input{Account: acct(nil), Request: Request{Initiator: "boss"}}); err == nil {
		t.Error("unknown initiator accepted")
	}
}

func TestDecideFailsClosed(t *testing.T) {
	p, err := Load(mutate(t, "      - name: people-only-use-recovery\n        when: '!(\"service\" in classes)'\n        deny: credential.reissue is for service accounts. People use password reset or device recovery.\n      - name: owner-and-security\n        require:",
		"      - name: owner-and-security\n        when: '\"service\" in classes'\n        require:"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := &recourse.Account{ID: "x", Username: "x", DisplayName: "X", Kind: recourse.KindHuman, Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 1}
	d, err := p.Decide(t.Context(), "credential.reissue", Input{Account: a, Request: Request{Initiator: "self"}})
	if err != nil || d.Outcome != Deny || d.Rule != "(no rule matched)" {
		t.Fatalf("Decide = %+v, %v; want a fail-closed denial", d, err)
	}
	found := false
	for _, f := range p.Lint() {
		found = found || strings.Contains(f.Msg, "no catch-all")
	}
	if !found {
		t.Error("lint does not warn about the missing catch-all")
	}
}

func TestParseAccountFile(t *testing.T) {
	good := `{"id":"r.patel","username":"r.patel","display_name":"Riya","groups":["admins"],"authenticators":[{"type":"webauthn","phishing_resistant":true,"device_bound":true,"bound_at":"2026-01-01T00:00:00Z"}]}`
	a, auths, err := ParseAccountFile(strings.NewReader(good))
	if err != nil || a.ID != "r.patel" || len(auths) != 1 || AccountAAL(auths) != 3 {
		t.Fatalf("ParseAccountFile = %v %v %v", a, auths, err)
	}
	for _, bad := range []string{
		`{"id":"x","username":"x","display_name":"X","colour":"red"}`,
		`{"id":"x","username":"x","display_name":"X","authenticators":[{"type":"question"}]}`,
		`{"id":"x","username":"x","display_name":"X","authenticators":[{"type":"totp","phishing_resistant":true}]}`,
		`{"id":"x","username":"X!","display_name":"X"}`,
	} {
		if _, _, err := ParseAccountFile(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestExplanation(t *testing.T) {
	p := Default()
	a := &recourse.Account{ID: "r", Username: "r", DisplayName: "R", Kind: recourse.KindHuman, Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 2, Groups: []string{"admins"}}
	d, err := p.Decide(t.Context(), "password.reset", Input{Account: a, Request: Request{Initiator: "help_desk"}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	p.WriteExplanation(&b, d, "r (R)", "help_desk")
	for _, want := range []string{"Rule:          privileged (built-in:", "any one of these:", "phishing-resistant", "then a cooling-off of 3 days", "Notify:        account, security, manager", "sha256:" + p.ShortDigest()} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("explanation lacks %q:\n%s", want, b.String())
		}
	}
	j := d.JSON()
	if j.Decision != "require" || j.Rule != "privileged" || j.PolicyDigest != p.Digest() || j.Requirement["evidence"] == nil || !slices.Contains(j.Classes, "privileged") {
		t.Errorf("JSON = %+v", j)
	}
}
