package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/recourse/recourse/bench"
)

// TestBenchSmoke runs every scenario of `recourse bench` for a few flows per
// client against an in-process server, on SQLite and (when
// RECOURSE_TEST_POSTGRES_DSN is set) PostgreSQL, and checks only that they
// ran without errors, on an audit log filled to 3,000 events
// (--audit-events) that verifies with the server's key. It measures
// nothing: the numbers are in docs/benchmarks.md.
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
			const clients, iterations, auditEvents = 2, 3, 3000
			args := []string{"bench", "--server", "in-process", "--accounts", "200", "--concurrency", "2", "--iterations", "3",
				"--audit-events", strconv.Itoa(auditEvents), "--json"}
			if database != "" {
				args = append(args, "--database", database)
			} else {
				// Keep the SQLite database, in a directory the test removes,
				// to verify its audit log below.
				t.Setenv("TMPDIR", t.TempDir())
				args = append(args, "--keep")
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
			sequenced := 0 // scenarios in whose window the sequencer ran
			for _, s := range rep.Scenarios {
				if s.Flows != clients*iterations || s.FailedFlows != 0 || len(s.Errors) != 0 {
					t.Errorf("%s: %d flows, %d failed, errors %v; want %d flows and no error", s.Name, s.Flows, s.FailedFlows, s.Errors, clients*iterations)
				}
				if s.Requests == 0 || len(s.Steps) == 0 {
					t.Errorf("%s: no request recorded", s.Name)
				}
				switch {
				case database == "" && (s.Writer == nil || s.Writer.Busy <= 0 || s.Writer.TurnsPerFlow <= 0):
					t.Errorf("%s: the SQLite writer's share is not reported: %+v", s.Name, s.Writer)
				case database != "" && s.Writer != nil:
					t.Errorf("%s: a SQLite writer reported on PostgreSQL: %+v", s.Name, s.Writer)
				}
				if s.Sequencer == nil {
					t.Errorf("%s: the audit sequencer's rounds are not reported", s.Name)
				} else if s.Sequencer.RoundsPerSec > 0 {
					sequenced++
				}
				if s.AuditEvents < auditEvents {
					t.Errorf("%s: the audit log held %d events at the start, want at least %d", s.Name, s.AuditEvents, auditEvents)
				}
			}

			if sequenced == 0 {
				t.Errorf("no scenario saw a sequencing round in its window")
			}

			// The bench filled the log before the server started, counting
			// the account seeding's events, and signed it with the server's key.
			a := rep.Audit
			if a.Requested != auditEvents || a.Appended <= 0 || a.Appended >= auditEvents || a.Signed < auditEvents || a.EventsAtStart < auditEvents {
				t.Errorf("audit log %+v: want %d requested, some appended on top of the seeding's events, all signed", a, auditEvents)
			}
			if database != "" {
				return
			}
			dbs, _ := filepath.Glob(filepath.Join(os.Getenv("TMPDIR"), "recourse-bench-*", "recourse.db"))
			if len(dbs) != 1 {
				t.Fatalf("kept databases: %v, want one", dbs)
			}
			var vout strings.Builder
			err = run(t.Context(), []string{"audit", "verify", "--database", "sqlite:" + dbs[0], "--data-dir", filepath.Dir(dbs[0]), "--key", a.VerifierKey},
				env(map[string]string{}), strings.NewReader(""), &vout, &log)
			var size int
			if _, serr := fmt.Sscanf(vout.String(), "ok: %d events", &size); err != nil || serr != nil || size < auditEvents {
				t.Fatalf("audit verify: %v\n%s", err, vout.String())
			}
			// The kept directory holds the server's keys where serve reads
			// them: the log verifies with the data directory's own key.
			dataDir := filepath.Join(filepath.Dir(dbs[0]), "data")
			if fi, err := os.Stat(filepath.Join(dataDir, "master.key")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("kept master key: %v, %v", fi, err)
			}
			vout.Reset()
			err = run(t.Context(), []string{"audit", "verify", "--database", "sqlite:" + dbs[0], "--data-dir", dataDir},
				env(map[string]string{}), strings.NewReader(""), &vout, &log)
			if _, serr := fmt.Sscanf(vout.String(), "ok: %d events", &size); err != nil || serr != nil || size < auditEvents {
				t.Fatalf("audit verify with the kept key: %v\n%s", err, vout.String())
			}
		})
	}
}
