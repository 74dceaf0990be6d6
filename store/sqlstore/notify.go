package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/recourse/recourse"
)

// ---- notifications ----

const notificationColumns = `row_id, id, kind, account_id, to_address, subject, state, attempts, last_error, created_at, updated_at, sent_at`

func scanNotification(r scanner, withBody bool) (*recourse.Notification, error) {
	var n recourse.Notification
	var sent sql.NullTime
	dest := []any{&n.Seq, &n.ID, &n.Kind, &n.AccountID, &n.To, &n.Subject, &n.State, &n.Attempts, &n.LastError,
		&n.CreatedAt, &n.UpdatedAt, &sent}
	if withBody {
		dest = append(dest, &n.Body)
	}
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	n.SentAt = timePtr(sent)
	n.CreatedAt, n.UpdatedAt = utc(n.CreatedAt), utc(n.UpdatedAt)
	return &n, nil
}

func (s queries) AddNotification(ctx context.Context, n *recourse.Notification) error {
	if n.UpdatedAt.IsZero() {
		n.UpdatedAt = n.CreatedAt
	}
	var err error
	n.Seq, err = s.insertID(ctx, "row_id", notificationInsertOne, notificationArgs(n)...)
	return s.wrap("add notification", err)
}

func (s queries) Notification(ctx context.Context, id string) (*recourse.Notification, error) {
	if err := s.flushQueued(ctx); err != nil {
		return nil, err
	}
	n, err := scanNotification(s.q.QueryRowContext(ctx, `SELECT `+notificationColumns+`, body FROM notifications WHERE id = $1`, id), true)
	return n, s.wrap("read notification", err)
}

func (s queries) ListNotifications(ctx context.Context, f recourse.NotificationFilter) ([]*recourse.Notification, error) {
	if err := s.flushQueued(ctx); err != nil {
		return nil, err
	}
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
	if f.AccountID != "" {
		where = append(where, "account_id = "+arg(f.AccountID))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+arg(string(f.Kind)))
	}
	if f.State != "" {
		where = append(where, "state = "+arg(string(f.State)))
	}
	if f.To != "" {
		where = append(where, "to_address = "+arg(f.To))
	}
	if f.Before > 0 {
		where = append(where, "row_id < "+arg(f.Before))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.q.QueryContext(ctx, fmt.Sprintf(`SELECT `+notificationColumns+` FROM notifications%s ORDER BY row_id DESC LIMIT %d`, cond, limit), args...)
	if err != nil {
		return nil, s.wrap("list notifications", err)
	}
	defer rows.Close()
	var out []*recourse.Notification
	for rows.Next() {
		n, err := scanNotification(rows, false)
		if err != nil {
			return nil, s.wrap("list notifications", err)
		}
		out = append(out, n)
	}
	return out, s.wrap("list notifications", rows.Err())
}

func (s queries) RecordDeliveryAttempt(ctx context.Context, id string, state recourse.NotificationState, lastError string, at time.Time) (int, error) {
	if err := s.flushQueued(ctx); err != nil {
		return 0, err
	}
	var sent sql.NullTime
	if state == recourse.NotificationSent {
		sent = nullTime(&at)
	}
	var attempts int
	err := s.q.QueryRowContext(ctx, `UPDATE notifications SET attempts = attempts + 1, state = $2, last_error = $3, updated_at = $4,
        sent_at = $5 WHERE id = $1 AND state = 'queued' RETURNING attempts`,
		id, state, lastError, utc(at), sent).Scan(&attempts)
	return attempts, s.wrap("record delivery attempt", err)
}

// ---- webhook endpoints ----

const webhookColumns = `id, url, events, secret, previous_secret, previous_until, source, failures, disabled_at, disabled_reason,
    created_at, updated_at`

func scanWebhook(r scanner) (*recourse.WebhookEndpoint, error) {
	var e recourse.WebhookEndpoint
	var events string
	var prevUntil, disabled sql.NullTime
	if err := r.Scan(&e.ID, &e.URL, &events, &e.Secret, &e.PreviousSecret, &prevUntil, &e.Source, &e.Failures, &disabled,
		&e.DisabledReason, &e.CreatedAt, &e.UpdatedAt); err != nil {
		return nil, err
	}
	var err error
	if e.Events, err = parseList(events); err != nil {
		return nil, err
	}
	e.PreviousUntil, e.DisabledAt = timePtr(prevUntil), timePtr(disabled)
	e.CreatedAt, e.UpdatedAt = utc(e.CreatedAt), utc(e.UpdatedAt)
	return &e, nil
}

func (s queries) CreateWebhookEndpoint(ctx context.Context, e *recourse.WebhookEndpoint) error {
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO webhook_endpoints (`+webhookColumns+`)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		e.ID, e.URL, jsonList(e.Events), e.Secret, nilIfEmpty(e.PreviousSecret), nullTime(e.PreviousUntil), e.Source, e.Failures,
		nullTime(e.DisabledAt), e.DisabledReason, utc(e.CreatedAt), utc(e.UpdatedAt))
	return s.wrap("create webhook endpoint", err)
}

func (s queries) WebhookEndpoint(ctx context.Context, id string) (*recourse.WebhookEndpoint, error) {
	e, err := scanWebhook(s.q.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhook_endpoints WHERE id = $1`, id))
	return e, s.wrap("read webhook endpoint", err)
}

func (s queries) WebhookEndpoints(ctx context.Context) ([]*recourse.WebhookEndpoint, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhook_endpoints ORDER BY id`)
	if err != nil {
		return nil, s.wrap("list webhook endpoints", err)
	}
	defer rows.Close()
	var out []*recourse.WebhookEndpoint
	for rows.Next() {
		e, err := scanWebhook(rows)
		if err != nil {
			return nil, s.wrap("list webhook endpoints", err)
		}
		out = append(out, e)
	}
	return out, s.wrap("list webhook endpoints", rows.Err())
}

func (s queries) UpdateWebhookEndpoint(ctx context.Context, e *recourse.WebhookEndpoint) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE webhook_endpoints SET url = $2, events = $3, secret = $4, previous_secret = $5,
        previous_until = $6, disabled_at = $7, disabled_reason = $8, updated_at = $9 WHERE id = $1`,
		e.ID, e.URL, jsonList(e.Events), e.Secret, nilIfEmpty(e.PreviousSecret), nullTime(e.PreviousUntil), nullTime(e.DisabledAt),
		e.DisabledReason, utc(e.UpdatedAt)))
	if err != nil {
		return s.wrap("update webhook endpoint", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

func (s queries) DeleteWebhookEndpoint(ctx context.Context, id string) error {
	n, err := affected(s.q.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE id = $1`, id))
	if err != nil {
		return s.wrap("delete webhook endpoint", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

func (s queries) RecordWebhookOutcome(ctx context.Context, id string, ok bool, at time.Time) (int, error) {
	q := `UPDATE webhook_endpoints SET failures = failures + 1, updated_at = $2 WHERE id = $1 RETURNING failures`
	if ok {
		q = `UPDATE webhook_endpoints SET failures = 0, updated_at = $2 WHERE id = $1 RETURNING failures`
	}
	var n int
	err := s.q.QueryRowContext(ctx, q, id, utc(at)).Scan(&n)
	return n, s.wrap("record webhook outcome", err)
}
