package sqlite

import (
	"database/sql/driver"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckpointerCopiesTheLogBack: commits wake the checkpointer, which
// copies the log back into the database file from its own connection (the
// writer's automatic checkpoint is held back for it), and closing the
// database stops it.
func TestCheckpointerCopiesTheLogBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db, c, err := openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var auto int
	if err := tx.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != writerAutoCheckpoint {
		t.Errorf("writer's wal_autocheckpoint = %d, want %d", auto, writerAutoCheckpoint)
	}
	for i := range 200 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ($1, $2)`, i, string(make([]byte, 2000))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.ckpt.runs.Load() == 0 || sizeOf(t, path) <= before.Size() {
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint copied the log back: %d runs, database file %d bytes (was %d)",
				c.ckpt.runs.Load(), sizeOf(t, path), before.Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.ckpt.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the checkpointer still runs after Close")
	}
}

func sizeOf(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCheckpointerCloseWithoutCommits: a database closed before any
// commit has no checkpointer to stop.
func TestCheckpointerCloseWithoutCommits(t *testing.T) {
	db, c, err := openDB(filepath.Join(t.TempDir(), "idle.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if c.ckpt.runs.Load() != 0 {
		t.Error("a checkpoint ran without a commit")
	}
	c.ckpt.committed() // after close: no goroutine, no panic
}

// TestCheckpointerRestartsTheLog: once the log holds restartAt frames,
// the checkpointer restarts it in the writer's turn: it waits while a
// transaction holds the turn, resets the log once it has the turn (the
// next commit writes from the log's start), keeps every committed row,
// and a stopped checkpointer stops waiting.
func TestCheckpointerRestartsTheLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, c, err := openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The background checkpointer never starts: the test runs the
	// checkpoints itself, and none runs beside them.
	c.ckpt.once.Do(func() { close(c.ckpt.done) })
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	insert := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if _, err := db.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ($1, $2)`, i, string(make([]byte, 3000))); err != nil {
				t.Fatal(err)
			}
		}
	}
	frames := func(conn driver.Conn) int64 {
		t.Helper()
		_, n, _, err := checkpoint(conn, "PASSIVE")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	conn, err := c.ckpt.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	insert(0, 100)
	if n := frames(conn); n < 100 {
		t.Fatalf("the log holds %d frames after 100 commits", n)
	}

	// A transaction holds the writer's turn: the restart waits for it.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (1000, 'in the turn')`); err != nil {
		t.Fatal(err)
	}
	restarted := make(chan struct{})
	go func() { c.ckpt.restart(conn); close(restarted) }()
	select {
	case <-restarted:
		t.Fatal("the log was restarted while a transaction held the writer's turn")
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-restarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the restart did not run once the turn was free")
	}
	if got := c.ckpt.restarts.Load(); got != 1 {
		t.Fatalf("%d restarts counted, want 1", got)
	}
	if st, _ := Stats(db); st.LogRestarts != 1 {
		t.Fatalf("WriterStats.LogRestarts = %d, want 1", st.LogRestarts)
	}
	insert(2000, 1)
	if n := frames(conn); n > 10 {
		t.Fatalf("the log holds %d frames after one more commit; a restarted log starts again", n)
	}
	var rows int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&rows); err != nil || rows != 102 {
		t.Fatalf("%d rows, %v; want every committed row (102)", rows, err)
	}

	// A reader still on the log's frames blocks a restart: the
	// checkpointer gives up after its tries and hands the turn back.
	insert(4000, 5)
	// (A statement whose rows are still being read keeps its snapshot.)
	reading, err := db.QueryContext(ctx, `SELECT k FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	if !reading.Next() {
		t.Fatal("no row to read")
	}
	began := time.Now()
	c.ckpt.restart(conn)
	if got := c.ckpt.restarts.Load(); got != 1 {
		t.Fatalf("%d restarts counted with a reader on the log, want still 1", got)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("a blocked restart held the turn for %v", d)
	}
	reading.Close()
	insert(5000, 1) // the writer's turn was handed back

	// A stopped checkpointer stops waiting for the turn.
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES (3000, 'in the turn')`); err != nil {
		t.Fatal(err)
	}
	restarted = make(chan struct{})
	go func() { c.ckpt.restart(conn); close(restarted) }()
	time.Sleep(50 * time.Millisecond)
	c.ckpt.close()
	select {
	case <-restarted:
	case <-time.After(5 * time.Second):
		t.Fatal("a stopped checkpointer still waits for the writer's turn")
	}
	if got := c.ckpt.restarts.Load(); got != 1 {
		t.Fatalf("%d restarts counted, want still 1", got)
	}
}
