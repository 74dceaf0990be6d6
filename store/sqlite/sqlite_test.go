package sqlite_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/store/sqlstore"
	"github.com/recourse/recourse/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) recourse.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "recourse.db"), sqlite.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "m.db")
	if _, err := sqlite.Open(ctx, path, sqlite.Options{}); err == nil {
		t.Fatal("Open without Migrate accepted an empty database")
	}
	db, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := sqlite.Dialect()
	ms, _ := sqlstore.Migrations(d)

	// Several migrators at once on an empty database apply each migration once.
	var wg sync.WaitGroup
	applied := make([][]int, 4)
	for i := range applied {
		wg.Go(func() {
			var err error
			applied[i], err = sqlstore.Migrate(ctx, db, d, storetest.T0)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	total := 0
	for _, a := range applied {
		total += len(a)
	}
	if total != len(ms) {
		t.Errorf("concurrent migrators applied %d migrations in all, want %d", total, len(ms))
	}
	// Up to date: nothing to do.
	again, err := sqlstore.Migrate(ctx, db, d, storetest.T0)
	if err != nil || len(again) != 0 {
		t.Errorf("second Migrate = %v, %v", again, err)
	}
	if err := sqlstore.CheckSchema(ctx, db, d); err != nil {
		t.Error(err)
	}
	// A schema newer than the binary is refused.
	if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '')`); err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.CheckSchema(ctx, db, d); err == nil {
		t.Error("CheckSchema accepted a newer schema")
	}
	if _, err := sqlstore.Migrate(context.Background(), db, d, storetest.T0); err == nil {
		t.Error("Migrate accepted a newer schema")
	}
}
