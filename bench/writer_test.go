package bench

import (
	"math"
	"strings"
	"testing"
)

func TestParseServerStatsWriter(t *testing.T) {
	const sqlite = `# HELP recourse_sqlite_writer_busy_seconds_total Time the SQLite writer was held.
# TYPE recourse_sqlite_writer_busy_seconds_total counter
recourse_sqlite_writer_busy_seconds_total 6.5
# TYPE recourse_sqlite_writer_wait_seconds_total counter
recourse_sqlite_writer_wait_seconds_total 12
# TYPE recourse_sqlite_writer_turns_total counter
recourse_sqlite_writer_turns_total 900
# TYPE recourse_sqlite_writer_commits_total counter
recourse_sqlite_writer_commits_total 300
# TYPE recourse_http_requests_total counter
recourse_http_requests_total{route="GET /healthz",code="200"} 3
`
	tests := []struct {
		name   string
		text   string
		want   writerStats
		ok     bool
		broken bool
	}{
		{"sqlite", sqlite, writerStats{busy: 6.5, wait: 12, turns: 900, commits: 300}, true, false},
		{"postgres: no writer", "# TYPE recourse_http_requests_total counter\nrecourse_http_requests_total{route=\"x\",code=\"200\"} 3\n", writerStats{}, false, false},
		{"one counter missing", strings.Replace(sqlite, "recourse_sqlite_writer_commits_total 300", "", 1), writerStats{}, false, false},
		{"not metrics", "<html>", writerStats{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseServerStats(strings.NewReader(tt.text))
			if (err != nil) != tt.broken || got.haveWriter != tt.ok || got.writer != tt.want {
				t.Fatalf("parseServerStats = %+v, %v", got, err)
			}
		})
	}
}

func TestWriterResult(t *testing.T) {
	a := writerStats{busy: 1, wait: 2, turns: 100, commits: 50}
	b := writerStats{busy: 9, wait: 6, turns: 420, commits: 130}
	got := writerResult(a, b, 10, 100)
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if !near(got.Busy, 0.8) || !near(got.Wait, 0.4) || !near(got.MsPerFlow, 80) || !near(got.TurnsPerFlow, 3.2) || !near(got.TurnsPerCommit, 4) {
		t.Fatalf("writerResult = %+v", got)
	}
	if got := writerResult(a, a, 10, 0); got.MsPerFlow != 0 || got.TurnsPerCommit != 0 {
		t.Fatalf("an idle window = %+v", got)
	}
}
