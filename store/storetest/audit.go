package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

// NewAuditEvent returns a valid, unsequenced audit event for tests, dated
// T0 plus the given number of seconds.
func NewAuditEvent(action, subject string, second int) *recourse.AuditEvent {
	return &recourse.AuditEvent{
		ID: recourse.NewID("ev_"), Time: T0.Add(time.Duration(second) * time.Second),
		Actor: recourse.AuditActor{AccountID: subject, Role: recourse.ActorSubject}, SubjectID: subject,
		RequestID: "req-" + subject, Action: action, Outcome: recourse.OutcomeSuccess, Channel: recourse.ViaWeb,
		IP: "192.0.2.1", UserAgent: "test",
	}
}

func mustAddAudit(t *testing.T, s recourse.Store, events ...*recourse.AuditEvent) {
	t.Helper()
	for _, e := range events {
		if err := s.AddAuditEvent(t.Context(), e); err != nil {
			t.Fatalf("AddAuditEvent(%s): %v", e.Action, err)
		}
	}
}

// sequenceAll gives every unsequenced event the next positions, starting at
// first, and returns how many it sequenced.
func sequenceAll(t *testing.T, s recourse.Store, first int64) int {
	t.Helper()
	recs, err := s.UnsequencedAuditEvents(t.Context(), 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]int64, len(recs))
	for i, r := range recs {
		rows[i] = r.Row
	}
	if err := s.SequenceAuditEvents(t.Context(), first, rows); err != nil {
		t.Fatal(err)
	}
	return len(rows)
}

