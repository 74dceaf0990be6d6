package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

func newAPIKey(id, owner string) *recourse.APIKey {
	return &recourse.APIKey{ID: id, Name: "key " + id, OwnerID: owner, Scopes: []string{"recovery:read", "audit:read"},
		Hash: []byte("hash-" + id), Hint: "rcs_abcd", CreatedBy: "cli", CreatedAt: T0, ExpiresAt: T0.Add(90 * 24 * time.Hour)}
}

// testAPIKeys checks API keys and idempotency records; they share one
// entry in Run's table.
func testAPIKeys(t *testing.T, s recourse.Store) {
	t.Run("Keys", func(t *testing.T) { testAPIKeyRecords(t, s) })
	t.Run("Idempotency", func(t *testing.T) { testIdempotencyKeys(t, s) })
}

func testAPIKeyRecords(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	mustCreate(t, s, NewAccount("owner"))
	mustCreate(t, s, NewAccount("other"))
	for i := range 5 {
		owner := "owner"
		if i%2 == 1 {
			owner = "other"
		}
		if err := s.CreateAPIKey(ctx, newAPIKey(fmt.Sprintf("ak_%d", i), owner)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAPIKey(ctx, newAPIKey("ak_0", "owner")); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("duplicate id: %v, want ErrConflict", err)
	}
	dupHash := newAPIKey("ak_9", "owner")
	dupHash.Hash = []byte("hash-ak_1")
	if err := s.CreateAPIKey(ctx, dupHash); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("duplicate hash: %v, want ErrConflict", err)
	}

	k, err := s.APIKeyByHash(ctx, []byte("hash-ak_2"))
	if err != nil || k.ID != "ak_2" || k.OwnerID != "owner" || !slices.Equal(k.Scopes, []string{"recovery:read", "audit:read"}) ||
		!k.CreatedAt.Equal(T0) || !k.ExpiresAt.Equal(T0.Add(90*24*time.Hour)) || k.Version != 1 || k.LastUsedAt != nil || k.RevokedAt != nil {
		t.Fatalf("APIKeyByHash = %+v, %v", k, err)
	}
	if _, err := s.APIKeyByHash(ctx, []byte("nope")); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
	if _, err := s.APIKey(ctx, "ak_nope"); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}

	// Listing pages by id, optionally by owner.
	var ids []string
	after := ""
	for {
		page, err := s.ListAPIKeys(ctx, recourse.APIKeyFilter{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range page {
			ids = append(ids, k.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(ids, []string{"ak_0", "ak_1", "ak_2", "ak_3", "ak_4"}) {
		t.Errorf("paged ids = %v", ids)
	}
	mine, err := s.ListAPIKeys(ctx, recourse.APIKeyFilter{OwnerID: "other"})
	if err != nil || len(mine) != 2 || mine[0].ID != "ak_1" || mine[1].ID != "ak_3" {
		t.Errorf("by owner = %v, %v", mine, err)
	}

	// Updates are optimistic.
	k, _ = s.APIKey(ctx, "ak_0")
	stale := *k
	at := T0.Add(time.Hour)
	k.RevokedAt, k.ReplacedBy, k.ExpiresAt, k.Scopes = &at, "ak_4", T0.Add(2*time.Hour), []string{"audit:read"}
	if err := s.UpdateAPIKey(ctx, k); err != nil || k.Version != 2 {
		t.Fatalf("UpdateAPIKey: %v (version %d)", err, k.Version)
	}
	if err := s.UpdateAPIKey(ctx, &stale); !errors.Is(err, recourse.ErrConflict) {
		t.Errorf("stale update: %v, want ErrConflict", err)
	}
	gone := newAPIKey("ak_gone", "owner")
	if err := s.UpdateAPIKey(ctx, gone); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("update of a missing key: %v, want ErrNotFound", err)
	}
	k, _ = s.APIKey(ctx, "ak_0")
	if k.RevokedAt == nil || !k.RevokedAt.Equal(at) || k.ReplacedBy != "ak_4" || !k.ExpiresAt.Equal(T0.Add(2*time.Hour)) ||
		!slices.Equal(k.Scopes, []string{"audit:read"}) {
		t.Errorf("after update: %+v", k)
	}

	// Touching records the latest use and never goes backwards.
	if err := s.TouchAPIKey(ctx, "ak_1", T0.Add(time.Hour), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchAPIKey(ctx, "ak_1", T0.Add(time.Minute), "192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	k, _ = s.APIKey(ctx, "ak_1")
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(T0.Add(time.Hour)) || k.LastUsedIP != "192.0.2.1" || k.Version != 1 {
		t.Errorf("after touch: %+v", k)
	}
}

func testIdempotencyKeys(t *testing.T, s recourse.Store) {
	ctx := t.Context()
	rec := func(caller, key string, at time.Time) *recourse.IdempotencyRecord {
		return &recourse.IdempotencyRecord{Caller: caller, Key: key, RequestHash: []byte("h-" + key), CreatedAt: at}
	}
	if old, err := s.ReserveIdempotencyKey(ctx, rec("ak_1", "k1", T0)); err != nil || old != nil {
		t.Fatalf("first reserve = %v, %v", old, err)
	}
	// Another caller may use the same key.
	if _, err := s.ReserveIdempotencyKey(ctx, rec("ak_2", "k1", T0)); err != nil {
		t.Fatalf("another caller's reserve: %v", err)
	}
	old, err := s.ReserveIdempotencyKey(ctx, rec("ak_1", "k1", T0.Add(time.Second)))
	if !errors.Is(err, recourse.ErrConflict) || old == nil || old.Status != 0 || string(old.RequestHash) != "h-k1" || !old.CreatedAt.Equal(T0) {
		t.Fatalf("second reserve = %+v, %v", old, err)
	}
	if err := s.CompleteIdempotencyKey(ctx, "ak_1", "k1", 201, []byte("sealed body")); err != nil {
		t.Fatal(err)
	}
	old, err = s.ReserveIdempotencyKey(ctx, rec("ak_1", "k1", T0.Add(time.Second)))
	if !errors.Is(err, recourse.ErrConflict) || old.Status != 201 || string(old.Body) != "sealed body" {
		t.Fatalf("after completion = %+v, %v", old, err)
	}
	if err := s.CompleteIdempotencyKey(ctx, "ak_1", "nope", 200, nil); !errors.Is(err, recourse.ErrNotFound) {
		t.Errorf("complete of an unreserved key: %v", err)
	}
	if err := s.ReleaseIdempotencyKey(ctx, "ak_1", "k1"); err != nil {
		t.Fatal(err)
	}
	if old, err := s.ReserveIdempotencyKey(ctx, rec("ak_1", "k1", T0.Add(time.Minute))); err != nil || old != nil {
		t.Fatalf("reserve after release = %v, %v", old, err)
	}
	n, err := s.DeleteIdempotencyKeys(ctx, T0.Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("DeleteIdempotencyKeys = %d, %v; want the one record from T0", n, err)
	}

	// Racing retries: exactly one reserves.
	const racers = 32
	var won atomic.Int64
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			old, err := s.ReserveIdempotencyKey(ctx, rec("ak_3", "race", T0))
			switch {
			case err == nil && old == nil:
				won.Add(1)
			case errors.Is(err, recourse.ErrConflict):
			default:
				t.Errorf("racing reserve: %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d racers reserved the same key, want 1", won.Load())
	}
}
