package service

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/recourse/recourse"
)

func TestAPIConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *APIConfig)
		ok   bool
	}{
		{"defaults", func(c *APIConfig) {}, true},
		{"30-day keys", func(c *APIConfig) { c.MaxKeyLifetime = 30 * 24 * time.Hour }, true},
		{"keys over a year", func(c *APIConfig) { c.MaxKeyLifetime = 400 * 24 * time.Hour }, false},
		{"minute keys", func(c *APIConfig) { c.MaxKeyLifetime = time.Minute }, false},
		{"overlap beyond its maximum", func(c *APIConfig) { c.RotationOverlap = 8 * 24 * time.Hour }, false},
		{"no rate", func(c *APIConfig) { c.RatePerMinute = -1 }, false},
		{"short idempotency window", func(c *APIConfig) { c.IdempotencyWindow = time.Minute }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultAPIConfig()
			tc.edit(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
	// Each service has its own configuration.
	a, b := newFixture(t), newFixture(t)
	if err := a.svc.SetAPIConfig(APIConfig{MaxKeyLifetime: 10 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if a.svc.APIConfig().MaxKeyLifetime != 10*24*time.Hour || b.svc.APIConfig().MaxKeyLifetime != 90*24*time.Hour {
		t.Fatal("API configurations leak between services")
	}
}

// TestAPIKeyPrincipal: a key acts for its owner with the roles its scopes
// name, at AAL2, and its calls are attributed to it.
func TestAPIKeyPrincipal(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	owner := f.person(t, "olga")
	owner.Roles = []string{recourse.RoleAdmin, recourse.RoleHelpdesk}
	if _, err := f.svc.ImportAccounts(ctx, []*recourse.Account{owner}, Meta{}); err != nil {
		t.Fatal(err)
	}
	k, err := f.svc.CreateAPIKey(ctx, nil, NewAPIKey{Name: "desk", OwnerID: "olga", Scopes: []string{"recovery:open", "sessions:read"}}, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.AuthenticateAPIKey(ctx, k.Secret, Meta{IP: "192.0.2.9"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Account.Roles, []string{recourse.RoleHelpdesk}) || p.Session.AAL != recourse.AAL2 || p.ActorID() != k.Key.ID {
		t.Fatalf("principal = %+v roles %v", p, p.Account.Roles)
	}
	if err := p.Require("audit:read"); recourse.ErrorCode(err) != recourse.EFORBIDDEN {
		t.Errorf("Require(audit:read) = %v", err)
	}
	if m := p.Meta(Meta{}); m.Actor.AccountID != k.Key.ID || m.Actor.Role != recourse.ActorAPIClient || m.Channel != recourse.ViaAPI {
		t.Errorf("meta = %+v", m)
	}
	// The owner's own record is untouched by the key's narrowing.
	stored, _ := f.store.Account(ctx, "olga")
	if len(stored.Roles) != 2 {
		t.Fatalf("owner roles = %v", stored.Roles)
	}
	// A frozen owner's key stops.
	now := f.clock.Now()
	if err := f.store.SetAccountFrozen(ctx, "olga", &now); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AuthenticateAPIKey(ctx, k.Secret, Meta{}); recourse.ErrorCode(err) != recourse.EUNAUTHORIZED {
		t.Fatalf("frozen owner's key: %v", err)
	}
}

// TestIdempotencyReservations: a request still running blocks its retry,
// until its reservation is stale; records outlive nothing but the window.
func TestIdempotencyReservations(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	hash := []byte("request-1")
	if r, err := f.svc.BeginIdempotent(ctx, "key:ak_1", "k", hash); err != nil || r != nil {
		t.Fatalf("first Begin = %v, %v", r, err)
	}
	if _, err := f.svc.BeginIdempotent(ctx, "key:ak_1", "k", hash); !errors.Is(err, errIdemInProgress) {
		t.Fatalf("retry while running: %v", err)
	}
	if _, err := f.svc.BeginIdempotent(ctx, "key:ak_1", "k", []byte("request-2")); !errors.Is(err, errIdemMismatch) {
		t.Fatalf("another request with the key: %v", err)
	}
	// The first request died without an answer: after the stale bound a
	// retry takes the key over.
	f.clock.Add(staleReservation)
	if r, err := f.svc.BeginIdempotent(ctx, "key:ak_1", "k", hash); err != nil || r != nil {
		t.Fatalf("takeover = %v, %v", r, err)
	}
	if err := f.svc.FinishIdempotent(ctx, "key:ak_1", "k", 201, []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	r, err := f.svc.BeginIdempotent(ctx, "key:ak_1", "k", hash)
	if err != nil || r == nil || r.Status != 201 || string(r.Body) != `{"ok":true}` {
		t.Fatalf("replay = %+v, %v", r, err)
	}
	// Released keys run again.
	if err := f.svc.ReleaseIdempotent(ctx, "key:ak_1", "k"); err != nil {
		t.Fatal(err)
	}
	if r, err := f.svc.BeginIdempotent(ctx, "key:ak_1", "k", hash); err != nil || r != nil {
		t.Fatalf("after release = %v, %v", r, err)
	}
	if _, err := f.svc.BeginIdempotent(ctx, "key:ak_1", "bad\nkey", hash); recourse.ErrorCode(err) != recourse.EINVALID {
		t.Fatalf("a key with a newline: %v", err)
	}
}
