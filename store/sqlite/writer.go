package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// writer runs every write to one database on one connection of its own, one
// writer at a time in arrival order, and commits writes that queue behind
// each other together (group commit). Every user of the *sql.DB goes
// through it: the store's transactions, the job queue's (River's)
// transactions and statements, and the audit sequencer.
//
// Why one connection: SQLite admits one writer at a time anyway, and a
// connection drops its whole page cache whenever another connection has
// written since its last transaction. With writes spread over the pool,
// every write transaction began with a cold cache and read its pages back
// with one system call each (48 reads per recovery, docs/benchmarks.md).
// The writer's cache stays warm because nobody else writes.
//
// Why group commit: a COMMIT writes every page the transaction changed to
// the WAL, two system calls a page, and a recovery is four or five small
// write transactions that touch the same hot pages (the ends of the
// append-only tables and their indexes). When other writers are waiting as
// a transaction ends, its work is kept in the open SQLite transaction
// (each writer's work runs in a SAVEPOINT of its own, so a rollback undoes
// only its own), the next writer goes on in the same SQLite transaction,
// and whoever ends with nobody waiting, or the batch at its bounds
// (maxBatch writers, maxBatchAge), commits for all. A writer's Commit
// returns only after the SQLite COMMIT that made its work durable, with
// that COMMIT's error: nothing is reported committed that is not, and
// AfterCommit work runs after the real commit. A batch that fails (a
// COMMIT that fails, an error that makes SQLite roll the whole transaction
// back) fails every writer in it.
//
// Waiting on the writer instead of SQLite's busy handler also hands the
// lock over the moment it is free: the busy handler sleeps 1, 2, 5, 10…
// ms between retries, and River's job fetch lost most races to the store's
// back-to-back transactions (7 ms a fetch).
//
// A write that waits longer than gateWait goes to the database on its own
// connection, where the busy timeout applies: a write issued outside its
// transaction by a goroutine that holds that transaction fails as it
// always did instead of waiting forever.
type writer struct {
	connect     func(context.Context) (*cachingConn, error)
	maxBatch    int
	maxBatchAge time.Duration
	// committed, when set, runs after each COMMIT that succeeded (it wakes
	// the checkpointer) and must not block.
	committed func()

	mu     sync.Mutex
	held   bool
	queue  []chan struct{} // writers waiting, first come first
	closed bool

	// Used only by the writer whose turn it is.
	conn  *cachingConn
	batch *writeBatch
	since time.Time // when the turn began
	// fileJournal: the connection journals to a temporary file (for a
	// large transaction) rather than in memory (journalInMemory).
	fileJournal bool

	turns, commits, failed, busyNs, waitNs atomic.Uint64
}

// WriterStats are the counters of a database's writer since it was
// opened: how busy the one writer is, how long writers wait for it, and
// how many transactions share a COMMIT. A writer busy most of the wall
// clock is the database's limit (docs/benchmarks.md).
type WriterStats struct {
	Turns         uint64        // transactions and single writes that had their turn
	Commits       uint64        // SQLite COMMITs, each for one or more turns
	FailedCommits uint64        // batches that failed, COMMIT or earlier
	Busy          time.Duration // time the writer was held, its COMMITs included
	Waited        time.Duration // time writers spent waiting for their turn, summed
	Waiting       int           // writers waiting now
	LogRestarts   uint64        // logs restarted by the checkpointer in the writer's turn (checkpoint.go)
}

// Stats returns the writer's counters of a database opened by OpenDB or
// Open; ok is false for any other database handle.
func Stats(db *sql.DB) (st WriterStats, ok bool) {
	d, ok := db.Driver().(connectorDriver)
	if !ok {
		return WriterStats{}, false
	}
	w := d.c.w
	w.mu.Lock()
	waiting := len(w.queue)
	w.mu.Unlock()
	return WriterStats{Turns: w.turns.Load(), Commits: w.commits.Load(), FailedCommits: w.failed.Load(),
		Busy: time.Duration(w.busyNs.Load()), Waited: time.Duration(w.waitNs.Load()), Waiting: waiting, LogRestarts: d.c.ckpt.restarts.Load()}, true
}

// writeBatch is an open SQLite transaction shared by writers in turn.
type writeBatch struct {
	began   time.Time
	parts   int          // writers whose work it holds or held
	waiting []chan error // writers whose work it holds, waiting for its COMMIT
	large   bool         // one large transaction's (recourse.LargeWrite), shared with nobody
}

