package policy

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/recourse/recourse"
)

//go:embed default_cases.yaml
var defaultCases []byte

// DefaultCases returns the built-in policy's own test cases.
func DefaultCases() []byte { return slices.Clone(defaultCases) }

// Case is one table-driven policy test: a subject, an action and a context,
// and the decision expected.
type Case struct {
	Name    string
	Line    int
	Account *recourse.Account
	Auths   []AuthenticatorFact
	Action  string
	Request Request
	Expect  Expect
}

// Expect is what a case checks. Unset fields are not checked.
type Expect struct {
	Decision       string     `json:"decision"`
	Rule           string     `json:"rule,omitempty"`
	ReasonContains string     `json:"reason_contains,omitempty"`
	Classes        []string   `json:"classes,omitempty"`
	Delay          string     `json:"delay,omitempty"`
	Evidence       string     `json:"evidence,omitempty"`
	SatisfiedBy    []Evidence `json:"satisfied_by,omitempty"`
	NotSatisfiedBy []Evidence `json:"not_satisfied_by,omitempty"`
	// EffectiveDelay is checked against the delay of the first SatisfiedBy.
	EffectiveDelay string `json:"effective_delay,omitempty"`
}

type caseSpec struct {
	Name    string          `json:"name"`
	Account json.RawMessage `json:"account"`
	Action  string          `json:"action"`
	Request struct {
		Initiator   string `json:"initiator"`
		InitiatorID string `json:"initiator_id"`
		IP          string `json:"ip"`
		SessionAAL  int    `json:"session_aal"`
	} `json:"request"`
	Expect Expect `json:"expect"`
}

// CaseFile is a parsed test file.
type CaseFile struct {
	// Now is the fixed time the cases run at.
	Now   time.Time
	Cases []Case
}

