package postgres_test

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlstore"
	"github.com/recourse/recourse/store/storetest"
)

// disagreeing counts the audit rows whose filter columns differ from what
// the generated columns of migration 0002 computed from data.
const disagreeing = `SELECT count(*) FILTER (WHERE
        event_id IS DISTINCT FROM (data::jsonb) ->> 'id'
     OR ev_time IS DISTINCT FROM (data::jsonb) ->> 'time'
     OR actor_id IS DISTINCT FROM (data::jsonb) -> 'actor' ->> 'account_id'
     OR subject_id IS DISTINCT FROM (data::jsonb) ->> 'subject_id'
     OR action IS DISTINCT FROM (data::jsonb) ->> 'action'
     OR request_id IS DISTINCT FROM (data::jsonb) ->> 'request_id'), count(*)
    FROM audit_events`

// TestAuditFilterColumns: the filter columns the store writes (migration
// 0011) hold exactly what PostgreSQL generated from data before it, for
// an event stored before the migration, events added one at a time and in
// a transaction's statements of every shape (with and without deliveries
// to the outbox), awkward values included, an insert of data alone (an
// older replica's), before and after sequencing; and an update that
// would change them is refused (migration 0012).
func TestAuditFilterColumns(t *testing.T) {
	ctx := t.Context()
	dsn := isolatedDSN(t)

	// The schema as it was before 0011, with an event in it.
	before := postgres.Dialect()
	old := fstest.MapFS{}
	ms, err := fs.ReadDir(before.Migrations, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name() >= "0011" {
			continue
		}
		b, err := fs.ReadFile(before.Migrations, m.Name())
		if err != nil {
			t.Fatal(err)
		}
		old[m.Name()] = &fstest.MapFile{Data: b}
	}
	before.Migrations = old
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db := postgres.OpenDB(pool)
	defer db.Close()
	if _, err := sqlstore.Migrate(ctx, db, before, storetest.T0); err != nil {
		t.Fatal(err)
	}
	early := storetest.NewAuditEvent(recourse.ActionSessionRevoke, "early", 0)
	data, err := early.MarshalCanonical()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO audit_events (data) VALUES ($1)`, string(data)); err != nil {
		t.Fatal(err)
	}

	s, err := postgres.Open(ctx, dsn, postgres.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check := func(when string, want int) {
		t.Helper()
		var bad, n int
		if err := s.Pool.QueryRow(ctx, disagreeing).Scan(&bad, &n); err != nil {
			t.Fatal(err)
		}
		if bad != 0 || n != want {
			t.Errorf("%s: %d of %d events' filter columns disagree with data (want 0 of %d)", when, bad, n, want)
		}
	}
	check("after the migration", 1)
	if _, err := s.AuditRecordByEventID(ctx, early.ID); err != nil {
		t.Errorf("the event stored before the migration is not found by id: %v", err)
	}

	// Awkward values: characters JSON escapes, a subject clipped to its
	// bound, bytes that are not UTF-8, empty fields.
	awkward := []func(e *recourse.AuditEvent){
		func(e *recourse.AuditEvent) { e.SubjectID = `<a href="x">&amp;</a> "Zoë" \ ` + "\u2028\t" },
		func(e *recourse.AuditEvent) { e.SubjectID = strings.Repeat("é", 200) },
		func(e *recourse.AuditEvent) { e.Actor.AccountID = "bad \xff\xfe bytes" },
		func(e *recourse.AuditEvent) { e.RequestID, e.SubjectID, e.Actor.AccountID = "", "", "" },
		func(e *recourse.AuditEvent) {
			e.Time = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
		},
	}
	n := 1
	for i, f := range awkward {
		e := storetest.NewAuditEvent(recourse.ActionSessionRevoke, fmt.Sprint("one", i), i)
		f(e)
		if err := s.AddAuditEvent(ctx, e); err != nil {
			t.Fatalf("AddAuditEvent %d: %v", i, err)
		}
		n++
	}
	check("events added one at a time", n)

	if err := s.CreateAccount(ctx, storetest.NewAccount("acct")); err != nil {
		t.Fatal(err)
	}
	for _, mail := range []int{0, 1, 3} {
		err := s.InTx(ctx, func(tx recourse.Tx) error {
			for i, f := range awkward {
				e := storetest.NewAuditEvent(recourse.ActionSessionRevoke, fmt.Sprint("tx", i), i)
				f(e)
				if err := tx.AddAuditEvent(ctx, e); err != nil {
					return err
				}
			}
			for i := range mail {
				at := storetest.T0.Add(time.Duration(i) * time.Second)
				m := &recourse.OutboxMessage{AccountID: "acct", To: "p@example.com", Subject: "s", Body: "b", CreatedAt: at}
				note := &recourse.Notification{ID: fmt.Sprintf("msg_%d_%d", mail, i), Kind: recourse.NotifyEmail, AccountID: "acct", To: m.To,
					Subject: m.Subject, State: recourse.NotificationSent, CreatedAt: at, SentAt: &at}
				if err := tx.DeliverToOutbox(ctx, m, note); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("transaction with %d deliveries: %v", mail, err)
		}
		n += len(awkward)
		check(fmt.Sprintf("a transaction's events with %d deliveries", mail), n)
	}

	// A replica still on a binary from before 0011 writes data only
	// (migration 0012 fills the columns in).
	late := storetest.NewAuditEvent(recourse.ActionSessionRevoke, "late <&>", 9)
	if data, err = late.MarshalCanonical(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool.Exec(ctx, `INSERT INTO audit_events (data) VALUES ($1)`, string(data)); err != nil {
		t.Fatal(err)
	}
	n++
	check("an insert of data alone", n)

	if _, err := s.Pool.Exec(ctx, `UPDATE audit_events SET seq = row_id`); err != nil {
		t.Fatal(err)
	}
	check("after sequencing", n)

	// An event's filter columns never change: rewriting one to hide it
	// from a filtered list is refused.
	for _, col := range []string{"event_id", "ev_time", "actor_id", "subject_id", "action", "request_id"} {
		tag, err := s.Pool.Exec(ctx, `UPDATE audit_events SET `+col+` = 'x' WHERE row_id = (SELECT min(row_id) FROM audit_events)`)
		if err == nil {
			t.Errorf("an update of %s was accepted (%s)", col, tag)
		}
	}
	check("after the refused updates", n)
}
