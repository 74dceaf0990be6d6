package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Node is a node of an evidence tree: exactly one of All, Any, NOf or an
// atom. Within one tree, each piece of evidence serves at most one atom, so
// "all: [code, code]" needs two codes and "all: [approval manager, approval
// security]" needs two different people.
type Node struct {
	All []*Node `json:"all,omitempty"`
	Any []*Node `json:"any,omitempty"`
	NOf *NOf    `json:"n_of,omitempty"`

	Possession           *PossessionAtom `json:"possession,omitempty"`
	Code                 *CodeAtom       `json:"code,omitempty"`
	RecoveryCode         *struct{}       `json:"recovery_code,omitempty"`
	Approval             *ApprovalAtom   `json:"approval,omitempty"`
	IdentityVerification *IDVAtom        `json:"identity_verification,omitempty"`
	Attestation          *struct{}       `json:"attestation,omitempty"`
	Session              *SessionAtom    `json:"session,omitempty"`

	// Delay is a cooling-off period imposed when this branch is the one
	// that satisfies the requirement.
	Delay time.Duration `json:"delay,omitempty"`
	Line  int           `json:"-"`
}

// NOf needs N of its children, each with its own evidence.
type NOf struct {
	N  int     `json:"n"`
	Of []*Node `json:"of"`
}

// PossessionAtom is proof of a still-bound authenticator.
type PossessionAtom struct {
	// PhishingResistant accepts only WebAuthn (passkeys, security keys).
	PhishingResistant bool `json:"phishing_resistant,omitempty"`
	// MinAAL is the least assurance the authenticator supports (2 or 3).
	MinAAL int `json:"min_aal,omitempty"`
	// AccountAAL resolves MinAAL to the account's own level at decision time.
	AccountAAL bool `json:"account_aal,omitempty"`
}

// CodeAtom is a code sent to a confirmed, unshared channel and returned.
type CodeAtom struct {
	// Channel is "email" or "sms".
	Channel       string        `json:"channel"`
	MinChannelAge time.Duration `json:"min_channel_age,omitempty"`
}

// ApprovalAtom needs Count distinct approvers, each holding one of From:
// "manager", "recovery_contact", "sponsor", "owner" or "group:NAME".
type ApprovalAtom struct {
	Count int      `json:"count"`
	From  []string `json:"from"`
}

// IDVAtom is a signed identity-verification result.
type IDVAtom struct {
	MinIAL int `json:"min_ial"`
}

// SessionAtom is a sign-in by the subject, recent and strong enough.
type SessionAtom struct {
	MinAAL     int           `json:"min_aal,omitempty"`
	AccountAAL bool          `json:"account_aal,omitempty"`
	MaxAge     time.Duration `json:"max_age,omitempty"`
}

// Evidence is what a request has collected so far.
type Evidence struct {
	Possessions           []Possession           `json:"possessions,omitempty"`
	Codes                 []Code                 `json:"codes,omitempty"`
	RecoveryCodes         int                    `json:"recovery_codes,omitempty"`
	Approvals             []Approval             `json:"approvals,omitempty"`
	IdentityVerifications []IdentityVerification `json:"identity_verifications,omitempty"`
	Attestations          []Attestation          `json:"attestations,omitempty"`
	Sessions              []SessionProof         `json:"sessions,omitempty"`
}

// Possession is a proven, still-bound authenticator.
type Possession struct {
	Type              string `json:"type"`
	PhishingResistant bool   `json:"phishing_resistant,omitempty"`
	AAL               int    `json:"aal"`
}

// Code is a returned code. A code to a shared channel never counts.
type Code struct {
	Channel    string        `json:"channel"`
	ChannelAge time.Duration `json:"channel_age,omitempty"`
	Shared     bool          `json:"shared,omitempty"`
}

// Approval is one person's vote; Roles are the roles they hold towards the
// subject ("manager", "group:security", …).
type Approval struct {
	ApproverID string   `json:"approver_id"`
	Roles      []string `json:"roles"`
}

