package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/recourse/recourse"
)

// writeQueue holds the inserts a transaction defers to its end: its audit
// events and the messages it delivers to the outbox. Nothing in the
// transaction reads them back before flushQueued, which runs before the
// commit and before every read of the audit log, the outbox or the
// notifications, so the transaction still reads its own writes.
//
// Why: a recovery's transaction records two to five audit events and
// sends two or three notices, each of them an insert, and on PostgreSQL
// each statement is a round trip (about a fifth of a recovery-code flow's
// statements were these inserts). flushQueued writes them in multi-row
// statements, and on PostgreSQL in one statement whose WITH clauses insert
// into the other tables (docs/benchmarks.md).
type writeQueue struct {
	audit []string // canonical encodings of audit events
	mail  []queuedMail
}

type queuedMail struct {
	m *recourse.OutboxMessage
	n *recourse.Notification
}

const (
	outboxInsert       = `INSERT INTO outbox (id, account_id, to_address, subject, body, created_at) VALUES `
	notificationInsert = `INSERT INTO notifications (id, kind, account_id, to_address, subject, body, state, attempts, last_error, created_at, updated_at, sent_at) VALUES `
	auditInsert        = `INSERT INTO audit_events (data) VALUES `
)

func (q queuedMail) outboxArgs() []any {
	return []any{q.m.ID, q.m.AccountID, q.m.To, q.m.Subject, q.m.Body, utc(q.m.CreatedAt)}
}

func (q queuedMail) notificationArgs() []any {
	n := q.n
	return []any{n.ID, n.Kind, n.AccountID, n.To, n.Subject, n.Body, n.State, n.Attempts, n.LastError, utc(n.CreatedAt), utc(n.UpdatedAt), nullTime(n.SentAt)}
}

func (s queries) DeliverToOutbox(ctx context.Context, m *recourse.OutboxMessage, n *recourse.Notification) error {
	if n.State == recourse.NotificationQueued {
		return fmt.Errorf("deliver to outbox: notification %s is still queued", n.ID)
	}
	if m.ID == "" {
		m.ID = outboxID()
	}
	if n.UpdatedAt.IsZero() {
		n.UpdatedAt = n.CreatedAt
	}
	n.Body = []byte{} // the outbox keeps the message
	if s.queue != nil {
		s.queue.mail = append(s.queue.mail, queuedMail{m, n})
		return nil
	}
	return s.inTransaction(ctx, func(q queries) error {
		if q.queue == nil {
			q.queue = &writeQueue{}
		}
		q.queue.mail = append(q.queue.mail, queuedMail{m, n})
		return q.flushQueued(ctx)
	})
}

// values appends n groups of width numbered parameters, from $first on.
func values(b *strings.Builder, n, width, first int) int {
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range width {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "$%d", first)
			first++
		}
		b.WriteByte(')')
	}
	return first
}

// flushQueued writes the transaction's queued inserts, in the order they
// were queued within each table, in multi-row statements of fixed shapes.
// Where the dialect allows inserts in WITH clauses (PostgreSQL) a batch of
// audit events and one of deliveries go in one statement.
func (s queries) flushQueued(ctx context.Context) error {
	if s.queue == nil {
		return nil
	}
	q := s.queue
	for len(q.audit) > 0 || len(q.mail) > 0 {
		na, nm := 0, 0
		if len(q.audit) > 0 {
			na = rowsPerStatement(len(q.audit))
		}
		if len(q.mail) > 0 {
			nm = rowsPerStatement(len(q.mail))
		}
		var audit, outbox, notes strings.Builder
		var auditArgs, outboxArgs, noteArgs []any
		p := 1
		if na > 0 {
			audit.WriteString(auditInsert)
			p = values(&audit, na, 1, p)
			for _, d := range q.audit[:na] {
				auditArgs = append(auditArgs, d)
			}
		}
		if nm > 0 {
			if !s.d.InsertInWith {
				p = 1 // statements of their own
			}
			outbox.WriteString(outboxInsert)
			p = values(&outbox, nm, 6, p)
			if !s.d.InsertInWith {
				p = 1
			}
			notes.WriteString(notificationInsert)
			values(&notes, nm, 12, p)
			for _, qm := range q.mail[:nm] {
				outboxArgs = append(outboxArgs, qm.outboxArgs()...)
			}
			for _, qm := range q.mail[:nm] {
				noteArgs = append(noteArgs, qm.notificationArgs()...)
			}
		}
		switch {
		case nm == 0:
			if _, err := s.q.ExecContext(ctx, audit.String(), auditArgs...); err != nil {
				return s.wrap("add audit event", err)
			}
		case s.d.InsertInWith:
			stmt := "WITH "
			if na > 0 {
				stmt += "a AS (" + audit.String() + "), "
			}
			stmt += "o AS (" + outbox.String() + ") " + notes.String()
			args := append(append(auditArgs, outboxArgs...), noteArgs...)
			if _, err := s.q.ExecContext(ctx, stmt, args...); err != nil {
				return s.wrap("add audit events and outbox messages", err)
			}
		default:
			if na > 0 {
				if _, err := s.q.ExecContext(ctx, audit.String(), auditArgs...); err != nil {
					return s.wrap("add audit event", err)
				}
			}
			if _, err := s.q.ExecContext(ctx, outbox.String(), outboxArgs...); err != nil {
				return s.wrap("add outbox message", err)
			}
			if _, err := s.q.ExecContext(ctx, notes.String(), noteArgs...); err != nil {
				return s.wrap("add notification", err)
			}
		}
		q.audit, q.mail = q.audit[na:], q.mail[nm:]
	}
	return nil
}
