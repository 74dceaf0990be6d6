// Package jobs is Recourse's durable job queue: River over the same database
// as the store (SQLite or PostgreSQL). Jobs are inserted in the transaction
// of the change that needs them, so a crash neither loses one nor runs one
// for a change that rolled back. Workers call back into the service.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/service"
)

// StartArgs is the job that processes a "Can't sign in?" request.
type StartArgs struct {
	service.StartJob
}

// Kind implements river.JobArgs.
func (StartArgs) Kind() string { return "recovery_start" }

// AdvanceArgs is the job that re-evaluates a request at a given time.
type AdvanceArgs struct {
	RequestID string `json:"request_id"`
}

// Kind implements river.JobArgs.
func (AdvanceArgs) Kind() string { return "recovery_advance" }

func driver(db *sql.DB, dialect string) (riverdriver.Driver[*sql.Tx], error) {
	switch dialect {
	case "sqlite":
		return riversqlite.New(db), nil
	case "postgres":
		return riverdatabasesql.New(db), nil
	}
	return nil, fmt.Errorf("jobs: unknown dialect %q", dialect)
}

// Migrate applies River's own schema migrations.
func Migrate(ctx context.Context, db *sql.DB, dialect string, log *slog.Logger) error {
	d, err := driver(db, dialect)
	if err != nil {
		return err
	}
	m, err := rivermigrate.New(d, &rivermigrate.Config{Logger: quiet(log)})
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	return nil
}

// quiet drops River's info chatter to debug.
func quiet(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(levelShift{log.Handler()})
}

type levelShift struct{ slog.Handler }

func (h levelShift) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		r.Level = slog.LevelDebug
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h levelShift) Enabled(context.Context, slog.Level) bool { return true }

// Options tune the queue.
type Options struct {
	// PollInterval is how often workers look for due jobs (default 250ms).
	PollInterval time.Duration
	// Workers bounds concurrent jobs (default 10).
	Workers int
	// JobTimeout bounds one job (default 1 minute). RescueAfter is when a
	// job still marked running is presumed orphaned by a crashed process
	// and retried (default 2 minutes; every job is idempotent).
	JobTimeout  time.Duration
	RescueAfter time.Duration
}

// Queue is the job queue; it implements service.Scheduler.
type Queue struct {
	client *river.Client[*sql.Tx]
	svc    atomic.Pointer[service.Service]
	log    *slog.Logger
}

var _ service.Scheduler = (*Queue)(nil)

// New builds the queue over db. Call Start to run its workers.
func New(db *sql.DB, dialect string, log *slog.Logger, opts Options) (*Queue, error) {
	d, err := driver(db, dialect)
	if err != nil {
		return nil, err
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.Workers == 0 {
		opts.Workers = 10
	}
	if opts.JobTimeout == 0 {
		opts.JobTimeout = time.Minute
	}
	if opts.RescueAfter == 0 {
		opts.RescueAfter = 2 * time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{log: log}
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[StartArgs]) error {
		svc := q.svc.Load()
		if svc == nil {
			return errors.New("jobs: not started")
		}
		return svc.ProcessStart(ctx, job.Args.StartJob)
	}))
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[AdvanceArgs]) error {
		svc := q.svc.Load()
		if svc == nil {
			return errors.New("jobs: not started")
		}
		return svc.AdvanceRecovery(ctx, job.Args.RequestID)
	}))
	client, err := river.NewClient(d, &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Workers}},
		Workers:              workers,
		PollOnly:             true,
		FetchPollInterval:    opts.PollInterval,
		FetchCooldown:        min(opts.PollInterval, 100*time.Millisecond),
		Logger:               quiet(log),
		JobTimeout:           opts.JobTimeout,
		RescueStuckJobsAfter: opts.RescueAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	q.client = client
	return q, nil
}

// Start runs the workers until Stop; they call svc.
func (q *Queue) Start(ctx context.Context, svc *service.Service) error {
	q.svc.Store(svc)
	return q.client.Start(ctx)
}

// Stop waits for running jobs to finish.
func (q *Queue) Stop(ctx context.Context) error { return q.client.Stop(ctx) }

// Subscribe streams job events (tests wait on completions with it).
func (q *Queue) Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func()) {
	return q.client.Subscribe(kinds...)
}

func sqlTx(tx recourse.Tx) (*sql.Tx, error) {
	for {
		if h, ok := tx.(interface{ SQLTx() *sql.Tx }); ok && h.SQLTx() != nil {
			return h.SQLTx(), nil
		}
		u, ok := tx.(interface{ Unwrap() recourse.Tx })
		if !ok {
			return nil, errors.New("jobs: a job must be inserted inside a store transaction")
		}
		tx = u.Unwrap()
	}
}

// ScheduleStart implements service.Scheduler.
func (q *Queue) ScheduleStart(ctx context.Context, tx recourse.Tx, job service.StartJob) error {
	t, err := sqlTx(tx)
	if err != nil {
		return err
	}
	_, err = q.client.InsertTx(ctx, t, StartArgs{job}, &river.InsertOpts{MaxAttempts: 5})
	return err
}

// ScheduleAdvance implements service.Scheduler.
func (q *Queue) ScheduleAdvance(ctx context.Context, tx recourse.Tx, requestID string, at time.Time) error {
	t, err := sqlTx(tx)
	if err != nil {
		return err
	}
	_, err = q.client.InsertTx(ctx, t, AdvanceArgs{RequestID: requestID}, &river.InsertOpts{ScheduledAt: at, MaxAttempts: 10})
	return err
}
