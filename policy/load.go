package policy

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultPolicy []byte

// DefaultSource is the Source of the built-in policy.
const DefaultSource = "built-in"

// Default returns the built-in policy.
func Default() *Policy {
	p, err := Load(defaultPolicy, DefaultSource)
	if err != nil {
		panic("built-in policy does not load: " + err.Error())
	}
	return p
}

// DefaultYAML returns the text of the built-in policy.
func DefaultYAML() []byte { return slices.Clone(defaultPolicy) }

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 1 << 20

var reName = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)

// loader collects every error with its line instead of stopping at the first.
type loader struct {
	src  string
	errs Errors
	// visits counts nodes walked, so aliases cannot blow up the walk
	// (a "billion laughs" file).
	visits int
}

// maxVisits bounds the nodes walked in one policy.
const maxVisits = 100_000

// deref follows a YAML alias and counts the visit.
func (l *loader) deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	l.visits++
	return n
}

func (l *loader) errorf(line int, format string, args ...any) {
	l.errs = append(l.errs, &Error{Source: l.src, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// keys returns a mapping node's keys and values, reporting duplicates and
// keys not in allowed.
func (l *loader) keys(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	n = l.deref(n)
	if l.visits > maxVisits {
		if len(l.errs) == 0 || l.errs[len(l.errs)-1].Msg != "policy too large (aliases expand too far)" {
			l.errorf(n.Line, "policy too large (aliases expand too far)")
		}
		return out
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n.Line, "%s must be a mapping", what)
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], l.deref(n.Content[i+1])
		if !slices.Contains(allowed, k.Value) {
			l.errorf(k.Line, "%s: unknown key %q (known: %s)", what, k.Value, strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			l.errorf(k.Line, "%s: %q given twice", what, k.Value)
			continue
		}
		out[k.Value] = v
	}
	return out
}

func (l *loader) str(n *yaml.Node, what string) string {
	n = l.deref(n)
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		l.errorf(n.Line, "%s must be a string", what)
		return ""
	}
	return n.Value
}

func (l *loader) strs(n *yaml.Node, what string) []string {
	n = l.deref(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n.Line, "%s must be a list", what)
		return nil
	}
	var out []string
	for _, c := range n.Content {
		out = append(out, l.str(c, what))
	}
	return out
}

func (l *loader) boolean(n *yaml.Node, what string) bool {
	if n == nil {
		return false
	}
	b, err := strconv.ParseBool(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		l.errorf(n.Line, "%s must be true or false", what)
	}
	return b
}

