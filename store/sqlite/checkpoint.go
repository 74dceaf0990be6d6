package sqlite

import (
	"context"
	"database/sql/driver"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoints run beside the writer, not in its turn.
//
// In WAL mode SQLite copies the log back into the database file once it
// passes wal_autocheckpoint pages (1,000 by default), and it does so in
// the connection that committed: the writer, inside its turn, with two
// fsyncs. Under recovery-code that was a checkpoint every 70 ms of 8 ms
// each (a statement-timing build of the writer): a tenth of the writer's
// time, during which every writer queued. The checkpointer runs PASSIVE
// checkpoints on a connection of its own after commits, at most every
// checkpointEvery; PASSIVE never waits for readers or the writer, and
// copies what no reader still needs. The writer's own automatic checkpoint
// stays, at writerAutoCheckpoint pages, as the bound on the log should the
// checkpointer fall behind.
const (
	checkpointEvery      = 100 * time.Millisecond
	writerAutoCheckpoint = 10000
)

// checkpointer copies the log back from its own connection.
type checkpointer struct {
	connect func(ctx context.Context) (driver.Conn, error)
	nudge   chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	runs    atomic.Uint64 // checkpoints run
}

func newCheckpointer(connect func(ctx context.Context) (driver.Conn, error)) *checkpointer {
	return &checkpointer{connect: connect, nudge: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// committed tells the checkpointer that the log has grown; it never
// blocks, and starts the checkpointer on first use.
func (c *checkpointer) committed() {
	c.once.Do(func() { go c.run() })
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	var conn driver.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-c.stop:
			return
		case <-c.nudge:
		}
		// A connection or checkpoint that fails is tried again after the
		// next commit; the writer's own checkpoint bounds the log meanwhile.
		if conn == nil {
			if cn, err := c.connect(context.Background()); err == nil {
				conn = cn
			}
		}
		if conn != nil {
			_, _ = conn.(driver.ExecerContext).ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)", nil)
			c.runs.Add(1)
		}
		t := time.NewTimer(checkpointEvery)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// close stops the checkpointer and closes its connection. The last
// connection to close checkpoints the whole log (SQLite does).
func (c *checkpointer) close() {
	started := true
	c.once.Do(func() { started = false })
	select {
	case <-c.stop:
		return // closed already
	default:
		close(c.stop)
	}
	if started {
		<-c.done
	}
}
