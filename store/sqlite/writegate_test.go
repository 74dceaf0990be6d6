package sqlite

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

func TestWrites(t *testing.T) {
	for _, tt := range []struct {
		query string
		want  bool
	}{
		{"SELECT 1", false},
		{"  select * from accounts", false},
		{"VALUES (1)", false},
		{"EXPLAIN QUERY PLAN SELECT 1", false},
		{"-- name: JobGetAvailable :many\nUPDATE river_job SET state = 'running'", true},
		{"/* TEMPLATE: schema */ INSERT INTO river_job (id) VALUES (1)", true},
		{"-- name: NotificationGetAfter :many\nSELECT id FROM river_notification", false},
		{"DELETE FROM tokens", true},
		{"WITH x AS (SELECT 1) UPDATE t SET a = 1", true},
		{"PRAGMA wal_checkpoint", true},
		{"CREATE INDEX i ON t (a)", true},
		{"", false},
		{"-- only a comment", false},
		{"/* unterminated", false},
	} {
		if got := writes(tt.query); got != tt.want {
			t.Errorf("writes(%q) = %v, want %v", tt.query, got, tt.want)
		}
	}
}

// TestWriteGateSerializesAutocommitWrites: transactions and autocommit
// writes on one database queue at the gate; none fails with SQLITE_BUSY
// and none is lost.
func TestWriteGateSerializesAutocommitWrites(t *testing.T) {
	ctx := context.Background()
	db, err := OpenDB(filepath.Join(t.TempDir(), "gate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE n (v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if w%2 == 0 {
					_, err := db.ExecContext(ctx, `INSERT INTO n (v) VALUES (1)`)
					errs <- err
					continue
				}
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					errs <- err
					continue
				}
				_, err = tx.ExecContext(ctx, `INSERT INTO n (v) VALUES (?)`, i)
				if err == nil {
					err = tx.Commit()
				} else {
					tx.Rollback()
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM n`).Scan(&n); err != nil || n != workers*each {
		t.Fatalf("rows = %d, %v; want %d", n, err, workers*each)
	}
}
