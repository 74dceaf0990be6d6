package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/recourse/recourse"
)

// maxRowsPerStatement bounds multi-row statements (two parameters a row),
// well inside SQLite's and PostgreSQL's parameter limits. It is a power of
// two: see rowsPerStatement.
const maxRowsPerStatement = 64

// rowsPerStatement is how many of n rows the next multi-row statement
// takes: the largest power of two no larger than n or maxRowsPerStatement.
// Statements then come in seven shapes, which the statement caches (the
// SQLite connections', pgx's) keep compiled. With one shape per length,
// every sequencer round compiled its statements afresh — a hundred-row
// VALUES list costs milliseconds to compile — and pushed the store's other
// statements out of the cache.
func rowsPerStatement(n int) int {
	c := maxRowsPerStatement
	for c > n && c > 1 {
		c /= 2
	}
	return c
}

func (s queries) AddAuditEvent(ctx context.Context, e *recourse.AuditEvent) error {
	if err := e.Validate(); err != nil {
		return err
	}
	unsequenced := *e
	unsequenced.Seq = nil
	data, filters, err := unsequenced.MarshalCanonicalFilters()
	if err != nil {
		return err
	}
	row := queuedAudit{data: string(data), filters: filters}
	if s.queue != nil {
		// In a transaction the events wait for its end, then go in
		// together, with its COMMIT on PostgreSQL (queue.go): a recovery's
		// transaction records two to five, and there each statement is a
		// round trip.
		s.queue.add(tableAudit, appendAuditArgs(nil, s.d, row))
		return nil
	}
	// The one-row statement of the flush's cached shapes.
	st := statementsFor(queueShape{rows: [queuedTables]int{tableAudit: 1}, filters: s.d.AuditFilterColumns})
	_, err = s.q.ExecContext(ctx, st[0], appendAuditArgs(nil, s.d, row)...)
	return s.wrap("add audit event", err)
}

func (s queries) LockAuditSequencer(ctx context.Context) (bool, error) {
	if !s.inTx {
		return false, errors.New("lock audit sequencer: not in a transaction")
	}
	if s.d.SequencerLock == "" {
		return true, nil
	}
	var ok bool
	if err := s.q.QueryRowContext(ctx, s.d.SequencerLock).Scan(&ok); err != nil {
		return false, s.wrap("lock audit sequencer", err)
	}
	return ok, nil
}

// auditRecordColumns are what an AuditRecord is read from (not the
// generated event_id, which SQLite would compute for every row read).
const auditRecordColumns = `row_id, seq, data`

func scanAuditRecords(rows Rows) ([]recourse.AuditRecord, error) {
	defer rows.Close()
	var out []recourse.AuditRecord
	for rows.Next() {
		var r recourse.AuditRecord
		var seq sql.NullInt64
		if err := rows.Scan(&r.Row, &seq, &r.Data); err != nil {
			return nil, err
		}
		if seq.Valid {
			r.Seq = &seq.Int64
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s queries) UnsequencedAuditEvents(ctx context.Context, after int64, limit int) ([]recourse.AuditRecord, error) {
	if err := s.flushQueued(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1
	}
	rows, err := s.q.QueryContext(ctx, fmt.Sprintf(`SELECT `+auditRecordColumns+` FROM audit_events
        WHERE seq IS NULL AND row_id > $1 ORDER BY row_id LIMIT %d`, limit), after)
	if err != nil {
		return nil, s.wrap("list unsequenced audit events", err)
	}
	out, err := scanAuditRecords(rows)
	return out, s.wrap("list unsequenced audit events", err)
}

func (s queries) SequenceAuditEvents(ctx context.Context, first int64, rows []int64) error {
	if err := s.flushQueued(ctx); err != nil {
		return err
	}
	for len(rows) > 0 {
		n := rowsPerStatement(len(rows))
		var b strings.Builder
		b.WriteString(`UPDATE audit_events SET seq = v.column2 FROM (VALUES `)
		args := make([]any, 0, 2*n)
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "(CAST($%d AS BIGINT), CAST($%d AS BIGINT))", 2*i+1, 2*i+2)
			args = append(args, rows[i], first+int64(i))
		}
		// The unary plus keeps both planners from driving the update by the
		// index of unsequenced rows (a scan of the whole backlog per value);
		// they look each row up by its key instead.
		b.WriteString(`) AS v WHERE audit_events.row_id = v.column1 AND +audit_events.seq IS NULL`)
		got, err := affected(s.q.ExecContext(ctx, b.String(), args...))
		if err != nil {
			return s.wrap("sequence audit events", err)
		}
		if got != n {
			return fmt.Errorf("sequence audit events: %d of %d rows were unsequenced: %w", got, n, recourse.ErrConflict)
		}
		rows, first = rows[n:], first+int64(n)
	}
	return nil
}

