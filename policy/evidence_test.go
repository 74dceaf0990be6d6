package policy

import (
	"testing"
	"time"
)

func atom(kind string) *Node {
	switch kind {
	case "key":
		return &Node{Possession: &PossessionAtom{PhishingResistant: true}}
	case "possession":
		return &Node{Possession: &PossessionAtom{}}
	case "email":
		return &Node{Code: &CodeAtom{Channel: "email"}}
	case "sms":
		return &Node{Code: &CodeAtom{Channel: "sms"}}
	case "rcode":
		return &Node{RecoveryCode: &struct{}{}}
	case "manager":
		return &Node{Approval: &ApprovalAtom{Count: 1, From: []string{"manager"}}}
	case "security":
		return &Node{Approval: &ApprovalAtom{Count: 1, From: []string{"group:security"}}}
	case "two-contacts":
		return &Node{Approval: &ApprovalAtom{Count: 2, From: []string{"recovery_contact"}}}
	case "idv":
		return &Node{IdentityVerification: &IDVAtom{MinIAL: 2}}
	case "session":
		return &Node{Session: &SessionAtom{MinAAL: 2, MaxAge: 15 * time.Minute}}
	}
	panic(kind)
}

func TestSatisfied(t *testing.T) {
	age := 100 * 24 * time.Hour
	email := Code{Channel: "email", ChannelAge: age}
	sms := Code{Channel: "sms", ChannelAge: age}
	mgr := Approval{ApproverID: "m", Roles: []string{"manager"}}
	sec := Approval{ApproverID: "s", Roles: []string{"group:security"}}
	both := Approval{ApproverID: "b", Roles: []string{"manager", "group:security"}}
	tests := []struct {
		name  string
		node  *Node
		ev    Evidence
		ok    bool
		delay time.Duration
	}{
		{"atom met", atom("email"), Evidence{Codes: []Code{email}}, true, 0},
		{"atom unmet", atom("email"), Evidence{Codes: []Code{sms}}, false, 0},
		{"shared channel never counts", atom("sms"), Evidence{Codes: []Code{{Channel: "sms", Shared: true}}}, false, 0},
		{"channel too young", &Node{Code: &CodeAtom{Channel: "email", MinChannelAge: 30 * 24 * time.Hour}}, Evidence{Codes: []Code{{Channel: "email", ChannelAge: time.Hour}}}, false, 0},
		{"all needs distinct evidence", &Node{All: []*Node{atom("email"), atom("email")}}, Evidence{Codes: []Code{email}}, false, 0},
		{"all with two codes", &Node{All: []*Node{atom("email"), atom("email")}}, Evidence{Codes: []Code{email, email}}, true, 0},
		{"two approvals need two people", &Node{All: []*Node{atom("manager"), atom("security")}}, Evidence{Approvals: []Approval{both}}, false, 0},
		{"two approvals, two people", &Node{All: []*Node{atom("manager"), atom("security")}}, Evidence{Approvals: []Approval{both, mgr}}, true, 0},
		{"matching, not greedy", &Node{All: []*Node{atom("manager"), atom("security")}}, Evidence{Approvals: []Approval{both, sec}}, true, 0},
		{"one vote per person", atom("two-contacts"), Evidence{Approvals: []Approval{{"c", []string{"recovery_contact"}}, {"c", []string{"recovery_contact"}}}}, false, 0},
		{"count of two", atom("two-contacts"), Evidence{Approvals: []Approval{{"c", []string{"recovery_contact"}}, {"d", []string{"recovery_contact"}}}}, true, 0},
		{"n_of distinct children", &Node{NOf: &NOf{N: 2, Of: []*Node{atom("email"), atom("sms"), atom("rcode")}}}, Evidence{Codes: []Code{email, email}}, false, 0},
		{"n_of met", &Node{NOf: &NOf{N: 2, Of: []*Node{atom("email"), atom("sms"), atom("rcode")}}}, Evidence{Codes: []Code{email}, RecoveryCodes: 1}, true, 0},
		{"cheapest branch delay", &Node{Any: []*Node{{All: []*Node{atom("email"), atom("sms")}, Delay: 24 * time.Hour}, atom("key")}},
			Evidence{Codes: []Code{email, sms}, Possessions: []Possession{{Type: "webauthn", PhishingResistant: true, AAL: 3}}}, true, 0},
		{"slow branch only", &Node{Any: []*Node{{All: []*Node{atom("email"), atom("sms")}, Delay: 24 * time.Hour}, atom("key")}},
			Evidence{Codes: []Code{email, sms}}, true, 24 * time.Hour},
		{"totp is not phishing-resistant", atom("key"), Evidence{Possessions: []Possession{{Type: "totp", AAL: 2}}}, false, 0},
		{"session too old", atom("session"), Evidence{Sessions: []SessionProof{{AAL: 2, Age: 16 * time.Minute}}}, false, 0},
		{"session weak", atom("session"), Evidence{Sessions: []SessionProof{{AAL: 1, Age: time.Minute}}}, false, 0},
		{"attestation is just an atom", &Node{All: []*Node{atom("idv"), {Attestation: &struct{}{}}}}, Evidence{IdentityVerifications: []IdentityVerification{{IAL: 2}}, Attestations: []Attestation{{"h"}}}, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Satisfied(&Requirement{Evidence: tc.node}, tc.ev)
			if r.Satisfied != tc.ok || (tc.ok && r.Delay != tc.delay) {
				t.Fatalf("Satisfied = %+v, want ok=%v delay=%v", r, tc.ok, tc.delay)
			}
			if !r.Satisfied && len(r.Missing) == 0 {
				t.Error("unsatisfied without saying what is missing")
			}
		})
	}
	base := Satisfied(&Requirement{Evidence: atom("key"), Delay: time.Hour}, Evidence{Possessions: []Possession{{Type: "webauthn", PhishingResistant: true, AAL: 3}}})
	if base.Delay != time.Hour {
		t.Errorf("the requirement's own delay is the floor: %v", base.Delay)
	}
}