func testAuditAppendAndSequence(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	var events []*recourse.AuditEvent
	for i := range 5 {
		events = append(events, NewAuditEvent(recourse.ActionSignInPassword, fmt.Sprintf("u%d", i), i))
	}
	mustAddAudit(t, s, events...)
	if err := s.AddAuditEvent(ctx, events[0]); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("duplicate event id: err = %v, want ErrConflict", err)
	}
	bad := NewAuditEvent("Not An Action", "x", 0)
	if err := s.AddAuditEvent(ctx, bad); err == nil {
		t.Error("an invalid event was stored")
	}
	recs, err := s.UnsequencedAuditEvents(ctx, 0, 10)
	if err != nil || len(recs) != 5 {
		t.Fatalf("UnsequencedAuditEvents = %d, %v", len(recs), err)
	}
	for i, r := range recs {
		want, _ := events[i].MarshalCanonical()
		if r.EventID() != events[i].ID || r.Seq != nil || !bytes.Equal(r.Data, want) {
			t.Errorf("record %d = %+v, want event %s stored as %s", i, r, events[i].ID, want)
		}
		if i > 0 && r.Row <= recs[i-1].Row {
			t.Errorf("records not in insertion order: %d then %d", recs[i-1].Row, r.Row)
		}
	}
	if above, err := s.UnsequencedAuditEvents(ctx, recs[1].Row, 10); err != nil || len(above) != 3 || above[0].Row != recs[2].Row {
		t.Errorf("UnsequencedAuditEvents above row %d = %d records, %v; want the last 3", recs[1].Row, len(above), err)
	}
	if n, err := s.AuditBacklog(ctx); err != nil || n != 5 {
		t.Errorf("AuditBacklog = %d, %v", n, err)
	}
	if err := s.SequenceAuditEvents(ctx, 0, []int64{recs[0].Row, recs[1].Row, recs[2].Row}); err != nil {
		t.Fatal(err)
	}
	if err := s.SequenceAuditEvents(ctx, 3, []int64{recs[0].Row}); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("sequencing a sequenced event: err = %v, want ErrConflict", err)
	}
	if err := s.SequenceAuditEvents(ctx, 2, []int64{recs[3].Row}); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("reusing a position: err = %v, want ErrConflict", err)
	}
	got, err := s.AuditRecords(ctx, 1, 10)
	if err != nil || len(got) != 2 || *got[0].Seq != 1 || *got[1].Seq != 2 || got[0].EventID() != events[1].ID {
		t.Fatalf("AuditRecords(1) = %+v, %v", got, err)
	}
	if n, _ := s.AuditBacklog(ctx); n != 2 {
		t.Errorf("backlog after sequencing 3 of 5 = %d", n)
	}
	rec, err := s.AuditRecordByEventID(ctx, events[4].ID)
	if err != nil || rec.Seq != nil || rec.EventID() != events[4].ID {
		t.Errorf("AuditRecordByEventID(unsequenced) = %+v, %v", rec, err)
	}
	rec, err = s.AuditRecordByEventID(ctx, events[2].ID)
	if err != nil || rec.Seq == nil || *rec.Seq != 2 {
		t.Errorf("AuditRecordByEventID(sequenced) = %+v, %v", rec, err)
	}
	if _, err := s.AuditRecordByEventID(ctx, "ev_nope"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("unknown event: %v", err)
	}
	// More than one statement's worth of rows sequences in one call.
	var many []*recourse.AuditEvent
	for i := range 1203 {
		many = append(many, NewAuditEvent(recourse.ActionSessionRevoke, "bulk", i))
	}
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		for _, e := range many {
			if err := tx.AddAuditEvent(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := sequenceAll(t, s, 3); n != 1205 {
		t.Fatalf("sequenced %d, want 1205", n)
	}
	all, err := s.AuditRecords(ctx, 0, 5000)
	if err != nil || len(all) != 1208 {
		t.Fatalf("AuditRecords = %d, %v", len(all), err)
	}
	for i, r := range all {
		if *r.Seq != int64(i) {
			t.Fatalf("position %d holds seq %d", i, *r.Seq)
		}
	}
	// Streaming a range sees the same events, and an error stops it.
	var seqs []int64
	err = s.ScanAuditRecords(ctx, 2, 600, func(seq int64, data []byte) error {
		if !bytes.Equal(data, all[seq].Data) {
			return fmt.Errorf("position %d: data differs", seq)
		}
		seqs = append(seqs, seq)
		return nil
	})
	if err != nil || len(seqs) != 598 || seqs[0] != 2 || seqs[597] != 599 {
		t.Fatalf("ScanAuditRecords = %d positions (%v), %v", len(seqs), seqs[:min(3, len(seqs))], err)
	}
	stop := errors.New("stop")
	n := 0
	err = s.ScanAuditRecords(ctx, 0, 100, func(int64, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ScanAuditRecords after an error: %d calls, %v", n, err)
	}
}

func testAuditHashesAndCheckpoints(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	h := func(b byte) [32]byte { var x [32]byte; x[0], x[31] = b, b; return x }
	var hashes [][32]byte
	for i := range 1100 {
		hashes = append(hashes, h(byte(i)))
	}
	if err := s.AddAuditHashes(ctx, 0, hashes); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAuditHashes(ctx, 1099, [][32]byte{h(9)}); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("rewriting a stored hash: err = %v, want ErrConflict", err)
	}
	got, err := s.AuditHashes(ctx, []int64{1050, 2, 0})
	if err != nil || !slices.Equal(got, [][32]byte{hashes[1050], hashes[2], hashes[0]}) {
		t.Errorf("AuditHashes = %x, %v", got, err)
	}
	if _, err := s.AuditHashes(ctx, []int64{1, 5000}); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("missing hash: err = %v, want ErrNotFound", err)
	}
	idx, rng, err := s.AuditHashRange(ctx, 1098, 2000)
	if err != nil || !slices.Equal(idx, []int64{1098, 1099}) || !slices.Equal(rng, hashes[1098:]) {
		t.Errorf("AuditHashRange = %v %x, %v", idx, rng, err)
	}

	if _, err := s.LatestAuditCheckpoint(ctx); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("no checkpoint yet: err = %v", err)
	}
	for _, size := range []int64{1, 3, 7} {
		c := &recourse.AuditCheckpoint{Size: size, Root: h(byte(size)), Note: []byte(fmt.Sprintf("origin\n%d\nroot\n\n— sig\n", size)), CreatedAt: T0.Add(time.Duration(size) * time.Second)}
		if err := s.AddAuditCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddAuditCheckpoint(ctx, &recourse.AuditCheckpoint{Size: 3, Root: h(1), Note: []byte("x"), CreatedAt: T0}); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("second checkpoint of a size: err = %v, want ErrConflict", err)
	}
	latest, err := s.LatestAuditCheckpoint(ctx)
	if err != nil || latest.Size != 7 || latest.Root != h(7) || string(latest.Note) != "origin\n7\nroot\n\n— sig\n" || !latest.CreatedAt.Equal(T0.Add(7*time.Second)) {
		t.Errorf("LatestAuditCheckpoint = %+v, %v", latest, err)
	}
	list, err := s.AuditCheckpoints(ctx, 1, 10)
	if err != nil || len(list) != 2 || list[0].Size != 3 || list[1].Size != 7 {
		t.Errorf("AuditCheckpoints(after 1) = %v, %v", list, err)
	}
}

