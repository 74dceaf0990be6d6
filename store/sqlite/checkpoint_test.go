package sqlite

import (
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
