package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/recourse/recourse"
)

// writeQueue holds the inserts a transaction defers: the requests it
// opens, its audit events, the codes and tokens it issues (all but access
// passes) and the messages it delivers to the outbox. They are written, in
// the order they were queued within each table, before the transaction's
// next statement that names one of their tables (txQuerier) and with its
// commit, so the transaction still reads its own writes and nothing it
// queued is lost.
//
// Why: a recovery's transaction records two to five audit events, issues
// a code and a cancel link and sends two or three notices, each of them an
// insert, and on PostgreSQL each statement is a round trip. Queued, they
// go in multi-row statements of fixed shapes, and on PostgreSQL in one
// statement whose WITH clauses insert into the other tables, sent in one
// round trip with the COMMIT (docs/benchmarks.md, changes 27, 47 and 51).
//
// A queued insert that fails (a broken constraint) fails the statement
// that wrote it and, kept in err, the transaction's commit.
type writeQueue struct {
	// rows holds each queued table's rows, as the arguments of its insert
	// taken when the row was queued: the row stored is the one given,
	// whatever its caller changes afterwards, as with an insert at once.
	rows [queuedTables][][]any
	// atCommit holds the statements ExecAtCommit deferred, run in order
	// at the commit before the queued inserts.
	atCommit []Statement
	err      error
}

// add queues a row of table.
func (q *writeQueue) add(table int, args []any) { q.rows[table] = append(q.rows[table], args) }

// empty reports whether nothing waits.
func (q *writeQueue) empty() bool {
	for _, rows := range q.rows {
		if len(rows) > 0 {
			return false
		}
	}
	return true
}

// touches reports whether query names a table that has rows waiting: it
// could read them, or conflict with them, so they are written first. No
// table refers to a queued one, and none is read through a view or a
// trigger, so a statement that names none of them cannot see the
// difference. A queued request is also written before a statement on a
// table that refers to it (recovery_evidence, recovery_votes; its
// challenges are queued behind it). (A wider match only writes them
// sooner.)
func (q *writeQueue) touches(query string) bool {
	for t, rows := range q.rows {
		if len(rows) > 0 && strings.Contains(query, queuedNames[t]) {
			return true
		}
	}
	return false
}

// queuedNames is what a statement names when it touches a queued table's
// rows: the table's name, and for requests every recovery_ table, which
// refer to them.
var queuedNames = [queuedTables]string{
	tableRecoveries: "recovery_", tableAudit: "audit_events", tableAuthEvents: "authenticator_events", tableChallenges: "challenges",
	tableTokens: "tokens", tableOutbox: "outbox", tableNotifications: "notifications",
}

// queuedAudit is an audit event's canonical encoding and, where the
// dialect stores them (Dialect.AuditFilterColumns), its filter fields.
type queuedAudit struct {
	data    string
	filters recourse.AuditFilters
}

// The queued tables, in the order a flush writes them: a request before
// the challenges that refer to it.
const (
	tableRecoveries = iota
	tableAudit
	tableAuthEvents
	tableChallenges
	tableTokens
	tableOutbox
	tableNotifications
	queuedTables
)

const (
	outboxInsert       = `INSERT INTO outbox (id, account_id, to_address, subject, body, created_at) VALUES `
	notificationInsert = `INSERT INTO notifications (id, kind, account_id, to_address, subject, body, state, attempts, last_error, created_at, updated_at, sent_at) VALUES `
	auditInsert        = `INSERT INTO audit_events (data) VALUES `
	auditFilterInsert  = `INSERT INTO audit_events (data, event_id, ev_time, actor_id, subject_id, action, request_id) VALUES `
	challengeInsert    = `INSERT INTO challenges (` + challengeColumns + `) VALUES `
	tokenInsert        = `INSERT INTO tokens (` + tokenColumns + `) VALUES `
	auditFilterWidth   = 7
	outboxWidth        = 6
	notificationWidth  = 12
	challengeWidth     = 9
	tokenWidth         = 10
)

// insertOf returns a queued table's insert and its columns per row; the
// audit rows carry their filter columns or not (Dialect.AuditFilterColumns).
func insertOf(table int, auditFilters bool) (string, int) {
	switch table {
	case tableRecoveries:
		return recoveryInsert, recoveryWidth
	case tableAudit:
		return auditInsertFor(auditFilters)
	case tableAuthEvents:
		return authEventInsert, authEventWidth
	case tableChallenges:
		return challengeInsert, challengeWidth
	case tableTokens:
		return tokenInsert, tokenWidth
	case tableOutbox:
		return outboxInsert, outboxWidth
	default:
		return notificationInsert, notificationWidth
	}
}

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

func challengeArgs(c *recourse.Challenge) []any {
	return []any{c.ID, c.RequestID, c.ChannelID, c.Kind, c.CodeHash, c.Attempts, utc(c.ExpiresAt), nullTime(c.UsedAt), utc(c.CreatedAt)}
}

