package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/store/storetest"
)

// testDB is a fresh database for one test.
type testDB struct {
	st recourse.Store
	db *sql.DB
	// reopen opens the database again, as another replica would.
	reopen func(tb testing.TB) (recourse.Store, *sql.DB)
	// target is the SQLite path or the PostgreSQL DSN.
	target string
}

// backend opens test databases of one kind.
type backend struct {
	name string
	open func(tb testing.TB) testDB
}

// backends returns SQLite always, and PostgreSQL when
// RECOURSE_TEST_POSTGRES_DSN is set (required under CI=true).
func backends(tb testing.TB) []backend {
	bs := []backend{{"sqlite", openSQLite}}
	if os.Getenv("RECOURSE_TEST_POSTGRES_DSN") != "" || os.Getenv("CI") == "true" {
		bs = append(bs, backend{"postgres", openPostgres})
	}
	return bs
}

// openTarget opens an existing test database.
func openTarget(tb testing.TB, backend, target string) (recourse.Store, *sql.DB) {
	tb.Helper()
	var st recourse.Store
	var db *sql.DB
	switch backend {
	case "sqlite":
		s, err := sqlite.Open(context.Background(), target, sqlite.Options{Migrate: true})
		if err != nil {
			tb.Fatal(err)
		}
		st, db = s, s.DB()
	default:
		s, err := postgres.Open(context.Background(), target, postgres.Options{Migrate: true})
		if err != nil {
			tb.Fatal(err)
		}
		st, db = s, s.DB()
	}
	tb.Cleanup(func() { st.Close() })
	return st, db
}

func openSQLite(tb testing.TB) testDB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "audit.db")
	reopen := func(tb testing.TB) (recourse.Store, *sql.DB) { return openTarget(tb, "sqlite", path) }
	st, db := reopen(tb)
	return testDB{st: st, db: db, reopen: reopen, target: path}
}

func openPostgres(tb testing.TB) testDB {
	tb.Helper()
	dsn := storetest.PostgresDSN(tb)
	reopen := func(tb testing.TB) (recourse.Store, *sql.DB) { return openTarget(tb, "postgres", dsn) }
	st, db := reopen(tb)
	return testDB{st: st, db: db, reopen: reopen, target: dsn}
}

const testOrigin = "recourse.test/audit"

// testKey is a fixed signing key, so tests and golden files are stable.
var testSKey, testVKey = func() (string, string) {
	s, v, err := note.GenerateKey(zeroReader{}, testOrigin)
	if err != nil {
		panic(err)
	}
	return s, v
}()

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 7
	}
	return len(p), nil
}

func testSigner(tb testing.TB) note.Signer {
	tb.Helper()
	s, err := NewSigner(testSKey)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustSigner(tb testing.TB, skey string) note.Signer {
	tb.Helper()
	s, err := NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustVerifier(tb testing.TB, vkey string) note.Verifier {
	tb.Helper()
	v, err := NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func testVerifier(tb testing.TB) note.Verifier {
	tb.Helper()
	v, err := NewVerifier(testVKey)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

func newTestSequencer(tb testing.TB, st recourse.Store, batch int) *Sequencer {
	tb.Helper()
	s, err := NewSequencer(SequencerOptions{Store: st, Signer: testSigner(tb), Clock: fixedClock{storetest.T0}, Batch: batch})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// appendEvents stores n events in one transaction; their times follow
// position order from the given second.
func appendEvents(tb testing.TB, st recourse.Store, n, fromSecond int) []*recourse.AuditEvent {
	tb.Helper()
	var evs []*recourse.AuditEvent
	err := st.InTx(context.Background(), func(tx recourse.Tx) error {
		for i := range n {
			e := storetest.NewAuditEvent(recourse.ActionSignInPassword, fmt.Sprintf("user%03d", (fromSecond+i)%250), fromSecond+i)
			if err := tx.AddAuditEvent(context.Background(), e); err != nil {
				return err
			}
			evs = append(evs, e)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

// buildLog makes the 100-event log the tampering tests use: positions 0–39
// sequenced ten at a time, 40–59 one at a time (a checkpoint per event),
// 60–99 ten at a time. Checkpoints: 10, 20, 30, 40, 41, …, 60, 70, 80, 90, 100.
func buildLog(tb testing.TB, st recourse.Store) {
	tb.Helper()
	seq := newTestSequencer(tb, st, 10)
	step := func(n, from int) {
		appendEvents(tb, st, n, from)
		if got, err := seq.Sequence(context.Background()); err != nil || got != n {
			tb.Fatalf("Sequence = %d, %v; want %d", got, err, n)
		}
	}
	for i := 0; i < 40; i += 10 {
		step(10, i)
	}
	for i := 40; i < 60; i++ {
		step(1, i)
	}
	for i := 60; i < 100; i += 10 {
		step(10, i)
	}
}
