package jobs

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
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
func TestStartRunsInProcess(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			// An hour-long poll and fallback: only the in-process run can
			// process the start within the test.
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
				t.Errorf("%d start jobs left in the queue, want 0 (the run claims its job)", n)
			}
		})
	}
}

// TestStartFallsBackToTheQueue: a start that the in-process workers never
// take (the process crashed after the commit, or was too far behind) is
// queued scheduled at its fallback time, and River runs it then.
func TestStartFallsBackToTheQueue(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newDirectWorld(t, backend, Options{PollInterval: 20 * time.Millisecond, StartFallback: 300 * time.Millisecond})
			events, cancel := w.q.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
			defer cancel()
			// River runs; the in-process runner accepts starts but has no
			// workers to run them.
			runCtx, stop := context.WithCancel(context.Background())
			w.q.svc.Store(w.svc)
			if err := w.q.client.Start(runCtx); err != nil {
				t.Fatal(err)
			}
			defer func() {
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
			if n := w.startJobs(t, rivertype.JobStateScheduled); n != 1 {
				t.Fatalf("%d scheduled start jobs after the commit, want 1 (the fallback)", n)
			}
			waitStart(t, events)
			if _, err := w.st.Recovery(t.Context(), rs.RequestID); err != nil {
				t.Fatalf("request not opened by the fallback: %v", err)
			}
			if n := w.startJobs(t, rivertype.JobStateCompleted); n != 1 {
				t.Errorf("%d completed start jobs, want 1 (River ran the fallback)", n)
			}
		})
	}
}

// TestClaim: a run in process claims a start job only while River has not
// taken it: a scheduled job is deleted with the run's transaction; a
// running, finished or missing one is left, and the claim says so
// (errTaken), rolling back the run's transaction.
func TestClaim(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			w := newDirectWorld(t, backend, Options{})
			ctx := t.Context()
			for _, tc := range []struct {
				name    string
				state   string // SQL setting the job's state; "" leaves it scheduled
				missing bool
				wantErr error
				left    int
			}{
				{name: "scheduled", left: 0},
				{name: "running", state: `state = 'running', attempt = 1, attempted_at = CURRENT_TIMESTAMP`, wantErr: errTaken, left: 1},
				{name: "completed", state: `state = 'completed', attempt = 1, attempted_at = CURRENT_TIMESTAMP, finalized_at = CURRENT_TIMESTAMP`, wantErr: errTaken, left: 1},
				{name: "missing", missing: true, wantErr: errTaken, left: 0},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var row *rivertype.JobRow
					if err := w.st.InTx(ctx, func(tx recourse.Tx) error {
						var err error
						row, err = w.q.insert(ctx, tx, StartArgs{service.StartJob{RequestID: recourse.NewID("rr_")}},
							&river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
						return err
					}); err != nil {
						t.Fatal(err)
					}
					id := row.ID
					if tc.state != "" {
						if _, err := w.db.ExecContext(ctx, `UPDATE river_job SET `+tc.state+` WHERE id = $1`, id); err != nil {
							t.Fatal(err)
						}
					}
					if tc.missing {
						if _, err := w.db.ExecContext(ctx, `DELETE FROM river_job WHERE id = $1`, id); err != nil {
							t.Fatal(err)
						}
					}
					err := w.st.InTx(ctx, func(tx recourse.Tx) error { return w.q.claim(ctx, tx, id) })
					if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
						t.Fatalf("claim: %v, want %v", err, tc.wantErr)
					}
					var n int
					if err := w.db.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE id = $1`, id).Scan(&n); err != nil {
						t.Fatal(err)
					}
					if n != tc.left {
						t.Errorf("%d jobs left, want %d", n, tc.left)
					}
				})
			}
		})
	}
}