// IdentityVerification is a signed identity-verification result.
type IdentityVerification struct {
	IAL int `json:"ial"`
}

// Attestation is a help-desk agent's recorded statement.
type Attestation struct {
	AgentID string `json:"agent_id"`
}

// SessionProof is the subject's current sign-in.
type SessionProof struct {
	AAL int           `json:"aal"`
	Age time.Duration `json:"age"`
}

// Result is the outcome of checking evidence against a requirement.
type Result struct {
	Satisfied bool
	// Delay is the cooling-off that applies to the cheapest satisfying
	// branch (at least the requirement's own delay).
	Delay time.Duration
	// Missing says in plain words what is still needed.
	Missing []string
}

// item is one piece of evidence in the flat list the matcher consumes.
type item struct {
	kind string // possession, code, recovery_code, approval, idv, attestation, session
	i    int
}

type matcher struct {
	ev    *Evidence
	items []item
	steps int
}

// maxSteps bounds the search; policies and evidence are small, so this is
// never reached in practice, and it keeps hostile input from looping.
const maxSteps = 200_000

func newMatcher(ev *Evidence) *matcher {
	m := &matcher{ev: ev}
	for i := range ev.Possessions {
		m.items = append(m.items, item{"possession", i})
	}
	for i := range ev.Codes {
		m.items = append(m.items, item{"code", i})
	}
	for i := 0; i < ev.RecoveryCodes && i < 16; i++ {
		m.items = append(m.items, item{"recovery_code", i})
	}
	seen := map[string]bool{}
	for i, a := range ev.Approvals {
		if a.ApproverID == "" || seen[a.ApproverID] {
			continue // one vote per person
		}
		seen[a.ApproverID] = true
		m.items = append(m.items, item{"approval", i})
	}
	for i := range ev.IdentityVerifications {
		m.items = append(m.items, item{"idv", i})
	}
	for i := range ev.Attestations {
		m.items = append(m.items, item{"attestation", i})
	}
	for i := range ev.Sessions {
		m.items = append(m.items, item{"session", i})
	}
	return m
}

// fits reports whether item it can serve the atom node n.
func (m *matcher) fits(n *Node, it item) bool {
	switch {
	case n.Possession != nil:
		if it.kind != "possession" {
			return false
		}
		p := m.ev.Possessions[it.i]
		return (!n.Possession.PhishingResistant || p.PhishingResistant) && p.AAL >= n.Possession.MinAAL
	case n.Code != nil:
		if it.kind != "code" {
			return false
		}
		c := m.ev.Codes[it.i]
		return !c.Shared && c.Channel == n.Code.Channel && c.ChannelAge >= n.Code.MinChannelAge
	case n.RecoveryCode != nil:
		return it.kind == "recovery_code"
	case n.Approval != nil:
		if it.kind != "approval" {
			return false
		}
		for _, r := range m.ev.Approvals[it.i].Roles {
			if slices.Contains(n.Approval.From, r) {
				return true
			}
		}
		return false
	case n.IdentityVerification != nil:
		return it.kind == "idv" && m.ev.IdentityVerifications[it.i].IAL >= n.IdentityVerification.MinIAL
	case n.Attestation != nil:
		return it.kind == "attestation"
	case n.Session != nil:
		if it.kind != "session" {
			return false
		}
		s := m.ev.Sessions[it.i]
		return s.AAL >= n.Session.MinAAL && (n.Session.MaxAge == 0 || s.Age <= n.Session.MaxAge)
	}
	return false
}

func (n *Node) isAtom() bool { return n.All == nil && n.Any == nil && n.NOf == nil }

// count is how many items the atom consumes.
func (n *Node) count() int {
	if n.Approval != nil && n.Approval.Count > 1 {
		return n.Approval.Count
	}
	return 1
}

