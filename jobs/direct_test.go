package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/store/storetest"
)

// directWorld is a store, a queue over it (not started) and a service with
// the demo accounts.
type directWorld struct {
	st  recourse.Store
	db  *sql.DB
	q   *Queue
	svc *service.Service
}

func newDirectWorld(t *testing.T, backend string, opts Options) *directWorld {
	t.Helper()
	ctx := t.Context()
	w := &directWorld{}
	switch backend {
	case "sqlite":
		s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "direct.db"), sqlite.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		w.st, w.db = s, s.DB()
		opts.Listener = nil
	case "postgres":
		s, err := postgres.Open(ctx, storetest.PostgresDSN(t), postgres.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		w.st, w.db = s, s.DB()
		opts.Listener = s.Pool
	}
	t.Cleanup(func() { w.st.Close() })
	if err := Migrate(ctx, w.db, backend, nil); err != nil {
		t.Fatal(err)
	}
	q, err := New(w.db, backend, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.q = q
	cfg := service.DefaultConfig()
	cfg.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
	cfg.PublicURL = "https://recourse.example.com"
	w.svc, err = service.New(service.Options{Store: w.st, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("d", 32))}, Scheduler: q})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.SeedDemo(ctx); err != nil {
		t.Fatal(err)
	}
	return w
}

// start runs the queue until the test ends.
func (w *directWorld) start(t *testing.T) {
	t.Helper()
	runCtx, stop := context.WithCancel(context.Background())
	if err := w.q.Start(runCtx, w.svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.q.Stop(sctx)
		stop()
	})
}

// startJobs counts the queued start jobs in a state.
func (w *directWorld) startJobs(t *testing.T, state rivertype.JobState) int {
	t.Helper()
	var n int
	if err := w.db.QueryRowContext(t.Context(), `SELECT count(*) FROM river_job WHERE kind = 'recovery_start' AND state = '`+string(state)+`'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitStart waits for a completed start job, from River or from a run in
// process.
func waitStart(t *testing.T, events <-chan *river.Event) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Job.Kind != "recovery_start" {
				continue
			}
			if ev.Kind != river.EventKindJobCompleted {
				t.Fatalf("start job %s: %v", ev.Kind, ev.Job.Errors)
			}
			return
		case <-deadline:
			t.Fatal("the start job did not complete within 30s")
		}
	}
}

var backends = []string{"sqlite", "postgres"}

// TestStartRunsInProcess: a started queue processes a start itself right
// after the commit, and deletes the queued copy in the same transaction,
// so River never runs it.
func (w *directWorld) pendingStarts(t *testing.T) int {
	t.Helper()
	var n int
	if err := w.db.QueryRowContext(t.Context(), `SELECT count(*) FROM pending_starts`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStartRunsInProcess(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newDirectWorld(t, backend, Options{PollInterval: time.Hour, StartFallback: time.Hour})
			events, cancel := w.q.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
			defer cancel()
			w.start(t)
			rs, err := w.svc.StartRecovery(t.Context(), "d.chen", "password", service.Meta{IP: "192.0.2.1"})
			if err != nil {
				t.Fatal(err)
			}
			waitStart(t, events)
			if _, err := w.st.Recovery(t.Context(), rs.RequestID); err != nil {
				t.Fatalf("request not opened: %v", err)
			}
			var n int
			if err := w.db.QueryRowContext(t.Context(), `SELECT count(*) FROM river_job WHERE kind = 'recovery_start'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d start jobs in River, want 0 (the start ran in process)", n)
			}
			if n := w.pendingStarts(t); n != 0 {
				t.Errorf("%d pending starts left, want 0 (the run claims its start)", n)
			}
		})
	}
}