func (l *loader) integer(n *yaml.Node, what string, lo, hi int) int {
	if n == nil {
		return 0
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v < lo || v > hi {
		l.errorf(n.Line, "%s must be a whole number from %d to %d", what, lo, hi)
		return 0
	}
	return v
}

func (l *loader) duration(n *yaml.Node, what string) time.Duration {
	if n == nil {
		return 0
	}
	d, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || d < 0 || d > 365*24*time.Hour {
		l.errorf(n.Line, "%s must be a duration like 15m, 24h or 720h (at most a year)", what)
		return 0
	}
	return d
}

// Load parses, validates and compiles a policy. Errors are Errors, each with
// the file and line.
func Load(data []byte, source string) (*Policy, error) {
	l := &loader{src: source}
	if len(data) > MaxPolicySize {
		return nil, Errors{{Source: source, Msg: "larger than 1 MiB"}}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		line := 0
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			if m := regexp.MustCompile(`line (\d+)`).FindStringSubmatch(err.Error()); m != nil {
				line, _ = strconv.Atoi(m[1])
			}
		}
		return nil, Errors{{Source: source, Line: line, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if len(doc.Content) == 0 {
		return nil, Errors{{Source: source, Msg: "empty policy"}}
	}
	root := l.keys(doc.Content[0], "policy", "version", "name", "description", "defaults", "classes", "common_rules", "actions")
	if v := l.integer(root["version"], "version", 1, 1); v != 1 && len(l.errs) == 0 {
		l.errorf(doc.Content[0].Line, "version: 1 is required")
	}
	p := &Policy{Name: l.str(root["name"], "name"), Description: l.str(root["description"], "description"), Source: source, Actions: map[string]*Action{}}
	if p.Name == "" {
		l.errorf(doc.Content[0].Line, "name is required")
	}
	p.Defaults = Lifetimes{Code: 10 * time.Minute, Token: 15 * time.Minute, Request: 72 * time.Hour}
	if d := root["defaults"]; d != nil {
		p.Defaults = l.lifetimes(d, "defaults", p.Defaults)
	}

	classEnv, err := newEnv(false)
	if err != nil {
		return nil, err
	}
	ruleEnv, err := newEnv(true)
	if err != nil {
		return nil, err
	}
	if cn := l.deref(root["classes"]); cn != nil {
		if cn.Kind != yaml.SequenceNode {
			l.errorf(cn.Line, "classes must be a list of {name, when}")
		} else {
			seen := map[string]bool{}
			for _, c := range cn.Content {
				m := l.keys(c, "class", "name", "when", "description")
				cl := &Class{Name: l.str(m["name"], "class name"), When: l.str(m["when"], "class when"), Line: c.Line}
				if !reName.MatchString(cl.Name) {
					l.errorf(c.Line, "class name %q must be lowercase letters, digits, '_', '.', '-'", cl.Name)
				}
				if seen[cl.Name] {
					l.errorf(c.Line, "class %q defined twice", cl.Name)
				}
				seen[cl.Name] = true
				if strings.TrimSpace(cl.When) == "" {
					l.errorf(c.Line, "class %q needs a when condition", cl.Name)
				} else if _, err := compile(classEnv, cl.When); err != nil {
					l.errorf(lineOf(m["when"], c), "class %q: %v", cl.Name, celMessage(err))
				}
				p.Classes = append(p.Classes, cl)
			}
		}
	}
	classNames := map[string]bool{}
	for _, c := range p.Classes {
		classNames[c.Name] = true
	}
	if n := root["common_rules"]; n != nil {
		p.CommonRules = l.rules(n, "common_rules", ruleEnv, p.Defaults)
	}
	an := l.deref(root["actions"])
	if an == nil {
		l.errorf(doc.Content[0].Line, "actions are required")
	} else if an.Kind != yaml.MappingNode {
		l.errorf(an.Line, "actions must be a mapping from action name to {tier, rules}")
	} else {
		for i := 0; i+1 < len(an.Content); i += 2 {
			k, v := an.Content[i], l.deref(an.Content[i+1])
			minTier, known := Catalogue[k.Value]
			if !known {
				l.errorf(k.Line, "unknown action %q (the catalogue: %s)", k.Value, strings.Join(Actions(), ", "))
				continue
			}
			if _, dup := p.Actions[k.Value]; dup {
				l.errorf(k.Line, "action %q given twice", k.Value)
				continue
			}
			m := l.keys(v, "action "+k.Value, "tier", "rules", "description")
			a := &Action{Name: k.Value, Tier: Tier(l.str(m["tier"], "tier"))}
			if tierRank(a.Tier) == 0 {
				l.errorf(lineOf(m["tier"], v), "action %s: tier must be routine, recovery or critical", k.Value)
			} else if tierRank(a.Tier) < tierRank(minTier) {
				l.errorf(lineOf(m["tier"], v), "action %s: tier %s is below its minimum, %s", k.Value, a.Tier, minTier)
			}
			if m["rules"] == nil {
				l.errorf(v.Line, "action %s: rules are required", k.Value)
			} else {
				a.Rules = l.rules(m["rules"], "action "+k.Value, ruleEnv, p.Defaults)
			}
			p.Actions[k.Value] = a
		}
		for _, name := range Actions() {
			if _, ok := p.Actions[name]; !ok {
				l.errorf(an.Line, "action %s is not covered; every catalogue action needs rules (deny it if you do not use it)", name)
			}
		}
	}
	for _, r := range p.allRules() {
		for _, ref := range classRefs(r.When) {
			if !classNames[ref] {
				l.errorf(r.Line, "rule %q refers to class %q, which is not defined", r.Name, ref)
			}
		}
	}
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	if err := p.plan(classEnv, ruleEnv); err != nil {
		return nil, Errors{{Source: source, Msg: err.Error()}}
	}
	p.computeDigest()
	return p, nil
}

func (p *Policy) allRules() []*Rule {
	out := slices.Clone(p.CommonRules)
	for _, name := range Actions() {
		if a := p.Actions[name]; a != nil {
			out = append(out, a.Rules...)
		}
	}
	return out
}

var reClassRef = regexp.MustCompile(`["']([a-z][a-z0-9_.-]*)["']\s+in\s+classes`)

// classRefs finds `"name" in classes` references, so a misspelt class is an
// error at load rather than a rule that never matches.
func classRefs(expr string) []string {
	var out []string
	for _, m := range reClassRef.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

func lineOf(n, fallback *yaml.Node) int {
	if n != nil {
		return n.Line
	}
	return fallback.Line
}

// celMessage keeps the first line of a CEL error, which names the problem.
func celMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "ERROR: ")
	if i := strings.IndexByte(msg, '\n'); i > 0 {
		msg = msg[:i]
	}
	return msg
}

func (l *loader) lifetimes(n *yaml.Node, what string, base Lifetimes) Lifetimes {
	m := l.keys(n, what, "code_ttl", "token_ttl", "request_ttl")
	if v := m["code_ttl"]; v != nil {
		base.Code = l.duration(v, what+".code_ttl")
		if base.Code > time.Hour || base.Code < time.Minute {
			l.errorf(v.Line, "%s.code_ttl must be between 1m and 1h: codes are short-lived", what)
		}
	}
	if v := m["token_ttl"]; v != nil {
		base.Token = l.duration(v, what+".token_ttl")
		if base.Token > 24*time.Hour || base.Token < time.Minute {
			l.errorf(v.Line, "%s.token_ttl must be between 1m and 24h: tokens are short-lived", what)
		}
	}
	if v := m["request_ttl"]; v != nil {
		base.Request = l.duration(v, what+".request_ttl")
		if base.Request < time.Hour {
			l.errorf(v.Line, "%s.request_ttl must be at least 1h", what)
		}
	}
	return base
}

func (l *loader) rules(n *yaml.Node, what string, env *cel.Env, defaults Lifetimes) []*Rule {
	n = l.deref(n)
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errorf(n.Line, "%s: rules must be a non-empty list", what)
		return nil
	}
	var out []*Rule
	names := map[string]bool{}
	for i, rn := range n.Content {
		m := l.keys(rn, what+" rule", "name", "when", "deny", "require", "description")
		r := &Rule{Name: l.str(m["name"], "rule name"), When: l.str(m["when"], "when"), Deny: l.str(m["deny"], "deny"), Line: rn.Line}
		if r.Name == "" {
			r.Name = fmt.Sprintf("%s#%d", strings.TrimPrefix(what, "action "), i+1)
		} else if !reName.MatchString(r.Name) {
			l.errorf(rn.Line, "rule name %q must be lowercase letters, digits, '_', '.', '-'", r.Name)
		}
		if names[r.Name] {
			l.errorf(rn.Line, "rule %q defined twice in %s", r.Name, what)
		}
		names[r.Name] = true
		if strings.TrimSpace(r.When) != "" {
			if _, err := compile(env, r.When); err != nil {
				l.errorf(lineOf(m["when"], rn), "rule %q: %v", r.Name, celMessage(err))
			}
		}
		switch {
		case m["deny"] != nil && m["require"] != nil:
			l.errorf(rn.Line, "rule %q: give either deny or require, not both", r.Name)
		case m["deny"] == nil && m["require"] == nil:
			l.errorf(rn.Line, "rule %q: needs deny (a reason) or require", r.Name)
		case m["deny"] != nil && strings.TrimSpace(r.Deny) == "":
			l.errorf(rn.Line, "rule %q: deny needs a reason people can read", r.Name)
		case m["require"] != nil:
			r.Require = l.requirement(m["require"], r.Name, defaults)
		}
		out = append(out, r)
	}
	return out
}

func (l *loader) requirement(n *yaml.Node, rule string, defaults Lifetimes) *Requirement {
	m := l.keys(n, "rule "+rule+" require", "evidence", "delay", "cancel_channels", "notify", "code_ttl", "token_ttl", "request_ttl")
	r := &Requirement{Delay: l.duration(m["delay"], "delay"), Lifetimes: defaults}
	if m["evidence"] == nil {
		l.errorf(n.Line, "rule %q: require needs evidence", rule)
	} else {
		r.Evidence = l.node(m["evidence"], rule, 0)
	}
	for _, c := range l.strs(m["cancel_channels"], "cancel_channels") {
		if c != "email" && c != "phone" {
			l.errorf(m["cancel_channels"].Line, "rule %q: cancel_channels holds %q; use email or phone", rule, c)
		}
		r.CancelChannels = append(r.CancelChannels, c)
	}
	for _, c := range l.strs(m["notify"], "notify") {
		switch c {
		case "account", "security", "manager", "sponsor", "owners":
		default:
			l.errorf(m["notify"].Line, "rule %q: notify holds %q; use account, security, manager, sponsor or owners", rule, c)
		}
		r.Notify = append(r.Notify, c)
	}
	lt := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line}
	for _, k := range []string{"code_ttl", "token_ttl", "request_ttl"} {
		if v := m[k]; v != nil {
			lt.Content = append(lt.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k, Line: v.Line}, v)
		}
	}
	r.Lifetimes = l.lifetimes(lt, "rule "+rule, defaults)
	if r.Delay > 0 && len(r.CancelChannels) == 0 {
		l.errorf(n.Line, "rule %q: a delay needs cancel_channels, so the real owner can stop it", rule)
	}
	return r
}

