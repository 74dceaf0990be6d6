package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/recourse/recourse"
)

// Migration is one embedded schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists the dialect's migrations in version order. Names must be
// NNNN_description.sql with unique, gap-free versions starting at 1.
func Migrations(d Dialect) ([]Migration, error) {
	entries, err := fs.ReadDir(d.Migrations, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", name)
		}
		b, err := fs.ReadFile(d.Migrations, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %q: expected version %d", m.Name, i+1)
		}
	}
	return ms, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)`

// SchemaVersion returns the version the database is at (0 when empty) and
// the latest version this binary knows.
func SchemaVersion(ctx context.Context, db *sql.DB, d Dialect) (current, latest int, err error) {
	ms, err := Migrations(d)
	if err != nil {
		return 0, 0, err
	}
	latest = len(ms)
	var exists bool
	switch d.Name {
	case "postgres":
		err = db.QueryRowContext(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists)
	default:
		err = db.QueryRowContext(ctx, `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&exists)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, latest, nil
	}
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, 0, fmt.Errorf("read schema version: %w", err)
	}
	return current, latest, nil
}

// Migrate applies the pending migrations, each in its own transaction, while
// holding the dialect's migration lock, so several replicas starting at once
// apply each migration exactly once. It returns the versions it applied. A
// database whose schema is newer than this binary is refused.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, now time.Time) ([]int, error) {
	ms, err := Migrations(d)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	unlock, err := d.LockMigrations(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer unlock()
	if _, err := conn.ExecContext(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if current > len(ms) {
		return nil, fmt.Errorf("database schema is at version %d, newer than this binary knows (%d); upgrade recourse", current, len(ms))
	}
	var applied []int
	for _, m := range ms[current:] {
		err := func() error {
			tx, err := conn.BeginTx(recourse.LargeWrite(ctx), nil) // a migration may change every row
			if err != nil {
				return err
			}
			defer tx.Rollback()
			var done int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, m.Version).Scan(&done); err != nil {
				return err
			}
			if done > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, now.UTC().Format(time.RFC3339Nano)); err != nil {
				return err
			}
			applied = append(applied, m.Version)
			return tx.Commit()
		}()
		if err != nil {
			return applied, fmt.Errorf("migrate: apply %s: %w", m.Name, err)
		}
	}
	return applied, nil
}

// CheckSchema returns an error unless the database is at exactly the latest
// schema version, so a replica never runs on a schema it does not know.
func CheckSchema(ctx context.Context, db *sql.DB, d Dialect) error {
	current, latest, err := SchemaVersion(ctx, db, d)
	if err != nil {
		return err
	}
	switch {
	case current < latest:
		return fmt.Errorf("database schema is at version %d, this binary needs %d: run `recourse migrate`", current, latest)
	case current > latest:
		return fmt.Errorf("database schema is at version %d, newer than this binary knows (%d); upgrade recourse", current, latest)
	}
	return nil
}