// A start the process does not run (here: no in-process worker takes it)
// becomes a River job when it is due, and River runs it.
func TestStartFallsBackToTheQueue(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newDirectWorld(t, backend, Options{PollInterval: 20 * time.Millisecond, StartFallback: 300 * time.Millisecond})
			events, cancel := w.q.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
			defer cancel()
			runCtx, stop := context.WithCancel(context.Background())
			w.q.svc.Store(w.svc)
			if err := w.q.client.Start(runCtx); err != nil {
				t.Fatal(err)
			}
			moverStop, moverDone := make(chan struct{}), make(chan struct{})
			go func() { defer close(moverDone); w.q.runMover(runCtx, moverStop) }()
			defer func() {
				close(moverStop)
				<-moverDone
				sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
				defer c()
				_ = w.q.client.Stop(sctx)
				stop()
			}()
			w.q.direct.mu.Lock()
			w.q.direct.running = true
			w.q.direct.mu.Unlock()

			rs, err := w.svc.StartRecovery(t.Context(), "d.chen", "password", service.Meta{IP: "192.0.2.1"})
			if err != nil {
				t.Fatal(err)
			}
			if n := w.pendingStarts(t); n != 1 {
				t.Fatalf("%d pending starts after the commit, want 1", n)
			}
			if n := w.startJobs(t, rivertype.JobStateAvailable) + w.startJobs(t, rivertype.JobStateScheduled); n != 0 {
				t.Fatalf("%d start jobs in River before the start is due, want 0", n)
			}
			waitStart(t, events)
			if _, err := w.st.Recovery(t.Context(), rs.RequestID); err != nil {
				t.Fatalf("request not opened by the fallback: %v", err)
			}
			if n := w.startJobs(t, rivertype.JobStateCompleted); n != 1 {
				t.Errorf("%d completed start jobs, want 1 (River ran the fallback)", n)
			}
			if n := w.pendingStarts(t); n != 0 {
				t.Errorf("%d pending starts left, want 0 (moved to River)", n)
			}
		})
	}
}

func TestClaim(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newDirectWorld(t, backend, Options{})
			ctx := t.Context()
			record := func(t *testing.T) int64 {
				t.Helper()
				var id int64
				if err := w.st.InTx(ctx, func(tx recourse.Tx) error {
					sqlTx, err := storeTx(ctx, tx)
					if err != nil {
						return err
					}
					id, err = addPendingStart(ctx, sqlTx, backend, StartArgs{service.StartJob{RequestID: recourse.NewID("rr_")}}, time.Now().Add(time.Hour))
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return id
			}
			left := func(t *testing.T, id int64) int {
				t.Helper()
				var n int
				if err := w.db.QueryRowContext(ctx, `SELECT count(*) FROM pending_starts WHERE row_id = $1`, id).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			errRolledBack := errors.New("the outcome failed")
			for _, tc := range []struct {
				name    string
				prepare func(t *testing.T, id int64)
				after   error // what the claiming transaction returns after the claim
				wantErr error
				left    int
			}{
				{name: "pending", left: 0},
				{name: "moved to River", prepare: func(t *testing.T, id int64) {
					if _, err := w.db.ExecContext(ctx, `DELETE FROM pending_starts WHERE row_id = $1`, id); err != nil {
						t.Fatal(err)
					}
				}, wantErr: errTaken, left: 0},
				{name: "claimed before", prepare: func(t *testing.T, id int64) {
					if err := w.st.InTx(ctx, func(tx recourse.Tx) error { return w.q.claim(ctx, tx, id) }); err != nil {
						t.Fatal(err)
					}
				}, wantErr: errTaken, left: 0},
				{name: "outcome rolled back", after: errRolledBack, wantErr: errRolledBack, left: 1},
			} {
				t.Run(tc.name, func(t *testing.T) {
					id := record(t)
					if tc.prepare != nil {
						tc.prepare(t, id)
					}
					err := w.st.InTx(ctx, func(tx recourse.Tx) error {
						if err := w.q.claim(ctx, tx, id); err != nil {
							return err
						}
						return tc.after
					})
					switch {
					case tc.wantErr == errTaken:
						// On PostgreSQL the claim goes with the commit,
						// which fails.
						if !claimLost(err) {
							t.Fatalf("claim: %v, want the start taken", err)
						}
					case !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil):
						t.Fatalf("claim: %v, want %v", err, tc.wantErr)
					}
					if n := left(t, id); n != tc.left {
						t.Errorf("%d rows left, want %d", n, tc.left)
					}
				})
			}
		})
	}
}

