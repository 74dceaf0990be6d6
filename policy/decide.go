package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	"github.com/recourse/recourse"
)

// plan compiles the classes into one program that returns a list of booleans
// and each action's rules (common rules first) into one program that returns
// the index of the first rule that matches, so a decision costs two CEL
// evaluations whatever the size of the policy.
func (p *Policy) plan(classEnv, ruleEnv *cel.Env) error {
	p.classEnv, p.ruleEnv = classEnv, ruleEnv
	if len(p.Classes) > 0 {
		parts := make([]string, len(p.Classes))
		for i, c := range p.Classes {
			parts[i] = "(" + c.When + ")"
		}
		ast, iss := classEnv.Compile("[" + strings.Join(parts, ", ") + "]")
		if iss.Err() != nil {
			return fmt.Errorf("plan classes: %w", iss.Err())
		}
		if err := checkCost(classEnv, ast, costLimit*uint64(len(p.Classes))); err != nil {
			return fmt.Errorf("plan classes: %w", err)
		}
		prg, err := classEnv.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return fmt.Errorf("plan classes: %w", err)
		}
		p.classPrg = prg
	}
	p.rulePrg = map[string]cel.Program{}
	for name, a := range p.Actions {
		rules := append(slices.Clone(p.CommonRules), a.Rules...)
		expr := "-1"
		for i := len(rules) - 1; i >= 0; i-- {
			when := strings.TrimSpace(rules[i].When)
			if when == "" {
				when = "true"
			}
			expr = "(" + when + ") ? " + strconv.Itoa(i) + " : (" + expr + ")"
		}
		ast, iss := ruleEnv.Compile(expr)
		if iss.Err() != nil {
			return fmt.Errorf("plan %s: %w", name, iss.Err())
		}
		if err := checkCost(ruleEnv, ast, costLimit*uint64(len(rules)+1)); err != nil {
			return fmt.Errorf("plan %s: %w", name, err)
		}
		prg, err := ruleEnv.Program(ast, cel.EvalOptions(cel.OptOptimize))
		if err != nil {
			return fmt.Errorf("plan %s: %w", name, err)
		}
		p.rulePrg[name] = prg
	}
	return nil
}

// Input is what a decision is about.
type Input struct {
	Account        *recourse.Account
	Authenticators []AuthenticatorFact
	Request        Request
}

// AuthenticatorFact is a bound authenticator as policy sees it.
type AuthenticatorFact struct {
	// Type is "password", "totp", "webauthn" or "recovery_codes".
	Type              string    `json:"type"`
	PhishingResistant bool      `json:"phishing_resistant,omitempty"`
	DeviceBound       bool      `json:"device_bound,omitempty"`
	BoundAt           time.Time `json:"bound_at"`
}

// Request is the context of a request.
type Request struct {
	// Initiator is "self", "help_desk", "api" or "admin".
	Initiator   string    `json:"initiator"`
	InitiatorID string    `json:"initiator_id,omitempty"`
	IP          string    `json:"ip,omitempty"`
	Time        time.Time `json:"time"`
	// SessionAAL is the subject's current sign-in level; 0 when not signed in.
	SessionAAL int `json:"session_aal,omitempty"`
}

// Initiators are the accepted Request.Initiator values.
var Initiators = []string{"self", "help_desk", "api", "admin"}

// Decision is the outcome of Decide.
type Decision struct {
	// Outcome is "deny" or "require".
	Outcome string
	Reason  string
	Rule    string
	Tier    Tier
	Action  string
	Classes []string
	// Requirement is set when Outcome is "require"; "min_aal: account" is
	// resolved to the account's level.
	Requirement  *Requirement
	PolicyDigest string
}

// Outcomes.
const (
	Deny    = "deny"
	Require = "require"
)

