package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlstore"
	"github.com/recourse/recourse/store/storetest"
)

// countingConn counts the writes to the database: pgx writes each round
// trip's messages at once.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestTransactionRoundTrips checks that a transaction's BEGIN travels with
// its first statement and its COMMIT with its queued inserts: a
// transaction of one read and one audit event is two round trips, not
// four; one that ran nothing is none; one of queued inserts alone is one.
// Each case runs twice, and the second is counted, once pgx has prepared
// its statements.
func TestTransactionRoundTrips(t *testing.T) {
	ctx := t.Context()
	dsn := isolatedDSN(t)
	s, err := postgres.Open(ctx, dsn, postgres.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	cfg.MaxConns = 1
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &writes}, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db := postgres.OpenDB(pool)
	defer db.Close()
	st := sqlstore.New(db, postgres.Dialect())
	if err := st.CreateAccount(ctx, storetest.NewAccount("u1")); err != nil {
		t.Fatal(err)
	}
	n := 0
	event := func() *recourse.AuditEvent {
		n++
		return storetest.NewAuditEvent(recourse.ActionSessionRevoke, "u1", n)
	}
	errRolledBack := errors.New("rolled back")
	for _, tc := range []struct {
		name string
		fn   func(tx recourse.Tx) error
		want int64
		err  error
	}{
		{"nothing", func(recourse.Tx) error { return nil }, 0, nil},
		{"queued inserts alone", func(tx recourse.Tx) error {
			return errors.Join(tx.AddAuditEvent(ctx, event()), tx.AddAuditEvent(ctx, event()))
		}, 1, nil},
		{"a read and an event", func(tx recourse.Tx) error {
			if _, err := tx.Account(ctx, "u1"); err != nil {
				return err
			}
			return tx.AddAuditEvent(ctx, event())
		}, 2, nil},
		{"two reads and an event", func(tx recourse.Tx) error {
			for range 2 {
				if _, err := tx.Account(ctx, "u1"); err != nil {
					return err
				}
			}
			return tx.AddAuditEvent(ctx, event())
		}, 3, nil},
		// A statement deferred to the commit travels with it.
		{"a statement at commit and an event", func(tx recourse.Tx) error {
			if err := tx.(atCommit).ExecAtCommit(ctx, `SELECT 1`); err != nil {
				return err
			}
			return tx.AddAuditEvent(ctx, event())
		}, 1, nil},
		// One that fails fails the commit: the batch, then the ROLLBACK;
		// and since pgx forgets the statements of a batch that failed, it
		// deallocates and prepares them again first (two more; a claim
		// is lost only when its start went to the fallback).
		{"a failing statement at commit", func(tx recourse.Tx) error {
			if err := tx.(atCommit).ExecAtCommit(ctx, `SELECT claim_pending_start(-1)`); err != nil {
				return err
			}
			return tx.AddAuditEvent(ctx, event())
		}, 4, errClaimLost},
		// A failure after the first statement: the first round trip, then
		// the ROLLBACK's.
		{"rolled back", func(tx recourse.Tx) error {
			if _, err := tx.Account(ctx, "u1"); err != nil {
				return err
			}
			return errRolledBack
		}, 2, errRolledBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 2 {
				before := writes.Load()
				if err := st.InTx(ctx, tc.fn); !errors.Is(err, tc.err) && !(tc.err == errClaimLost && isClaimLost(err)) {
					t.Fatalf("InTx = %v, want %v", err, tc.err)
				}
				if got := writes.Load() - before; i == 1 && got != tc.want {
					t.Errorf("%d round trips, want %d", got, tc.want)
				}
			}
		})
	}
	// What the committed transactions wrote is there, twice each: two
	// events, one, one, one.
	recs, err := st.UnsequencedAuditEvents(ctx, 0, 100)
	if err != nil || len(recs) != 10 {
		t.Errorf("%d events stored (%v), want 10", len(recs), err)
	}
}

// atCommit is the store transaction's ExecAtCommit.
type atCommit interface {
	ExecAtCommit(ctx context.Context, query string, args ...any) error
}

// errClaimLost stands for claim_pending_start's failure in the cases.
var errClaimLost = errors.New("claim lost")

func isClaimLost(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "RC001"
}

// TestSQLTxJoinsTheTransaction checks that what a component writes through
// the transaction's *sql.Tx (the job queue's River) commits and rolls back
// with the store's own writes, whether it asks before the transaction's
// first statement or after.
func TestSQLTxJoinsTheTransaction(t *testing.T) {
	ctx := t.Context()
	s, err := postgres.Open(ctx, isolatedDSN(t), postgres.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := func() (jobs, events int) {
		t.Helper()
		if err := s.DB().QueryRowContext(ctx, `SELECT (SELECT count(*) FROM pending_starts), (SELECT count(*) FROM audit_events)`).Scan(&jobs, &events); err != nil {
			t.Fatal(err)
		}
		return jobs, events
	}
	errRolledBack := errors.New("rolled back")
	n := 0
	for _, tc := range []struct {
		name       string
		readFirst  bool
		fail       error
		wantStored int
	}{
		{"asked first, committed", false, nil, 1},
		{"asked after a read, committed", true, nil, 1},
		{"asked first, rolled back", false, errRolledBack, 0},
		{"asked after a read, rolled back", true, errRolledBack, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jobs0, events0 := count()
			err := s.InTx(ctx, func(tx recourse.Tx) error {
				if tc.readFirst {
					if _, err := tx.Account(ctx, "nobody"); !errors.Is(err, recourse.ErrNotFound) {
						return err
					}
				}
				sqlTx, err := tx.(interface {
					SQLTx(context.Context) (*sql.Tx, error)
				}).SQLTx(ctx)
				if err != nil {
					return err
				}
				if _, err := sqlTx.ExecContext(ctx, `INSERT INTO pending_starts (args, due_ms) VALUES ($1, $2)`, `{}`, 0); err != nil {
					return err
				}
				n++
				if err := tx.AddAuditEvent(ctx, storetest.NewAuditEvent(recourse.ActionSessionRevoke, "u1", n)); err != nil {
					return err
				}
				return tc.fail
			})
			if !errors.Is(err, tc.fail) {
				t.Fatalf("InTx = %v, want %v", err, tc.fail)
			}
			jobs, events := count()
			if jobs-jobs0 != tc.wantStored || events-events0 != tc.wantStored {
				t.Errorf("stored %d rows through database/sql and %d events, want %d of each", jobs-jobs0, events-events0, tc.wantStored)
			}
		})
	}
	// The connections went back to the pool outside a transaction.
	if _, err := s.DB().ExecContext(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
}