// match tries every way to satisfy n with unused items and calls k with
// each; it stops as soon as k returns true.
func (m *matcher) match(n *Node, used []bool, d time.Duration, k func(used []bool, d time.Duration) bool) bool {
	m.steps++
	if m.steps > maxSteps {
		return false
	}
	d = max(d, n.Delay)
	switch {
	case n.All != nil:
		return m.chain(n.All, used, d, k)
	case n.Any != nil:
		for _, c := range n.Any {
			if m.match(c, used, d, k) {
				return true
			}
		}
		return false
	case n.NOf != nil:
		return m.choose(n.NOf.Of, 0, n.NOf.N, nil, used, d, k)
	}
	return m.take(n, 0, n.count(), used, d, k)
}

func (m *matcher) chain(nodes []*Node, used []bool, d time.Duration, k func([]bool, time.Duration) bool) bool {
	if len(nodes) == 0 {
		return k(used, d)
	}
	return m.match(nodes[0], used, d, func(u []bool, d2 time.Duration) bool {
		return m.chain(nodes[1:], u, d2, k)
	})
}

// choose picks n of the nodes (from index start) and chains them.
func (m *matcher) choose(nodes []*Node, start, n int, picked []*Node, used []bool, d time.Duration, k func([]bool, time.Duration) bool) bool {
	if n <= 0 {
		return m.chain(picked, used, d, k)
	}
	for i := start; i <= len(nodes)-n; i++ {
		if m.choose(nodes, i+1, n-1, append(picked[:len(picked):len(picked)], nodes[i]), used, d, k) {
			return true
		}
	}
	return false
}

// take consumes need fitting items, from index start on.
func (m *matcher) take(n *Node, start, need int, used []bool, d time.Duration, k func([]bool, time.Duration) bool) bool {
	if need == 0 {
		return k(used, d)
	}
	for i := start; i < len(m.items); i++ {
		if used[i] || !m.fits(n, m.items[i]) {
			continue
		}
		used[i] = true
		ok := m.take(n, i+1, need-1, used, d, k)
		used[i] = false
		if ok {
			return true
		}
	}
	return false
}

// Satisfied checks evidence against a requirement. It is monotone: adding
// evidence never turns a satisfied requirement unsatisfied, and never
// lengthens the delay.
func Satisfied(r *Requirement, ev Evidence) Result {
	res := Result{Delay: r.Delay}
	if r.Evidence == nil {
		res.Satisfied = true
		return res
	}
	m := newMatcher(&ev)
	best := time.Duration(-1)
	used := make([]bool, len(m.items))
	m.match(r.Evidence, used, 0, func(_ []bool, d time.Duration) bool {
		if best < 0 || d < best {
			best = d
		}
		return best <= r.Delay // cannot do better than the base delay
	})
	if best >= 0 {
		res.Satisfied = true
		res.Delay = max(r.Delay, best)
		return res
	}
	res.Missing = missing(m, r.Evidence)
	return res
}

// satisfiable reports whether n alone could be met by the evidence.
func (m *matcher) satisfiable(n *Node) bool {
	used := make([]bool, len(m.items))
	return m.match(n, used, 0, func([]bool, time.Duration) bool { return true })
}

// missing describes the unmet parts of n.
func missing(m *matcher, n *Node) []string {
	switch {
	case n.All != nil:
		var out []string
		for _, c := range n.All {
			if !m.satisfiable(c) {
				out = append(out, missing(m, c)...)
			}
		}
		if len(out) == 0 {
			out = append(out, "separate evidence for each of: "+describeList(n.All))
		}
		return out
	case n.Any != nil:
		return []string{"one of: " + describeList(n.Any)}
	case n.NOf != nil:
		have := 0
		for _, c := range n.NOf.Of {
			if m.satisfiable(c) {
				have++
			}
		}
		return []string{fmt.Sprintf("%d more of: %s", max(1, n.NOf.N-have), describeList(n.NOf.Of))}
	}
	return []string{Describe(n)}
}

func describeList(ns []*Node) string {
	parts := make([]string, len(ns))
	for i, c := range ns {
		parts[i] = Describe(c)
	}
	return strings.Join(parts, "; ")
}

