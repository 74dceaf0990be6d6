package jobs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/service"
)

// Starts run in this process first.
//
// A "Can't sign in?" job used to wait for River to fetch it: the fetch is
// a write (it marks the job running), then the job's own transaction, then
// River's completion, another write; on SQLite each goes through the one
// writer, and the fetch waits for the next fetch round. A started queue
// instead records the start as a pending start due StartFallback in the
// future (pending.go) and, once the recording transaction has committed,
// hands it to its own workers here. Such a run claims the start in the
// transaction that records its outcome, by deleting its row (Queue.claim):
// if the row is gone, the mover has handed it to River, and the run steps
// back. So exactly one run records an outcome, and the row is the durable
// fallback: a start this process never ran — it crashed, stopped, or was
// too far behind to take it — becomes a River job once it is due, and runs
// here or on another replica.
//
// A queue that is not started (the CLI's) inserts starts as ordinary jobs.

// directBuffer bounds the starts waiting for an in-process worker.
const directBuffer = 1024

// directWait bounds how long a start's answer waits for room among the
// starts waiting for a worker; past it the start waits for its fallback
// time instead.
//
// The answer used to be sent whether or not a worker would ever take the
// start: a server offered more starts than it could run answered them all
// at once and left the rest to River ten seconds later, a backlog that
// grew for as long as the load lasted (48,621 starts after 40 s of the
// bench on SQLite, each one's code mailed later than the one before). Now
// a full buffer holds the answer back until a worker frees a place, so a
// server answers starts as fast as it runs them and their codes follow at
// once; only a start that waits longer than this, under a flood the
// workers cannot drain, is left to the fallback. The wait depends on the
// queue, never on the identifier: every start, for an account or for no
// account, is the same row in the same buffer.
const directWait = time.Second

// directMaxWaiting bounds the answers waiting for room at once. Past it a
// new start is refused before anything is recorded (ErrStartsBusy, a 429
// to the client), the same for every identifier.
//
// The wait of directWait is enough while the starts offered are a few
// times what the workers run; a flood from many addresses (each within
// its address's limit) is more: every answer waits its second, then its
// start is left to River, and the job queue grows for as long as the
// flood lasts, each later code mailed later. Refusing the excess keeps the
// starts the server takes on few enough to run at once, and a person
// refused tries again in a minute. The bound is a load-shedding threshold
// read without a lock: a few answers more may wait at its edge.
const directMaxWaiting = 1024

// ErrStartsBusy refuses a "Can't sign in?" start when the server's
// workers are far behind (directMaxWaiting). It is about the server's
// load, never the identifier, so it tells nobody whether an account
// exists.
var ErrStartsBusy = recourse.Errorf(recourse.ERATELIMIT, "Many people are asking for help right now. Wait a minute, then try again.")

// directStart is a committed start: its pending row and when that row is
// due for River.
type directStart struct {
	id  int64
	job service.StartJob
	due time.Time
}

// direct is the in-process runner of start jobs.
type direct struct {
	pending chan directStart
	// wait is directWait, maxWaiting directMaxWaiting, or a test's.
	wait       time.Duration
	maxWaiting int64
	// waiting is how many answers wait for room now.
	waiting atomic.Int64
	// waited counts the starts whose answer waited for room, deferred
	// those left to their fallback time, refused those refused at once
	// (StartStats).
	waited, deferred, refused atomic.Uint64
	// mu guards running and the subscribers.
	mu      sync.Mutex
	running bool
	stop    chan struct{}
	wg      sync.WaitGroup
	subs    map[int]subscriber
	nextSub int
}

type subscriber struct {
	kinds []river.EventKind
	ch    chan *river.Event
}

func newDirect(buffer int, wait time.Duration, maxWaiting int) *direct {
	return &direct{pending: make(chan directStart, buffer), wait: wait, maxWaiting: int64(maxWaiting), subs: map[int]subscriber{}}
}

// admit reports whether a new start may be recorded: false when the
// buffer is full and maxWaiting answers already wait for room in it.
func (d *direct) admit() bool {
	if len(d.pending) < cap(d.pending) || d.waiting.Load() < d.maxWaiting {
		return true
	}
	d.refused.Add(1)
	return false
}

// accepting reports whether started workers will take a start.
func (d *direct) accepting() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.running
}