func (s queries) AuditBacklog(ctx context.Context) (int64, error) {
	if err := s.flushQueued(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := s.q.QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE seq IS NULL`).Scan(&n)
	return n, s.wrap("count unsequenced audit events", err)
}

func (s queries) AuditRecords(ctx context.Context, from int64, limit int) ([]recourse.AuditRecord, error) {
	if err := s.flushQueued(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1
	}
	rows, err := s.q.QueryContext(ctx, fmt.Sprintf(`SELECT `+auditRecordColumns+` FROM audit_events
        WHERE seq >= $1 ORDER BY seq, row_id LIMIT %d`, limit), from)
	if err != nil {
		return nil, s.wrap("list audit records", err)
	}
	out, err := scanAuditRecords(rows)
	return out, s.wrap("list audit records", err)
}

func (s queries) ScanAuditRecords(ctx context.Context, from, to int64, fn func(seq int64, data []byte) error) error {
	if err := s.flushQueued(ctx); err != nil {
		return err
	}
	rows, err := s.q.QueryContext(ctx, `SELECT seq, data FROM audit_events WHERE seq >= $1 AND seq < $2 ORDER BY seq, row_id`, from, to)
	if err != nil {
		return s.wrap("scan audit records", err)
	}
	defer rows.Close()
	var seq int64
	var data sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&seq, &data); err != nil {
			return s.wrap("scan audit records", err)
		}
		if err := fn(seq, data); err != nil {
			return err
		}
	}
	return s.wrap("scan audit records", rows.Err())
}

func (s queries) AuditRecordByEventID(ctx context.Context, eventID string) (recourse.AuditRecord, error) {
	if err := s.flushQueued(ctx); err != nil {
		return recourse.AuditRecord{}, err
	}
	rows, err := s.q.QueryContext(ctx, `SELECT `+auditRecordColumns+` FROM audit_events WHERE event_id = $1`, eventID)
	if err != nil {
		return recourse.AuditRecord{}, s.wrap("read audit record", err)
	}
	out, err := scanAuditRecords(rows)
	if err != nil {
		return recourse.AuditRecord{}, s.wrap("read audit record", err)
	}
	if len(out) == 0 {
		return recourse.AuditRecord{}, recourse.ErrNotFound
	}
	return out[0], nil
}

// AuditListQuery is the statement ListAuditEvents runs for f, with its
// arguments; the backends' tests read its query plan.
//
// The filters' indexes are partial (sequenced events only; the actors'
// only events whose actor is not their subject), and a planner uses a
// partial index for an arm of an OR only when that arm itself implies the
// index's condition: SQLite does not carry the AND around the OR into its
// arms. Without the conditions repeated in each arm, the filter by account
// walked the whole log by position (30 s at 10,000,000 events,
// docs/benchmarks.md, change 58).
func AuditListQuery(f recourse.AuditFilter) (string, []any) {
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	where = append(where, "seq IS NOT NULL")
	const (
		sequenced = " AND seq IS NOT NULL"
		// The events the index of actors holds (migration "actor_index_others").
		notSubject = " AND actor_id IS DISTINCT FROM subject_id" + sequenced
	)
	if f.AccountID != "" {
		p := arg(f.AccountID)
		where = append(where, "((subject_id = "+p+sequenced+") OR (actor_id = "+p+notSubject+"))")
	}
	if f.ActorID != "" {
		p := arg(f.ActorID)
		where = append(where, "((actor_id = "+p+notSubject+") OR (subject_id = "+p+" AND actor_id = "+p+sequenced+"))")
	}
	if f.Action != "" {
		// An account, an actor or a request selects fewer events than an
		// action (there are a few dozen); with one of them the action only
		// filters (an expression of the column keeps both planners off its
		// index).
		if f.AccountID != "" || f.ActorID != "" || f.RequestID != "" {
			where = append(where, "action || '' = "+arg(f.Action))
		} else {
			where = append(where, "action = "+arg(f.Action))
		}
	}
	if f.RequestID != "" {
		where = append(where, "request_id = "+arg(f.RequestID))
	}
	if !f.Since.IsZero() {
		where = append(where, "ev_time >= "+arg(f.Since.UTC().Format(recourse.AuditTimeLayout)))
	}
	if !f.Until.IsZero() {
		where = append(where, "ev_time < "+arg(f.Until.UTC().Format(recourse.AuditTimeLayout)))
	}
	order := "ASC"
	if f.Descending {
		order = "DESC"
		if f.BeforeSeq > 0 {
			where = append(where, "seq < "+arg(f.BeforeSeq))
		}
	} else if f.FromSeq > 0 {
		where = append(where, "seq >= "+arg(f.FromSeq))
	}
	q := fmt.Sprintf(`SELECT `+auditRecordColumns+` FROM audit_events WHERE %s ORDER BY seq %s LIMIT %d`,
		strings.Join(where, " AND "), order, limit)
	return q, args
}

func (s queries) ListAuditEvents(ctx context.Context, f recourse.AuditFilter) ([]*recourse.AuditEvent, error) {
	if err := s.flushQueued(ctx); err != nil {
		return nil, err
	}
	q, args := AuditListQuery(f)
	rows, err := s.q.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap("list audit events", err)
	}
	recs, err := scanAuditRecords(rows)
	if err != nil {
		return nil, s.wrap("list audit events", err)
	}
	out := make([]*recourse.AuditEvent, 0, len(recs))
	for _, r := range recs {
		e, err := recourse.ParseAuditEvent(r.Data)
		if err != nil {
			return nil, fmt.Errorf("list audit events: position %d: %w", *r.Seq, err)
		}
		e.Seq = r.Seq
		out = append(out, e)
	}
	return out, nil
}

func (s queries) AddAuditHashes(ctx context.Context, start int64, hashes [][32]byte) error {
	for len(hashes) > 0 {
		n := rowsPerStatement(len(hashes))
		var b strings.Builder
		b.WriteString(`INSERT INTO audit_hashes (idx, hash) VALUES `)
		args := make([]any, 0, 2*n)
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "($%d, $%d)", 2*i+1, 2*i+2)
			args = append(args, start+int64(i), hashes[i][:])
		}
		if _, err := s.q.ExecContext(ctx, b.String(), args...); err != nil {
			return s.wrap("add audit hashes", err)
		}
		hashes, start = hashes[n:], start+int64(n)
	}
	return nil
}

func (s queries) AuditHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	found := make(map[int64][32]byte, len(indexes))
	for rest := indexes; len(rest) > 0; {
		// One statement per 4·maxRowsPerStatement indexes, the list padded
		// to a power of two with its last index (IN ignores repeats), so
		// its shapes stay few.
		n := min(len(rest), 4*maxRowsPerStatement)
		width := 1
		for width < n {
			width *= 2
		}
		ph := make([]string, width)
		args := make([]any, width)
		for i := range width {
			ph[i] = fmt.Sprintf("$%d", i+1)
			args[i] = rest[min(i, n-1)]
		}
		rows, err := s.q.QueryContext(ctx, `SELECT idx, hash FROM audit_hashes WHERE idx IN (`+strings.Join(ph, ", ")+`)`, args...)
		if err != nil {
			return nil, s.wrap("read audit hashes", err)
		}
		idx, hs, err := scanHashes(rows)
		if err != nil {
			return nil, s.wrap("read audit hashes", err)
		}
		for i, x := range idx {
			found[x] = hs[i]
		}
		rest = rest[n:]
	}
	out := make([][32]byte, len(indexes))
	for i, x := range indexes {
		h, ok := found[x]
		if !ok {
			return nil, fmt.Errorf("read audit hashes: stored hash %d: %w", x, recourse.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

func scanHashes(rows Rows) ([]int64, [][32]byte, error) {
	defer rows.Close()
	var idx []int64
	var hs [][32]byte
	for rows.Next() {
		var i int64
		var b []byte
		if err := rows.Scan(&i, &b); err != nil {
			return nil, nil, err
		}
		var h [32]byte
		if len(b) != len(h) {
			return nil, nil, fmt.Errorf("stored hash %d has %d bytes, want 32", i, len(b))
		}
		copy(h[:], b)
		idx = append(idx, i)
		hs = append(hs, h)
	}
	return idx, hs, rows.Err()
}

func (s queries) AuditHashRange(ctx context.Context, from, to int64) ([]int64, [][32]byte, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT idx, hash FROM audit_hashes WHERE idx >= $1 AND idx < $2 ORDER BY idx`, from, to)
	if err != nil {
		return nil, nil, s.wrap("read audit hashes", err)
	}
	idx, hs, err := scanHashes(rows)
	return idx, hs, s.wrap("read audit hashes", err)
}

