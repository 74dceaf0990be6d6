// Package jobs is Recourse's durable job queue: River over the same database
// as the store (SQLite or PostgreSQL). Jobs are inserted in the transaction
// of the change that needs them, so a crash neither loses one nor runs one
// for a change that rolled back. Workers call back into the service.
package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/notify"
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

// SweepArgs is the periodic hygiene job (service.Sweep): it expires
// requests past their expiry and deletes expired tokens and codes.
type SweepArgs struct{}

// Kind implements river.JobArgs.
func (SweepArgs) Kind() string { return "recovery_sweep" }

// DeliverArgs is the job that delivers one stored notification (a mail or
// a webhook call); it retries with exponential back-off and jitter.
type DeliverArgs struct {
	NotificationID string `json:"notification_id"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "notify_deliver" }

// Deliveries run on queues of their own, apart from the workflow's jobs,
// so that a slow relay or receiver never delays a recovery: mail on
// QueueMail, webhook calls on QueueWebhooks. Webhook calls are made one at
// a time by default, in the order of their events (a retried call comes
// after later ones).
const (
	QueueMail     = "notify_mail"
	QueueWebhooks = "notify_webhooks"
)

func driver(db *sql.DB, dialect string, listener *pgxpool.Pool) (riverdriver.Driver[*sql.Tx], error) {
	switch dialect {
	case "sqlite":
		return riversqlite.New(db), nil
	case "postgres":
		if listener != nil {
			return riverdatabasesql.NewWithPgxListener(db, listener), nil
		}
		return riverdatabasesql.New(db), nil
	}
	return nil, fmt.Errorf("jobs: unknown dialect %q", dialect)
}

// Migrate applies River's own schema migrations.
func Migrate(ctx context.Context, db *sql.DB, dialect string, log *slog.Logger) error {
	d, err := driver(db, dialect, nil)
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
	// PollInterval is how often workers look for due jobs when nothing
	// told them of any (default 1s). A job this process inserts wakes its
	// workers as soon as the inserting transaction commits (wake.go); on
	// PostgreSQL with Listener set, jobs inserted by other replicas arrive
	// by LISTEN/NOTIFY. The poll finds the rest — on SQLite, jobs another
	// process (the CLI) inserted; each idle poll is one small query per
	// queue.
	PollInterval time.Duration
	// Listener is a pgx pool on the same PostgreSQL database, for River's
	// LISTEN connection (one connection, taken from the pool for good).
	// Without it a PostgreSQL queue is poll-only: jobs from other
	// replicas wait for the poll.
	Listener *pgxpool.Pool
	// SweepInterval is how often the leader enqueues the hygiene sweep
	// (default 1 minute): a request is marked expired at most this long
	// after its expiry (reads treat it as expired at once).
	SweepInterval time.Duration
	// Workers bounds concurrent jobs (default 10).
	Workers int
	// JobTimeout bounds one job (default 1 minute). RescueAfter is when a
	// job still marked running is presumed orphaned by a crashed process
	// and retried (default 2 minutes; every job is idempotent).
	JobTimeout  time.Duration
	RescueAfter time.Duration
	// MailWorkers bounds concurrent mail deliveries (default 10);
	// WebhookWorkers concurrent webhook calls (default 1: in event order).
	MailWorkers, WebhookWorkers int
	// DeliveryAttempts bounds the attempts at one notification (default
	// notify.DefaultMaxAttempts).
	DeliveryAttempts int
	// RetryBase and RetryMax shape the delivery back-off (notify.Backoff;
	// defaults 5s and 6h).
	RetryBase, RetryMax time.Duration
	// StartFallback is how long a "Can't sign in?" request that this
	// started queue runs in process (direct.go) waits, as a pending start
	// (pending.go), before it becomes a River job (default 10s): the
	// longest a start is delayed when its process crashed or was too busy.
	StartFallback time.Duration
	// StartsOnQueue turns the in-process run of starts off: River fetches
	// them like every other job.
	StartsOnQueue bool
}

// Queue is the job queue; it implements service.Scheduler.
type Queue struct {
	client  *river.Client[*sql.Tx]
	db      *sql.DB
	dialect string
	svc     atomic.Pointer[service.Service]
	log     *slog.Logger
	opts    Options
	wake    *wake
	direct  *direct
	// The mover of due pending starts (pending.go), while started.
	moverMu              sync.Mutex
	moverStop, moverDone chan struct{}
}

var (
	_ service.Scheduler         = (*Queue)(nil)
	_ service.DeliveryScheduler = (*Queue)(nil)
)

// New builds the queue over db. Call Start to run its workers.
func New(db *sql.DB, dialect string, log *slog.Logger, opts Options) (*Queue, error) {
	d, err := driver(db, dialect, opts.Listener)
	if err != nil {
		return nil, err
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Second
	}
	if opts.Workers == 0 {
		opts.Workers = 10
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = time.Minute
	}
	if opts.JobTimeout == 0 {
		opts.JobTimeout = time.Minute
	}
	if opts.RescueAfter == 0 {
		opts.RescueAfter = 2 * time.Minute
	}
	if opts.MailWorkers == 0 {
		opts.MailWorkers = 10
	}
	if opts.WebhookWorkers == 0 {
		opts.WebhookWorkers = 1
	}
	if opts.DeliveryAttempts == 0 {
		opts.DeliveryAttempts = notify.DefaultMaxAttempts
	}
	if opts.StartFallback == 0 {
		opts.StartFallback = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{db: db, dialect: dialect, log: log, opts: opts, wake: newWake(), direct: newDirect(directBuffer, directWait, directMaxWaiting)}
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
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[SweepArgs]) error {
		svc := q.svc.Load()
		if svc == nil {
			return errors.New("jobs: not started")
		}
		_, err := svc.Sweep(ctx)
		return err
	}))
	river.AddWorker(workers, &deliverWorker{q: q})
	pollOnly := dialect == "postgres" && opts.Listener == nil
	client, err := river.NewClient[*sql.Tx](wakeDriver{Driver: d, w: q.wake, local: dialect == "sqlite"}, &river.Config{
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: opts.Workers},
			QueueMail:          {MaxWorkers: opts.MailWorkers},
			QueueWebhooks:      {MaxWorkers: opts.WebhookWorkers},
		},
		Workers: workers,
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(opts.SweepInterval),
			func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, &river.InsertOpts{MaxAttempts: 1} },
			&river.PeriodicJobOpts{RunOnStart: true})},
		PollOnly:          pollOnly,
		FetchPollInterval: opts.PollInterval,
		// After a full fetch, the next comes as soon as a worker is free
		// and this long has passed: 100ms (River's default) capped the
		// queue at Workers jobs per 100ms, 100 a second by default.
		FetchCooldown:        min(opts.PollInterval, 5*time.Millisecond),
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
	if err := q.client.Start(ctx); err != nil {
		return err
	}
	if !q.opts.StartsOnQueue {
		q.direct.start(ctx, q.opts.Workers, q.runDirect)
	}
	// The mover runs even when starts go to River at once: rows a
	// previous process left are due all the same.
	q.moverMu.Lock()
	defer q.moverMu.Unlock()
	if q.moverStop == nil {
		q.moverStop, q.moverDone = make(chan struct{}), make(chan struct{})
		stop, done := q.moverStop, q.moverDone
		go func() { defer close(done); q.runMover(ctx, stop) }()
	}
	return nil
}

// Stop waits for running jobs to finish; starts not yet run in process
// stay pending, and a started queue (this one again, or another replica's)
// hands them to River when they are due.
func (q *Queue) Stop(ctx context.Context) error {
	q.moverMu.Lock()
	stop, done := q.moverStop, q.moverDone
	q.moverStop, q.moverDone = nil, nil
	q.moverMu.Unlock()
	if stop != nil {
		close(stop)
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return errors.Join(q.direct.halt(ctx), q.client.Stop(ctx))
}

// subscribeBuffer is the events a subscriber may fall behind by before
// they are dropped (River's default).
const subscribeBuffer = 1000

// Subscribe streams job events, River's and those of the starts run in
// process (tests wait on completions with it).
func (q *Queue) Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func()) {
	fromRiver, cancelRiver := q.client.Subscribe(kinds...)
	out := make(chan *river.Event, subscribeBuffer)
	cancelDirect := q.direct.subscribe(kinds, out)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case ev, ok := <-fromRiver:
				if !ok {
					return
				}
				select {
				case out <- ev:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			cancelDirect()
			cancelRiver()
			close(done)
		})
	}
}

// underlying returns the first transaction along tx's Unwrap chain (the
// audit log wraps the store's) that implements T.
func underlying[T any](tx recourse.Tx) (T, bool) {
	for {
		if h, ok := tx.(T); ok {
			return h, true
		}
		u, ok := tx.(interface{ Unwrap() recourse.Tx })
		if !ok {
			var none T
			return none, false
		}
		tx = u.Unwrap()
	}
}

// storeTx is the database/sql transaction under the store's tx, which
// River inserts and deletes jobs in.
func storeTx(ctx context.Context, tx recourse.Tx) (*sql.Tx, error) {
	h, ok := underlying[interface {
		SQLTx(context.Context) (*sql.Tx, error)
	}](tx)
	if !ok {
		return nil, errNoStoreTx
	}
	return h.SQLTx(ctx)
}

// errNoStoreTx: a job is inserted or claimed in a transaction of the
// store's that did not come from InTx.
var errNoStoreTx = errors.New("jobs: jobs are inserted and claimed inside a store transaction")

// insert inserts a job in tx, River's InsertTx on the store's own
// transaction, and wakes this process's workers for its queue once tx has
// committed (see wake) if the job is due. A transaction that cannot say
// when it commits leaves the job to the database's notification or the
// poll.
func (q *Queue) insert(ctx context.Context, tx recourse.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobRow, error) {
	sqlTx, err := storeTx(ctx, tx)
	if err != nil {
		return nil, err
	}
	res, err := q.client.InsertTx(ctx, sqlTx, args, opts)
	if err != nil {
		return nil, err
	}
	if opts.ScheduledAt.After(time.Now()) {
		return res.Job, nil // River's scheduler makes it available when due
	}
	queue := cmp.Or(opts.Queue, river.QueueDefault)
	if c, ok := underlying[interface{ AfterCommit(func()) }](tx); ok {
		c.AfterCommit(func() { q.wake.kick(queue) })
	}
	return res.Job, nil
}

// ScheduleStart implements service.Scheduler. A started queue records
// the start as pending and runs it in process at once; River runs it only
// if that run has not recorded an outcome by the time the start is due
// (direct.go, pending.go). When the in-process workers are behind it
// returns only once they have room for the start, or after directWait;
// when they are far behind it records nothing and returns ErrStartsBusy.
// The record is one statement on its own, not in a transaction: on
// PostgreSQL a transaction's BEGIN and COMMIT would be two round trips
// more for the one insert.
func (q *Queue) ScheduleStart(ctx context.Context, job service.StartJob) error {
	if q.opts.StartsOnQueue || !q.direct.accepting() {
		if _, err := q.client.Insert(ctx, StartArgs{job}, &river.InsertOpts{MaxAttempts: startAttempts}); err != nil {
			return err
		}
		q.wake.kick(river.QueueDefault)
		return nil
	}
	if !q.direct.admit() {
		return ErrStartsBusy
	}
	due := time.Now().Add(q.opts.StartFallback)
	id, err := addPendingStart(ctx, q.db, q.dialect, StartArgs{job}, due)
	if err != nil {
		return err
	}
	if !q.direct.offer(ctx, directStart{id: id, job: job, due: due}) {
		q.log.Debug("a recovery start waits for its fallback time: the in-process workers are behind", "pending_start", id, "retry_at", due)
	}
	return nil
}

// startAttempts bounds River's attempts at a start.
const startAttempts = 5

// ScheduleAdvance implements service.Scheduler.
func (q *Queue) ScheduleAdvance(ctx context.Context, tx recourse.Tx, requestID string, at time.Time) error {
	_, err := q.insert(ctx, tx, AdvanceArgs{RequestID: requestID}, &river.InsertOpts{ScheduledAt: at, MaxAttempts: 10})
	return err
}

// ScheduleDelivery implements service.DeliveryScheduler.
func (q *Queue) ScheduleDelivery(ctx context.Context, tx recourse.Tx, n *recourse.Notification) error {
	queue := QueueMail
	if n.Kind == recourse.NotifyWebhook {
		queue = QueueWebhooks
	}
	_, err := q.insert(ctx, tx, DeliverArgs{NotificationID: n.ID}, &river.InsertOpts{Queue: queue, MaxAttempts: q.opts.DeliveryAttempts})
	return err
}

// deliverWorker makes one delivery attempt per run. The service records
// each attempt's outcome on the notification; a delivery that failed for
// good is cancelled rather than retried.
type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	q *Queue
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	svc := w.q.svc.Load()
	if svc == nil {
		return errors.New("jobs: not started")
	}
	err := svc.DeliverNotification(ctx, job.Args.NotificationID, job.Attempt >= job.MaxAttempts)
	if errors.Is(err, service.ErrUndeliverable) {
		return river.JobCancel(err)
	}
	return err
}

// NextRetry spaces the attempts: exponential back-off with jitter.
func (w *deliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	return time.Now().Add(notify.Backoff(job.Attempt, w.q.opts.RetryBase, w.q.opts.RetryMax))
}
