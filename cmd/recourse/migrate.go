package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"time"

	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/store/sqlstore"
)

// cmdMigrate applies pending schema migrations and reports the version.
func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	var cf commonFlags
	cf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(fs, &cf, getenv, nil)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, c, true)
	if err != nil {
		return err
	}
	defer st.Close()
	var db *sql.DB
	var d sqlstore.Dialect
	switch s := st.(type) {
	case *sqlstore.Store:
		db, d = s.DB(), sqlite.Dialect()
	case *postgres.Store:
		db, d = s.DB(), postgres.Dialect()
	default:
		return fmt.Errorf("migrate: unexpected store %T", st)
	}
	// Open already applied what was pending; Migrate again is a no-op that
	// confirms the lock and the version.
	if _, err := sqlstore.Migrate(ctx, db, d, time.Now()); err != nil {
		return err
	}
	if err := jobs.Migrate(ctx, db, d.Name, nil); err != nil {
		return err
	}
	current, latest, err := sqlstore.SchemaVersion(ctx, db, d)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database schema at version %d (latest %d)\n", current, latest)
	return nil
}