func (s queries) AddAuditCheckpoint(ctx context.Context, c *recourse.AuditCheckpoint) error {
	_, err := s.q.ExecContext(ctx, `INSERT INTO audit_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)`,
		c.Size, c.Root[:], string(c.Note), utc(c.CreatedAt))
	return s.wrap("add audit checkpoint", err)
}

func scanCheckpoints(rows Rows) ([]*recourse.AuditCheckpoint, error) {
	defer rows.Close()
	var out []*recourse.AuditCheckpoint
	for rows.Next() {
		var c recourse.AuditCheckpoint
		var root []byte
		var note string
		var created time.Time
		if err := rows.Scan(&c.Size, &root, &note, &created); err != nil {
			return nil, err
		}
		if len(root) != len(c.Root) {
			return nil, fmt.Errorf("checkpoint %d: root has %d bytes, want 32", c.Size, len(root))
		}
		copy(c.Root[:], root)
		c.Note, c.CreatedAt = []byte(note), utc(created)
		out = append(out, &c)
	}
	return out, rows.Err()
}

func (s queries) LatestAuditCheckpoint(ctx context.Context) (*recourse.AuditCheckpoint, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT size, root, note, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`)
	if err != nil {
		return nil, s.wrap("read audit checkpoint", err)
	}
	out, err := scanCheckpoints(rows)
	if err != nil {
		return nil, s.wrap("read audit checkpoint", err)
	}
	if len(out) == 0 {
		return nil, recourse.ErrNotFound
	}
	return out[0], nil
}

func (s queries) AuditCheckpoints(ctx context.Context, after int64, limit int) ([]*recourse.AuditCheckpoint, error) {
	if limit <= 0 {
		limit = 1
	}
	rows, err := s.q.QueryContext(ctx, fmt.Sprintf(`SELECT size, root, note, created_at FROM audit_checkpoints
        WHERE size > $1 ORDER BY size LIMIT %d`, limit), after)
	if err != nil {
		return nil, s.wrap("list audit checkpoints", err)
	}
	out, err := scanCheckpoints(rows)
	return out, s.wrap("list audit checkpoints", err)
}