// AccountAAL is the highest level the account's authenticators reach: 3 with
// a device-bound WebAuthn credential, 2 with any other second factor, else 1.
func AccountAAL(auths []AuthenticatorFact) int {
	aal := 1
	for _, a := range auths {
		switch {
		case a.Type == "webauthn" && a.DeviceBound:
			aal = max(aal, 3)
		case a.Type == "webauthn" || a.Type == "totp":
			aal = max(aal, 2)
		}
	}
	return aal
}

func vars(in Input) (AccountVars, RequestVars) {
	a := in.Account
	now := in.Request.Time
	av := AccountVars{
		ID: a.ID, Username: a.Username, Kind: string(a.Kind), Status: string(a.Status), Employment: string(a.Employment),
		Manager: a.ManagerID, Sponsor: a.SponsorID, Owners: nonNil(a.Owners), Groups: nonNil(a.Groups), Roles: nonNil(a.Roles),
		IAL: int64(a.IAL), AAL: int64(AccountAAL(in.Authenticators)), RecoveryContacts: nonNil(a.RecoveryContacts),
	}
	if !a.CreatedAt.IsZero() {
		av.Age = now.Sub(a.CreatedAt)
	}
	if a.ContractEnd != nil {
		av.HasContractEnd, av.ContractEnd = true, *a.ContractEnd
	}
	for _, f := range in.Authenticators {
		av.Authenticators = append(av.Authenticators, AuthenticatorVars{Type: f.Type, PhishingResistant: f.PhishingResistant,
			DeviceBound: f.DeviceBound, BoundAt: f.BoundAt, Age: now.Sub(f.BoundAt)})
	}
	for _, c := range append(slices.Clone(a.Emails), a.Phones...) {
		cv := ChannelVars{Kind: string(c.Kind), Verified: c.Verified, Shared: c.Shared}
		if c.VerifiedAt != nil {
			cv.Age = now.Sub(*c.VerifiedAt)
		} else if !c.CreatedAt.IsZero() {
			cv.Age = now.Sub(c.CreatedAt)
		}
		av.Channels = append(av.Channels, cv)
	}
	rv := RequestVars{Initiator: in.Request.Initiator, InitiatorID: in.Request.InitiatorID, IP: in.Request.IP, Time: now,
		SessionAAL: int64(in.Request.SessionAAL), SignedIn: in.Request.SessionAAL > 0}
	return av, rv
}

