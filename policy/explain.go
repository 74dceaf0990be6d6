package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/recourse/recourse"
)

// AccountFile is the account JSON shape of `recourse account list --json`
// with an optional list of bound authenticators, for offline explanations
// and policy tests.
type AccountFile struct {
	recourse.AccountJSON
	Authenticators []AuthenticatorFact `json:"authenticators,omitempty"`
}

// ParseAccountFile reads one AccountFile, refusing unknown fields.
func ParseAccountFile(r io.Reader) (*recourse.Account, []AuthenticatorFact, error) {
	dec := json.NewDecoder(io.LimitReader(r, recourse.MaxAccountJSONLine))
	dec.DisallowUnknownFields()
	var f AccountFile
	if err := dec.Decode(&f); err != nil {
		return nil, nil, fmt.Errorf("account file: %w", err)
	}
	a := f.Account()
	if err := a.Validate(); err != nil {
		return nil, nil, fmt.Errorf("account file: %w", err)
	}
	for i, au := range f.Authenticators {
		switch au.Type {
		case "password", "totp", "webauthn", "recovery_codes":
		default:
			return nil, nil, fmt.Errorf("account file: authenticators[%d].type %q must be password, totp, webauthn or recovery_codes", i, au.Type)
		}
		if au.PhishingResistant && au.Type != "webauthn" {
			return nil, nil, fmt.Errorf("account file: authenticators[%d]: only webauthn is phishing-resistant", i)
		}
	}
	return a, f.Authenticators, nil
}

// DecisionJSON is the machine form of a decision (`policy explain --json`).
type DecisionJSON struct {
	Decision        string         `json:"decision"`
	Reason          string         `json:"reason,omitempty"`
	Rule            string         `json:"rule"`
	Tier            Tier           `json:"tier"`
	Action          string         `json:"action"`
	Classes         []string       `json:"classes"`
	Requirement     map[string]any `json:"requirement,omitempty"`
	RequirementText string         `json:"requirement_text,omitempty"`
	Delay           string         `json:"delay,omitempty"`
	PolicyDigest    string         `json:"policy_digest"`
}

// JSON returns the decision's machine form.
func (d *Decision) JSON() DecisionJSON {
	out := DecisionJSON{Decision: d.Outcome, Reason: d.Reason, Rule: d.Rule, Tier: d.Tier, Action: d.Action, Classes: d.Classes, PolicyDigest: d.PolicyDigest}
	if d.Requirement != nil {
		out.Requirement = RequirementView(d.Requirement)
		out.RequirementText = Describe(d.Requirement.Evidence)
		out.Delay = d.Requirement.Delay.String()
	}
	return out
}

// RequirementView renders a requirement as JSON-friendly maps, durations as
// Go duration strings.
func RequirementView(r *Requirement) map[string]any {
	m := map[string]any{
		"evidence":    nodeView(r.Evidence),
		"delay":       r.Delay.String(),
		"code_ttl":    r.Lifetimes.Code.String(),
		"token_ttl":   r.Lifetimes.Token.String(),
		"request_ttl": r.Lifetimes.Request.String(),
		"digest":      r.Digest(),
	}
	if len(r.CancelChannels) > 0 {
		m["cancel_channels"] = r.CancelChannels
	}
	if len(r.Notify) > 0 {
		m["notify"] = r.Notify
	}
	return m
}

func nodeView(n *Node) map[string]any {
	if n == nil {
		return nil
	}
	m := map[string]any{}
	list := func(ns []*Node) []any {
		out := make([]any, len(ns))
		for i, c := range ns {
			out[i] = nodeView(c)
		}
		return out
	}
	switch {
	case n.All != nil:
		m["all"] = list(n.All)
	case n.Any != nil:
		m["any"] = list(n.Any)
	case n.NOf != nil:
		m["n_of"] = map[string]any{"n": n.NOf.N, "of": list(n.NOf.Of)}
	case n.Possession != nil:
		m["possession"] = map[string]any{"phishing_resistant": n.Possession.PhishingResistant, "min_aal": n.Possession.MinAAL}
	case n.Code != nil:
		c := map[string]any{"channel": n.Code.Channel}
		if n.Code.MinChannelAge > 0 {
			c["min_channel_age"] = n.Code.MinChannelAge.String()
		}
		m["code"] = c
	case n.RecoveryCode != nil:
		m["recovery_code"] = map[string]any{}
	case n.Approval != nil:
		m["approval"] = map[string]any{"count": n.Approval.Count, "from": n.Approval.From}
	case n.IdentityVerification != nil:
		m["identity_verification"] = map[string]any{"min_ial": n.IdentityVerification.MinIAL}
	case n.Attestation != nil:
		m["attestation"] = map[string]any{}
	case n.Session != nil:
		s := map[string]any{"min_aal": n.Session.MinAAL}
		if n.Session.MaxAge > 0 {
			s["max_age"] = n.Session.MaxAge.String()
		}
		m["session"] = s
	}
	if n.Delay > 0 {
		m["delay"] = n.Delay.String()
	}
	return m
}