func tokenArgs(t *recourse.Token) []any {
	return []any{t.Hash, t.ID, t.Purpose, t.RequestID, t.AccountID, nilIfEmpty(t.BrowserHash), utc(t.ExpiresAt), nullTime(t.UsedAt),
		nullTime(t.RevokedAt), utc(t.CreatedAt)}
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
	return s.inTransaction(ctx, func(q queries) error {
		if q.queue == nil {
			return errors.New("deliver to outbox: no transaction")
		}
		q.queue.add(tableOutbox, outboxArgs(m))
		q.queue.add(tableNotifications, notificationArgs(n))
		return nil
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

// queueShape is the shape of one flush: how many rows of each queued table,
// and whether they go in one statement.
type queueShape struct {
	rows [queuedTables]int
	with bool
	// filters: the audit rows carry their filter columns.
	filters bool
}

// queueSQL caches the statements of each shape (rowsPerStatement keeps
// them few), so a transaction's flush does not build its SQL again.
var queueSQL sync.Map // queueShape -> []string

// statementsFor returns the statements of a shape: one whose WITH clauses
// insert into all its tables but the last, or one per table, in table
// order.
func statementsFor(sh queueShape) []string {
	if st, ok := queueSQL.Load(sh); ok {
		return st.([]string)
	}
	var parts []string
	first := 1
	for table, n := range sh.rows {
		if n == 0 {
			continue
		}
		insert, width := insertOf(table, sh.filters)
		if sh.with {
			parts = append(parts, insert+values(n, width, first))
			first += n * width
		} else {
			parts = append(parts, insert+values(n, width, 1))
		}
	}
	st := parts
	if sh.with && len(parts) > 1 {
		var b strings.Builder
		b.WriteString("WITH ")
		for i, p := range parts[:len(parts)-1] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "q%d AS (%s)", i, p)
		}
		b.WriteString(" " + parts[len(parts)-1])
		st = []string{b.String()}
	}
	v, _ := queueSQL.LoadOrStore(sh, st)
	return v.([]string)
}

// drain returns what waits as statements, in multi-row statements of
// fixed shapes; where the dialect allows inserts in WITH clauses
// (PostgreSQL), each round's rows of every table go in one statement. The
// queue is empty afterwards.
func (q *writeQueue) drain(d Dialect) []Statement {
	var out []Statement
	for !q.empty() {
		sh := queueShape{filters: d.AuditFilterColumns}
		tables := 0
		for t, rows := range q.rows {
			if len(rows) > 0 {
				sh.rows[t] = rowsPerStatement(len(rows))
				tables++
			}
		}
		sh.with = d.InsertInWith && tables > 1
		var args [queuedTables][]any
		for t, n := range sh.rows {
			for _, row := range q.rows[t][:n] {
				args[t] = append(args[t], row...)
			}
			q.rows[t] = q.rows[t][n:]
		}
		st := statementsFor(sh)
		if sh.with {
			out = append(out, Statement{st[0], slices.Concat(args[:]...)})
		} else {
			i := 0
			for t, n := range sh.rows {
				if n == 0 {
					continue
				}
				out = append(out, Statement{st[i], args[t]})
				i++
			}
		}
	}
	return out
}

// flush writes what waits through tx, the transaction itself (drain). A
// failure is kept: the queue then refuses every later flush and the
// commit.
func (q *writeQueue) flush(ctx context.Context, tx TxConn, d Dialect) error {
	if q.err != nil {
		return q.err
	}
	for _, st := range q.drain(d) {
		if _, err := tx.ExecContext(ctx, st.Query, st.Args...); err != nil {
			q.err = fmt.Errorf("write queued inserts: %w", err)
			return q.err
		}
	}
	return nil
}

// flushQueued writes the transaction's queued inserts (writeQueue.flush);
// nothing outside a transaction.
func (s queries) flushQueued(ctx context.Context) error {
	if t, ok := s.q.(txQuerier); ok {
		return s.wrap("write queued inserts", t.flush(ctx))
	}
	return nil
}

// txQuerier is a transaction's querier: a statement that names a table
// with queued rows first writes the queue (writeQueue.touches), so the
// transaction reads and changes its own writes; others leave the rows
// waiting for a later, larger flush, at the latest the commit's
// (TxConn.Commit).
type txQuerier struct {
	tx    TxConn
	queue *writeQueue
	d     Dialect
}

func (t txQuerier) flush(ctx context.Context) error { return t.queue.flush(ctx, t.tx, t.d) }

// flushFor writes the queue if query touches it, or reports the failure
// of an earlier flush.
func (t txQuerier) flushFor(ctx context.Context, query string) error {
	if t.queue.err != nil || t.queue.touches(query) {
		return t.flush(ctx)
	}
	return nil
}

// commit writes what still waits and commits, in one round trip where the
// transaction can (TxConn.Commit); a failed earlier flush fails it.
func (t txQuerier) commit(ctx context.Context) error {
	if t.queue.err != nil {
		return t.queue.err
	}
	return t.tx.Commit(ctx, append(t.queue.atCommit, t.queue.drain(t.d)...))
}

func (t txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := t.flushFor(ctx, query); err != nil {
		return nil, err
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t txQuerier) QueryContext(ctx context.Context, query string, args ...any) (Rows, error) {
	if err := t.flushFor(ctx, query); err != nil {
		return nil, err
	}
	return t.tx.QueryContext(ctx, query, args...)
}

// QueryRowContext cannot hand back a failed flush (a Row carries only its
// own errors): the failure stays in the queue and fails the commit, and on
// PostgreSQL this statement fails too, the transaction being aborted.
func (t txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) Row {
	_ = t.flushFor(ctx, query)
	return t.tx.QueryRowContext(ctx, query, args...)
}