// The mover turns due starts, and only those, into River jobs with their
// arguments; movers running at once move each start once.
func TestMovePendingStarts(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newDirectWorld(t, backend, Options{})
			ctx := t.Context()
			now := time.Now()
			add := func(requestID string, due time.Time) {
				t.Helper()
				if err := w.st.InTx(ctx, func(tx recourse.Tx) error {
					sqlTx, err := storeTx(ctx, tx)
					if err != nil {
						return err
					}
					_, err = addPendingStart(ctx, sqlTx, backend, StartArgs{service.StartJob{RequestID: requestID, Identifier: "d.chen"}}, due)
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			add("rr_due", now.Add(-time.Second))
			add("rr_later", now.Add(time.Hour))
			if _, err := w.db.ExecContext(ctx, `INSERT INTO pending_starts (args, due_ms) VALUES ($1, $2)`, `{"request_id":`, now.Add(-time.Second).UnixMilli()); err != nil {
				t.Fatal(err)
			}
			n, err := w.q.movePendingStarts(ctx, now)
			if err != nil || n != 2 {
				t.Fatalf("movePendingStarts = %d, %v; want 2", n, err)
			}
			asText := "args::text"
			if backend == "sqlite" {
				asText = "json(args)" // River keeps JSONB there
			}
			var args []map[string]any
			rows, err := w.db.QueryContext(ctx, `SELECT `+asText+` FROM river_job WHERE kind = 'recovery_start' AND state = 'available' ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var a string
				if err := rows.Scan(&a); err != nil {
					t.Fatal(err)
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(a), &m); err != nil {
					t.Fatalf("%q: %v", a, err)
				}
				args = append(args, m)
			}
			rows.Close()
			if len(args) != 2 || args[0]["request_id"] != "rr_due" || args[0]["identifier"] != "d.chen" || args[1]["undecodable"] != `{"request_id":` {
				t.Fatalf("River jobs' arguments = %v", args)
			}
			if n := w.pendingStarts(t); n != 1 {
				t.Fatalf("%d pending starts left, want 1 (the one not due)", n)
			}

			// Four movers at once, 2×moveBatch+7 due starts: each moved once.
			const due = 2*moveBatch + 7
			tx, err := w.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range due {
				if _, err := tx.ExecContext(ctx, `INSERT INTO pending_starts (args, due_ms) VALUES ($1, $2)`,
					fmt.Sprintf(`{"request_id":"rr_%d"}`, i), now.Add(-time.Minute).UnixMilli()); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			moved := make(chan int, 4)
			for range 4 {
				go func() {
					n, err := w.q.movePendingStarts(ctx, now)
					if err != nil {
						t.Error(err)
					}
					moved <- n
				}()
			}
			total := 0
			for range 4 {
				total += <-moved
			}
			var jobs int
			if err := w.db.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE kind = 'recovery_start'`).Scan(&jobs); err != nil {
				t.Fatal(err)
			}
			if total != due || jobs != due+2 {
				t.Fatalf("movers moved %d, River holds %d start jobs; want %d and %d", total, jobs, due, due+2)
			}
		})
	}
}

// A full buffer holds a start's answer until a worker frees a place (the
// start is then the workers'), or for the wait at most (the start is then
// left to its fallback).
func TestOfferWaitsForRoom(t *testing.T) {
	first, second := directStart{id: 1}, directStart{id: 2}
	t.Run("room freed", func(t *testing.T) {
		d := newDirect(1, time.Hour, 1)
		if !d.offer(t.Context(), first) {
			t.Fatal("the first start was not taken into an empty buffer")
		}
		taken := make(chan bool, 1)
		go func() { taken <- d.offer(t.Context(), second) }()
		// The second offer counts its wait before it waits.
		for deadline := time.Now().Add(10 * time.Second); d.waited.Load() == 0; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatal("the second start's offer never waited for room")
			}
		}
		if got := <-d.pending; got.id != first.id {
			t.Fatalf("worker took start %d, want %d", got.id, first.id)
		}
		if !<-taken {
			t.Fatal("the second start was left to its fallback though a place was freed")
		}
		if got := <-d.pending; got.id != second.id {
			t.Fatalf("worker took start %d, want %d", got.id, second.id)
		}
		if w, f := d.waited.Load(), d.deferred.Load(); w != 1 || f != 0 {
			t.Errorf("counted %d waited, %d deferred; want 1, 0", w, f)
		}
	})
	t.Run("wait over", func(t *testing.T) {
		d := newDirect(1, 0, 1)
		d.offer(t.Context(), first)
		if d.offer(t.Context(), second) {
			t.Fatal("a start was taken into a full buffer")
		}
		if n := len(d.pending); n != 1 {
			t.Fatalf("%d starts buffered, want 1", n)
		}
		if w, f := d.waited.Load(), d.deferred.Load(); w != 1 || f != 1 {
			t.Errorf("counted %d waited, %d deferred; want 1, 1", w, f)
		}
	})
	t.Run("answer abandoned", func(t *testing.T) {
		d := newDirect(1, time.Hour, 1)
		d.offer(t.Context(), first)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if d.offer(ctx, second) {
			t.Fatal("a start was taken into a full buffer")
		}
	})
}