// DescribeTree renders an evidence tree as an indented outline.
func DescribeTree(n *Node, indent string) string {
	var b strings.Builder
	describeTree(&b, n, indent, 0)
	return strings.TrimRight(b.String(), "\n")
}

func describeTree(b *strings.Builder, n *Node, indent string, depth int) {
	prefix := indent
	if depth > 0 {
		prefix = indent + strings.Repeat("    ", depth-1) + "  - "
	}
	then := ""
	if n.Delay > 0 {
		then = ", then a cooling-off of " + humanDuration(n.Delay)
	}
	head := func(s string, kids []*Node) {
		fmt.Fprintf(b, "%s%s%s:\n", prefix, s, then)
		for _, c := range kids {
			describeTree(b, c, indent, depth+1)
		}
	}
	switch {
	case n.All != nil:
		head("all of these", n.All)
	case n.Any != nil:
		head("any one of these", n.Any)
	case n.NOf != nil:
		head(fmt.Sprintf("%d of these", n.NOf.N), n.NOf.Of)
	default:
		fmt.Fprintf(b, "%s%s\n", prefix, Describe(n))
	}
}

// maxDelay is the longest cooling-off any branch can impose.
func maxDelay(n *Node) time.Duration {
	if n == nil {
		return 0
	}
	d := n.Delay
	for _, c := range append(append(slices.Clone(n.All), n.Any...), nofOf(n)...) {
		d = max(d, maxDelay(c))
	}
	return d
}

// WriteExplanation writes a decision for people.
func (p *Policy) WriteExplanation(w io.Writer, d *Decision, subject string, initiator string) {
	fmt.Fprintf(w, "Action:        %s (tier %s)\n", d.Action, d.Tier)
	classes := "none"
	if len(d.Classes) > 0 {
		classes = strings.Join(d.Classes, ", ")
	}
	fmt.Fprintf(w, "Subject:       %s — classes: %s\n", subject, classes)
	fmt.Fprintf(w, "Initiated by:  %s\n", initiator)
	line := p.ruleLine(d.Action, d.Rule)
	if line > 0 {
		fmt.Fprintf(w, "Rule:          %s (%s:%d)\n", d.Rule, p.Source, line)
	} else {
		fmt.Fprintf(w, "Rule:          %s\n", d.Rule)
	}
	if d.Outcome == Deny {
		fmt.Fprintf(w, "Decision:      deny — %s\n", d.Reason)
	} else {
		r := d.Requirement
		fmt.Fprintf(w, "Decision:      require\n")
		fmt.Fprintf(w, "Evidence:\n%s\n", DescribeTree(r.Evidence, "  "))
		delay := "none"
		if r.Delay > 0 {
			delay = humanDuration(r.Delay)
		}
		if longest := maxDelay(r.Evidence); longest > r.Delay {
			delay += ", or " + humanDuration(longest) + " on a slower branch"
		}
		if len(r.CancelChannels) > 0 {
			delay += " (the holder can cancel from: " + strings.Join(r.CancelChannels, ", ") + ")"
		}
		fmt.Fprintf(w, "Cooling-off:   %s\n", delay)
		fmt.Fprintf(w, "Lifetimes:     codes %s, tokens %s, request %s\n", humanDuration(r.Lifetimes.Code), humanDuration(r.Lifetimes.Token), humanDuration(r.Lifetimes.Request))
		if len(r.Notify) > 0 {
			fmt.Fprintf(w, "Notify:        %s\n", strings.Join(r.Notify, ", "))
		}
	}
	fmt.Fprintf(w, "Policy:        %s (%s) sha256:%s\n", p.Name, p.Source, p.ShortDigest())
}

// Summary is a one-line requirement summary for tables.
func Summary(d *Decision) string {
	if d.Outcome == Deny {
		return "deny"
	}
	s := Describe(d.Requirement.Evidence)
	if d.Requirement.Delay > 0 {
		s += "; wait " + humanDuration(d.Requirement.Delay)
	}
	return s
}
