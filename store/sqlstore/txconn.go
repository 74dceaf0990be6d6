package sqlstore

import (
	"context"
	"database/sql"
)

// Rows is a result set as the store reads it: *sql.Rows, or the rows of a
// backend's own transaction (Dialect.Begin).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Row is the first row of a result: *sql.Row, or a backend's own.
type Row interface {
	Scan(dest ...any) error
	Err() error
}

// Statement is one SQL statement and its arguments.
type Statement struct {
	Query string
	Args  []any
}

// TxConn is a transaction as the store drives it. The default is a
// database/sql transaction (sqlTx); a backend may bring its own
// (Dialect.Begin) to spend fewer round trips on beginning and committing.
type TxConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) Row
	// Commit runs final, the transaction's last statements (its queued
	// inserts), and commits. If a statement fails, nothing is committed
	// and its error is returned.
	Commit(ctx context.Context, final []Statement) error
	// Rollback ends the transaction without its changes and releases its
	// connection; after Commit it only releases the connection.
	Rollback() error
	// SQLTx is the transaction as a *sql.Tx, for components that write in
	// it through database/sql (the job queue). It stays valid until
	// Commit or Rollback, which end it too.
	SQLTx(ctx context.Context) (*sql.Tx, error)
}

// sqlTx is a TxConn over a database/sql transaction.
type sqlTx struct{ tx *sql.Tx }

func beginSQL(ctx context.Context, db *sql.DB) (TxConn, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{tx}, nil
}

func (t sqlTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, query, args...)
}

func (t sqlTx) QueryContext(ctx context.Context, query string, args ...any) (Rows, error) {
	return t.tx.QueryContext(ctx, query, args...)
}

func (t sqlTx) QueryRowContext(ctx context.Context, query string, args ...any) Row {
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t sqlTx) Commit(ctx context.Context, final []Statement) error {
	for _, st := range final {
		if _, err := t.tx.ExecContext(ctx, st.Query, st.Args...); err != nil {
			return err
		}
	}
	return t.tx.Commit()
}

func (t sqlTx) Rollback() error { return t.tx.Rollback() }

func (t sqlTx) SQLTx(context.Context) (*sql.Tx, error) { return t.tx, nil }

// dbQuerier is the querier of statements outside a transaction.
type dbQuerier struct{ db *sql.DB }

func (q dbQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.db.ExecContext(ctx, query, args...)
}

func (q dbQuerier) QueryContext(ctx context.Context, query string, args ...any) (Rows, error) {
	return q.db.QueryContext(ctx, query, args...)
}

func (q dbQuerier) QueryRowContext(ctx context.Context, query string, args ...any) Row {
	return q.db.QueryRowContext(ctx, query, args...)
}
