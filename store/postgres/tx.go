package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/recourse/recourse/store/sqlstore"
)

// The store's transactions on PostgreSQL spend no round trip of their own
// on BEGIN and COMMIT. database/sql sends each as a statement and waits for
// it: two of the seven to sixteen round trips of a typical transaction,
// where each round trip costs both processes a wake-up and a loopback
// write (docs/benchmarks.md, change 50). Here BEGIN goes in one batch with
// the transaction's first statement (pgx's Batch.BeginTx) and COMMIT in
// one with its last, the queued inserts (sqlstore.TxConn.Commit); a
// transaction that ran nothing sends nothing, and one whose only statement
// is its queued inserts runs it alone, a statement being atomic.
//
// The statements run on the pgx connection under a database/sql
// connection (sql.Conn.Raw), so the job queue, which writes through
// database/sql (River), can have the same transaction as a *sql.Tx
// (SQLTx): beginning a *sql.Tx on a connection that is already in a
// transaction sends nothing (conn.BeginTx), and the store commits or rolls
// back for both.

// OpenDB is the database/sql handle over pool that the store uses: pgx's
// (stdlib.GetPoolConnector) with transactions that can join the store's
// own (conn.BeginTx).
func OpenDB(pool *pgxpool.Pool) *sql.DB {
	return sql.OpenDB(connector{stdlib.GetPoolConnector(pool)})
}

type connector struct{ driver.Connector }

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(*stdlib.Conn)
	if !ok {
		return dc, nil
	}
	return &conn{sc}, nil
}

// conn is pgx's database/sql connection, whose transactions join one
// the store began natively.
type conn struct{ *stdlib.Conn }

// BeginTx begins a transaction, or, on a connection that is in one already
// (the store's, begun natively: pgTx.SQLTx), returns a view of it that
// sends nothing: the store commits or rolls back.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.Conn.Conn().PgConn().TxStatus() != 'I' {
		return joinedTx{}, nil
	}
	return c.Conn.BeginTx(ctx, opts)
}

// ResetSession refuses a connection left in a transaction, so BeginTx's
// view can only ever join the store's own.
func (c *conn) ResetSession(ctx context.Context) error {
	if c.Conn.Conn().PgConn().TxStatus() != 'I' {
		return driver.ErrBadConn
	}
	return c.Conn.ResetSession(ctx)
}

type joinedTx struct{}

func (joinedTx) Commit() error   { return nil }
func (joinedTx) Rollback() error { return nil }

// begin is the dialect's Begin: a pgTx on a connection of db.
func begin(ctx context.Context, db *sql.DB) (sqlstore.TxConn, error) {
	sc, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var pc *pgx.Conn
	err = sc.Raw(func(dc any) error {
		switch c := dc.(type) {
		case *conn:
			pc = c.Conn.Conn()
		case *stdlib.Conn:
			pc = c.Conn()
		default:
			return errors.New("postgres: not a pgx connection")
		}
		return nil
	})
	if err != nil {
		sc.Close()
		return nil, err
	}
	return &pgTx{sc: sc, pc: pc}, nil
}

// pgTx is a transaction begun with its first statement. pc is the pgx
// connection under sc, used outside Raw's callback: sc is this
// transaction's alone until Rollback closes it, and database/sql touches
// the connection only through view, which runs its statements in turn
// with the store's.
type pgTx struct {
	sc   *sql.Conn
	pc   *pgx.Conn
	tx   pgx.Tx  // nil until the first statement begins it
	view *sql.Tx // SQLTx's, nil until asked for
	done bool    // committed: Rollback only releases sc
}

// batch returns a batch that begins the transaction first if nothing has
// yet (send).
func (t *pgTx) batch() *pgx.Batch {
	b := &pgx.Batch{}
	if t.tx == nil {
		b.BeginTx(pgx.TxOptions{})
	}
	return b
}

// send sends b, a batch of t's; if it begins the transaction, the BEGIN's
// result is read, and the transaction is open from then on, also when a
// statement after it fails (it is then aborted, and Rollback ends it).
func (t *pgTx) send(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	if t.tx != nil {
		return t.tx.SendBatch(ctx, b), nil
	}
	br := t.pc.SendBatch(ctx, b)
	t.tx = br.Tx()
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	return br, nil
}