// offer hands a committed start to the workers. When the buffer is full
// it waits for a place, at most d.wait or until ctx ends; it reports
// whether a worker will take the start (false: it waits for its fallback
// time).
func (d *direct) offer(ctx context.Context, s directStart) bool {
	select {
	case d.pending <- s:
		return true
	default:
	}
	d.waited.Add(1)
	d.waiting.Add(1)
	defer d.waiting.Add(-1)
	t := time.NewTimer(d.wait)
	defer t.Stop()
	select {
	case d.pending <- s:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	d.deferred.Add(1)
	return false
}

// StartStats describes the in-process runner of "Can't sign in?" starts.
type StartStats struct {
	// Buffered is how many answered starts wait for a worker now.
	Buffered int
	// Waited counts the starts whose answer waited for room in the
	// buffer: the workers were behind.
	Waited uint64
	// Deferred counts the starts left to their fallback time (run on
	// River once due): the buffer stayed full for directWait, or the
	// client went away while its answer waited.
	Deferred uint64
	// Refused counts the starts refused before they were recorded
	// (ErrStartsBusy): the buffer was full and directMaxWaiting answers
	// waited for room already.
	Refused uint64
}

// StartStats reports on the in-process starts since the queue was made.
func (q *Queue) StartStats() StartStats {
	return StartStats{Buffered: len(q.direct.pending), Waited: q.direct.waited.Load(), Deferred: q.direct.deferred.Load(), Refused: q.direct.refused.Load()}
}

// start runs n workers that call run for each start until halt.
func (d *direct) start(ctx context.Context, n int, run func(context.Context, directStart)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running {
		return
	}
	d.running, d.stop = true, make(chan struct{})
	stop := d.stop
	for range n {
		d.wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case s := <-d.pending:
					run(ctx, s)
				}
			}
		})
	}
}

// halt stops taking starts and waits, at most until ctx ends, for the runs
// in progress. Starts still waiting are left to their fallback.
func (d *direct) halt(ctx context.Context) error {
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return nil
	}
	d.running = false
	close(d.stop)
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subscribe adds ch as a receiver of the events of direct runs.
func (d *direct) subscribe(kinds []river.EventKind, ch chan *river.Event) (cancel func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id := d.nextSub
	d.nextSub++
	d.subs[id] = subscriber{kinds: kinds, ch: ch}
	return func() {
		d.mu.Lock()
		delete(d.subs, id)
		d.mu.Unlock()
	}
}

// publish sends ev to the subscribers that asked for its kind; like
// River, it drops an event a full subscriber cannot take.
func (d *direct) publish(ev *river.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.subs {
		for _, k := range s.kinds {
			if k == ev.Kind {
				select {
				case s.ch <- ev:
				default:
				}
				break
			}
		}
	}
}

// errTaken: the start a direct run was about to claim is River's now (or
// another run's).
var errTaken = errors.New("jobs: the queue has taken this job")

// claim takes a pending start for a direct run, in the transaction that
// records the run's outcome: it deletes the start's row, for good only if
// that transaction commits. On PostgreSQL the deletion goes with the
// commit (claimAtCommit): a start that is no longer pending then fails the
// commit, which claimLost recognises.
func (q *Queue) claim(ctx context.Context, tx recourse.Tx, id int64) error {
	if q.dialect == "postgres" {
		h, ok := underlying[commitExecer](tx)
		if !ok {
			return errNoStoreTx
		}
		return claimAtCommit(ctx, h, id)
	}
	h, ok := underlying[sqlExecer](tx)
	if !ok {
		return errNoStoreTx
	}
	return claimPendingStart(ctx, h, id)
}

// claimLost reports whether err, returned by the transaction of a direct
// run, says the run's start was taken: by the claim itself (errTaken) or
// at the commit (claimAtCommit's error).
func claimLost(err error) bool {
	var pe *pgconn.PgError
	return errors.Is(err, errTaken) || (errors.As(err, &pe) && pe.Code == claimLostCode)
}

// runDirect processes one start in this process. A run that fails leaves
// the queued copy for River, which retries it at its fallback time.
func (q *Queue) runDirect(ctx context.Context, s directStart) {
	svc := q.svc.Load()
	if svc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, q.opts.JobTimeout)
	defer cancel()
	began := time.Now()
	err := svc.ProcessStartClaimed(ctx, s.job, func(ctx context.Context, tx recourse.Tx) error { return q.claim(ctx, tx, s.id) })
	switch {
	case claimLost(err):
		return
	case err != nil:
		q.log.Warn("recovery start failed in process; the job queue retries it", "pending_start", s.id,
			"retry_at", s.due, "error", err)
		return
	}
	// Subscribers see the run as a completed job; its id is the pending
	// start's, not a River job's.
	now := time.Now()
	row := &rivertype.JobRow{ID: s.id, Kind: StartArgs{}.Kind(), Queue: river.QueueDefault, State: rivertype.JobStateCompleted,
		Attempt: 1, MaxAttempts: startAttempts, CreatedAt: began, ScheduledAt: s.due, AttemptedAt: &began, FinalizedAt: &now}
	q.direct.publish(&river.Event{Kind: river.EventKindJobCompleted, Job: row,
		JobStats: &river.JobStatistics{RunDuration: now.Sub(began)}})
}
