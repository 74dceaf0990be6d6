package jobs

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"sync"

	"github.com/riverqueue/river/riverdriver"
)

// insertTopic is River's topic for "jobs were inserted into a queue"; a
// producer that hears it for its queue fetches at once.
const insertTopic = "river_insert"

// wake carries "this process committed jobs into these queues" from the
// transactions that inserted them to this process's workers.
//
// River hears of a job inserted in a transaction only through a database
// notification, and sends at most one per queue per fetch cooldown. On
// PostgreSQL that is LISTEN/NOTIFY, which wake complements; on SQLite it
// would be a notification table that River's listener polls every 50 ms
// (one query per poll, one row written per insert, inside the business
// transaction). wake replaces it there: the transaction that inserted a job
// kicks its queue once it has committed (the store's AfterCommit), and the
// listener below hands River an insert notification at once. On SQLite a
// job inserted by another process (the CLI) is found by the fetch poll,
// within Options.PollInterval.
type wake struct {
	mu     sync.Mutex
	queues map[string]struct{}
	ch     chan struct{} // capacity 1: a pending kick
}

func newWake() *wake {
	return &wake{queues: map[string]struct{}{}, ch: make(chan struct{}, 1)}
}

// kick records that queue has new committed jobs. It never blocks.
func (w *wake) kick(queue string) {
	w.mu.Lock()
	w.queues[queue] = struct{}{}
	w.mu.Unlock()
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// take returns an insert notification for each kicked queue and forgets
// them.
func (w *wake) take() []*riverdriver.Notification {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*riverdriver.Notification, 0, len(w.queues))
	for q := range w.queues {
		out = append(out, &riverdriver.Notification{Topic: insertTopic, Payload: `{"queue":` + strconv.Quote(q) + `}`})
		delete(w.queues, q)
	}
	return out
}

// wakeDriver is a River driver whose listener also hears this process's
// kicks. With local set (SQLite) it hears nothing else: River then writes
// no notification rows and polls no notification table.
type wakeDriver struct {
	riverdriver.Driver[*sql.Tx]
	w     *wake
	local bool
}

func (d wakeDriver) SupportsListenNotify() bool {
	return !d.local && d.Driver.SupportsListenNotify()
}

func (d wakeDriver) GetListener(params *riverdriver.GetListenenerParams) riverdriver.Listener {
	if d.local {
		return &wakeListener{Listener: silentListener{schema: params.Schema}, w: d.w}
	}
	return &wakeListener{Listener: d.Driver.GetListener(params), w: d.w}
}

// silentListener is a listener with nothing to listen to: its wait ends
// only with its context.
type silentListener struct{ schema string }

func (silentListener) Close(context.Context) error          { return nil }
func (silentListener) Connect(context.Context) error        { return nil }
func (silentListener) Listen(context.Context, string) error { return nil }
func (silentListener) Ping(context.Context) error           { return nil }
func (l silentListener) Schema() string                     { return l.schema }
func (silentListener) SetAfterConnectExec(string)           {}
func (silentListener) Unlisten(context.Context, string) error {
	return nil
}

func (silentListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// wakeListener waits on the database's listener and on the process's
// kicks, whichever comes first.
type wakeListener struct {
	riverdriver.Listener
	w     *wake
	ready []*riverdriver.Notification // kicks not yet handed over
}

func (l *wakeListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	for {
		if len(l.ready) > 0 {
			n := l.ready[0]
			l.ready = l.ready[1:]
			return n, nil
		}
		inner, cancel := context.WithCancel(ctx)
		done, woken := make(chan struct{}), make(chan bool, 1)
		go func() {
			select {
			case <-l.w.ch:
				cancel()
				woken <- true
			case <-done:
				woken <- false
			}
		}()
		n, err := l.Listener.WaitForNotification(inner)
		close(done)
		kicked := <-woken
		cancel()
		if kicked {
			l.ready = append(l.ready, l.w.take()...)
		}
		switch {
		case err == nil:
			return n, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case kicked && errors.Is(err, context.Canceled):
			continue // interrupted by the kick: hand over its notifications
		default:
			return nil, err
		}
	}
}
