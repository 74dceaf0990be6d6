// Package sqlite is the embedded SQLite backend of Recourse (modernc.org/sqlite,
// pure Go): one database file with WAL journaling, a busy timeout, foreign keys
// enforced, and write transactions that take the write lock up front
// (BEGIN IMMEDIATE) so two writers never deadlock on a lock upgrade.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/recourse/recourse/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect describes SQLite to the shared store.
func Dialect() sqlstore.Dialect {
	sub, _ := fs.Sub(migrations, "migrations")
	return sqlstore.Dialect{
		Name:       "sqlite",
		Migrations: sub,
		// BEGIN IMMEDIATE already serialises writers.
		ForUpdate: "",
		ListContains: func(col, param string) string {
			return "EXISTS (SELECT 1 FROM json_each(" + col + ") WHERE json_each.value = " + param + ")"
		},
		IsUniqueViolation: func(err error) bool {
			var e *sqlite.Error
			if !errors.As(err, &e) {
				return false
			}
			c := e.Code()
			return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
		},
		// Each migration runs in a BEGIN IMMEDIATE transaction and re-checks
		// whether it is applied, which serialises concurrent migrators.
		LockMigrations: func(context.Context, *sql.Conn) (func(), error) { return func() {}, nil },
		LastInsertID:   true,
	}
}

// OpenDB opens the database file at path with Recourse's settings.
func OpenDB(path string) (*sql.DB, error) {
	db, _, err := openDB(path)
	return db, err
}

func openDB(path string) (*sql.DB, *cachingConnector, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	base, err := sqlite.NewConnector("file:" + path + "?" + q.Encode())
	if err != nil {
		return nil, nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// Connections keep their compiled statements (stmtcache.go); every
	// write goes to one connection, the writer (writer.go).
	c := newConnector(base)
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, c, nil
}

// Options control Open.
type Options struct {
	// Migrate applies pending migrations; without it an out-of-date schema
	// is refused.
	Migrate bool
	Now     func() time.Time
}

// Open opens (creating if needed) the SQLite database at path, migrates or
// checks its schema, and returns the store.
func Open(ctx context.Context, path string, opts Options) (*sqlstore.Store, error) {
	db, err := OpenDB(path)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	d := Dialect()
	if opts.Migrate {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		if _, err := sqlstore.Migrate(ctx, db, d, now()); err != nil {
			db.Close()
			return nil, err
		}
	}
	if err := sqlstore.CheckSchema(ctx, db, d); err != nil {
		db.Close()
		return nil, err
	}
	return sqlstore.New(db, d), nil
}
