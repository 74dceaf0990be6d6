package sqlstore

import (
	"testing"
)

func TestRowsPerStatement(t *testing.T) {
	shapes := map[int]bool{}
	for n := 1; n <= 1000; n++ {
		covered := 0
		for rest := n; rest > 0; {
			c := rowsPerStatement(rest)
			if c < 1 || c > rest || c > maxRowsPerStatement {
				t.Fatalf("rowsPerStatement(%d) = %d", rest, c)
			}
			shapes[c] = true
			covered += c
			rest -= c
		}
		if covered != n {
			t.Fatalf("%d rows split into statements covering %d", n, covered)
		}
	}
	if len(shapes) != 7 {
		t.Errorf("%d statement shapes, want 7 (1, 2, 4 … 64)", len(shapes))
	}
}

// TestQueueTouches: a statement is preceded by a flush when it names a
// table with queued rows, and only then.
func TestQueueTouches(t *testing.T) {
	q := &writeQueue{}
	q.add(tableChallenges, nil)
	q.add(tableOutbox, nil)
	q.add(tableNotifications, nil)
	for _, c := range []struct {
		query string
		want  bool
	}{
		{`UPDATE challenges SET attempts = attempts + 1 WHERE request_id = $1`, true},
		{`SELECT body FROM outbox WHERE account_id = $1`, true},
		{`SELECT id FROM notifications WHERE id = $1`, true},
		{`SELECT id FROM recovery_requests WHERE id = $1 FOR UPDATE`, false},
		{`SELECT count(*) FROM audit_events WHERE seq IS NULL`, false}, // no event waits
		{`UPDATE tokens SET used_at = $3 WHERE hash = $1`, false},      // no token waits
	} {
		if got := q.touches(c.query); got != c.want {
			t.Errorf("touches(%q) = %v, want %v", c.query, got, c.want)
		}
	}
	if (&writeQueue{}).touches(`SELECT * FROM challenges, tokens, outbox, notifications, audit_events, recovery_requests, authenticator_events`) {
		t.Error("an empty queue touches a statement")
	}
	// A queued request is written before its table is named, and before
	// the tables that refer to it.
	r := &writeQueue{}
	r.add(tableRecoveries, nil)
	r.add(tableAuthEvents, nil)
	for _, c := range []struct {
		query string
		want  bool
	}{
		{`SELECT id FROM recovery_requests WHERE id = $1 FOR UPDATE`, true},
		{`INSERT INTO recovery_evidence (request_id, kind) VALUES ($1, $2)`, true},
		{`INSERT INTO recovery_votes (request_id, approver_id) VALUES ($1, $2)`, true},
		{`SELECT id FROM authenticator_events WHERE account_id = $1`, true},
		{`SELECT id FROM accounts WHERE id = $1`, false},
	} {
		if got := r.touches(c.query); got != c.want {
			t.Errorf("with a queued request: touches(%q) = %v, want %v", c.query, got, c.want)
		}
	}
}