func TestAdmit(t *testing.T) {
	tests := []struct {
		name           string
		buffered       int
		waiting        int64
		want           bool
		refusedCounted uint64
	}{
		{"room in the buffer", 1, 5, true, 0},
		{"full, few answers waiting", 2, 2, true, 0},
		{"full, the most answers waiting", 2, 3, false, 1},
		{"full, more than the most waiting", 2, 4, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDirect(2, time.Hour, 3)
			for range tt.buffered {
				d.pending <- directStart{}
			}
			d.waiting.Store(tt.waiting)
			if got := d.admit(); got != tt.want || d.refused.Load() != tt.refusedCounted {
				t.Fatalf("admit = %v with %d refused; want %v, %d", got, d.refused.Load(), tt.want, tt.refusedCounted)
			}
		})
	}
}

// TestStartRefusedWhenFarBehind: when the in-process workers are far
// behind, a start is refused before anything is recorded, with the same
// answer for an account and for no account; once there is room again,
// starts are taken.
func TestStartRefusedWhenFarBehind(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ctx := t.Context()
			w := newDirectWorld(t, backend, Options{PollInterval: time.Hour, StartFallback: time.Hour})
			// Workers that take nothing: a buffer of one, full, and the
			// most answers (one) waiting for room in it.
			d := newDirect(1, time.Hour, 1)
			d.running = true
			d.pending <- directStart{id: -1}
			d.waiting.Store(1)
			w.q.direct = d
			var answers []string
			for _, identifier := range []string{"d.chen", "nobody.here"} {
				rs, err := w.svc.StartRecovery(ctx, identifier, "password", service.Meta{IP: "192.0.2.1"})
				if !errors.Is(err, ErrStartsBusy) || rs != nil {
					t.Fatalf("start for %q while far behind = %+v, %v; want ErrStartsBusy", identifier, rs, err)
				}
				answers = append(answers, recourse.ErrorCode(err)+": "+recourse.ErrorMessage(err))
			}
			if answers[0] != answers[1] || !strings.HasPrefix(answers[0], recourse.ERATELIMIT+": ") {
				t.Fatalf("answers differ or are not a rate limit: %q", answers)
			}
			if n := w.pendingStarts(t); n != 0 {
				t.Fatalf("%d pending starts recorded for refused starts", n)
			}
			if n := w.startJobs(t, rivertype.JobStateAvailable) + w.startJobs(t, rivertype.JobStateScheduled); n != 0 {
				t.Fatalf("%d start jobs queued for refused starts", n)
			}
			if st := w.q.StartStats(); st.Refused != 2 || st.Waited != 0 {
				t.Fatalf("stats %+v; want 2 refused", st)
			}
			// A worker frees the buffer and the waiting answer goes.
			<-d.pending
			d.waiting.Store(0)
			if _, err := w.svc.StartRecovery(ctx, "d.chen", "password", service.Meta{IP: "192.0.2.1"}); err != nil {
				t.Fatalf("start with room again: %v", err)
			}
			if n := w.pendingStarts(t); n != 1 || len(d.pending) != 1 {
				t.Fatalf("%d pending starts, %d buffered; want the start recorded and handed over", n, len(d.pending))
			}
		})
	}
}
