package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/recourse/recourse/bench"
)

// TestBenchSmoke runs every scenario of `recourse bench` for a few flows per
// client against an in-process server, on SQLite and (when
// RECOURSE_TEST_POSTGRES_DSN is set) PostgreSQL, and checks only that they
// ran without errors. It measures nothing: the numbers are in
// docs/benchmarks.md.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the bench smoke test starts a server and signs in with Argon2id")
	}
	databases := map[string]string{"sqlite": ""}
	if dsn := os.Getenv("RECOURSE_TEST_POSTGRES_DSN"); dsn != "" {
		databases["postgres"] = dsn
	} else if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but RECOURSE_TEST_POSTGRES_DSN is not set")
	}
	for name, database := range databases {
		t.Run(name, func(t *testing.T) {
			const clients, iterations = 2, 3
			args := []string{"bench", "--server", "in-process", "--accounts", "200", "--concurrency", "2", "--iterations", "3", "--json"}
			if database != "" {
				args = append(args, "--database", database)
			}
			var out, log strings.Builder
			err := run(t.Context(), args, env(map[string]string{}), strings.NewReader(""), &out, &log)
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, log.String())
			}
			var rep bench.Report
			if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
				t.Fatalf("report: %v\n%s", err, out.String())
			}
			if len(rep.Scenarios) != len(bench.Scenarios) {
				t.Fatalf("%d scenarios ran, want %d", len(rep.Scenarios), len(bench.Scenarios))
			}
			for _, s := range rep.Scenarios {
				if s.Flows != clients*iterations || s.FailedFlows != 0 || len(s.Errors) != 0 {
					t.Errorf("%s: %d flows, %d failed, errors %v; want %d flows and no error", s.Name, s.Flows, s.FailedFlows, s.Errors, clients*iterations)
				}
				if s.Requests == 0 || len(s.Steps) == 0 {
					t.Errorf("%s: no request recorded", s.Name)
				}
			}
		})
	}
}
