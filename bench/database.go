package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
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
//
// One poller serves every waiting client: each look is one statement for
// all the accounts waiting at that moment, at most every pollEvery. A
// client polling for its own mail cost PostgreSQL 4.6 statements a
// recovery-code flow, a seventh of the flow's (docs/benchmarks.md, change
// 45), load the bench put on the database it measures. Every look reads
// each waiter's mail from that waiter's own start, so a message committed
// late, after others created later, is still found.
type mailbox struct {
	db *sql.DB
	// kind is "sqlite" or "postgres": the SQL of a look differs.
	kind string

	mu      sync.Mutex
	waiters map[*mailWaiter]struct{}
	// polling: a poller is running; it stops when no one waits.
	polling bool
	// lastErr is the last look's failure (nil after a look that worked),
	// told to a waiter that times out.
	lastErr error
}

// mailWaiter is one client waiting for one code.
type mailWaiter struct {
	account, request string
	since            time.Time
	// got receives the code once; buffered, so the poller never blocks.
	got chan string
}

// pollEvery is the pause between two looks at the mailbox.
const pollEvery = 4 * time.Millisecond

var reCode = regexp.MustCompile(`(?i)code is (\d{6,8})\b`)

// lookSQL returns the statement of one look: the mail of the accounts $1
// (a text array on PostgreSQL, which reads the index once per account; a
// JSON array on SQLite) since $2. The bound on created_at keeps the lookup to
// the newest rows of the outbox's (account_id, created_at) index however
// large the outbox grows.
func (m *mailbox) lookSQL() string {
	if m.kind == "postgres" {
		return `SELECT account_id, created_at, body FROM outbox WHERE account_id = ANY($1::text[]) AND created_at >= $2`
	}
	return `SELECT account_id, created_at, body FROM outbox WHERE account_id IN (SELECT value FROM json_each($1)) AND created_at >= $2`
}

// look reads the mail of the given waiters once and hands each the code
// it waits for, if it has come; it returns the waiters still waiting.
func (m *mailbox) look(ctx context.Context, ws []*mailWaiter) ([]*mailWaiter, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	var accounts []string
	since := ws[0].since
	for _, w := range ws {
		if !slices.Contains(accounts, w.account) {
			accounts = append(accounts, w.account)
		}
		if w.since.Before(since) {
			since = w.since
		}
	}
	var list any = accounts
	if m.kind != "postgres" {
		b, err := json.Marshal(accounts)
		if err != nil {
			return ws, err
		}
		list = string(b)
	}
	rows, err := m.db.QueryContext(ctx, m.lookSQL(), list, since.UTC())
	if err != nil {
		return ws, err
	}
	defer rows.Close()
	found := make(map[*mailWaiter]string)
	for rows.Next() {
		var account, body string
		var created time.Time
		if err := rows.Scan(&account, &created, &body); err != nil {
			return ws, err
		}
		for _, w := range ws {
			if w.account != account || created.Before(w.since) || !strings.Contains(body, w.request) {
				continue
			}
			if mm := reCode.FindStringSubmatch(body); mm != nil {
				found[w] = mm[1]
			}
		}
	}
	if err := rows.Err(); err != nil {
		return ws, err
	}
	waiting := ws[:0:0]
	for _, w := range ws {
		if c, ok := found[w]; ok {
			w.got <- c
			continue
		}
		waiting = append(waiting, w)
	}
	return waiting, nil
}

// poll looks at the mailbox for everyone waiting, every pollEvery, until
// no one waits. A failed look is tried again: a waiter gives up at its
// own deadline and is told the last failure.
func (m *mailbox) poll(ctx context.Context) {
	t := time.NewTimer(pollEvery)
	defer t.Stop()
	for {
		m.mu.Lock()
		if len(m.waiters) == 0 || ctx.Err() != nil {
			m.polling = false
			m.mu.Unlock()
			return
		}
		ws := make([]*mailWaiter, 0, len(m.waiters))
		for w := range m.waiters {
			ws = append(ws, w)
		}
		m.mu.Unlock()

		waiting, err := m.look(ctx, ws)
		m.mu.Lock()
		m.lastErr = err
		for _, w := range ws {
			if !slices.Contains(waiting, w) {
				delete(m.waiters, w)
			}
		}
		m.mu.Unlock()

		t.Reset(pollEvery)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// waitCode waits until the recovery code mailed to accountID for
// requestID arrives, the context ends or timeout passes. The server sends
// it from a background job, so the wait is the job queue's pick-up delay
// plus the job's own work. since is when the request was sent: only mail
// from then on is searched (the server must share the bench's clock, as it
// does on one machine).
func (m *mailbox) waitCode(ctx context.Context, accountID, requestID string, since time.Time, timeout time.Duration) (string, error) {
	w := &mailWaiter{account: accountID, request: requestID, since: since.Add(-250 * time.Millisecond), got: make(chan string, 1)}
	m.mu.Lock()
	if m.waiters == nil {
		m.waiters = make(map[*mailWaiter]struct{})
	}
	m.waiters[w] = struct{}{}
	if !m.polling {
		m.polling = true
		// The poller outlives this waiter's context: it serves the others.
		go m.poll(context.WithoutCancel(ctx))
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.waiters, w)
		m.mu.Unlock()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case c := <-w.got:
		return c, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
		m.mu.Lock()
		lastErr := m.lastErr
		m.mu.Unlock()
		if lastErr != nil {
			return "", fmt.Errorf("no code after %s; the last look at the mailbox failed: %w", timeout, lastErr)
		}
		return "", fmt.Errorf("no code after %s", timeout)
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
