// Package postgres is the production backend of Recourse: PostgreSQL through
// a pgx v5 connection pool. Several replicas may share one database;
// migrations are serialised across them with an advisory lock, and rows read
// to be changed are locked with SELECT … FOR UPDATE.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recourse/recourse/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockKey is the advisory lock key that serialises migrations
// ("recourse" in ASCII, truncated to 64 bits).
const migrationLockKey int64 = 0x7265636f75727365

// Dialect describes PostgreSQL to the shared store.
func Dialect() sqlstore.Dialect {
	sub, _ := fs.Sub(migrations, "migrations")
	return sqlstore.Dialect{
		Name:       "postgres",
		Migrations: sub,
		ForUpdate:  " FOR UPDATE",
		// One round trip for a transaction's queued inserts: its audit
		// events, codes, tokens and outbox deliveries (sqlstore/queue.go).
		InsertInWith: true,
		// The audit filter columns are written, not generated: one JSON
		// parse per column and event was 5 % of PostgreSQL's time
		// (migration 0011).
		AuditFilterColumns: true,
		// BEGIN with a transaction's first statement, COMMIT with its
		// last (tx.go).
		Begin: begin,
		ListContains: func(col, param string) string {
			return "jsonb_exists(" + col + ", " + param + ")"
		},
		IsUniqueViolation: func(err error) bool {
			var e *pgconn.PgError
			return errors.As(err, &e) && e.Code == "23505"
		},
		// One sequencer at a time across replicas; the others skip a round
		// instead of queueing. Advisory locks are database-wide, so the key
		// is derived from the schema: logs in other schemas of the same
		// database (other deployments, parallel tests) do not contend.
		SequencerLock: `SELECT pg_try_advisory_xact_lock(hashtextextended('recourse audit sequencer:' || current_schema(), 0))`,
		LockMigrations: func(ctx context.Context, conn *sql.Conn) (func(), error) {
			if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
				return nil, err
			}
			return func() {
				_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
			}, nil
		},
	}
}

// Options control Open.
type Options struct {
	// Migrate applies pending migrations; without it an out-of-date schema
	// is refused.
	Migrate bool
	Now     func() time.Time
	// MaxConns bounds the pool. Default: pool_max_conns from the URL, else
	// DefaultMaxConns.
	MaxConns int32
}

// DefaultMaxConns is the pool's size unless the URL sets pool_max_conns.
// pgx's own default, the number of CPUs but at least 4, starved the
// server: a transaction holds its connection for all its round trips, and
// the job queue's LISTEN keeps one for good, which left three on a
// two-core machine for every request, job and read (docs/benchmarks.md).
const DefaultMaxConns = 16

// Store is the PostgreSQL store; Pool exposes the pgx pool for components
// that speak pgx natively (the job queue).
type Store struct {
	*sqlstore.Store
	Pool *pgxpool.Pool
}

// Open connects to the database at dsn (a postgres:// URL), migrates or
// checks its schema, and returns the store.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can echo the DSN, password included.
		return nil, errors.New("postgres: the database URL is not valid")
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	db := OpenDB(pool)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	d := Dialect()
	if opts.Migrate {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		if _, err := sqlstore.Migrate(ctx, db, d, now()); err != nil {
			db.Close()
			pool.Close()
			return nil, err
		}
	}
	if err := sqlstore.CheckSchema(ctx, db, d); err != nil {
		db.Close()
		pool.Close()
		return nil, err
	}
	return &Store{Store: sqlstore.New(db, d), Pool: pool}, nil
}

// Close closes the database handle and the pool.
func (s *Store) Close() error {
	err := s.Store.Close()
	s.Pool.Close()
	return err
}