// Describe renders an evidence tree in plain English.
func Describe(n *Node) string {
	if n == nil {
		return "nothing more"
	}
	var s string
	switch {
	case n.All != nil:
		s = "all of (" + describeList(n.All) + ")"
	case n.Any != nil:
		s = "any one of (" + describeList(n.Any) + ")"
	case n.NOf != nil:
		s = fmt.Sprintf("%d of (%s)", n.NOf.N, describeList(n.NOf.Of))
	case n.Possession != nil:
		s = "proof of a bound authenticator"
		if n.Possession.PhishingResistant {
			s = "proof of a bound phishing-resistant authenticator (passkey or security key)"
		}
		if n.Possession.AccountAAL {
			s += " at the account's assurance level"
		} else if n.Possession.MinAAL > 0 {
			s += fmt.Sprintf(" at AAL%d or higher", n.Possession.MinAAL)
		}
	case n.Code != nil:
		if n.Code.Channel == "sms" {
			s = "a code sent by SMS to a confirmed phone number"
		} else {
			s = "a code sent to a confirmed email address"
		}
		if n.Code.MinChannelAge > 0 {
			s += " held for at least " + humanDuration(n.Code.MinChannelAge)
		}
	case n.RecoveryCode != nil:
		s = "a saved recovery code"
	case n.Approval != nil:
		who := strings.Join(roleNames(n.Approval.From), " or ")
		if n.Approval.Count > 1 {
			s = fmt.Sprintf("approval by %d different people, each a %s", n.Approval.Count, who)
		} else {
			s = "approval by a " + who
		}
	case n.IdentityVerification != nil:
		s = fmt.Sprintf("a signed identity-verification result at IAL%d or higher", max(1, n.IdentityVerification.MinIAL))
	case n.Attestation != nil:
		s = "a help-desk agent's attestation"
	case n.Session != nil:
		s = "a sign-in"
		if n.Session.AccountAAL {
			s += " at the account's assurance level"
		} else if n.Session.MinAAL > 0 {
			s += fmt.Sprintf(" at AAL%d or higher", n.Session.MinAAL)
		}
		if n.Session.MaxAge > 0 {
			s += " within the last " + humanDuration(n.Session.MaxAge)
		}
	}
	if n.Delay > 0 {
		s += ", then a cooling-off of " + humanDuration(n.Delay)
	}
	return s
}

func roleNames(from []string) []string {
	out := make([]string, len(from))
	for i, r := range from {
		switch {
		case strings.HasPrefix(r, "group:"):
			out[i] = "member of " + strings.TrimPrefix(r, "group:")
		case r == "recovery_contact":
			out[i] = "recovery contact"
		default:
			out[i] = r
		}
	}
	return out
}

// humanDuration writes 72h as "72 hours", 15m as "15 minutes", 720h as "30 days".
func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		if d == time.Hour {
			return "1 hour"
		}
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		if d == time.Minute {
			return "1 minute"
		}
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}

// jsonDuration accepts a Go duration string ("720h") or nanoseconds.
type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 30m or 720h", s)
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("a duration must be a string like 30m or a number of nanoseconds")
	}
	*d = jsonDuration(n)
	return nil
}

// UnmarshalJSON lets channel_age be written "720h".
func (c *Code) UnmarshalJSON(b []byte) error {
	var v struct {
		Channel    string       `json:"channel"`
		ChannelAge jsonDuration `json:"channel_age"`
		Shared     bool         `json:"shared"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*c = Code{Channel: v.Channel, ChannelAge: time.Duration(v.ChannelAge), Shared: v.Shared}
	return nil
}

// UnmarshalJSON lets age be written "5m".
func (s *SessionProof) UnmarshalJSON(b []byte) error {
	var v struct {
		AAL int          `json:"aal"`
		Age jsonDuration `json:"age"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*s = SessionProof{AAL: v.AAL, Age: time.Duration(v.Age)}
	return nil
}
