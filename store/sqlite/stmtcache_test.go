package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestStatementCache: a statement is compiled once per connection and
// reused; a query whose statement is busy (its rows still open) runs with a
// fresh one; the cache stays bounded; results are right throughout.
func TestStatementCache(t *testing.T) {
	ctx := t.Context()
	db, err := OpenDB(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection, so one cache to look at
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := conn.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ($1, $2)`, i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	var cc *cachingConn
	if err := conn.Raw(func(c any) error { cc = c.(*cachingConn); return nil }); err != nil {
		t.Fatal(err)
	}
	// Writes run on the writer's connection and are cached there, once
	// each, beside the writer's own BEGIN, SAVEPOINT, RELEASE and COMMIT.
	if n := len(cc.byQuery); n != 0 {
		t.Errorf("reader's cached statements = %d, want 0 (writes run on the writer)", n)
	}
	wc := cc.w.conn
	for _, q := range []string{`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`, `INSERT INTO t (k, v) VALUES ($1, $2)`, "SAVEPOINT " + savepoint, "COMMIT"} {
		if _, ok := wc.byQuery[q]; !ok {
			t.Errorf("writer's cache lacks %q", q)
		}
	}
	if n := len(wc.byQuery); n != 6 {
		t.Errorf("writer's cached statements = %d, want 6 (the CREATE, the INSERT run ten times, BEGIN, SAVEPOINT, RELEASE, COMMIT)", n)
	}

	// The same query while its own rows are open: nested, both right.
	const q = `SELECT v FROM t WHERE k >= $1 ORDER BY k`
	outer, err := conn.QueryContext(ctx, q, 8)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for outer.Next() {
		var v string
		if err := outer.Scan(&v); err != nil {
			t.Fatal(err)
		}
		inner, err := conn.QueryContext(ctx, q, 9)
		if err != nil {
			t.Fatal(err)
		}
		for inner.Next() {
			var w string
			if err := inner.Scan(&w); err != nil {
				t.Fatal(err)
			}
			got = append(got, v+"/"+w)
		}
		inner.Close()
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[v8/v9 v9/v9]" {
		t.Errorf("nested queries = %v, want [v8/v9 v9/v9]", got)
	}
	// Reused after its rows closed, with new arguments.
	var v string
	if err := conn.QueryRowContext(ctx, q, 3).Scan(&v); err != nil || v != "v3" {
		t.Errorf("reused statement: %q, %v; want v3", v, err)
	}
	if cc.byQuery[q].Value.(*cachedStmt).busy {
		t.Error("statement still marked busy after its rows closed")
	}

	// Bounded: many distinct statements keep at most stmtCacheSize.
	for i := range stmtCacheSize + 20 {
		var n int
		if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) + %d FROM t`, i)).Scan(&n); err != nil || n != 10+i {
			t.Fatalf("distinct statement %d: %d, %v", i, n, err)
		}
	}
	if n, l := len(cc.byQuery), cc.lru.Len(); n > stmtCacheSize || n != l {
		t.Errorf("cache holds %d statements (list %d), want at most %d", n, l, stmtCacheSize)
	}

	// A failing statement leaves the cache usable.
	if _, err := conn.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ($1, $2)`, 1, "dup"); err == nil {
		t.Fatal("duplicate key accepted")
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ($1, $2)`, 11, "v11"); err != nil {
		t.Fatalf("statement after a failure: %v", err)
	}
}
