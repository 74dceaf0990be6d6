package postgres_test

import (
	"testing"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/postgres"
	"github.com/recourse/recourse/store/storetest"
)

// BenchmarkStore runs the store benchmarks on PostgreSQL, in a fresh schema
// of RECOURSE_TEST_POSTGRES_DSN (skipped without it).
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) recourse.Store {
		s, err := postgres.Open(b.Context(), storetest.PostgresDSN(b), postgres.Options{Migrate: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
