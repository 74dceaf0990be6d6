package service

import (
	"context"
	"errors"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
)

// staleReservation is how long a reserved Idempotency-Key may wait for its
// first request's answer before a retry may take it over: longer than any
// request may run (the server's write timeout), so the first request has
// certainly ended by then.
const staleReservation = 5 * time.Minute

// IdempotentResponse is the stored answer to an earlier request with the
// same Idempotency-Key.
type IdempotentResponse struct {
	Status int
	Body   []byte
}

var (
	errIdemMismatch   = recourse.Errorf(recourse.ECONFLICT, "This Idempotency-Key was already used with a different request. Use a new key for a new request.")
	errIdemInProgress = recourse.Errorf(recourse.ECONFLICT, "A request with this Idempotency-Key is still running. Retry in a moment.")
)

// ValidIdempotencyKey reports whether key is an acceptable Idempotency-Key:
// 1 to 255 printable ASCII characters.
func ValidIdempotencyKey(key string) bool {
	if len(key) == 0 || len(key) > 255 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

func idemAAD(caller, key string) []byte { return []byte("idempotency\x00" + caller + "\x00" + key) }

// BeginIdempotent starts a write sent with an Idempotency-Key. It returns
// the stored answer when the same caller already sent the same request with
// this key within the window; ECONFLICT when the key came with a different
// request or its first request is still running; otherwise nil, and the
// caller MUST then call FinishIdempotent or ReleaseIdempotent.
func (s *Service) BeginIdempotent(ctx context.Context, caller, key string, requestHash []byte) (*IdempotentResponse, error) {
	if !ValidIdempotencyKey(key) {
		return nil, recourse.FieldError("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
	}
	now := s.now()
	window := s.sweepIdempotency(ctx, now)
	for range 3 {
		old, err := s.store.ReserveIdempotencyKey(ctx, &recourse.IdempotencyRecord{Caller: caller, Key: key, RequestHash: requestHash, CreatedAt: now})
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, recourse.ErrConflict) {
			return nil, internal("reserve idempotency key", err)
		}
		if old == nil {
			continue // released meanwhile
		}
		stale := now.Sub(old.CreatedAt) >= window || (old.Status == 0 && now.Sub(old.CreatedAt) >= staleReservation)
		if stale {
			if err := s.store.ReleaseIdempotencyKey(ctx, caller, key); err != nil {
				return nil, internal("release idempotency key", err)
			}
			continue
		}
		if !credential.Equal(old.RequestHash, requestHash) {
			return nil, errIdemMismatch
		}
		if old.Status == 0 {
			return nil, errIdemInProgress
		}
		body, err := s.sealer.Open(old.Body, idemAAD(caller, key))
		if err != nil {
			return nil, internal("open idempotent response", err)
		}
		return &IdempotentResponse{Status: old.Status, Body: body}, nil
	}
	return nil, errIdemInProgress
}

// FinishIdempotent stores the answer to a request begun with
// BeginIdempotent, sealed: it may hold a secret shown once.
func (s *Service) FinishIdempotent(ctx context.Context, caller, key string, status int, body []byte) error {
	return internal("store idempotent response", s.store.CompleteIdempotencyKey(ctx, caller, key, status, s.sealer.Seal(body, idemAAD(caller, key))))
}

// ReleaseIdempotent forgets a key whose request failed in a way a retry
// may repair (an internal error), so the retry runs again.
func (s *Service) ReleaseIdempotent(ctx context.Context, caller, key string) error {
	return internal("release idempotency key", s.store.ReleaseIdempotencyKey(ctx, caller, key))
}

// sweepIdempotency forgets answers older than the window, at most hourly,
// and returns the window.
func (s *Service) sweepIdempotency(ctx context.Context, now time.Time) time.Duration {
	st := s.api()
	st.mu.Lock()
	window := st.cfg.IdempotencyWindow
	due := now.Sub(st.lastSweep) >= time.Hour
	if due {
		st.lastSweep = now
	}
	st.mu.Unlock()
	if due {
		if _, err := s.store.DeleteIdempotencyKeys(ctx, now.Add(-window)); err != nil {
			s.log.Warn("idempotency sweep failed", "err", err)
		}
	}
	return window
}
