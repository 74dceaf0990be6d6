package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlite"
)

// database is where the bench server keeps its data.
type database struct {
	// kind is "sqlite" or "postgres"; flag is the value of serve's
	// --database.
	kind, flag string
	// sqlitePath or dsn (with the bench schema on its search_path).
	sqlitePath, dsn string
	// drop removes what the bench created (a PostgreSQL schema).
	drop func(context.Context) error
}

// freshDatabase prepares an empty database: an SQLite file in dir, or a new
// schema in the PostgreSQL database at pgURL.
func freshDatabase(ctx context.Context, dir, pgURL string) (*database, error) {
	if pgURL == "" {
		path := filepath.Join(dir, "recourse.db")
		return &database{kind: "sqlite", flag: "sqlite:" + path, sqlitePath: path, drop: func(context.Context) error { return nil }}, nil
	}
	schema := "bench_" + strings.TrimPrefix(recourse.NewID(""), "_")
	admin, err := sql.Open("pgx", connURL(pgURL))
	if err != nil {
		return nil, errors.New("postgres: the database URL is not valid")
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, fmt.Sprintf(`CREATE SCHEMA %q`, schema)); err != nil {
		return nil, fmt.Errorf("postgres: create schema %s: %w", schema, err)
	}
	u, err := url.Parse(pgURL)
	if err != nil {
		return nil, errors.New("postgres: the database URL is not valid")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db := &database{kind: "postgres", flag: u.String(), dsn: u.String()}
	db.drop = func(ctx context.Context) error {
		admin, err := sql.Open("pgx", connURL(pgURL))
		if err != nil {
			return err
		}
		defer admin.Close()
		_, err = admin.ExecContext(ctx, fmt.Sprintf(`DROP SCHEMA %q CASCADE`, schema))
		return err
	}
	return db, nil
}

// connURL is a PostgreSQL URL for one connection of the bench's own: the
// server's URL without the pool settings (pool_max_conns and the other
// pool_ parameters), which only pgx's pool reads and a plain connection
// would send to PostgreSQL as unknown run-time parameters. A URL that
// does not parse is returned as it is, for the caller's error.
func connURL(pgURL string) string {
	u, err := url.Parse(pgURL)
	if err != nil {
		return pgURL
	}
	q := u.Query()
	pool := false
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
			pool = true
		}
	}
	if !pool {
		return pgURL
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// existingDatabase describes a running server's database (--url with
// --database).
func existingDatabase(flag string) (*database, error) {
	switch {
	case strings.HasPrefix(flag, "sqlite:"):
		p := strings.TrimPrefix(flag, "sqlite:")
		return &database{kind: "sqlite", flag: flag, sqlitePath: p, drop: func(context.Context) error { return nil }}, nil
	case strings.HasPrefix(flag, "postgres://"), strings.HasPrefix(flag, "postgresql://"):
		return &database{kind: "postgres", flag: flag, dsn: flag, drop: func(context.Context) error { return nil }}, nil
	}
	return nil, errors.New("database: give sqlite:PATH or a postgres:// URL")
}

// openStore opens the store, migrating it, for seeding.
func (d *database) openStore(ctx context.Context) (recourse.Store, error) {
	if d.kind == "sqlite" {
		return sqlite.Open(ctx, d.sqlitePath, sqlite.Options{Migrate: true})
	}
	return postgres.Open(ctx, d.dsn, postgres.Options{Migrate: true})
}

// openSQL opens a plain handle for the mailbox and the job counters.
func (d *database) openSQL() (*sql.DB, error) {
	if d.kind == "sqlite" {
		return sqlite.OpenDB(d.sqlitePath)
	}
	db, err := sql.Open("pgx", connURL(d.dsn))
	if err != nil {
		return nil, errors.New("postgres: the database URL is not valid")
	}
	// Idle connections are kept: database/sql keeps two by default, and
	// sixteen clients polling for mail then opened a connection, and had
	// PostgreSQL parse the query again, for most polls.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	return db, nil
}

// mailbox reads the codes the server "mailed": with no SMTP relay, every
// message is kept in the outbox table. This is how a person would read the
// mail; the bench reads the table directly rather than through the server,
// so the lookups cost the bench, not the server being measured.
type mailbox struct {
	db *sql.DB
}

var reCode = regexp.MustCompile(`(?i)code is (\d{6,8})\b`)

// errNoMail means the code has not arrived (yet).
var errNoMail = errors.New("no code in the mailbox")

// code returns the recovery code mailed to accountID for requestID since
// a moment before the request started. The time bound keeps the lookup to
// the newest rows of the outbox's created_at index however large the
// outbox grows.
func (m *mailbox) code(ctx context.Context, accountID, requestID string, since time.Time) (string, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT body FROM outbox WHERE created_at >= $1 AND account_id = $2 ORDER BY created_at DESC LIMIT 12`,
		since.UTC(), accountID)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return "", err
		}
		if !strings.Contains(body, requestID) {
			continue
		}
		if mm := reCode.FindStringSubmatch(body); mm != nil {
			return mm[1], nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return "", errNoMail
}

// waitCode polls the mailbox until the code arrives, the context ends or
// timeout passes. The server sends it from a background job, so the wait
// is the job queue's pick-up delay plus the job's own work. since is when
// the request was sent: only mail from then on is searched (the server
// must share the bench's clock, as it does on one machine).
func (m *mailbox) waitCode(ctx context.Context, accountID, requestID string, since time.Time, timeout time.Duration) (string, error) {
	since = since.Add(-250 * time.Millisecond)
	deadline := time.Now().Add(timeout)
	pause := 3 * time.Millisecond
	for {
		c, err := m.code(ctx, accountID, requestID, since)
		if !errors.Is(err, errNoMail) {
			return c, err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no code after %s", timeout)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
		pause = min(pause*3/2, 20*time.Millisecond)
	}
}

// jobCounts reads the River job table: jobs completed so far, and those
// waiting or running now. Scheduled jobs, such as request expiries due in
// days, are not counted. Starts the server runs in process are pending
// starts until they run (jobs/pending.go): those not yet run count as
// waiting, and those run are not among the completed.
func jobCounts(ctx context.Context, db *sql.DB) (completed, waiting int64, err error) {
	err = db.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN state = 'completed' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN state IN ('available', 'running', 'retryable', 'pending') THEN 1 ELSE 0 END), 0)
			+ (SELECT count(*) FROM pending_starts)
		FROM river_job`).Scan(&completed, &waiting)
	return completed, waiting, err
}