var approvalRoles = []string{"manager", "recovery_contact", "sponsor", "owner"}

// node parses an evidence tree. Knowledge-based questions have no atom:
// they cannot be expressed at all.
func (l *loader) node(n *yaml.Node, rule string, depth int) *Node {
	if depth > 8 {
		l.errorf(n.Line, "rule %q: evidence nested deeper than 8 levels", rule)
		return &Node{}
	}
	m := l.keys(n, "evidence", "all", "any", "n_of", "possession", "code", "recovery_code", "approval",
		"identity_verification", "attestation", "session", "delay")
	out := &Node{Line: n.Line, Delay: l.duration(m["delay"], "delay")}
	delete(m, "delay")
	if len(m) != 1 {
		l.errorf(n.Line, "rule %q: each evidence entry needs exactly one of all, any, n_of or an atom (possession, code, recovery_code, approval, identity_verification, attestation, session)", rule)
		return out
	}
	list := func(v *yaml.Node, what string) []*Node {
		v = l.deref(v)
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			l.errorf(v.Line, "rule %q: %s needs a non-empty list", rule, what)
			return nil
		}
		var ns []*Node
		for _, c := range v.Content {
			if l.visits > maxVisits {
				break
			}
			ns = append(ns, l.node(c, rule, depth+1))
		}
		return ns
	}
	empty := func(v *yaml.Node, what string) {
		if !(v.Kind == yaml.MappingNode && len(v.Content) == 0) && !(v.Kind == yaml.ScalarNode && v.Value == "true") {
			l.errorf(v.Line, "rule %q: %s takes no options (write %s: {})", rule, what, what)
		}
	}
	for k, v := range m {
		switch k {
		case "all":
			out.All = list(v, "all")
		case "any":
			out.Any = list(v, "any")
		case "n_of":
			mm := l.keys(v, "n_of", "n", "of")
			out.NOf = &NOf{N: l.integer(mm["n"], "n_of.n", 1, 16)}
			if mm["of"] == nil {
				l.errorf(v.Line, "rule %q: n_of needs of", rule)
			} else {
				out.NOf.Of = list(mm["of"], "n_of.of")
			}
			if out.NOf.N > len(out.NOf.Of) {
				l.errorf(v.Line, "rule %q: n_of asks for %d of %d", rule, out.NOf.N, len(out.NOf.Of))
			}
		case "possession":
			mm := l.keys(v, "possession", "phishing_resistant", "min_aal")
			out.Possession = &PossessionAtom{PhishingResistant: l.boolean(mm["phishing_resistant"], "phishing_resistant")}
			out.Possession.MinAAL, out.Possession.AccountAAL = l.aal(mm["min_aal"], rule)
		case "code":
			mm := l.keys(v, "code", "channel", "min_channel_age")
			out.Code = &CodeAtom{Channel: l.str(mm["channel"], "channel"), MinChannelAge: l.duration(mm["min_channel_age"], "min_channel_age")}
			if out.Code.Channel != "email" && out.Code.Channel != "sms" {
				l.errorf(v.Line, "rule %q: code.channel must be email or sms", rule)
			}
		case "recovery_code":
			empty(v, "recovery_code")
			out.RecoveryCode = &struct{}{}
		case "attestation":
			empty(v, "attestation")
			out.Attestation = &struct{}{}
		case "approval":
			mm := l.keys(v, "approval", "count", "from")
			out.Approval = &ApprovalAtom{Count: 1, From: l.strs(mm["from"], "from")}
			if mm["count"] != nil {
				out.Approval.Count = l.integer(mm["count"], "approval.count", 1, 10)
			}
			if len(out.Approval.From) == 0 {
				l.errorf(v.Line, "rule %q: approval needs from (manager, recovery_contact, sponsor, owner or group:NAME)", rule)
			}
			for _, r := range out.Approval.From {
				if !slices.Contains(approvalRoles, r) && !(strings.HasPrefix(r, "group:") && reName.MatchString(strings.TrimPrefix(r, "group:"))) {
					l.errorf(v.Line, "rule %q: approval from %q; use manager, recovery_contact, sponsor, owner or group:NAME", rule, r)
				}
			}
		case "identity_verification":
			mm := l.keys(v, "identity_verification", "min_ial")
			out.IdentityVerification = &IDVAtom{MinIAL: 1}
			if mm["min_ial"] != nil {
				out.IdentityVerification.MinIAL = l.integer(mm["min_ial"], "min_ial", 1, 3)
			}
		case "session":
			mm := l.keys(v, "session", "min_aal", "max_age")
			out.Session = &SessionAtom{MaxAge: l.duration(mm["max_age"], "max_age")}
			out.Session.MinAAL, out.Session.AccountAAL = l.aal(mm["min_aal"], rule)
		}
	}
	return out
}

// aal reads min_aal: 1, 2, 3 or "account" (the account's own level).
func (l *loader) aal(n *yaml.Node, rule string) (int, bool) {
	if n == nil {
		return 0, false
	}
	if n.Value == "account" {
		return 0, true
	}
	return l.integer(n, "min_aal (1–3 or account)", 1, 3), false
}
