package sqlite

import (
	"bytes"
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"

	"github.com/recourse/recourse"
)

// stmtCacheSize bounds the compiled statements kept per connection; the
// store and the job queue run fewer distinct statements than that. The
// writer's connection runs every write and the reads inside transactions.
const (
	stmtCacheSize       = 128
	writerStmtCacheSize = 256
)

// cachingConnector opens connections that keep their compiled statements.
// The driver compiles every statement it is given, every time, and SQLite's
// parser and code generator (transpiled to Go) cost more than running most
// of Recourse's statements: reusing the compiled statement halves the CPU
// time of a session lookup and of "Can't sign in?" (docs/benchmarks.md).
// Statements are keyed by their text. A statement whose rows are still open
// is never handed out a second time: the second query is compiled afresh.
//
// Every connection of the pool reads on its own; writes go to the one
// writer shared by all of them (writer.go).
type cachingConnector struct {
	base driver.Connector
	w    *writer
	ckpt *checkpointer
}

func newConnector(base driver.Connector) *cachingConnector {
	c := &cachingConnector{base: base, ckpt: newCheckpointer(base.Connect)}
	c.w = &writer{
		committed: c.ckpt.committed,
		connect: func(ctx context.Context) (*cachingConn, error) {
			conn, err := c.open(ctx, nil, writerStmtCacheSize)
			if err != nil {
				return nil, err
			}
			// The checkpointer copies the log back (checkpoint.go); the
			// writer does only if the log grows past this.
			if _, err := conn.Conn.(driverConn).ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", writerAutoCheckpoint), nil); err != nil {
				conn.Close()
				return nil, fmt.Errorf("sqlite: writer connection: %w", err)
			}
			// Small transactions journal in memory (writer.go, journalInMemory).
			if _, err := conn.Conn.(driverConn).ExecContext(ctx, journalInMemory, nil); err != nil {
				conn.Close()
				return nil, fmt.Errorf("sqlite: writer connection: %w", err)
			}
			return conn, nil
		},
		maxBatch:    defaultMaxBatch,
		maxBatchAge: defaultMaxBatchAge,
	}
	c.ckpt.exclusive = c.w.exclusive
	return c
}

// Connect implements driver.Connector.
func (c *cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	return c.open(ctx, c.w, stmtCacheSize)
}

func (c *cachingConnector) open(ctx context.Context, w *writer, cacheSize int) (*cachingConn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := conn.(driverConn); !ok {
		conn.Close()
		return nil, errors.New("sqlite: the driver's connection lacks an interface the statement cache needs")
	}
	return &cachingConn{Conn: conn, w: w, size: cacheSize, byQuery: map[string]*list.Element{}, lru: list.New()}, nil
}

// Driver implements driver.Connector. The driver it returns leads back to
// the connector, so that Stats can find the writer of a *sql.DB.
func (c *cachingConnector) Driver() driver.Driver {
	return connectorDriver{Driver: c.base.Driver(), c: c}
}

// connectorDriver is the driver, and the connector it came from.
type connectorDriver struct {
	driver.Driver
	c *cachingConnector
}

// Close closes the writer's connection; database/sql calls it from DB.Close.
func (c *cachingConnector) Close() error {
	err := c.w.close()
	c.ckpt.close()
	return err
}

// driverConn is what the driver's connection implements and database/sql
// uses.
type driverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn wraps a driver connection. database/sql uses a connection
// from one goroutine at a time, so the cache needs no lock.
type cachingConn struct {
	driver.Conn
	w        *writer // nil on the writer's own connection
	onWriter bool    // a transaction on the writer holds its turn
	size     int
	byQuery  map[string]*list.Element // of *cachedStmt, most recently used first in lru
	lru      *list.List
}

var _ driverConn = (*cachingConn)(nil)

type cachedStmt struct {
	query string
	stmt  driver.Stmt
	busy  bool
}

func (c *cachingConn) inner() driverConn { return c.Conn.(driverConn) }

// BeginTx implements driver.ConnBeginTx. Every transaction is a writer
// (BEGIN IMMEDIATE): it waits for the writer's turn and runs there.
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.w == nil {
		return c.inner().BeginTx(ctx, opts)
	}
	ok, err := c.w.start(ctx, recourse.IsLargeWrite(ctx))
	if err != nil {
		return nil, err
	}
	if !ok {
		return c.inner().BeginTx(ctx, opts)
	}
	c.onWriter = true
	return &writerTx{c: c}, nil
}

// writeAlone runs a statement that may write outside a transaction as a
// writer's turn of its own. ok is false when the statement is to run on
// this connection: it only reads, or the wait for the writer ran out.
func (c *cachingConn) writeAlone(ctx context.Context, query string) (ok bool, err error) {
	if c.w == nil || !writes(query) {
		return false, nil
	}
	return c.w.start(ctx, false)
}

// finishAlone ends a turn that writeAlone began, after its statement.
func (c *cachingConn) finishAlone(stmtErr error) error {
	keep := stmtErr == nil
	if err := c.w.end(keep); err != nil {
		c.w.done(false)
		return errors.Join(stmtErr, err)
	}
	if err := c.w.done(keep); err != nil {
		return err
	}
	return stmtErr
}

// PrepareContext implements driver.ConnPrepareContext; explicitly prepared
// statements belong to their caller, not to the cache.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.onWriter {
		return c.w.conn.inner().PrepareContext(ctx, query)
	}
	return c.inner().PrepareContext(ctx, query)
}

// Ping implements driver.Pinger.
func (c *cachingConn) Ping(ctx context.Context) error { return c.inner().Ping(ctx) }