// fuzzTree builds a small evidence tree from fuzz bytes.
type byteReader struct {
	b []byte
	i int
}

func (r *byteReader) next() int {
	if r.i >= len(r.b) {
		return 0
	}
	v := int(r.b[r.i])
	r.i++
	return v
}

var fuzzAtoms = []string{"key", "possession", "email", "sms", "rcode", "manager", "security", "two-contacts", "idv", "session"}

func fuzzTree(r *byteReader, depth int) *Node {
	op := r.next() % 6
	if depth > 3 || op >= 3 {
		n := atom(fuzzAtoms[r.next()%len(fuzzAtoms)])
		if r.next()%4 == 0 {
			n.Delay = time.Duration(r.next()%4) * time.Hour
		}
		return n
	}
	k := 1 + r.next()%3
	kids := make([]*Node, k)
	for i := range kids {
		kids[i] = fuzzTree(r, depth+1)
	}
	n := &Node{Delay: time.Duration(r.next()%3) * time.Hour}
	switch op {
	case 0:
		n.All = kids
	case 1:
		n.Any = kids
	default:
		n.NOf = &NOf{N: 1 + r.next()%k, Of: kids}
	}
	return n
}

func fuzzEvidence(r *byteReader, ev *Evidence) {
	for range r.next() % 6 {
		switch r.next() % 7 {
		case 0:
			ev.Possessions = append(ev.Possessions, Possession{Type: "webauthn", PhishingResistant: r.next()%2 == 0, AAL: 1 + r.next()%3})
		case 1:
			ev.Codes = append(ev.Codes, Code{Channel: []string{"email", "sms"}[r.next()%2], ChannelAge: time.Hour, Shared: r.next()%5 == 0})
		case 2:
			ev.RecoveryCodes++
		case 3:
			roles := [][]string{{"manager"}, {"group:security"}, {"recovery_contact"}, {"manager", "group:security"}}[r.next()%4]
			ev.Approvals = append(ev.Approvals, Approval{ApproverID: string(rune('a' + r.next()%5)), Roles: roles})
		case 4:
			ev.IdentityVerifications = append(ev.IdentityVerifications, IdentityVerification{IAL: 1 + r.next()%3})
		case 5:
			ev.Attestations = append(ev.Attestations, Attestation{AgentID: "h"})
		case 6:
			ev.Sessions = append(ev.Sessions, SessionProof{AAL: 1 + r.next()%3, Age: time.Duration(r.next()%30) * time.Minute})
		}
	}
}

// FuzzSatisfiedMonotone checks the evidence algebra: more evidence never
// turns a satisfied requirement unsatisfied, and never lengthens the delay.
func FuzzSatisfiedMonotone(f *testing.F) {
	f.Add([]byte{0, 3, 2, 3, 5, 3, 6}, []byte{2, 3, 0, 1, 0}, []byte{1, 1, 1})
	f.Add([]byte{2, 2, 3, 5, 3, 6, 2}, []byte{4, 3, 0, 3, 1, 3, 3}, []byte{3, 3, 1, 0})
	f.Fuzz(func(t *testing.T, tree, ev, extra []byte) {
		req := &Requirement{Evidence: fuzzTree(&byteReader{b: tree}, 0), Delay: time.Duration(len(tree)%2) * time.Hour}
		var e Evidence
		fuzzEvidence(&byteReader{b: ev}, &e)
		before := Satisfied(req, e)
		fuzzEvidence(&byteReader{b: extra}, &e)
		after := Satisfied(req, e)
		if before.Satisfied && !after.Satisfied {
			t.Fatalf("adding evidence unsatisfied %s", Describe(req.Evidence))
		}
		if before.Satisfied && after.Delay > before.Delay {
			t.Fatalf("adding evidence lengthened the delay from %v to %v", before.Delay, after.Delay)
		}
	})
}

// FuzzLoad checks the loader never panics and that whatever it accepts can
// be decided and linted.
func FuzzLoad(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("version: 1\nname: x\nactions: {}\n"))
	f.Add([]byte("a: &a [*a, *a, *a]\nb: &b [*a, *a]\n"))
	f.Add([]byte("version: 1\nname: x\nclasses: [{name: a, when: 'true'}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Load(data, "fuzz.yaml")
		if err != nil {
			return
		}
		if len(p.Digest()) != 64 {
			t.Fatal("no digest")
		}
	})
}
