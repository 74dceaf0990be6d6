package postgres_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/sqlstore"
	"github.com/recourse/recourse/store/storetest"
)

// isolatedDSN is a fresh schema for the test (storetest.PostgresDSN).
func isolatedDSN(t *testing.T) string { return storetest.PostgresDSN(t) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) recourse.Store {
		s, err := postgres.Open(t.Context(), isolatedDSN(t), postgres.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	dsn := isolatedDSN(t)
	if _, err := postgres.Open(ctx, dsn, postgres.Options{}); err == nil {
		t.Fatal("Open without Migrate accepted an empty database")
	}
	d := postgres.Dialect()
	ms, _ := sqlstore.Migrations(d)
	// Replicas starting at once: each has its own pool; the advisory lock
	// lets exactly one apply each migration.
	var wg sync.WaitGroup
	applied := make([][]int, 4)
	for i := range applied {
		wg.Go(func() {
			pool, err := pgxpool.New(ctx, dsn)
			if err != nil {
				t.Error(err)
				return
			}
			defer pool.Close()
			db := postgres.OpenDB(pool)
			defer db.Close()
			applied[i], err = sqlstore.Migrate(ctx, db, d, storetest.T0)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	total := 0
	for _, a := range applied {
		total += len(a)
	}
	if total != len(ms) {
		t.Errorf("concurrent migrators applied %d migrations in all, want %d", total, len(ms))
	}
	s, err := postgres.Open(ctx, dsn, postgres.Options{Migrate: true})
	if err != nil {
		t.Fatalf("open up-to-date database: %v", err)
	}
	defer s.Close()
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '')`); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(ctx, dsn, postgres.Options{Migrate: true}); err == nil {
		t.Error("Open accepted a schema newer than the binary")
	}
}

func TestBadDSNHidesPassword(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://u:s3cret-pw@127.0.0.1:1/db?sslmode=bogus", postgres.Options{})
	if err == nil {
		t.Fatal("want error")
	}
	if got := err.Error(); strings.Contains(got, "s3cret-pw") {
		t.Errorf("error leaks the password: %s", got)
	}
}

// TestRacesAcrossInstances runs the single-use races against two stores
// (two pools, as two replicas would have) sharing one database: exactly one
// redemption wins, and counters lose nothing.
func TestRacesAcrossInstances(t *testing.T) {
	ctx := t.Context()
	dsn := isolatedDSN(t)
	var stores [2]*postgres.Store
	for i := range stores {
		s, err := postgres.Open(ctx, dsn, postgres.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	a := storetest.NewAccount("a")
	if err := stores[0].CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].CreateToken(ctx, &recourse.Token{Hash: []byte("tok"), Purpose: recourse.TokenCompletion, AccountID: "a",
		ExpiresAt: storetest.T0.Add(time.Hour), CreatedAt: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	set := &recourse.Authenticator{AccountID: "a", Kind: recourse.AuthRecoveryCodes, Status: recourse.AuthActive, CreatedAt: storetest.T0}
	if err := stores[0].CreateAuthenticator(ctx, set); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].ReplaceRecoveryCodes(ctx, set.ID, [][]byte{[]byte("code")}); err != nil {
		t.Fatal(err)
	}
	r := &recourse.Recovery{ID: "rr_race", AccountID: "a", Action: "password.reset", Tier: "recovery", State: recourse.RecoveryAwaitingApproval,
		Initiator: "self", Change: map[string]string{}, ChangeDigest: "cd", PolicyDigest: "p", Rule: "r", Requirement: []byte("{}"),
		ExpiresAt: storetest.T0.Add(time.Hour), CreatedAt: storetest.T0, UpdatedAt: storetest.T0}
	if err := stores[0].CreateRecovery(ctx, r); err != nil {
		t.Fatal(err)
	}
	const racers = 200
	var tokens, codes, votes, failures atomic.Int64
	var wg sync.WaitGroup
	for i := range racers {
		s := stores[i%2]
		wg.Go(func() {
			if _, err := s.UseToken(ctx, []byte("tok"), recourse.TokenCompletion, storetest.T0); err == nil {
				tokens.Add(1)
			}
			if _, err := s.UseRecoveryCode(ctx, "a", []byte("code"), storetest.T0); err == nil {
				codes.Add(1)
			}
			if err := s.AddRecoveryVote(ctx, &recourse.RecoveryVote{RequestID: "rr_race", ApproverID: "m", ChangeDigest: "cd", Vote: "approve", CreatedAt: storetest.T0}); err == nil {
				votes.Add(1)
			}
			if _, err := s.RecordRecoveryFailure(ctx, "a"); err == nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if tokens.Load() != 1 || codes.Load() != 1 || votes.Load() != 1 {
		t.Fatalf("winners across two instances: token %d, recovery code %d, vote %d; want 1 each", tokens.Load(), codes.Load(), votes.Load())
	}
	got, _ := stores[1].Account(ctx, "a")
	if int64(got.RecoveryFailures) != failures.Load() || failures.Load() != racers {
		t.Fatalf("recovery failures = %d, recorded %d, want %d", got.RecoveryFailures, failures.Load(), racers)
	}
}

// TestPoolSize: the pool holds DefaultMaxConns connections unless the URL
// sets pool_max_conns (pgx's parameter) or the options do.
func TestPoolSize(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	for _, tc := range []struct {
		name string
		dsn  string
		opts postgres.Options
		want int32
	}{
		{"default", dsn, postgres.Options{Migrate: true}, postgres.DefaultMaxConns},
		{"url", dsn + "&pool_max_conns=5", postgres.Options{}, 5},
		{"options", dsn + "&pool_max_conns=5", postgres.Options{MaxConns: 7}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(t.Context(), tc.dsn, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.Pool.Config().MaxConns; got != tc.want {
				t.Errorf("MaxConns = %d, want %d", got, tc.want)
			}
		})
	}
}
