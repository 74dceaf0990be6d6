package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// Pending starts: the durable record of a "Can't sign in?" request that
// this process is to run itself (direct.go).
//
// The record used to be a River job scheduled StartFallback ahead, deleted
// by the run. River's insertion of a job row is one of the costliest
// statements of a recovery (its JSON arguments and metadata, five indexes,
// RETURNING every column; 0.3 ms of SQLite's one writer, docs/benchmarks.md),
// and the answer to "Can't sign in?" is nothing but that insertion. A start
// is now a row of pending_starts (its arguments and when it is due), and
// the run claims it by deleting that row. River still runs every start
// that this process does not: the mover turns rows past their due time
// into River jobs, with River's retries from then on. So a start is
// durable when its answer is sent, exactly one run records its outcome,
// and one that is never run in process — the process crashed, stopped, or
// fell too far behind — runs on River, on any replica.

// execQuerier is a database or a transaction.
type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// addPendingStart records a start through db (the database: a statement
// of its own; or a transaction), due for River at due; it returns the
// row's id, which is never reused. On SQLite the id is the insert's rowid
// (RETURNING costs SQLite as much again as the insert).
func addPendingStart(ctx context.Context, db execQuerier, dialect string, args StartArgs, due time.Time) (int64, error) {
	b, err := json.Marshal(args)
	if err != nil {
		return 0, fmt.Errorf("jobs: encode start: %w", err)
	}
	const insert = `INSERT INTO pending_starts (args, due_ms) VALUES ($1, $2)`
	var id int64
	if dialect == "sqlite" {
		var res sql.Result
		if res, err = db.ExecContext(ctx, insert, string(b), due.UnixMilli()); err == nil {
			id, err = res.LastInsertId()
		}
	} else {
		err = db.QueryRowContext(ctx, insert+` RETURNING row_id`, string(b), due.UnixMilli()).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("jobs: record start: %w", err)
	}
	return id, nil
}

// sqlExecer runs a statement in the store's transaction, like any of the
// store's own (on PostgreSQL the first one carries the transaction's
// BEGIN): the store's transaction (ExecSQL).
type sqlExecer interface {
	ExecSQL(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// commitExecer defers a statement to the commit of the store's
// transaction (ExecAtCommit).
type commitExecer interface {
	ExecAtCommit(ctx context.Context, query string, args ...any) error
}

// claimLostCode is the SQLSTATE of PostgreSQL's claim_pending_start when
// the start is no longer pending (store/postgres/migrations/0013).
const claimLostCode = "RC001"

// claimAtCommit is claimPendingStart on PostgreSQL: the deletion goes with
// the transaction's COMMIT, in the round trip of the outcome's inserts,
// and fails the transaction (claimLostCode) if the row is gone. A run's
// transaction is then one round trip where it reads nothing.
func claimAtCommit(ctx context.Context, tx commitExecer, id int64) error {
	if err := tx.ExecAtCommit(ctx, `SELECT claim_pending_start($1)`, id); err != nil {
		return fmt.Errorf("jobs: claim start: %w", err)
	}
	return nil
}

// claimPendingStart deletes the start's row in tx, the transaction that
// records the run's outcome; errTaken means the row is gone: the mover
// handed it to River, or another run claimed it.
func claimPendingStart(ctx context.Context, tx sqlExecer, id int64) error {
	res, err := tx.ExecSQL(ctx, `DELETE FROM pending_starts WHERE row_id = $1`, id)
	if err != nil {
		return fmt.Errorf("jobs: claim start: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("jobs: claim start: %w", err)
	}
	if n != 1 {
		return errTaken
	}
	return nil
}

// moveBatch bounds the rows one transaction of the mover turns into jobs.
const moveBatch = 500

// movePendingStarts turns the starts due by now into River jobs, each row
// deleted in the transaction that inserts its job, and returns how many
// it moved. Movers on several replicas never move a row twice: a row
// belongs to the transaction whose DELETE returned it.
func (q *Queue) movePendingStarts(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		n, err := q.moveSome(ctx, now)
		total += n
		if err != nil {
			return total, fmt.Errorf("jobs: move starts: %w", err)
		}
		if n < moveBatch {
			return total, nil
		}
	}
}

// moveSome moves at most moveBatch due starts in one transaction.
func (q *Queue) moveSome(ctx context.Context, now time.Time) (int, error) {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, fmt.Sprintf(`DELETE FROM pending_starts WHERE row_id IN
		(SELECT row_id FROM pending_starts WHERE due_ms <= $1 ORDER BY row_id LIMIT %d) RETURNING args`, moveBatch), now.UnixMilli())
	if err != nil {
		return 0, err
	}
	var params []river.InsertManyParams
	for rows.Next() {
		var args string
		if err := rows.Scan(&args); err != nil {
			rows.Close()
			return 0, err
		}
		params = append(params, river.InsertManyParams{Args: rawStartArgs(args), InsertOpts: &river.InsertOpts{MaxAttempts: startAttempts}})
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	if len(params) == 0 {
		return 0, nil
	}
	if _, err := q.client.InsertManyTx(ctx, tx, params); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return len(params), nil
}

// rawStartArgs is a start's arguments as stored, inserted into River as
// they are: a row that no longer decodes still becomes a job, whose
// failure River records, rather than vanishing.
type rawStartArgs string

// Kind implements river.JobArgs.
func (rawStartArgs) Kind() string { return StartArgs{}.Kind() }

// MarshalJSON returns the stored arguments.
func (r rawStartArgs) MarshalJSON() ([]byte, error) {
	if !json.Valid([]byte(r)) {
		return json.Marshal(map[string]string{"undecodable": string(r)})
	}
	return []byte(r), nil
}

// moveEvery is how often the mover looks for due starts: often enough
// that a start waits little past its due time, rarely enough to cost
// nothing (one small query).
func moveEvery(fallback time.Duration) time.Duration {
	return min(max(fallback/4, 10*time.Millisecond), time.Second)
}

// runMover moves due starts until ctx ends or stop is closed.
func (q *Queue) runMover(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(moveEvery(q.opts.StartFallback))
	defer t.Stop()
	for {
		if n, err := q.movePendingStarts(ctx, time.Now()); err != nil && ctx.Err() == nil {
			q.log.Warn("moving due recovery starts to the job queue failed; trying again", "error", err)
		} else if n > 0 {
			q.log.Info("recovery starts not run in process were handed to the job queue", "starts", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
	}
}
