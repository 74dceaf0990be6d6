package sqlite

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
)

// stmtCacheSize bounds the compiled statements kept per connection; the
// store and the job queue run fewer distinct statements than that.
const stmtCacheSize = 128

// cachingConnector opens connections that keep their compiled statements.
// The driver compiles every statement it is given, every time, and SQLite's
// parser and code generator (transpiled to Go) cost more than running most
// of Recourse's statements: reusing the compiled statement halves the CPU
// time of a session lookup and of "Can't sign in?" (docs/benchmarks.md).
// Statements are keyed by their text. A statement whose rows are still open
// is never handed out a second time: the second query is compiled afresh.
type cachingConnector struct {
	base driver.Connector
	gate writeGate // shared by every connection (writegate.go)
}

// Connect implements driver.Connector.
func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := conn.(driverConn); !ok {
		conn.Close()
		return nil, errors.New("sqlite: the driver's connection lacks an interface the statement cache needs")
	}
	return &cachingConn{Conn: conn, gate: c.gate, byQuery: map[string]*list.Element{}, lru: list.New()}, nil
}

// Driver implements driver.Connector.
func (c cachingConnector) Driver() driver.Driver { return c.base.Driver() }

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
	gate    writeGate
	inTx    bool                     // a transaction holds the gate for its statements
	byQuery map[string]*list.Element // of *cachedStmt, most recently used first in lru
	lru     *list.List
}

var _ driverConn = (*cachingConn)(nil)

type cachedStmt struct {
	query string
	stmt  driver.Stmt
	busy  bool
}

func (c *cachingConn) inner() driverConn { return c.Conn.(driverConn) }

// BeginTx implements driver.ConnBeginTx.
// Every transaction begins IMMEDIATE (a writer), so it waits for the gate.
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	leave, err := c.gate.enter(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.inner().BeginTx(ctx, opts)
	if err != nil {
		leave()
		return nil, err
	}
	c.inTx = true
	return &gatedTx{Tx: tx, done: func() { c.inTx = false; leave() }}, nil
}

// enterFor takes the gate for a statement that may write outside a
// transaction; leave is nil when none is needed.
func (c *cachingConn) enterFor(ctx context.Context, query string) (leave func(), err error) {
	if c.inTx || c.gate == nil || !writes(query) {
		return nil, nil
	}
	return c.gate.enter(ctx)
}

// PrepareContext implements driver.ConnPrepareContext; explicitly prepared
// statements belong to their caller, not to the cache.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
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
	for e := c.lru.Back(); c.lru.Len() > stmtCacheSize && e != nil; {
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
	leave, err := c.enterFor(ctx, query)
	if err != nil {
		return nil, err
	}
	if leave != nil {
		defer leave()
	}
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
	leave, err := c.enterFor(ctx, query)
	if err != nil {
		return nil, err
	}
	if leave == nil {
		leave = func() {}
	}
	cs, err := c.take(ctx, query)
	if err != nil {
		leave()
		return nil, err
	}
	if cs == nil {
		rows, err := c.inner().QueryContext(ctx, query, args)
		if err != nil {
			leave()
			return nil, err
		}
		return &cachedRows{Rows: rows, done: leave}, nil
	}
	rows, err := cs.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(cs)
		leave()
		return nil, err
	}
	// A write's RETURNING rows hold the gate until they are closed.
	return &cachedRows{Rows: rows, done: func() { c.release(cs); leave() }}, nil
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

// cachedRows gives the statement back when the rows are closed; the driver
// then resets the statement for its next use instead of discarding it.
type cachedRows struct {
	driver.Rows
	done func()
}

// Close implements driver.Rows.
func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.done != nil {
		r.done()
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
