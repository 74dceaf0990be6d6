package audit

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/recourse/recourse"
)

func TestInclusionProofs(t *testing.T) {
	ctx := t.Context()
	st := openSQLite(t).st
	buildLog(t, st)
	recs, err := st.AuditRecords(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, pos := range []int{0, 1, 41, 63, 64, 99} {
		p, err := ProveInclusion(ctx, st, recs[pos].EventID())
		if err != nil {
			t.Fatalf("prove %d: %v", pos, err)
		}
		c, err := p.Check(testVerifier(t))
		if err != nil || c.Size != 100 || p.Position != int64(pos) {
			t.Fatalf("check %d: %+v, %v", pos, c, err)
		}
		if !documentedInclusionCheck(t, p) {
			t.Fatalf("the procedure in docs/audit.md rejects the proof for %d", pos)
		}
		// A proof survives JSON, as the CLI prints it.
		var back InclusionProof
		if err := json.Unmarshal([]byte(mustJSON(t, p)), &back); err != nil {
			t.Fatal(err)
		}
		if _, err := back.Check(testVerifier(t)); err != nil {
			t.Fatalf("proof after a JSON round trip: %v", err)
		}
		// Any change breaks it.
		bad := *p
		bad.Event = strings.Replace(p.Event, `"outcome":"success"`, `"outcome":"failure"`, 1)
		if _, err := bad.Check(testVerifier(t)); err == nil {
			t.Errorf("%d: a changed event checked", pos)
		}
		bad = *p
		bad.Position = (bad.Position + 1) % 100
		if _, err := bad.Check(testVerifier(t)); err == nil {
			t.Errorf("%d: a moved event checked", pos)
		}
		if len(p.Proof) > 0 {
			bad = *p
			bad.Proof = append(tlog.RecordProof{}, p.Proof...)
			bad.Proof[0][0] ^= 1
			if _, err := bad.Check(testVerifier(t)); err == nil {
				t.Errorf("%d: a changed proof checked", pos)
			}
		}
	}
	_, otherV, _ := GenerateKey(testOrigin)
	p, _ := ProveInclusion(ctx, st, recs[5].EventID())
	if _, err := p.Check(mustVerifier(t, otherV)); err == nil {
		t.Error("a proof checked with another key")
	}

	if _, err := ProveInclusion(ctx, st, "ev_nope"); recourse.ErrorCode(err) != recourse.ENOTFOUND {
		t.Errorf("unknown event: %v", err)
	}
	pending := appendEvents(t, st, 1, 500)
	if _, err := ProveInclusion(ctx, st, pending[0].ID); recourse.ErrorCode(err) != recourse.EINVALID {
		t.Errorf("unsequenced event: %v", err)
	}
}

// documentedInclusionCheck is the auditor's procedure from docs/audit.md,
// written with the x/mod packages only.
func documentedInclusionCheck(t *testing.T, p *InclusionProof) bool {
	size, root, err := documentedCheckpoint(p.Checkpoint, testVKey)
	if err != nil {
		return false
	}
	return tlog.CheckRecord(p.Proof, size, root, p.Position, tlog.RecordHash([]byte(p.Event))) == nil
}

// documentedCheckpoint is checkpoint() in docs/audit.md.
func documentedCheckpoint(signed, vkey string) (int64, tlog.Hash, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	n, err := note.Open([]byte(signed), note.VerifierList(v))
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	lines := strings.Split(n.Text, "\n") // origin, size, root
	if lines[0] != v.Name() {
		return 0, tlog.Hash{}, errors.New("checkpoint of another log")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	root, err := tlog.ParseHash(lines[2])
	return size, root, err
}

func TestConsistencyProofs(t *testing.T) {
	ctx := t.Context()
	st := openSQLite(t).st
	buildLog(t, st)
	cpAt := func(size int64) []byte {
		c, err := CheckpointAt(ctx, st, size)
		if err != nil {
			t.Fatal(err)
		}
		return c.Note
	}
	for _, pair := range [][2]int64{{10, 100}, {41, 42}, {42, 41}, {1, 1}, {57, 90}, {100, 100}} {
		if pair[0] == 1 {
			if _, err := CheckpointAt(ctx, st, 1); recourse.ErrorCode(err) != recourse.ENOTFOUND {
				t.Errorf("checkpoint of size 1 (none stored): %v", err)
			}
			continue
		}
		p, err := ProveConsistency(ctx, st, cpAt(pair[0]), cpAt(pair[1]))
		if pair[0] > pair[1] {
			if recourse.ErrorCode(err) != recourse.EINVALID {
				t.Errorf("%v: %v, want EINVALID", pair, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", pair, err)
		}
		o, n, err := p.Check(testVerifier(t))
		if err != nil || o.Size != pair[0] || n.Size != pair[1] {
			t.Fatalf("%v: %+v %+v %v", pair, o, n, err)
		}
		// The procedure in docs/audit.md agrees.
		oldSize, oldRoot, err1 := documentedCheckpoint(p.Old, testVKey)
		newSize, newRoot, err2 := documentedCheckpoint(p.New, testVKey)
		if err1 != nil || err2 != nil || tlog.CheckTree(p.Proof, newSize, newRoot, oldSize, oldRoot) != nil {
			t.Fatalf("%v: the documented procedure rejects the proof", pair)
		}
		if len(p.Proof) > 0 {
			bad := *p
			bad.Proof = append(tlog.TreeProof{}, p.Proof...)
			bad.Proof[len(bad.Proof)-1][5] ^= 1
			if _, _, err := bad.Check(testVerifier(t)); err == nil {
				t.Errorf("%v: a changed proof checked", pair)
			}
		}
	}
	// A checkpoint of a different history (same key, other root) fails.
	forged, _ := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: 50, Root: tlog.Hash{9}}, testSigner(t))
	p, err := ProveConsistency(ctx, st, forged, cpAt(100))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Check(testVerifier(t)); err == nil || !strings.Contains(err.Error(), "consistency proof") {
		t.Errorf("a forked history checked: %v", err)
	}
}