// first sends BEGIN and query in one batch and returns the results, the
// begin's read.
func (t *pgTx) first(ctx context.Context, query string, args []any) (pgx.BatchResults, error) {
	b := t.batch()
	b.Queue(query, args...)
	return t.send(ctx, b)
}

func (t *pgTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.tx != nil {
		tag, err := t.tx.Exec(ctx, query, args...)
		return result(tag), err
	}
	br, err := t.first(ctx, query, args)
	if err != nil {
		return nil, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return result(tag), err
}

func (t *pgTx) QueryContext(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	if t.tx != nil {
		r, err := t.tx.Query(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		return &rows{r: r}, nil
	}
	br, err := t.first(ctx, query, args)
	if err != nil {
		return nil, err
	}
	r, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &rows{r: r, batch: br}, nil
}

func (t *pgTx) QueryRowContext(ctx context.Context, query string, args ...any) sqlstore.Row {
	r, err := t.QueryContext(ctx, query, args...)
	return row{r: r, err: err}
}

// Commit sends final and COMMIT in one batch (with BEGIN in front if
// nothing ran yet; a lone statement runs alone instead).
func (t *pgTx) Commit(ctx context.Context, final []sqlstore.Statement) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	if t.tx == nil && len(final) <= 1 {
		t.done = true
		if len(final) == 0 {
			return nil
		}
		_, err := t.pc.Exec(ctx, final[0].Query, final[0].Args...)
		return err
	}
	b := t.batch()
	for _, st := range final {
		b.Queue(st.Query, st.Args...)
	}
	b.Queue("commit")
	br, err := t.send(ctx, b)
	if err != nil {
		return err
	}
	for range final {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return err
		}
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if t.pc.PgConn().TxStatus() == 'I' {
		// The transaction is over (committed, or rolled back by a COMMIT
		// of a failed one); pgx's Tx, which did not send the COMMIT, is
		// dropped unused.
		t.done = true
	}
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// Rollback ends the transaction unless it committed, and releases the
// connection: a connection whose rollback failed is closed, not reused.
func (t *pgTx) Rollback() error {
	var err error
	if t.view != nil {
		_ = t.view.Rollback() // the view sends nothing; database/sql lets go of it
	}
	if !t.done && t.tx != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = t.tx.Rollback(ctx)
		cancel()
	}
	t.done = true
	if cerr := t.sc.Close(); err == nil && !errors.Is(cerr, sql.ErrConnDone) {
		err = cerr
	}
	return err
}

// SQLTx begins the transaction if nothing ran yet (BEGIN alone), then
// returns database/sql's view of it.
func (t *pgTx) SQLTx(ctx context.Context) (*sql.Tx, error) {
	if t.done {
		return nil, pgx.ErrTxClosed
	}
	if t.view != nil {
		return t.view, nil
	}
	if t.tx == nil {
		tx, err := t.pc.Begin(ctx)
		if err != nil {
			return nil, err
		}
		t.tx = tx
	}
	view, err := t.sc.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	t.view = view
	return view, nil
}

// result is a statement's sql.Result.
type result pgconn.CommandTag

func (r result) RowsAffected() (int64, error) { return pgconn.CommandTag(r).RowsAffected(), nil }

func (result) LastInsertId() (int64, error) {
	return 0, errors.New("postgres: no LastInsertId; use RETURNING")
}

// rows adapts pgx's rows to the store's; batch, when set, is the batch
// that began the transaction with them, closed with them.
type rows struct {
	r     pgx.Rows
	batch pgx.BatchResults
}

func (r *rows) Next() bool             { return r.r.Next() }
func (r *rows) Scan(dest ...any) error { return r.r.Scan(dest...) }
func (r *rows) Err() error             { return r.r.Err() }

func (r *rows) Close() error {
	r.r.Close()
	err := r.r.Err()
	if r.batch != nil {
		if cerr := r.batch.Close(); err == nil {
			err = cerr
		}
		r.batch = nil
	}
	return err
}

// row is the first row of rows, as *sql.Row gives it.
type row struct {
	r   sqlstore.Rows
	err error
}

func (r row) Err() error { return r.err }

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.r.Close()
	if !r.r.Next() {
		if err := r.r.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.r.Scan(dest...); err != nil {
		return err
	}
	return r.r.Close()
}
