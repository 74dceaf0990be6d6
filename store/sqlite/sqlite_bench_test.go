package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/store/sqlite"
	"github.com/recourse/recourse/store/storetest"
)

// BenchmarkStore runs the store benchmarks on SQLite (a file in a
// temporary directory, WAL, as in production).
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) recourse.Store {
		s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Migrate: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
