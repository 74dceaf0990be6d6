package jobs_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlite"
)

// TestJobsWakeWorkersWithoutPolling runs the workers with an hour-long
// poll, so a job reaches them only by being announced: a job inserted by
// this process (its kick after commit), and, on PostgreSQL, one inserted
// by another replica (LISTEN/NOTIFY). On SQLite another process's job
// waits for the poll (not tested here: an hour). Starts go through River
// here (StartsOnQueue), not the in-process run that would take them first.
func TestJobsWakeWorkersWithoutPolling(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := t.Context()
			var open func() (recourse.Store, *sql.DB, *pgxpool.Pool)
			switch backend {
			case "sqlite":
				path := filepath.Join(t.TempDir(), "wake.db")
				open = func() (recourse.Store, *sql.DB, *pgxpool.Pool) {
					s, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: true})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Close() })
					return s, s.DB(), nil
				}
			case "postgres":
				dsn := pgDSN(t)
				open = func() (recourse.Store, *sql.DB, *pgxpool.Pool) {
					s, err := postgres.Open(ctx, dsn, postgres.Options{Migrate: true})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Close() })
					return s, s.DB(), s.Pool
				}
			}
			newService := func(st recourse.Store, q *jobs.Queue) *service.Service {
				cfg := service.DefaultConfig()
				cfg.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
				cfg.PublicURL = "https://recourse.example.com"
				svc, err := service.New(service.Options{Store: st, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("w", 32))}, Scheduler: q})
				if err != nil {
					t.Fatal(err)
				}
				return svc
			}

			st, db, pool := open()
			if err := jobs.Migrate(ctx, db, backend, nil); err != nil {
				t.Fatal(err)
			}
			workers, err := jobs.New(db, backend, nil, jobs.Options{PollInterval: time.Hour, Listener: pool, StartsOnQueue: true})
			if err != nil {
				t.Fatal(err)
			}
			svc := newService(st, workers)
			if _, err := svc.SeedDemo(ctx); err != nil {
				t.Fatal(err)
			}
			events, cancel := workers.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
			defer cancel()
			runCtx, stop := context.WithCancel(context.Background())
			if err := workers.Start(runCtx, svc); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
				defer c()
				_ = workers.Stop(sctx)
				stop()
			})
			// River polls once as its producers start; let that pass.
			time.Sleep(200 * time.Millisecond)

			// Another process: its own database handle and an unstarted queue.
			st2, db2, _ := open()
			other, err := jobs.New(db2, backend, nil, jobs.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name string
				svc  *service.Service
			}{{"this process", svc}, {"another process", newService(st2, other)}} {
				if backend == "sqlite" && tc.svc != svc {
					continue
				}
				rs, err := tc.svc.StartRecovery(ctx, "d.chen", "password", service.Meta{IP: "192.0.2.1"})
				if err != nil {
					t.Fatal(err)
				}
				deadline := time.After(30 * time.Second)
			wait:
				for {
					select {
					case ev := <-events:
						if ev.Job.Kind != "recovery_start" {
							continue // the periodic sweep runs on start, whenever that is
						}
						if ev.Kind != river.EventKindJobCompleted {
							t.Fatalf("%s: the start job %s: %v", tc.name, ev.Kind, ev.Job.Errors)
						}
						break wait
					case <-deadline:
						t.Fatalf("%s: the start job did not run: nothing woke the workers", tc.name)
					}
				}
				if _, err := st.Recovery(ctx, rs.RequestID); err != nil {
					t.Fatalf("%s: request not opened: %v", tc.name, err)
				}
			}
		})
	}
}

// TestSweepRunsPeriodically: the queue's leader enqueues the hygiene sweep
// on start and then every SweepInterval, and its workers run it.
func TestSweepRunsPeriodically(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sweep.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := jobs.Migrate(ctx, st.DB(), "sqlite", nil); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.New(st.DB(), "sqlite", nil, jobs.Options{SweepInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := service.DefaultConfig()
	cfg.PublicURL = "https://recourse.example.com"
	svc, err := service.New(service.Options{Store: st, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("w", 32))}, Scheduler: q})
	if err != nil {
		t.Fatal(err)
	}
	events, cancel := q.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancel()
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := q.Start(runCtx, svc); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = q.Stop(sctx)
	}()
	for runs := 0; runs < 2; {
		select {
		case ev := <-events:
			if ev.Job.Kind != "recovery_sweep" {
				continue
			}
			if ev.Kind != river.EventKindJobCompleted {
				t.Fatalf("sweep %s: %v", ev.Kind, ev.Job.Errors)
			}
			runs++
		case <-time.After(30 * time.Second):
			t.Fatalf("the sweep ran %d times in 30s", runs)
		}
	}
}
