package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/storetest"
)

func TestCheckpointFormat(t *testing.T) {
	root := tlog.RecordHash([]byte("x"))
	c := Checkpoint{Origin: testOrigin, Size: 42, Root: root}
	want := testOrigin + "\n42\n" + strings.TrimSuffix(strings.TrimPrefix(mustJSON(t, root), `"`), `"`) + "\n"
	if got := string(c.Text()); got != want {
		t.Fatalf("Text = %q, want %q", got, want)
	}
	signed, err := SignCheckpoint(c, testSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(signed), want+"\n— "+testOrigin+" ") {
		t.Errorf("signed note = %q: not a C2SP signed note over the checkpoint", signed)
	}
	got, err := OpenCheckpoint(signed, testVerifier(t))
	if err != nil || got != c {
		t.Fatalf("OpenCheckpoint = %+v, %v", got, err)
	}
	otherS, otherV, _ := GenerateKey(testOrigin)
	if _, err := OpenCheckpoint(signed, mustVerifier(t, otherV)); err == nil {
		t.Error("a checkpoint opened with another key")
	}
	forged, _ := SignCheckpoint(c, mustSigner(t, otherS))
	if _, err := OpenCheckpoint(forged, testVerifier(t)); err == nil {
		t.Error("a checkpoint signed by another key of the same name verified")
	}
	elsewhereS, elsewhereV, _ := GenerateKey("elsewhere.example/log")
	c2 := Checkpoint{Origin: "elsewhere.example/log", Size: 1, Root: root}
	n2, _ := SignCheckpoint(c2, mustSigner(t, elsewhereS))
	if _, err := OpenCheckpoint(n2, mustVerifier(t, elsewhereV)); err != nil {
		t.Errorf("checkpoint of another origin with its own key: %v", err)
	}
	if _, err := SignCheckpoint(c2, testSigner(t)); err == nil {
		t.Error("signed a checkpoint whose origin is not the key's name")
	}
	vk, err := VerifierKey(testSKey)
	if err != nil || vk != testVKey {
		t.Errorf("VerifierKey = %q, %v; want %q", vk, err, testVKey)
	}
	// Base64 keys often hold '+', the note format's separator.
	for range 64 {
		s, v, _ := GenerateKey("k.example/log")
		if got, err := VerifierKey(s); err != nil || got != v {
			t.Fatalf("VerifierKey(%s) = %q, %v; want %q", s, got, err, v)
		}
	}
	for _, bad := range []string{"", "o\n1\n", "o\n-1\nAAAA\n", "o\n01\n" + want[len(testOrigin)+4:], "\n1\n" + want[len(testOrigin)+4:], "o\n1\nnot base64\n"} {
		if _, err := ParseCheckpoint([]byte(bad)); err == nil {
			t.Errorf("ParseCheckpoint(%q) accepted", bad)
		}
	}
}

// TestSequencerMatchesTlog checks the stored tree against tlog's own
// computation, batch by batch.
func TestSequencerMatchesTlog(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			st := b.open(t).st
			seq := newTestSequencer(t, st, 7)
			if n, err := seq.Sequence(ctx); err != nil || n != 0 {
				t.Fatalf("Sequence on an empty log = %d, %v", n, err)
			}
			total := 0
			var want []tlog.Hash
			for _, n := range []int{1, 2, 5, 7, 8, 30, 1} {
				appendEvents(t, st, n, total)
				total += n
				got, err := seq.Drain(ctx)
				if err != nil || got != n {
					t.Fatalf("Drain = %d, %v; want %d", got, err, n)
				}
			}
			recs, err := st.AuditRecords(ctx, 0, 1000)
			if err != nil || len(recs) != total {
				t.Fatalf("records = %d, %v", len(recs), err)
			}
			r := memHashes{}
			for i, rec := range recs {
				if *rec.Seq != int64(i) {
					t.Fatalf("position %d holds %d", i, *rec.Seq)
				}
				hs, err := tlog.StoredHashes(int64(i), recourse.AuditLeaf(rec.Data, int64(i)), r)
				if err != nil {
					t.Fatal(err)
				}
				for j, h := range hs {
					r[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
				}
				want = append(want, hs...)
			}
			idx, got, err := st.AuditHashRange(ctx, 0, 1<<20)
			if err != nil || len(got) != len(want) {
				t.Fatalf("stored hashes = %d, %v; want %d", len(got), err, len(want))
			}
			for i := range got {
				if idx[i] != int64(i) || tlog.Hash(got[i]) != want[i] {
					t.Fatalf("stored hash %d differs from tlog's", i)
				}
			}
			cps, err := st.AuditCheckpoints(ctx, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			// Drain sequences 7 at a time: 1, 3, 7+1, 14+1, ... one checkpoint a round.
			for _, c := range cps {
				root, err := tlog.TreeHash(c.Size, r)
				if err != nil || root != tlog.Hash(c.Root) {
					t.Errorf("checkpoint %d root differs from tlog.TreeHash", c.Size)
				}
				body, err := OpenCheckpoint(c.Note, testVerifier(t))
				if err != nil || body.Size != c.Size || body.Root != root {
					t.Errorf("checkpoint %d note = %+v, %v", c.Size, body, err)
				}
			}
			if last := cps[len(cps)-1]; last.Size != int64(total) {
				t.Errorf("latest checkpoint = %d, want %d", last.Size, total)
			}
			rep, err := Verify(ctx, st, VerifyOptions{Verifier: testVerifier(t), PageSize: 5})
			if err != nil || rep.Size != int64(total) || rep.Checkpoints != len(cps) || rep.Unsequenced != 0 {
				t.Fatalf("Verify = %+v, %v", rep, err)
			}
			if seq.Sequenced() != int64(total) || seq.TreeSize() != int64(total) {
				t.Errorf("stats: sequenced %d, size %d", seq.Sequenced(), seq.TreeSize())
			}
		})
	}
}

