package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

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
	audit []queuedAudit
	mail  []queuedMail
}

// queuedAudit is an audit event's canonical encoding and, where the
// dialect stores them (Dialect.AuditFilterColumns), its filter fields.
type queuedAudit struct {
	data    string
	filters recourse.AuditFilters
}

type queuedMail struct {
	m *recourse.OutboxMessage
	n *recourse.Notification
}

const (
	outboxInsert       = `INSERT INTO outbox (id, account_id, to_address, subject, body, created_at) VALUES `
	notificationInsert = `INSERT INTO notifications (id, kind, account_id, to_address, subject, body, state, attempts, last_error, created_at, updated_at, sent_at) VALUES `
	auditInsert        = `INSERT INTO audit_events (data) VALUES `
	auditFilterInsert  = `INSERT INTO audit_events (data, event_id, ev_time, actor_id, subject_id, action, request_id) VALUES `
	auditFilterWidth   = 7
	outboxWidth        = 6
	notificationWidth  = 12
)

// The one-row inserts of AddOutboxMessage and AddNotification.
var (
	outboxInsertOne       = outboxInsert + values(1, outboxWidth, 1)
	notificationInsertOne = notificationInsert + values(1, notificationWidth, 1)
)

func outboxArgs(m *recourse.OutboxMessage) []any {
	return []any{m.ID, m.AccountID, m.To, m.Subject, m.Body, utc(m.CreatedAt)}
}

func notificationArgs(n *recourse.Notification) []any {
	return []any{n.ID, n.Kind, n.AccountID, n.To, n.Subject, n.Body, n.State, n.Attempts, n.LastError, utc(n.CreatedAt), utc(n.UpdatedAt), nullTime(n.SentAt)}
}

// auditInsertFor returns the audit insert and its columns per row, with
// the filter columns (Dialect.AuditFilterColumns) or without.
func auditInsertFor(filters bool) (string, int) {
	if filters {
		return auditFilterInsert, auditFilterWidth
	}
	return auditInsert, 1
}

// appendAuditArgs appends the parameters of one audit row.
func appendAuditArgs(args []any, d Dialect, a queuedAudit) []any {
	if !d.AuditFilterColumns {
		return append(args, a.data)
	}
	f := a.filters
	return append(args, a.data, f.EventID, f.Time, f.ActorID, f.SubjectID, f.Action, f.RequestID)
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

// values returns n groups of width numbered parameters, from $first on.
func values(n, width, first int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range width {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(first))
			first++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// queueShape is the shape of one flush: how many audit events and
// deliveries, and whether they go in one statement.
type queueShape struct {
	audit, mail int
	with        bool
	// filters: the audit rows carry their filter columns.
	filters bool
}

// queueStatements are the statements of a shape: all in one (with), or
// each table's on its own.
type queueStatements struct {
	with, audit, outbox, notes string
}

// queueSQL caches the statements of each shape (rowsPerStatement keeps
// them few), so a transaction's flush does not build its SQL again.
var queueSQL sync.Map // queueShape -> *queueStatements

func statementsFor(sh queueShape) *queueStatements {
	if st, ok := queueSQL.Load(sh); ok {
		return st.(*queueStatements)
	}
	st := &queueStatements{}
	insert, width := auditInsertFor(sh.filters)
	if sh.with {
		stmt := "WITH "
		if sh.audit > 0 {
			stmt += "a AS (" + insert + values(sh.audit, width, 1) + "), "
		}
		first := sh.audit*width + 1
		st.with = stmt + "o AS (" + outboxInsert + values(sh.mail, outboxWidth, first) + ") " +
			notificationInsert + values(sh.mail, notificationWidth, first+sh.mail*outboxWidth)
	} else {
		st.audit = insert + values(sh.audit, width, 1)
		st.outbox = outboxInsert + values(sh.mail, outboxWidth, 1)
		st.notes = notificationInsert + values(sh.mail, notificationWidth, 1)
	}
	v, _ := queueSQL.LoadOrStore(sh, st)
	return v.(*queueStatements)
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
		sh := queueShape{with: s.d.InsertInWith && len(q.mail) > 0, filters: s.d.AuditFilterColumns}
		if len(q.audit) > 0 {
			sh.audit = rowsPerStatement(len(q.audit))
		}
		if len(q.mail) > 0 {
			sh.mail = rowsPerStatement(len(q.mail))
		}
		st := statementsFor(sh)
		_, width := auditInsertFor(sh.filters)
		auditArgs := make([]any, 0, sh.audit*width)
		for _, a := range q.audit[:sh.audit] {
			auditArgs = appendAuditArgs(auditArgs, s.d, a)
		}
		var outbox, notes []any
		for _, qm := range q.mail[:sh.mail] {
			outbox = append(outbox, outboxArgs(qm.m)...)
			notes = append(notes, notificationArgs(qm.n)...)
		}
		if sh.with {
			if _, err := s.q.ExecContext(ctx, st.with, slices.Concat(auditArgs, outbox, notes)...); err != nil {
				return s.wrap("add audit events and outbox messages", err)
			}
		} else {
			if sh.audit > 0 {
				if _, err := s.q.ExecContext(ctx, st.audit, auditArgs...); err != nil {
					return s.wrap("add audit event", err)
				}
			}
			if sh.mail > 0 {
				if _, err := s.q.ExecContext(ctx, st.outbox, outbox...); err != nil {
					return s.wrap("add outbox message", err)
				}
				if _, err := s.q.ExecContext(ctx, st.notes, notes...); err != nil {
					return s.wrap("add notification", err)
				}
			}
		}
		q.audit, q.mail = q.audit[sh.audit:], q.mail[sh.mail:]
	}
	return nil
}
