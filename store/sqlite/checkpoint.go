package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
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
//
// A checkpoint copies frames back; only a restart lets the log be written
// again from its start, and SQLite restarts it when a writer begins after
// a checkpoint that copied every frame, with no reader still using one.
// Under steady load neither holds for long: frames arrive while the
// checkpointer copies, and readers always hold some. So the log grew to
// the writer's automatic checkpoint, which then ran in COMMIT after
// COMMIT, each copying what had arrived since the checkpointer's last
// run and syncing the database file, until a restart happened to
// succeed: three COMMITs a second took 35–50 ms on a database of
// 10,000,000 audit events (17 ms on a small one), a p99 near 50 ms for
// every write (docs/benchmarks.md, change 59). Now, once the log holds
// restartAt frames, the checkpointer takes the writer's turn, so that no
// frame can arrive, and runs a RESTART checkpoint: it copies the few
// frames since its last run, syncs, and resets the log, retrying briefly
// while readers finish. One sync in the writer's turn per restartAt
// frames (a 20–80 ms pause every two seconds or so at 16,000 frames a
// second) instead of several a second. The log may hold restartAt frames
// (128 MiB of 4 KiB pages) before it restarts; the writer's own
// checkpoint stays as the bound should the checkpointer not manage it (a
// reader that holds an old snapshot for long stops any restart).
const (
	checkpointEvery      = 100 * time.Millisecond
	restartAt            = 32768
	writerAutoCheckpoint = 2 * restartAt
	// restartTries and restartPause bound the wait for readers, in the
	// writer's turn, before a restart is left to the next run.
	restartTries = 20
	restartPause = 250 * time.Microsecond
	// busyTimeout is the connections' busy_timeout (OpenDB), which the
	// checkpointer sets to 0 for its RESTART so as to wait by itself.
	busyTimeout = 10000
)

// checkpointer copies the log back from its own connection.
type checkpointer struct {
	connect func(ctx context.Context) (driver.Conn, error)
	// exclusive runs fn holding the writer's turn (writer.exclusive); it
	// reports false when the turn could not be had.
	exclusive func(ctx context.Context, fn func()) bool
	// restartAt is restartAt, or a test's.
	restartAt int64
	nudge     chan struct{}
	stop      chan struct{}
	done      chan struct{}
	// ctx ends when the checkpointer stops, to end a wait for the turn.
	ctx      context.Context
	cancel   context.CancelFunc
	once     sync.Once
	runs     atomic.Uint64 // checkpoints run
	restarts atomic.Uint64 // logs restarted in the writer's turn
}

func newCheckpointer(connect func(ctx context.Context) (driver.Conn, error)) *checkpointer {
	ctx, cancel := context.WithCancel(context.Background())
	return &checkpointer{connect: connect, restartAt: restartAt, nudge: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel}
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
			_, frames, _, err := checkpoint(conn, "PASSIVE")
			c.runs.Add(1)
			if err == nil && frames >= c.restartAt && c.exclusive != nil {
				c.restart(conn)
			}
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

// restart copies the rest of the log back and resets it, in the writer's
// turn so that no frame arrives meanwhile (see restartAt).
func (c *checkpointer) restart(conn driver.Conn) {
	ex := conn.(driver.ExecerContext)
	if _, err := ex.ExecContext(c.ctx, "PRAGMA busy_timeout = 0", nil); err != nil {
		return
	}
	defer ex.ExecContext(context.Background(), fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeout), nil)
	c.exclusive(c.ctx, func() {
		for range restartTries {
			busy, _, _, err := checkpoint(conn, "RESTART")
			if err != nil {
				return
			}
			if !busy {
				c.restarts.Add(1)
				return
			}
			time.Sleep(restartPause) // a reader still uses the log
		}
	})
}

// checkpoint runs a checkpoint in mode and returns its result: whether it
// was blocked (RESTART: readers still use the log), the log's frames, and
// those copied back.
func checkpoint(conn driver.Conn, mode string) (busy bool, frames, copied int64, err error) {
	rows, err := conn.(driver.QueryerContext).QueryContext(context.Background(), "PRAGMA wal_checkpoint("+mode+")", nil)
	if err != nil {
		return false, 0, 0, err
	}
	defer rows.Close()
	row := make([]driver.Value, 3)
	if err := rows.Next(row); err != nil {
		return false, 0, 0, err
	}
	b, _ := row[0].(int64)
	frames, _ = row[1].(int64)
	copied, _ = row[2].(int64)
	return b != 0, frames, copied, nil
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
		c.cancel()
	}
	if started {
		<-c.done
	}
}