func testAuditListFilters(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	a1 := NewAuditEvent(recourse.ActionSignInPassword, "alice", 0)
	a2 := NewAuditEvent(recourse.ActionChannelAdd, "alice", 10)
	a2.After = map[string]string{"address": "alice@example.com\r\nX-Injected: yes", "kind": "email"}
	b1 := NewAuditEvent(recourse.ActionSignInPassword, "bob", 20)
	b1.Outcome, b1.Reason = recourse.OutcomeFailure, "wrong password\n{\"forged\":true}"
	adm := NewAuditEvent(recourse.ActionAccountUnlock, "bob", 30)
	adm.Actor = recourse.AuditActor{AccountID: "root", Role: recourse.ActorAdmin}
	adm.RequestID = "req-admin"
	// The system acting on carol's account, and root acting on no account.
	sys := NewAuditEvent(recourse.ActionAccountUnlock, "carol", 45)
	sys.Actor = recourse.AuditActor{Role: recourse.ActorSystem}
	pol := NewAuditEvent(recourse.ActionPolicyLoad, "", 50)
	pol.Actor = recourse.AuditActor{AccountID: "root", Role: recourse.ActorAdmin}
	pending := NewAuditEvent(recourse.ActionSignInPassword, "alice", 40)
	mustAddAudit(t, s, a1, a2, b1, adm, sys, pol)
	sequenceAll(t, s, 0)
	mustAddAudit(t, s, pending) // not sequenced: not listed

	ids := func(f recourse.AuditFilter) []string {
		t.Helper()
		evs, err := s.ListAuditEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			if e.Seq == nil {
				t.Errorf("listed event %s has no position", e.ID)
			}
			out = append(out, e.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    recourse.AuditFilter
		want []string
	}{
		{"all", recourse.AuditFilter{}, []string{a1.ID, a2.ID, b1.ID, adm.ID, sys.ID, pol.ID}},
		{"account as actor only", recourse.AuditFilter{AccountID: "root"}, []string{adm.ID, pol.ID}},
		{"account as subject or actor", recourse.AuditFilter{AccountID: "bob"}, []string{b1.ID, adm.ID}},
		{"account acted on by the system", recourse.AuditFilter{AccountID: "carol"}, []string{sys.ID}},
		{"actor on their own account", recourse.AuditFilter{ActorID: "bob"}, []string{b1.ID}},
		{"actor on their own account, twice", recourse.AuditFilter{ActorID: "alice"}, []string{a1.ID, a2.ID}},
		{"actor on others and on none", recourse.AuditFilter{ActorID: "root"}, []string{adm.ID, pol.ID}},
		{"no actor: the system", recourse.AuditFilter{ActorID: "carol"}, nil},
		{"actor and account", recourse.AuditFilter{ActorID: "root", AccountID: "bob"}, []string{adm.ID}},
		{"action", recourse.AuditFilter{Action: recourse.ActionSignInPassword}, []string{a1.ID, b1.ID}},
		{"request", recourse.AuditFilter{RequestID: "req-admin"}, []string{adm.ID}},
		{"since", recourse.AuditFilter{Since: T0.Add(10 * time.Second)}, []string{a2.ID, b1.ID, adm.ID, sys.ID, pol.ID}},
		{"until", recourse.AuditFilter{Until: T0.Add(10 * time.Second)}, []string{a1.ID}},
		{"from position", recourse.AuditFilter{FromSeq: 2, Limit: 1}, []string{b1.ID}},
		{"descending", recourse.AuditFilter{Descending: true, Limit: 2}, []string{pol.ID, sys.ID}},
		{"descending before", recourse.AuditFilter{Descending: true, BeforeSeq: 2}, []string{a2.ID, a1.ID}},
		{"combined", recourse.AuditFilter{AccountID: "alice", Action: recourse.ActionChannelAdd, Since: T0}, []string{a2.ID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("ids = %v, want %v", got, tc.want)
			}
		})
	}
	// Values with line breaks and JSON come back unchanged, and the stored
	// encoding stays one line.
	evs, err := s.ListAuditEvents(ctx, recourse.AuditFilter{AccountID: "alice", Action: recourse.ActionChannelAdd})
	if err != nil || len(evs) != 1 || evs[0].After["address"] != a2.After["address"] || !evs[0].Time.Equal(a2.Time) {
		t.Fatalf("round trip = %+v, %v", evs, err)
	}
	recs, _ := s.AuditRecords(ctx, 0, 10)
	for _, r := range recs {
		if bytes.ContainsAny(r.Data, "\r\n") {
			t.Errorf("stored encoding spans lines: %s", r.Data)
		}
	}
}

