// Package policy is Recourse's policy as code: a versioned YAML file with CEL
// conditions that maps each action and subject to a decision — deny with a
// reason, or a requirement (an evidence tree of all / any / n_of over atoms,
// a cooling-off delay, lifetimes, whom to notify). The service enforces it;
// nobody at a help desk invents their own risk model.
//
// A Policy is immutable once loaded: CEL is compiled once with a cost budget,
// and Decide evaluates it with a context. Every decision carries the
// policy's digest (SHA-256 of its canonical form).
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
)

// Tier is how much an action can change an account's trust.
type Tier string

const (
	// TierRoutine actions are self-service with a recent sign-in.
	TierRoutine Tier = "routine"
	// TierRecovery actions can reset a trust anchor and need step-up
	// evidence.
	TierRecovery Tier = "recovery"
	// TierCritical actions reissue credentials or touch privileged trust.
	TierCritical Tier = "critical"
)

// Catalogue lists the built-in actions with their minimum tier. A policy may
// raise an action's tier but never lower it, and must cover every action.
var Catalogue = map[string]Tier{
	"password.change":           TierRoutine,
	"authenticator.add":         TierRoutine,
	"authenticator.remove":      TierRoutine,
	"access.temporary":          TierRoutine,
	"recovery_codes.regenerate": TierRoutine,
	"password.reset":            TierRecovery,
	"authenticator.recover":     TierRecovery,
	"phone.change":              TierRecovery,
	"email.rebind":              TierRecovery,
	"recovery_channel.change":   TierRecovery,
	"credential.reissue":        TierCritical,
}

// TrustAnchorActions change where recovery codes and notices go; they are
// never routine, even from a signed-in session.
var TrustAnchorActions = []string{"phone.change", "email.rebind", "recovery_channel.change"}

// Actions returns the catalogue's action names, sorted.
func Actions() []string {
	out := make([]string, 0, len(Catalogue))
	for a := range Catalogue {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

func tierRank(t Tier) int {
	switch t {
	case TierRoutine:
		return 1
	case TierRecovery:
		return 2
	case TierCritical:
		return 3
	}
	return 0
}

// Policy is a loaded, compiled policy. It is safe for concurrent use.
type Policy struct {
	Name        string
	Description string
	// Source is where it came from ("built-in" or a file path).
	Source string
	// Classes are evaluated in order; each is a CEL condition over the
	// account and request.
	Classes []*Class
	// CommonRules run before each action's own rules.
	CommonRules []*Rule
	Actions     map[string]*Action
	Defaults    Lifetimes
	digest      string

	classEnv, ruleEnv *cel.Env
	classPrg          cel.Program
	rulePrg           map[string]cel.Program
}

// Class is a named subject class.
type Class struct {
	Name string
	When string
	Line int
	prg  cel.Program
}

// Action is one action's tier and rules.
type Action struct {
	Name  string
	Tier  Tier
	Rules []*Rule
}

// Rule is one ordered rule: when its condition holds, it decides.
type Rule struct {
	Name string
	When string
	// Deny, when not empty, is the reason for refusing.
	Deny    string
	Require *Requirement
	Line    int
	prg     cel.Program
}

// Lifetimes bound the secrets and the request a requirement creates.
type Lifetimes struct {
	Code    time.Duration `json:"code_ttl"`
	Token   time.Duration `json:"token_ttl"`
	Request time.Duration `json:"request_ttl"`
}

// Requirement is what must be shown before an action completes.
type Requirement struct {
	Evidence *Node `json:"evidence"`
	// Delay is the cooling-off period before completion; a branch of the
	// evidence tree may impose a longer one.
	Delay time.Duration `json:"delay"`
	// CancelChannels may cancel during the delay ("email", "phone").
	CancelChannels []string `json:"cancel_channels,omitempty"`
	// Notify lists who is told: "account" (every confirmed channel),
	// "security" (the security team's webhook/mailbox), "manager", "sponsor",
	// "owners".
	Notify    []string  `json:"notify,omitempty"`
	Lifetimes Lifetimes `json:"lifetimes"`
}

// Digest is a stable SHA-256 of the requirement's canonical form, recorded
// with approvals so a changed requirement voids earlier votes.
func (r *Requirement) Digest() string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Digest is the SHA-256 of the policy's canonical form: comments, key order
// and formatting do not change it.
func (p *Policy) Digest() string { return p.digest }

// ShortDigest is the first 12 hex digits, for people.
func (p *Policy) ShortDigest() string { return p.digest[:12] }

type canonicalPolicy struct {
	Name        string            `json:"name"`
	Classes     [][2]string       `json:"classes"`
	CommonRules []canonicalRule   `json:"common_rules"`
	Actions     []canonicalAction `json:"actions"`
	Defaults    Lifetimes         `json:"defaults"`
	Catalogue   map[string]Tier   `json:"catalogue"`
}

type canonicalRule struct {
	Name    string       `json:"name"`
	When    string       `json:"when"`
	Deny    string       `json:"deny,omitempty"`
	Require *Requirement `json:"require,omitempty"`
}

type canonicalAction struct {
	Name  string          `json:"name"`
	Tier  Tier            `json:"tier"`
	Rules []canonicalRule `json:"rules"`
}

func (p *Policy) computeDigest() {
	c := canonicalPolicy{Name: p.Name, Defaults: p.Defaults, Catalogue: Catalogue}
	for _, cl := range p.Classes {
		c.Classes = append(c.Classes, [2]string{cl.Name, strings.TrimSpace(cl.When)})
	}
	conv := func(rs []*Rule) []canonicalRule {
		var out []canonicalRule
		for _, r := range rs {
			out = append(out, canonicalRule{Name: r.Name, When: strings.TrimSpace(r.When), Deny: r.Deny, Require: r.Require})
		}
		return out
	}
	c.CommonRules = conv(p.CommonRules)
	for _, name := range Actions() {
		a := p.Actions[name]
		c.Actions = append(c.Actions, canonicalAction{Name: name, Tier: a.Tier, Rules: conv(a.Rules)})
	}
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	p.digest = hex.EncodeToString(sum[:])
}

// Error is a problem in a policy file, located by line.
type Error struct {
	Source string
	Line   int
	Msg    string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Source, e.Msg)
}

// Errors is every problem found in a policy file.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}
