package service_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/credential"
	"github.com/recourse/recourse/jobs"
	"github.com/recourse/recourse/service"
	"github.com/recourse/recourse/store/sqlite"
)

// Benchmarks of the service's hot paths on SQLite, in process: no HTTP,
// and the job queue only inserts (its workers are not started), so each
// figure is the service's own cost. docs/benchmarks.md has the figures;
// `recourse bench` measures the same paths end to end.

// benchService is a service over a fresh SQLite database with River
// inserting jobs, cheap password hashing and the per-address throttles
// lifted.
func benchService(b *testing.B) *service.Service {
	b.Helper()
	ctx := b.Context()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Migrate: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := jobs.Migrate(ctx, st.DB(), "sqlite", nil); err != nil {
		b.Fatal(err)
	}
	q, err := jobs.New(st.DB(), "sqlite", nil, jobs.Options{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := service.DefaultConfig()
	cfg.PasswordParams = credential.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1, KeyLen: 32, SaltLen: 16}
	cfg.SignInRatePerMinute, cfg.SignInBurst = 1_000_000_000, 1_000_000
	svc, err := service.New(service.Options{Store: st, Config: cfg, Keys: service.Keys{Master: []byte(strings.Repeat("b", 32))}, Scheduler: q})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

// benchPeople creates n people with a password and a confirmed address.
func benchPeople(b *testing.B, svc *service.Service, n int) []string {
	b.Helper()
	var accts []*recourse.Account
	var ids []string
	for i := range n {
		id := fmt.Sprintf("p%05d", i)
		ids = append(ids, id)
		accts = append(accts, &recourse.Account{ID: id, Username: id, DisplayName: "Person " + id, Kind: recourse.KindHuman,
			Status: recourse.StatusActive, Employment: recourse.EmploymentEmployee, IAL: 2,
			Emails: []recourse.Channel{{Kind: recourse.ChannelEmail, Address: id + "@example.com", Verified: true}}})
	}
	if _, err := svc.ImportAccounts(b.Context(), accts, service.Meta{}); err != nil {
		b.Fatal(err)
	}
	for _, id := range ids {
		if err := svc.SetPassword(b.Context(), id, "violet-lantern-carousel", service.Meta{}); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// BenchmarkAuthenticate: the session lookup every signed-in request makes
// (the token's HMAC, the session row, the account row), from concurrent
// requests.
func BenchmarkAuthenticate(b *testing.B) {
	svc := benchService(b)
	ids := benchPeople(b, svc, 64)
	var tokens []string
	for _, id := range ids {
		res, err := svc.SignIn(b.Context(), id, "violet-lantern-carousel", service.Meta{IP: "192.0.2.1"})
		if err != nil || !res.Complete() {
			b.Fatalf("sign in %s: %v", id, err)
		}
		tokens = append(tokens, res.Token)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.Authenticate(b.Context(), tokens[int(n.Add(1))%len(tokens)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkStartRecovery: "Can't sign in?" as the browser waits for it —
// a browser secret, its HMAC and the job's insertion in a transaction —
// for a known and an unknown identifier, which must cost the same.
func BenchmarkStartRecovery(b *testing.B) {
	for _, known := range []bool{true, false} {
		name := map[bool]string{true: "known", false: "unknown"}[known]
		b.Run(name, func(b *testing.B) {
			svc := benchService(b)
			ids := benchPeople(b, svc, 16)
			var n atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(n.Add(1))
					ident := fmt.Sprintf("nobody%05d", i)
					if known {
						ident = ids[i%len(ids)]
					}
					if _, err := svc.StartRecovery(b.Context(), ident, "password", service.Meta{IP: "192.0.2.1"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkProcessStart: the background job behind a start — for a known
// person the policy decision, the request, a code and the notices in one
// transaction; for an unknown identifier one audit event.
func BenchmarkProcessStart(b *testing.B) {
	for _, known := range []bool{true, false} {
		name := map[bool]string{true: "known", false: "unknown"}[known]
		b.Run(name, func(b *testing.B) {
			svc := benchService(b)
			ids := benchPeople(b, svc, 64)
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				ident := fmt.Sprintf("nobody%05d", i)
				if known {
					ident = ids[i%len(ids)]
				}
				job := service.StartJob{RequestID: recourse.NewID("rr_"), Identifier: ident, Lost: "password",
					BrowserHash: []byte("0123456789abcdef0123456789abcdef"), IP: "192.0.2.1", At: time.Now()}
				if err := svc.ProcessStart(b.Context(), job); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
