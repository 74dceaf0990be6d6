package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// writerStats are the SQLite writer's counters as the server exports them
// on /metrics (cmd/recourse/metrics.go). On the embedded database every
// write goes through that one writer, so its utilisation in a window is
// the first thing to read when a write-heavy scenario stops scaling.
type writerStats struct {
	busy, wait     float64 // seconds
	turns, commits float64
}

// WriterResult is the SQLite writer's share of a scenario's window.
type WriterResult struct {
	// Busy is the fraction of the window the writer was held (1 is
	// saturated); Wait the writers' summed waiting time per second.
	Busy float64 `json:"busy"`
	Wait float64 `json:"wait"`
	// MsPerFlow is the writer's held time per completed flow;
	// TurnsPerFlow how many transactions a flow ran on it; TurnsPerCommit
	// how many transactions group commit put in each COMMIT.
	MsPerFlow      float64 `json:"ms_per_flow"`
	TurnsPerFlow   float64 `json:"turns_per_flow"`
	TurnsPerCommit float64 `json:"turns_per_commit"`
}

// serverStats are the counters the bench reads off the server's /metrics
// at each end of a window.
type serverStats struct {
	writer     writerStats
	haveWriter bool // false on PostgreSQL
	seq        sequencerStats
	haveSeq    bool
}

// scrapeServer reads the writer's and the audit sequencer's counters from
// the server's /metrics.
func scrapeServer(ctx context.Context, base string) (serverStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/metrics", nil)
	if err != nil {
		return serverStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return serverStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return serverStats{}, fmt.Errorf("metrics: %s", resp.Status)
	}
	return parseServerStats(io.LimitReader(resp.Body, 8<<20))
}

// parseServerStats picks the writer's and the sequencer's counters out of
// Prometheus text; either is missing (have… false) when the server does
// not export it.
func parseServerStats(r io.Reader) (serverStats, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return serverStats{}, fmt.Errorf("metrics: %w", err)
	}
	var s serverStats
	s.writer, s.haveWriter = writerFrom(families)
	s.seq, s.haveSeq = sequencerFrom(families)
	return s, nil
}

// writerFrom picks the writer's counters out of parsed metrics.
func writerFrom(families map[string]*dto.MetricFamily) (writerStats, bool) {
	var s writerStats
	for name, dst := range map[string]*float64{
		"recourse_sqlite_writer_busy_seconds_total": &s.busy,
		"recourse_sqlite_writer_wait_seconds_total": &s.wait,
		"recourse_sqlite_writer_turns_total":        &s.turns,
		"recourse_sqlite_writer_commits_total":      &s.commits,
	} {
		f, ok := families[name]
		if !ok || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetCounter() == nil {
			return writerStats{}, false
		}
		*dst = f.GetMetric()[0].GetCounter().GetValue()
	}
	return s, true
}

// writerResult is the writer's share of a window of seconds in which
// flows completed.
func writerResult(a, b writerStats, seconds float64, flows int64) *WriterResult {
	if seconds <= 0 {
		return nil
	}
	w := &WriterResult{Busy: (b.busy - a.busy) / seconds, Wait: (b.wait - a.wait) / seconds}
	if flows > 0 {
		w.MsPerFlow = (b.busy - a.busy) * 1000 / float64(flows)
		w.TurnsPerFlow = (b.turns - a.turns) / float64(flows)
	}
	if c := b.commits - a.commits; c > 0 {
		w.TurnsPerCommit = (b.turns - a.turns) / c
	}
	return w
}