// The undo journal of a writer's work. Each writer's work runs in a
// SAVEPOINT, so SQLite copies every page the work first changes to a
// statement journal, to undo that work alone. SQLite keeps that journal in
// memory up to 64 KiB and writes the rest to a temporary file, two pwrite
// calls a page; a recovery's transaction changes 30 to 60 pages, so it
// went to the file (6 % of the server's CPU in recovery-code). With
// temp_store = MEMORY the whole journal stays in memory. But SQLite's
// in-memory journal is a list of 1 KiB chunks that it walks from its start
// at the end of every statement that journaled a page: a transaction that
// changes thousands of pages in many statements (an audit sequencer round
// catching up a backlog, an import) costs time quadratic in its size, and
// signing a seeded log ran several times slower. So a transaction marked
// recourse.LargeWrite runs in a batch of its own with the journal in a
// file (temp_store = FILE), as before; SQLite takes the setting when the
// write transaction begins.
const (
	journalInMemory = "PRAGMA temp_store = MEMORY"
	journalInFile   = "PRAGMA temp_store = FILE"
)

const (
	// gateWait bounds the wait for the writer.
	gateWait = 10 * time.Second
	// savepoint holds one writer's work inside a batch.
	savepoint = "recourse_write"
	// Defaults of a batch's bounds: the writers whose Commit waits for
	// others' work wait for at most this many writers' turns and this long.
	defaultMaxBatch    = 32
	defaultMaxBatchAge = 10 * time.Millisecond
)

// acquire waits for the writer's turn. ok is false when the wait ran out:
// the caller then writes on its own connection.
func (w *writer) acquire(ctx context.Context) (ok bool, err error) {
	w.mu.Lock()
	if !w.held {
		w.held = true
		w.mu.Unlock()
		w.since = time.Now()
		return true, nil
	}
	ready := make(chan struct{})
	w.queue = append(w.queue, ready)
	w.mu.Unlock()
	start := time.Now()
	defer func() { w.waitNs.Add(uint64(time.Since(start))) }()
	t := time.NewTimer(gateWait)
	defer t.Stop()
	select {
	case <-ready:
		w.since = time.Now()
		return true, nil
	case <-t.C:
		if w.withdraw(ready) {
			return false, nil
		}
		w.since = time.Now()
		return true, nil // handed over as the wait ran out: take it
	case <-ctx.Done():
		if !w.withdraw(ready) {
			w.since = time.Now()
			w.done(false) // handed over as ctx ended: pass it on
		}
		return false, ctx.Err()
	}
}

// exclusive runs fn holding the writer's turn with no transaction open on
// the writer's connection (a batch it was handed commits first), so that
// nothing is written meanwhile; fn's time counts as the writer's. It
// reports false when the turn could not be had (the wait ran out, ctx
// ended).
func (w *writer) exclusive(ctx context.Context, fn func()) bool {
	if ok, err := w.acquire(ctx); !ok || err != nil {
		return false
	}
	if w.batch != nil {
		w.commit() // its writers get the COMMIT's outcome
	}
	began := time.Now()
	fn()
	w.busyNs.Add(uint64(time.Since(began)))
	w.mu.Lock()
	w.passLocked()
	w.mu.Unlock()
	return true
}

// withdraw takes a waiter out of the queue; false means it was handed the
// turn already.
func (w *writer) withdraw(ready chan struct{}) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, r := range w.queue {
		if r == ready {
			w.queue = append(w.queue[:i], w.queue[i+1:]...)
			return true
		}
	}
	return false
}

// passLocked gives the turn to the first waiter, or frees the writer.
func (w *writer) passLocked() {
	if len(w.queue) == 0 {
		w.held = false
		return
	}
	next := w.queue[0]
	w.queue[0] = nil
	w.queue = w.queue[1:]
	close(next)
}

// start waits for the writer's turn and begins the caller's work in it.
// ok is false when the wait ran out: the caller then writes on its own
// connection.
func (w *writer) start(ctx context.Context, large bool) (ok bool, err error) {
	if ok, err = w.acquire(ctx); !ok || err != nil {
		return false, err
	}
	if err := w.begin(ctx, large); err != nil {
		w.done(false)
		return false, err
	}
	return true, nil
}

// begin starts a writer's work: the batch's SQLite transaction if none is
// open, then the writer's savepoint. A large writer's work starts a batch
// of its own: a batch it was handed commits first. On error the turn is
// still held.
func (w *writer) begin(ctx context.Context, large bool) error {
	if w.conn == nil {
		c, err := w.connect(ctx)
		if err != nil {
			return err
		}
		w.conn, w.fileJournal = c, false
	}
	if w.batch != nil && large {
		w.commit() // its writers get the COMMIT's outcome; this work is not in it
	}
	if w.batch == nil {
		if err := w.beginBatch(large); err != nil {
			if errors.Is(err, driver.ErrBadConn) {
				w.conn.Close()
				w.conn = nil
			}
			return err
		}
	}
	if err := w.exec("SAVEPOINT " + savepoint); err != nil {
		w.abort(err)
		return err
	}
	w.batch.parts++
	return nil
}

// beginBatch opens the SQLite transaction of a new batch, its journal in
// a file for a large writer and in memory otherwise.
func (w *writer) beginBatch(large bool) error {
	if large != w.fileJournal {
		mode := journalInMemory
		if large {
			mode = journalInFile
		}
		if err := w.exec(mode); err != nil {
			return err
		}
		w.fileJournal = large
	}
	if err := w.exec("BEGIN IMMEDIATE"); err != nil {
		return err
	}
	w.batch = &writeBatch{began: time.Now(), large: large}
	return nil
}