// checkBounds refuses inputs larger than the cost estimate assumed, so a
// condition's worst case holds; it fails closed rather than truncating.
func checkBounds(in Input) error {
	a := in.Account
	for name, n := range map[string]int{"groups": len(a.Groups), "roles": len(a.Roles), "owners": len(a.Owners),
		"recovery_contacts": len(a.RecoveryContacts), "channels": len(a.Emails) + len(a.Phones), "authenticators": len(in.Authenticators)} {
		if n > maxListLen {
			return fmt.Errorf("policy: the account has %d %s, more than the %d a decision allows", n, name, maxListLen)
		}
	}
	for _, s := range append([]string{a.ID, a.Username, a.ManagerID, a.SponsorID, in.Request.InitiatorID, in.Request.IP}, a.Groups...) {
		if len(s) > maxStringLen {
			return fmt.Errorf("policy: an input string is longer than %d bytes", maxStringLen)
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ErrUnknownAction is returned for an action outside the catalogue.
var ErrUnknownAction = errors.New("policy: unknown action")

// Decide finds the first rule (common rules first, then the action's) whose
// condition holds and returns its decision. When no rule matches, the answer
// is deny: the policy fails closed.
func (p *Policy) Decide(ctx context.Context, action string, in Input) (*Decision, error) {
	a, ok := p.Actions[action]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownAction, action)
	}
	if in.Account == nil {
		return nil, errors.New("policy: no account")
	}
	if in.Request.Time.IsZero() {
		in.Request.Time = time.Now().UTC()
	}
	if !slices.Contains(Initiators, in.Request.Initiator) {
		return nil, fmt.Errorf("policy: initiator %q is not one of %s", in.Request.Initiator, strings.Join(Initiators, ", "))
	}
	if err := checkBounds(in); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	av, rv := vars(in)
	adapter := p.ruleEnv.CELTypeAdapter()
	act := map[string]any{
		"account": adapter.NativeToValue(av),
		"request": adapter.NativeToValue(rv),
		"now":     types.Timestamp{Time: in.Request.Time},
	}
	d := &Decision{Action: action, Tier: a.Tier, PolicyDigest: p.digest, Classes: []string{}}
	if p.classPrg != nil {
		out, _, err := p.classPrg.ContextEval(ctx, act)
		if err != nil {
			return nil, p.explainError(ctx, err, act, nil)
		}
		list, err := out.ConvertToNative(boolSliceType)
		if err != nil {
			return nil, fmt.Errorf("policy: classes: %w", err)
		}
		for i, in := range list.([]bool) {
			if in {
				d.Classes = append(d.Classes, p.Classes[i].Name)
			}
		}
	}
	act["classes"] = types.NewStringList(adapter, d.Classes)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, _, err := p.rulePrg[action].ContextEval(ctx, act)
	if err != nil {
		return nil, p.explainError(ctx, err, act, a)
	}
	idx := int(out.(types.Int))
	rules := append(slices.Clone(p.CommonRules), a.Rules...)
	if idx < 0 {
		d.Outcome, d.Rule = Deny, "(no rule matched)"
		d.Reason = "No rule of the policy covers this request, so it is refused."
		return d, nil
	}
	r := rules[idx]
	d.Rule = r.Name
	if r.Deny != "" {
		d.Outcome, d.Reason = Deny, r.Deny
		return d, nil
	}
	d.Outcome = Require
	d.Requirement = r.Require.resolve(int(av.AAL))
	return d, nil
}

var boolSliceType = reflect.TypeFor[[]bool]()

// explainError re-runs conditions one by one to name the one that failed.
func (p *Policy) explainError(ctx context.Context, err error, act map[string]any, a *Action) error {
	if a == nil {
		for _, c := range p.Classes {
			prg, cerr := compile(p.classEnv, c.When)
			if cerr != nil {
				continue
			}
			if _, eerr := eval(ctx, prg, act); eerr != nil {
				return fmt.Errorf("policy: class %q (line %d): %w", c.Name, c.Line, eerr)
			}
		}
		return fmt.Errorf("policy: classes: %w", err)
	}
	for _, r := range append(slices.Clone(p.CommonRules), a.Rules...) {
		if strings.TrimSpace(r.When) == "" {
			continue
		}
		prg, cerr := compile(p.ruleEnv, r.When)
		if cerr != nil {
			continue
		}
		if _, eerr := eval(ctx, prg, act); eerr != nil {
			return fmt.Errorf("policy: rule %q (line %d): %w", r.Name, r.Line, eerr)
		}
	}
	return fmt.Errorf("policy: %s: %w", a.Name, err)
}

// resolve copies the requirement with "account" levels made concrete.
func (r *Requirement) resolve(accountAAL int) *Requirement {
	c := *r
	c.Evidence = r.Evidence.resolve(accountAAL)
	return &c
}

func (n *Node) resolve(aal int) *Node {
	if n == nil {
		return nil
	}
	c := *n
	c.All, c.Any = resolveAll(n.All, aal), resolveAll(n.Any, aal)
	if n.NOf != nil {
		c.NOf = &NOf{N: n.NOf.N, Of: resolveAll(n.NOf.Of, aal)}
	}
	if n.Possession != nil && n.Possession.AccountAAL {
		c.Possession = &PossessionAtom{PhishingResistant: n.Possession.PhishingResistant, MinAAL: aal}
	}
	if n.Session != nil && n.Session.AccountAAL {
		c.Session = &SessionAtom{MinAAL: aal, MaxAge: n.Session.MaxAge}
	}
	return &c
}

func resolveAll(ns []*Node, aal int) []*Node {
	if ns == nil {
		return nil
	}
	out := make([]*Node, len(ns))
	for i, n := range ns {
		out[i] = n.resolve(aal)
	}
	return out
}
