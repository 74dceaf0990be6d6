package sqlite

import (
	"context"
	"database/sql/driver"
	"strings"
	"time"
)

// writeGate lets one write at a time into the database, in arrival order,
// for every user of one *sql.DB: the store's transactions, the job queue's
// (River's) transactions and statements, and the audit sequencer.
//
// SQLite admits one writer; the others get SQLITE_BUSY and the driver's
// busy handler sleeps 1, 2, 5, 10, 15, 20, 25… ms between retries. Under
// load River's job fetch, an autocommit UPDATE that nothing queued, lost
// most races to the store's back-to-back transactions: it slept 7 ms on
// average per fetch, and the tail latency of every step that waits for a
// job doubled (docs/benchmarks.md). Waiting on a channel hands the lock over
// the moment it is free.
//
// A write that waits longer than gateWait goes to the database anyway,
// where the busy timeout applies: a write issued on another connection by
// a goroutine that holds a transaction fails as it always did instead of
// waiting forever.
type writeGate chan struct{}

// gateWait bounds the wait for the gate.
const gateWait = 10 * time.Second

// enter waits for the gate. It returns the function that leaves it (a
// no-op when the wait ran out).
func (g writeGate) enter(ctx context.Context) (leave func(), err error) {
	select {
	case g <- struct{}{}:
		return g.leave, nil
	default:
	}
	t := time.NewTimer(gateWait)
	defer t.Stop()
	select {
	case g <- struct{}{}:
		return g.leave, nil
	case <-t.C:
		return func() {}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g writeGate) leave() { <-g }

// gatedTx leaves the gate when the transaction ends.
type gatedTx struct {
	driver.Tx
	done func()
}

func (t *gatedTx) end(err error) error {
	if t.done != nil {
		t.done()
		t.done = nil
	}
	return err
}

// Commit implements driver.Tx.
func (t *gatedTx) Commit() error { return t.end(t.Tx.Commit()) }

// Rollback implements driver.Tx.
func (t *gatedTx) Rollback() error { return t.end(t.Tx.Rollback()) }

// writes reports whether a statement run outside a transaction may write,
// and so must pass the gate. Only a statement that plainly reads (SELECT,
// VALUES, EXPLAIN) skips it; comments before the first word are skipped.
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
