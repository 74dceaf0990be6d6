// Package sqlstore implements recourse.Store over database/sql for the SQL
// dialects Recourse supports. The queries it shares are plain SQL that SQLite
// and PostgreSQL read the same way (numbered $N parameters, RETURNING,
// ON CONFLICT); each dialect brings its own schema migrations, lock for
// migrations, row-locking clause and error classification. The backends are
// packages store/sqlite and store/postgres.
package sqlstore

import (
	"context"
	"database/sql"
	"io/fs"
)

// Dialect is what differs between SQL backends.
type Dialect struct {
	// Name is "sqlite" or "postgres".
	Name string
	// Migrations holds files named NNNN_description.sql, applied in order.
	Migrations fs.FS
	// ForUpdate is appended to a SELECT that reads a row to change it within
	// a transaction (" FOR UPDATE" where the database supports row locks;
	// empty where a write transaction already locks the database).
	ForUpdate string
	// IsUniqueViolation reports whether err is a unique-constraint failure.
	IsUniqueViolation func(err error) bool
	// SequencerLock is a query returning one boolean: whether the current
	// transaction now holds the audit sequencer's lock (held until it ends).
	// Empty where every write transaction already excludes the others.
	SequencerLock string
	// ListContains returns a condition that the JSON list in column col
	// contains the text parameter param (e.g. "$1").
	ListContains func(col, param string) string
	// LockMigrations takes a lock that serialises migrations across
	// processes, held on conn until unlock is called.
	LockMigrations func(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
	// LastInsertID is set where the driver's Result reports the key an
	// INSERT generated (SQLite's rowid): insertID then runs the INSERT
	// alone instead of with RETURNING, which SQLite answers as a result
	// set of its own, at twice the cost of the insertion.
	LastInsertID bool
	// InsertInWith is set where an INSERT or UPDATE may run in a WITH
	// clause of another statement (PostgreSQL's data-modifying statements
	// in WITH): a transaction's queued inserts then go to the database in
	// one statement (queue.go), and an account's update returns the
	// channels it reconciles (UpdateAccount).
	InsertInWith bool
	// AuditFilterColumns is set where the audit log's filter columns
	// (event_id, ev_time, actor_id, subject_id, action, request_id) are
	// plain columns that an insert writes, with the values
	// AuditEvent.MarshalCanonicalFilters takes from the encoding it
	// returns; unset, the database generates them from data.
	AuditFilterColumns bool
	// Begin begins a transaction on db; nil is database/sql's (BeginTx).
	// PostgreSQL's sends BEGIN with the transaction's first statement and
	// COMMIT with its last (store/postgres).
	Begin func(ctx context.Context, db *sql.DB) (TxConn, error)
}

// filterOnly returns col in a form no index can serve, for a condition
// that should only filter the rows another, selective condition found:
// the unexpired challenges of one request, the live sessions of one
// account, an account's open requests. The expiry and state columns have
// indexes of their own (for the hygiene job, the expiry sweep, the
// approvers' lists), and PostgreSQL, estimating dozens of rows for
// "request_id = $1" before a table's first ANALYZE, combined both indexes
// (a BitmapAnd), reading the second index's entry for every unexpired
// challenge or open request of the table: 1 ms a submitted code after
// 27,000 recoveries had started, 3.7 ms a completion (docs/benchmarks.md,
// change 41). COALESCE of a column with itself is the column's value on
// both dialects and is never an index condition.
func filterOnly(col string) string { return "COALESCE(" + col + ", " + col + ")" }

// insertID runs an INSERT into a table whose key column col the database
// generates, and returns the key.
func (s queries) insertID(ctx context.Context, col, query string, args ...any) (int64, error) {
	if s.d.LastInsertID {
		res, err := s.q.ExecContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		return res.LastInsertId()
	}
	var id int64
	err := s.q.QueryRowContext(ctx, query+" RETURNING "+col, args...).Scan(&id)
	return id, err
}