// ResetSession implements driver.SessionResetter.
func (c *cachingConn) ResetSession(ctx context.Context) error { return c.inner().ResetSession(ctx) }

// IsValid implements driver.Validator.
func (c *cachingConn) IsValid() bool { return c.inner().IsValid() }

// take returns the compiled statement for query, compiling it on first
// use, or nil when it is in use: the caller then runs the query uncached.
func (c *cachingConn) take(ctx context.Context, query string) (*cachedStmt, error) {
	if e, ok := c.byQuery[query]; ok {
		cs := e.Value.(*cachedStmt)
		if cs.busy {
			return nil, nil
		}
		c.lru.MoveToFront(e)
		cs.busy = true
		return cs, nil
	}
	st, err := c.inner().PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	cs := &cachedStmt{query: query, stmt: st, busy: true}
	c.byQuery[query] = c.lru.PushFront(cs)
	for e := c.lru.Back(); c.lru.Len() > c.size && e != nil; {
		prev := e.Prev()
		if old := e.Value.(*cachedStmt); !old.busy {
			c.lru.Remove(e)
			delete(c.byQuery, old.query)
			old.stmt.Close()
		}
		e = prev
	}
	return cs, nil
}

// release gives a statement back after its use.
func (c *cachingConn) release(cs *cachedStmt) { cs.busy = false }

// ExecContext implements driver.ExecerContext.
func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.onWriter {
		// The writer's statements are not interrupted when ctx ends: an
		// interrupted write makes SQLite roll back the whole transaction,
		// the batch of other writers' work with it. database/sql rolls the
		// transaction back when its context ends.
		return c.w.conn.ExecContext(context.WithoutCancel(ctx), query, args)
	}
	alone, err := c.writeAlone(ctx, query)
	if err != nil {
		return nil, err
	}
	if alone {
		res, err := c.w.conn.ExecContext(context.WithoutCancel(ctx), query, args)
		if err := c.finishAlone(err); err != nil {
			return nil, err
		}
		return res, nil
	}
	return c.execHere(ctx, query, args)
}

func (c *cachingConn) execHere(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner().ExecContext(ctx, query, args)
	}
	defer c.release(cs)
	return cs.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

// QueryContext implements driver.QueryerContext.
func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.onWriter {
		return c.w.conn.QueryContext(context.WithoutCancel(ctx), query, args)
	}
	alone, err := c.writeAlone(ctx, query)
	if err != nil {
		return nil, err
	}
	if !alone {
		return c.queryHere(ctx, query, args)
	}
	// A write's RETURNING rows are read in full and the write committed
	// before the caller sees any of them: the caller never acts on a write
	// that is not durable, and its own work on the rows (River decodes the
	// jobs it fetched) does not hold up the writer.
	rows, err := c.w.conn.QueryContext(context.WithoutCancel(ctx), query, args)
	if err != nil {
		return nil, c.finishAlone(err)
	}
	buf, err := readAll(rows)
	if err := c.finishAlone(err); err != nil {
		return nil, err
	}
	return buf, nil
}

// readAll reads and closes rows.
func readAll(rows driver.Rows) (*bufferedRows, error) {
	b := &bufferedRows{cols: rows.Columns()}
	if t, ok := rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		for i := range b.cols {
			b.types = append(b.types, t.ColumnTypeDatabaseTypeName(i))
		}
	}
	var err error
	for {
		row := make([]driver.Value, len(b.cols))
		if err = rows.Next(row); err != nil {
			break
		}
		for i, v := range row {
			if bs, ok := v.([]byte); ok { // the driver may reuse its buffer
				row[i] = bytes.Clone(bs)
			}
		}
		b.rows = append(b.rows, row)
	}
	if err == io.EOF {
		err = nil
	}
	return b, errors.Join(err, rows.Close())
}

// bufferedRows are rows read in full (readAll).
type bufferedRows struct {
	cols  []string
	types []string
	rows  [][]driver.Value
}

// Columns implements driver.Rows.
func (b *bufferedRows) Columns() []string { return b.cols }

// Close implements driver.Rows.
func (b *bufferedRows) Close() error { b.rows = nil; return nil }

// Next implements driver.Rows.
func (b *bufferedRows) Next(dest []driver.Value) error {
	if len(b.rows) == 0 {
		return io.EOF
	}
	copy(dest, b.rows[0])
	b.rows = b.rows[1:]
	return nil
}

// ColumnTypeDatabaseTypeName implements driver.RowsColumnTypeDatabaseTypeName.
func (b *bufferedRows) ColumnTypeDatabaseTypeName(i int) string {
	if i < len(b.types) {
		return b.types[i]
	}
	return ""
}

func (c *cachingConn) queryHere(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, err := c.take(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner().QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(cs)
		return nil, err
	}
	return &cachedRows{Rows: rows, done: func() error { c.release(cs); return nil }}, nil
}

// Close implements driver.Conn: the cached statements, then the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for e := c.lru.Front(); e != nil; e = e.Next() {
		errs = append(errs, e.Value.(*cachedStmt).stmt.Close())
	}
	c.byQuery, c.lru = map[string]*list.Element{}, list.New()
	return errors.Join(append(errs, c.Conn.Close())...)
}

// cachedRows gives the statement back when the rows are closed (the driver
// then resets the statement for its next use instead of discarding it), or
// ends the writer's turn that the statement ran in.
type cachedRows struct {
	driver.Rows
	done func() error
}

// Close implements driver.Rows.
func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.done != nil {
		err = errors.Join(err, r.done())
		r.done = nil
	}
	return err
}

// The column-type interfaces of the driver's rows, passed through.

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(i int) (bool, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
