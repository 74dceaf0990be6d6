package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/recourse/recourse"
)

const apiKeyColumns = `id, name, owner_id, scopes, hash, hint, created_by, created_at, expires_at, last_used_at, last_used_ip,
    revoked_at, rotated_from, replaced_by, version`

func scanAPIKey(r scanner) (*recourse.APIKey, error) {
	var k recourse.APIKey
	var scopes string
	var lastUsed, revoked sql.NullTime
	if err := r.Scan(&k.ID, &k.Name, &k.OwnerID, &scopes, &k.Hash, &k.Hint, &k.CreatedBy, &k.CreatedAt, &k.ExpiresAt,
		&lastUsed, &k.LastUsedIP, &revoked, &k.RotatedFrom, &k.ReplacedBy, &k.Version); err != nil {
		return nil, err
	}
	var err error
	if k.Scopes, err = parseList(scopes); err != nil {
		return nil, err
	}
	k.CreatedAt, k.ExpiresAt = utc(k.CreatedAt), utc(k.ExpiresAt)
	k.LastUsedAt, k.RevokedAt = timePtr(lastUsed), timePtr(revoked)
	return &k, nil
}

func (s queries) CreateAPIKey(ctx context.Context, k *recourse.APIKey) error {
	if k.Version == 0 {
		k.Version = 1
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		k.ID, k.Name, k.OwnerID, jsonList(k.Scopes), k.Hash, k.Hint, k.CreatedBy, utc(k.CreatedAt), utc(k.ExpiresAt),
		nullTime(k.LastUsedAt), k.LastUsedIP, nullTime(k.RevokedAt), k.RotatedFrom, k.ReplacedBy, k.Version)
	return s.wrap("create api key", err)
}

func (s queries) APIKey(ctx context.Context, id string) (*recourse.APIKey, error) {
	forUpdate := ""
	if s.inTx {
		forUpdate = s.d.ForUpdate
	}
	k, err := scanAPIKey(s.q.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`+forUpdate, id))
	return k, s.wrap("read api key", err)
}

func (s queries) APIKeyByHash(ctx context.Context, hash []byte) (*recourse.APIKey, error) {
	k, err := scanAPIKey(s.q.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = $1`, hash))
	return k, s.wrap("read api key", err)
}

func (s queries) ListAPIKeys(ctx context.Context, f recourse.APIKeyFilter) ([]*recourse.APIKey, error) {
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	q := `SELECT ` + apiKeyColumns + ` FROM api_keys WHERE id > $1`
	args := []any{f.After}
	if f.OwnerID != "" {
		q += ` AND owner_id = $2`
		args = append(args, f.OwnerID)
	}
	rows, err := s.q.QueryContext(ctx, q+fmt.Sprintf(` ORDER BY id LIMIT %d`, limit), args...)
	if err != nil {
		return nil, s.wrap("list api keys", err)
	}
	defer rows.Close()
	var out []*recourse.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, s.wrap("list api keys", err)
		}
		out = append(out, k)
	}
	return out, s.wrap("list api keys", rows.Err())
}

func (s queries) UpdateAPIKey(ctx context.Context, k *recourse.APIKey) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE api_keys SET name = $2, scopes = $3, expires_at = $4, revoked_at = $5,
        replaced_by = $6, version = version + 1 WHERE id = $1 AND version = $7`,
		k.ID, k.Name, jsonList(k.Scopes), utc(k.ExpiresAt), nullTime(k.RevokedAt), k.ReplacedBy, k.Version))
	if err != nil {
		return s.wrap("update api key", err)
	}
	if n == 0 {
		if _, err := s.APIKey(ctx, k.ID); err != nil {
			return err
		}
		return recourse.ErrConflict
	}
	k.Version++
	return nil
}

func (s queries) TouchAPIKey(ctx context.Context, id string, at time.Time, ip string) error {
	_, err := s.q.ExecContext(ctx, `UPDATE api_keys SET last_used_at = $2, last_used_ip = $3
        WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)`, id, utc(at), ip)
	return s.wrap("touch api key", err)
}

func (s queries) idempotencyRecord(ctx context.Context, caller, key string) (*recourse.IdempotencyRecord, error) {
	r := &recourse.IdempotencyRecord{Caller: caller, Key: key}
	err := s.q.QueryRowContext(ctx, `SELECT request_hash, status, body, created_at FROM api_idempotency WHERE caller = $1 AND idem_key = $2`,
		caller, key).Scan(&r.RequestHash, &r.Status, &r.Body, &r.CreatedAt)
	if err != nil {
		return nil, s.wrap("read idempotency key", err)
	}
	r.CreatedAt = utc(r.CreatedAt)
	return r, nil
}

func (s queries) ReserveIdempotencyKey(ctx context.Context, r *recourse.IdempotencyRecord) (*recourse.IdempotencyRecord, error) {
	n, err := affected(s.q.ExecContext(ctx, `INSERT INTO api_idempotency (caller, idem_key, request_hash, status, created_at)
        VALUES ($1, $2, $3, 0, $4) ON CONFLICT (caller, idem_key) DO NOTHING`, r.Caller, r.Key, r.RequestHash, utc(r.CreatedAt)))
	if err != nil {
		return nil, s.wrap("reserve idempotency key", err)
	}
	if n == 1 {
		return nil, nil
	}
	old, err := s.idempotencyRecord(ctx, r.Caller, r.Key)
	if errors.Is(err, recourse.ErrNotFound) {
		// Released between the insert and the read: the caller may retry.
		return nil, recourse.ErrConflict
	}
	if err != nil {
		return nil, err
	}
	return old, recourse.ErrConflict
}

func (s queries) CompleteIdempotencyKey(ctx context.Context, caller, key string, status int, body []byte) error {
	n, err := affected(s.q.ExecContext(ctx, `UPDATE api_idempotency SET status = $3, body = $4 WHERE caller = $1 AND idem_key = $2`,
		caller, key, status, body))
	if err != nil {
		return s.wrap("complete idempotency key", err)
	}
	if n == 0 {
		return recourse.ErrNotFound
	}
	return nil
}

func (s queries) ReleaseIdempotencyKey(ctx context.Context, caller, key string) error {
	_, err := s.q.ExecContext(ctx, `DELETE FROM api_idempotency WHERE caller = $1 AND idem_key = $2`, caller, key)
	return s.wrap("release idempotency key", err)
}

func (s queries) DeleteIdempotencyKeys(ctx context.Context, before time.Time) (int, error) {
	n, err := affected(s.q.ExecContext(ctx, `DELETE FROM api_idempotency WHERE created_at < $1`, utc(before)))
	return n, s.wrap("delete idempotency keys", err)
}