func testAuditRollback(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	ev := NewAuditEvent(recourse.ActionAccountCreate, "rolled", 0)
	err := s.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateAccount(ctx, NewAccount("rolled")); err != nil {
			return err
		}
		if err := tx.AddAuditEvent(ctx, ev); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if _, err := s.AuditRecordByEventID(ctx, ev.ID); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("audit event of a rolled-back change exists: %v", err)
	}
	// A failed audit write fails the transaction: no change without its record.
	bad := NewAuditEvent(recourse.ActionAccountCreate, "unaudited", 0)
	bad.Outcome = "maybe"
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		if err := tx.CreateAccount(ctx, NewAccount("unaudited")); err != nil {
			return err
		}
		return tx.AddAuditEvent(ctx, bad)
	})
	if err == nil {
		t.Fatal("a transaction whose audit write failed committed")
	}
	if _, err := s.Account(ctx, "unaudited"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("the change survived its failed audit write: %v", err)
	}
	// The sequencer lock is a transaction's.
	if _, err := s.LockAuditSequencer(ctx); err == nil {
		t.Error("LockAuditSequencer outside a transaction succeeded")
	}
	err = s.InTx(ctx, func(tx recourse.Tx) error {
		ok, err := tx.LockAuditSequencer(ctx)
		if err == nil && !ok {
			err = errors.New("an uncontended sequencer lock was refused")
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
}

// testAuditEventsOfATransaction: the events a transaction adds are stored
// in the order they were added, and the transaction reads them back before
// it commits (a backend may hold them until the commit, as sqlstore does).
func testAuditEventsOfATransaction(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	var added []*recourse.AuditEvent
	for i := range 7 { // 7 = 4 + 2 + 1: every shape of a multi-row insert below 8
		added = append(added, NewAuditEvent(recourse.ActionSessionRevoke, "ordered", i))
	}
	err := s.InTx(ctx, func(tx recourse.Tx) error {
		for i, e := range added {
			if err := tx.AddAuditEvent(ctx, e); err != nil {
				return err
			}
			if i == 2 {
				// Read in the middle: the first three are there.
				n, err := tx.AuditBacklog(ctx)
				if err != nil {
					return err
				}
				if n != 3 {
					t.Errorf("backlog inside the transaction after 3 events = %d, want 3", n)
				}
				if _, err := tx.AuditRecordByEventID(ctx, added[1].ID); err != nil {
					t.Errorf("the transaction cannot read its own event: %v", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := s.UnsequencedAuditEvents(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(added) {
		t.Fatalf("%d events stored, want %d", len(recs), len(added))
	}
	for i, r := range recs {
		if r.EventID() != added[i].ID {
			t.Errorf("event %d stored as %s, want %s (the order they were added in)", i, r.EventID(), added[i].ID)
		}
		if i > 0 && r.Row <= recs[i-1].Row {
			t.Errorf("rows out of order: %d after %d", r.Row, recs[i-1].Row)
		}
	}
}