// TestSequencerRefusesTamperedTree: a sequencer never signs over a stored
// tree that disagrees with its own last checkpoint.
func TestSequencerRefusesTamperedTree(t *testing.T) {
	ctx := t.Context()
	tdb := openSQLite(t)
	st, db := tdb.st, tdb.db
	seq := newTestSequencer(t, st, 10)
	appendEvents(t, st, 5, 0)
	if _, err := seq.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit_hashes SET hash = $1 WHERE idx = $2`, make([]byte, 32), tlog.StoredHashIndex(2, 0)); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, st, 1, 5)
	if _, err := seq.Sequence(ctx); err == nil || !strings.Contains(err.Error(), "does not match its signed checkpoint") {
		t.Fatalf("Sequence over a tampered tree: %v", err)
	}
	if n, _ := st.AuditBacklog(ctx); n != 1 {
		t.Errorf("backlog = %d: the refused round changed something", n)
	}
}

// TestSequencerConcurrentInstances runs writers and a sequencer on each of
// two instances (separate connection pools, as two replicas have) at once:
// the positions come out gapless and duplicate-free.
func TestSequencerConcurrentInstances(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			tdb := b.open(t)
			st1 := tdb.st
			st2, _ := tdb.reopen(t)
			instances := []recourse.Store{st1, st2}
			const writersPer, eventsPer = 4, 150
			var writers, sequencers sync.WaitGroup
			written := make(chan string, 2*writersPer*eventsPer)
			for i, st := range instances {
				for w := range writersPer {
					writers.Go(func() {
						for k := range eventsPer {
							e := storetest.NewAuditEvent(recourse.ActionSessionRevoke, "w", i*10000+w*1000+k)
							err := st.InTx(ctx, func(tx recourse.Tx) error { return tx.AddAuditEvent(ctx, e) })
							if err != nil {
								t.Error(err)
								return
							}
							written <- e.ID
						}
					})
				}
			}
			done := make(chan struct{})
			seqs := []*Sequencer{newTestSequencer(t, st1, 37), newTestSequencer(t, st2, 37)}
			for _, s := range seqs {
				sequencers.Go(func() {
					for {
						if _, err := s.Drain(ctx); err != nil {
							t.Error(err)
							return
						}
						select {
						case <-done:
							return
						default:
						}
					}
				})
			}
			writers.Wait()
			close(done)
			sequencers.Wait()
			close(written)
			// Whatever is left after the race, one more round takes. On
			// PostgreSQL an event may have committed after a later one was
			// sequenced, below both sequencers' floors: the round of a
			// sequencer just started (a restarted replica) looks from the
			// start, as a running one does once every fullScanEvery.
			last := newTestSequencer(t, st1, 37)
			if _, err := last.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for id := range written {
				want[id] = true
			}
			recs, err := st1.AuditRecords(ctx, 0, 10*len(want))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(want) || len(want) != 2*writersPer*eventsPer {
				t.Fatalf("%d events sequenced, %d written", len(recs), len(want))
			}
			for i, r := range recs {
				if *r.Seq != int64(i) {
					t.Fatalf("position %d holds %d: a gap or a duplicate", i, *r.Seq)
				}
				if !want[r.EventID()] {
					t.Fatalf("event %s sequenced twice or never written", r.EventID())
				}
				delete(want, r.EventID())
			}
			t.Logf("sequenced by instance: %d and %d, then %d", seqs[0].Sequenced(), seqs[1].Sequenced(), last.Sequenced())
			if seqs[0].Sequenced()+seqs[1].Sequenced()+last.Sequenced() != int64(len(recs)) {
				t.Errorf("sequencers report %d + %d + %d, want %d", seqs[0].Sequenced(), seqs[1].Sequenced(), last.Sequenced(), len(recs))
			}
			if _, err := Verify(ctx, st2, VerifyOptions{Verifier: testVerifier(t)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSequencerCrashLosesNothing kills a process in the middle of a
// sequencing transaction (after all its writes, before the commit) and
// checks that nothing was lost, duplicated or half-written.
func TestSequencerCrashLosesNothing(t *testing.T) {
	if os.Getenv("RECOURSE_AUDIT_CRASH_HELPER") != "" {
		t.Skip("helper process")
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			tdb := b.open(t)
			st := tdb.st
			seq := newTestSequencer(t, st, 20)
			appendEvents(t, st, 50, 0)
			if n, err := seq.Sequence(ctx); err != nil || n != 20 {
				t.Fatalf("first round = %d, %v", n, err)
			}
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSequencerCrashHelper$", "-test.v")
			cmd.Env = append(os.Environ(), "RECOURSE_AUDIT_CRASH_HELPER="+b.name, "RECOURSE_AUDIT_CRASH_TARGET="+tdb.target)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper did not die by SIGKILL mid-round: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "about to commit") {
				t.Fatalf("helper never reached the commit:\n%s", out)
			}
			st2, _ := tdb.reopen(t)
			if n, _ := st2.AuditBacklog(ctx); n != 30 {
				t.Errorf("backlog after the crash = %d, want 30", n)
			}
			if c, err := st2.LatestAuditCheckpoint(ctx); err != nil || c.Size != 20 {
				t.Errorf("latest checkpoint after the crash = %+v, %v; want size 20", c, err)
			}
			if _, err := Verify(ctx, st2, VerifyOptions{Verifier: testVerifier(t)}); err != nil {
				t.Fatalf("verify after the crash: %v", err)
			}
			// On PostgreSQL the killed process's session holds the sequencer's
			// transaction lock until the server reaps it; replicas skip the
			// round meanwhile and take it on a later one. Retry, bounded.
			seq2 := newTestSequencer(t, st2, 20)
			drained := 0
			for deadline := time.Now().Add(30 * time.Second); drained < 30 && time.Now().Before(deadline); {
				n, err := seq2.Drain(ctx)
				if err != nil {
					t.Fatalf("drain after the crash: %v", err)
				}
				drained += n
				if drained < 30 {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if drained != 30 {
				t.Fatalf("drained %d events after the crash, want 30", drained)
			}
			rep, err := Verify(ctx, st2, VerifyOptions{Verifier: testVerifier(t)})
			if err != nil || rep.Size != 50 || rep.Unsequenced != 0 {
				t.Fatalf("verify after recovery = %+v, %v", rep, err)
			}
		})
	}
}

// TestSequencerCrashHelper is the process TestSequencerCrashLosesNothing
// kills: it runs one round and SIGKILLs itself just before the commit.
func TestSequencerCrashHelper(t *testing.T) {
	backend := os.Getenv("RECOURSE_AUDIT_CRASH_HELPER")
	if backend == "" {
		t.Skip("run by TestSequencerCrashLosesNothing")
	}
	st, _ := openTarget(t, backend, os.Getenv("RECOURSE_AUDIT_CRASH_TARGET"))
	seq := newTestSequencer(t, st, 20)
	seq.beforeCommit = func() {
		os.Stdout.WriteString("about to commit\n")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	_, err := seq.Sequence(context.Background())
	t.Fatalf("the round finished: %v", err)
}

// TestRunSequencesWhenNudged drives Run by nudges alone (its tick is an
// hour): a commit through WithCommitHook starts a round.
func TestRunSequencesWhenNudged(t *testing.T) {
	st := openSQLite(t).st
	seq := newTestSequencer(t, st, 10)
	rounds := make(chan struct{}, 10)
	seq.afterRound = func() { rounds <- struct{}{} }
	hooked := WithCommitHook(st, seq.Nudge)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- seq.Run(ctx, time.Hour) }()
	<-rounds // the round at start
	e := storetest.NewAuditEvent(recourse.ActionSignOut, "a", 0)
	if err := hooked.InTx(ctx, func(tx recourse.Tx) error { return tx.AddAuditEvent(ctx, e) }); err != nil {
		t.Fatal(err)
	}
	<-rounds
	if seq.TreeSize() != 1 {
		t.Fatalf("tree size after a nudged round = %d", seq.TreeSize())
	}
	if err := hooked.AddAuditEvent(ctx, storetest.NewAuditEvent(recourse.ActionSignOut, "a", 1)); err != nil {
		t.Fatal(err)
	}
	<-rounds
	if seq.TreeSize() != 2 {
		t.Fatalf("tree size = %d", seq.TreeSize())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestCommitHook(t *testing.T) {
	ctx := t.Context()
	st := openSQLite(t).st
	calls := 0
	hooked := WithCommitHook(st, func() { calls++ })
	tests := []struct {
		name string
		fn   func() error
		want int
	}{
		{"commit with an event", func() error {
			return hooked.InTx(ctx, func(tx recourse.Tx) error {
				return tx.AddAuditEvent(ctx, storetest.NewAuditEvent(recourse.ActionSignOut, "a", 0))
			})
		}, 1},
		{"rollback", func() error {
			_ = hooked.InTx(ctx, func(tx recourse.Tx) error {
				_ = tx.AddAuditEvent(ctx, storetest.NewAuditEvent(recourse.ActionSignOut, "a", 1))
				return errors.New("rollback")
			})
			return nil
		}, 0},
		{"commit without an event", func() error {
			return hooked.InTx(ctx, func(tx recourse.Tx) error { return tx.CreateAccount(ctx, storetest.NewAccount("a")) })
		}, 0},
		{"direct", func() error {
			return hooked.AddAuditEvent(ctx, storetest.NewAuditEvent(recourse.ActionSignOut, "a", 2))
		}, 1},
	}
	for _, tc := range tests {
		calls = 0
		if err := tc.fn(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if calls != tc.want {
			t.Errorf("%s: hook called %d times, want %d", tc.name, calls, tc.want)
		}
	}
}

// TestSequencerLockPostgres: while one replica's round holds the sequencer
// lock, another's does not get it (and skips its round); the lock is the
// schema's, so a log in another schema is not held up.
func TestSequencerLockPostgres(t *testing.T) {
	ctx := t.Context()
	tdb := openPostgres(t)
	st2, _ := tdb.reopen(t)
	other := openPostgres(t).st
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- tdb.st.InTx(ctx, func(tx recourse.Tx) error {
			ok, err := tx.LockAuditSequencer(ctx)
			if err != nil || !ok {
				return fmt.Errorf("first lock = %v, %v", ok, err)
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	try := func(st recourse.Store) bool {
		var got bool
		if err := st.InTx(ctx, func(tx recourse.Tx) error {
			var err error
			got, err = tx.LockAuditSequencer(ctx)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if try(st2) {
		t.Error("a second replica took the sequencer lock while the first held it")
	}
	if !try(other) {
		t.Error("a log in another schema was held up by this one's lock")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !try(st2) {
		t.Error("the lock was not released at the end of the transaction")
	}
}

// TestSequencerLooksAboveItsFloor: a round looks above the last row the
// sequencer sequenced, and from the start once fullScanEvery has passed.
// The floor is raised by hand here to stand for rows sequenced before.
func TestSequencerLooksAboveItsFloor(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			st := b.open(t).st
			seq := newTestSequencer(t, st, 10)
			appendEvents(t, st, 3, 0)
			if n, err := seq.Sequence(ctx); err != nil || n != 3 {
				t.Fatalf("first round = %d, %v; want 3 (the first round looks from the start)", n, err)
			}
			recs, err := st.AuditRecords(ctx, 0, 10)
			if err != nil || len(recs) != 3 {
				t.Fatalf("records = %d, %v", len(recs), err)
			}
			if got := seq.floor.Load(); got != recs[2].Row {
				t.Fatalf("floor = %d, want the last row sequenced, %d", got, recs[2].Row)
			}
			appendEvents(t, st, 2, 3)
			seq.floor.Store(recs[2].Row + 1000) // as if rows up to here were sequenced
			if n, err := seq.Sequence(ctx); err != nil || n != 0 {
				t.Fatalf("round below the floor = %d, %v; want 0", n, err)
			}
			seq.fullScan.Store(time.Now().Add(-fullScanEvery).UnixNano())
			if n, err := seq.Sequence(ctx); err != nil || n != 2 {
				t.Fatalf("full round = %d, %v; want the 2 events below the floor", n, err)
			}
			if n, err := seq.Sequence(ctx); err != nil || n != 0 {
				t.Fatalf("round after = %d, %v; want 0", n, err)
			}
			if _, err := Verify(ctx, st, VerifyOptions{Verifier: testVerifier(t)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSequencerFindsLateCommits: on PostgreSQL a transaction may commit
// after a later-numbered event was sequenced; its event is sequenced by
// the next full round, never lost.
func TestSequencerFindsLateCommits(t *testing.T) {
	if os.Getenv("RECOURSE_TEST_POSTGRES_DSN") == "" && os.Getenv("CI") != "true" {
		t.Skip("PostgreSQL only (RECOURSE_TEST_POSTGRES_DSN); SQLite commits in row order")
	}
	ctx := t.Context()
	st := openPostgres(t).st
	seq := newTestSequencer(t, st, 10)
	inserted, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- st.InTx(ctx, func(tx recourse.Tx) error {
			if err := tx.AddAuditEvent(ctx, storetest.NewAuditEvent(recourse.ActionSignInPassword, "late", 0)); err != nil {
				return err
			}
			if _, err := tx.AuditBacklog(ctx); err != nil { // sends the buffered insert: the row is numbered now
				return err
			}
			close(inserted)
			<-release
			return nil
		})
	}()
	<-inserted
	appendEvents(t, st, 2, 1)
	if n, err := seq.Sequence(ctx); err != nil || n != 2 {
		t.Fatalf("round = %d, %v; want the 2 committed events", n, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, err := seq.Sequence(ctx); err != nil || n != 0 {
		t.Fatalf("round before the full scan = %d, %v; want 0 (the late event is below the floor)", n, err)
	}
	seq.fullScan.Store(time.Now().Add(-fullScanEvery).UnixNano())
	if n, err := seq.Sequence(ctx); err != nil || n != 1 {
		t.Fatalf("full round = %d, %v; want the late event", n, err)
	}
	rep, err := Verify(ctx, st, VerifyOptions{Verifier: testVerifier(t)})
	if err != nil || rep.Size != 3 || rep.Unsequenced != 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// TestSequencerObservesRounds: every round that sequenced events is
// reported once, after its commit, with its size and how long it held the
// lock for its statements; a round with nothing to do is not.
func TestSequencerObservesRounds(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			st := b.open(t).st
			var got []RoundStats
			seq, err := NewSequencer(SequencerOptions{Store: st, Signer: testSigner(t), Clock: fixedClock{storetest.T0}, Batch: 7,
				Observe: func(r RoundStats) {
					if size, err := st.LatestAuditCheckpoint(ctx); err != nil || size.Size != int64(len(got)*7+r.Events) {
						t.Errorf("observed before its commit: checkpoint %+v, %v", size, err)
					}
					got = append(got, r)
				}})
			if err != nil {
				t.Fatal(err)
			}
			if n, err := seq.Sequence(ctx); err != nil || n != 0 || len(got) != 0 {
				t.Fatalf("an empty log: Sequence = %d, %v; observed %+v", n, err, got)
			}
			appendEvents(t, st, 10, 0)
			if n, err := seq.Drain(ctx); err != nil || n != 10 {
				t.Fatalf("Drain = %d, %v", n, err)
			}
			if len(got) != 2 || got[0].Events != 7 || got[1].Events != 3 || got[0].Work <= 0 || got[1].Work <= 0 {
				t.Fatalf("observed %+v; want rounds of 7 and 3 events that held the lock", got)
			}
			if n, err := seq.Sequence(ctx); err != nil || n != 0 || len(got) != 2 {
				t.Fatalf("nothing left: Sequence = %d, %v; observed %d rounds", n, err, len(got))
			}
		})
	}
}