// end ends a writer's work in the batch: kept (RELEASE) or undone (ROLLBACK
// TO). An error means the batch is lost, and it is rolled back.
func (w *writer) end(keep bool) error {
	var err error
	if keep {
		err = w.exec("RELEASE " + savepoint)
	} else if err = w.exec("ROLLBACK TO " + savepoint); err == nil {
		err = w.exec("RELEASE " + savepoint)
	}
	if err != nil {
		w.abort(err)
	}
	return err
}

// done ends a turn. With part, the turn's work is in the batch and done
// returns once the batch has committed, with the COMMIT's error. The turn
// goes to the next waiter, the batch staying open for it when its bounds
// allow; otherwise the batch commits first.
func (w *writer) done(part bool) error {
	w.turns.Add(1)
	w.busyNs.Add(uint64(time.Since(w.since)))
	w.mu.Lock()
	if b := w.batch; b != nil && !b.large && len(w.queue) > 0 && b.parts < w.maxBatch && time.Since(b.began) < w.maxBatchAge {
		var result chan error
		if part {
			result = make(chan error, 1)
			b.waiting = append(b.waiting, result)
		}
		w.passLocked()
		w.mu.Unlock()
		if result == nil {
			return nil
		}
		return <-result
	}
	w.mu.Unlock()
	var err error
	if w.batch != nil {
		err = w.commit()
	}
	w.mu.Lock()
	w.passLocked()
	w.mu.Unlock()
	if !part {
		return nil
	}
	return err
}

// commit commits the batch and tells every writer waiting for it.
func (w *writer) commit() error {
	b := w.batch
	w.batch = nil
	began := time.Now()
	err := w.exec("COMMIT")
	w.busyNs.Add(uint64(time.Since(began)))
	w.commits.Add(1)
	if err == nil && w.committed != nil {
		w.committed()
	}
	if err != nil {
		w.failed.Add(1)
		w.exec("ROLLBACK") // SQLite may have rolled back already
		err = fmt.Errorf("sqlite: commit: %w", err)
	}
	for _, r := range b.waiting {
		r <- err
	}
	return err
}

// abort rolls the batch back and fails every writer waiting for it.
func (w *writer) abort(cause error) {
	w.exec("ROLLBACK") // SQLite may have rolled back already
	b := w.batch
	w.batch = nil
	if b == nil {
		return
	}
	w.failed.Add(1)
	err := fmt.Errorf("sqlite: a write in the same commit failed, so this one was rolled back: %w", cause)
	for _, r := range b.waiting {
		r <- err
	}
}

func (w *writer) exec(query string) error {
	_, err := w.conn.ExecContext(context.Background(), query, nil)
	return err
}

// close closes the writer's connection once no writer is using it: it
// takes the turn (waiting at most gateWait), commits a batch it was handed
// for the writers waiting on it, and keeps the turn, since the database is
// closed.
func (w *writer) close() error {
	w.mu.Lock()
	again := w.closed
	w.closed = true
	w.mu.Unlock()
	if again {
		return nil
	}
	ok, _ := w.acquire(context.Background())
	var err error
	if ok && w.batch != nil {
		err = w.commit()
	}
	if w.conn != nil {
		err = errors.Join(err, w.conn.Close())
		w.conn = nil
	}
	return err
}

// writerTx is a database/sql transaction whose work runs on the writer.
type writerTx struct {
	c     *cachingConn
	ended bool
}

// Commit implements driver.Tx: it returns once the work is durable.
func (t *writerTx) Commit() error { return t.finish(true) }

// Rollback implements driver.Tx.
func (t *writerTx) Rollback() error { return t.finish(false) }

func (t *writerTx) finish(keep bool) error {
	if t.ended {
		return errors.New("sqlite: transaction has already ended")
	}
	t.ended = true
	t.c.onWriter = false
	w := t.c.w
	if err := w.end(keep); err != nil {
		w.done(false)
		return err
	}
	return w.done(keep)
}

// writes reports whether a statement run outside a transaction may write,
// and so must go to the writer. Only a statement that plainly reads
// (SELECT, VALUES, EXPLAIN) does not; comments before the first word are
// skipped.
func writes(query string) bool {
	q := query
	for {
		q = strings.TrimLeft(q, " \t\r\n")
		switch {
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return false
			}
			q = q[i+1:]
			continue
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q, "*/")
			if i < 0 {
				return false
			}
			q = q[i+2:]
			continue
		}
		break
	}
	end := strings.IndexFunc(q, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') })
	if end < 0 {
		end = len(q)
	}
	switch strings.ToUpper(q[:end]) {
	case "SELECT", "VALUES", "EXPLAIN", "":
		return false
	}
	return true
}
