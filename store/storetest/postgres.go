package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/recourse/recourse"
)

// PostgresDSN creates a fresh schema for the test and returns a DSN whose
// search_path points at it; the schema is dropped when the test ends. It
// skips without RECOURSE_TEST_POSTGRES_DSN, except under CI=true, where a
// missing database is a failure: the PostgreSQL tests must run in CI.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("RECOURSE_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("CI=true but RECOURSE_TEST_POSTGRES_DSN is not set: the PostgreSQL tests must run in CI")
		}
		tb.Skip("set RECOURSE_TEST_POSTGRES_DSN to run the PostgreSQL tests")
	}
	schema := "t_" + recourse.NewID("")
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(context.Background(), fmt.Sprintf(`CREATE SCHEMA %q`, schema)); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.ExecContext(context.Background(), fmt.Sprintf(`DROP SCHEMA %q CASCADE`, schema))
	})
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