// ParseCases reads a YAML case file:
//
//	now: 2026-06-01T00:00:00Z
//	cases:
//	  - name: ...
//	    account: {account JSON shape, plus authenticators}
//	    action: password.reset
//	    request: {initiator: self, session_aal: 2}
//	    expect: {decision: require, rule: ..., delay: 72h, satisfied_by: [...], ...}
func ParseCases(data []byte, source string) (*CaseFile, error) {
	var doc struct {
		Now   string      `yaml:"now"`
		Cases []yaml.Node `yaml:"cases"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	cf := &CaseFile{Now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	if doc.Now != "" {
		t, err := time.Parse(time.RFC3339, doc.Now)
		if err != nil {
			return nil, fmt.Errorf("%s: now: %w", source, err)
		}
		cf.Now = t
	}
	for i := range doc.Cases {
		n := &doc.Cases[i]
		var generic any
		if err := n.Decode(&generic); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, n.Line, err)
		}
		js, err := json.Marshal(normalizeYAML(generic))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, n.Line, err)
		}
		var spec caseSpec
		jd := json.NewDecoder(bytes.NewReader(js))
		jd.DisallowUnknownFields()
		if err := jd.Decode(&spec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, n.Line, err)
		}
		c := Case{Name: spec.Name, Line: n.Line, Action: spec.Action, Expect: spec.Expect,
			Request: Request{Initiator: spec.Request.Initiator, InitiatorID: spec.Request.InitiatorID, IP: spec.Request.IP, SessionAAL: spec.Request.SessionAAL, Time: cf.Now}}
		if c.Name == "" {
			return nil, fmt.Errorf("%s:%d: a case needs a name", source, n.Line)
		}
		if c.Request.Initiator == "" {
			c.Request.Initiator = "self"
		}
		if c.Expect.Decision != Deny && c.Expect.Decision != Require {
			return nil, fmt.Errorf("%s:%d: case %q: expect.decision must be deny or require", source, n.Line, c.Name)
		}
		if len(spec.Account) == 0 {
			return nil, fmt.Errorf("%s:%d: case %q needs an account", source, n.Line, c.Name)
		}
		if c.Account, c.Auths, err = ParseAccountFile(bytes.NewReader(spec.Account)); err != nil {
			return nil, fmt.Errorf("%s:%d: case %q: %w", source, n.Line, c.Name, err)
		}
		if c.Account.CreatedAt.IsZero() {
			c.Account.CreatedAt = cf.Now.Add(-365 * 24 * time.Hour)
		}
		cf.Cases = append(cf.Cases, c)
	}
	return cf, nil
}

// normalizeYAML turns YAML's map[string]any trees into JSON-encodable values.
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
		return x
	}
	return v
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Case     *Case
	Failures []string
}

// RunCases evaluates every case and reports mismatches as readable
// "field: want …, got …" lines.
func (p *Policy) RunCases(ctx context.Context, cf *CaseFile) []CaseResult {
	var out []CaseResult
	for i := range cf.Cases {
		c := &cf.Cases[i]
		res := CaseResult{Case: c}
		fail := func(field, want, got string) {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: want %s, got %s", field, want, got))
		}
		d, err := p.Decide(ctx, c.Action, Input{Account: c.Account, Authenticators: c.Auths, Request: c.Request})
		if err != nil {
			res.Failures = append(res.Failures, "error: "+err.Error())
			out = append(out, res)
			continue
		}
		e := c.Expect
		if d.Outcome != e.Decision {
			fail("decision", e.Decision, d.Outcome+describeOutcome(d))
		}
		if e.Rule != "" && d.Rule != e.Rule {
			fail("rule", fmt.Sprintf("%q", e.Rule), fmt.Sprintf("%q", d.Rule))
		}
		if e.ReasonContains != "" && !strings.Contains(d.Reason, e.ReasonContains) {
			fail("reason", fmt.Sprintf("containing %q", e.ReasonContains), fmt.Sprintf("%q", d.Reason))
		}
		for _, cl := range e.Classes {
			if !slices.Contains(d.Classes, cl) {
				fail("classes", "to include "+cl, "["+strings.Join(d.Classes, ", ")+"]")
			}
		}
		if d.Requirement != nil {
			if e.Delay != "" {
				if want, err := time.ParseDuration(e.Delay); err != nil || want != d.Requirement.Delay {
					fail("delay", e.Delay, d.Requirement.Delay.String())
				}
			}
			if e.Evidence != "" && e.Evidence != Describe(d.Requirement.Evidence) {
				fail("evidence", fmt.Sprintf("%q", e.Evidence), fmt.Sprintf("%q", Describe(d.Requirement.Evidence)))
			}
			for j, ev := range e.SatisfiedBy {
				r := Satisfied(d.Requirement, ev)
				if !r.Satisfied {
					fail(fmt.Sprintf("satisfied_by[%d]", j), "satisfied", "missing "+strings.Join(r.Missing, "; "))
				} else if j == 0 && e.EffectiveDelay != "" {
					if want, err := time.ParseDuration(e.EffectiveDelay); err != nil || want != r.Delay {
						fail("effective_delay", e.EffectiveDelay, r.Delay.String())
					}
				}
			}
			for j, ev := range e.NotSatisfiedBy {
				if Satisfied(d.Requirement, ev).Satisfied {
					fail(fmt.Sprintf("not_satisfied_by[%d]", j), "not satisfied", "satisfied")
				}
			}
		} else if e.Delay != "" || e.Evidence != "" || len(e.SatisfiedBy) > 0 || len(e.NotSatisfiedBy) > 0 {
			if d.Outcome == e.Decision {
				fail("requirement", "a requirement to check", "none (denied)")
			}
		}
		out = append(out, res)
	}
	return out
}

func describeOutcome(d *Decision) string {
	if d.Outcome == Deny {
		return fmt.Sprintf(" (rule %q: %s)", d.Rule, d.Reason)
	}
	return fmt.Sprintf(" (rule %q)", d.Rule)
}

// WriteResults prints results like `go test`: failures in full, then a
// summary line. It returns the number of failed cases.
func WriteResults(w io.Writer, source string, results []CaseResult, verbose bool) int {
	failed := 0
	for _, r := range results {
		if len(r.Failures) == 0 {
			if verbose {
				fmt.Fprintf(w, "ok    %s\n", r.Case.Name)
			}
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL  %s (%s:%d, %s)\n", r.Case.Name, source, r.Case.Line, r.Case.Action)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "      %s\n", f)
		}
	}
	fmt.Fprintf(w, "%d cases, %d passed, %d failed\n", len(results), len(results)-failed, failed)
	return failed
}
