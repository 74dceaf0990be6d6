package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

const sequencerMetrics = `# TYPE recourse_audit_sequencer_round_seconds histogram
recourse_audit_sequencer_round_seconds_bucket{le="0.001"} 40
recourse_audit_sequencer_round_seconds_bucket{le="0.01"} 95
recourse_audit_sequencer_round_seconds_bucket{le="0.1"} 99
recourse_audit_sequencer_round_seconds_bucket{le="+Inf"} 100
recourse_audit_sequencer_round_seconds_sum 0.75
recourse_audit_sequencer_round_seconds_count 100
# TYPE recourse_audit_sequenced_events_total counter
recourse_audit_sequenced_events_total 1200
`

func TestParseServerStatsSequencer(t *testing.T) {
	got, err := parseServerStats(strings.NewReader(sequencerMetrics))
	if err != nil || !got.haveSeq || got.haveWriter {
		t.Fatalf("parseServerStats = %+v, %v", got, err)
	}
	s := got.seq
	if s.rounds != 100 || s.seconds != 0.75 || s.events != 1200 || len(s.buckets) != 4 ||
		s.buckets[1] != (bucket{0.01, 95}) || !math.IsInf(s.buckets[3].le, 1) {
		t.Fatalf("sequencer stats = %+v", s)
	}
	got, err = parseServerStats(strings.NewReader("# TYPE x counter\nx 1\n"))
	if err != nil || got.haveSeq {
		t.Fatalf("without the histogram: %+v, %v", got, err)
	}
}

func TestSequencerResult(t *testing.T) {
	le := []float64{0.001, 0.01, 0.1, math.Inf(1)}
	stats := func(counts ...float64) sequencerStats {
		s := sequencerStats{}
		for i, c := range counts {
			s.buckets = append(s.buckets, bucket{le[i], c})
		}
		return s
	}
	a := stats(10, 10, 10, 10)
	a.rounds, a.seconds, a.events = 10, 0.01, 100
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	tests := []struct {
		name           string
		b              sequencerStats
		busy           float64
		mean, p99, max float64
		share          float64
	}{
		// 200 rounds in the window: 150 under 1 ms, 47 under 10 ms, 3 under 100 ms.
		{"p99 in the third bucket", func() sequencerStats {
			b := stats(160, 207, 210, 210)
			b.rounds, b.seconds, b.events = 210, 0.61, 2100
			return b
		}(), 2, 3, 100, 100, 0.3},
		// 100 rounds, 99 under 1 ms and one over the last bound.
		{"one round past the histogram", func() sequencerStats {
			b := stats(109, 109, 109, 110)
			b.rounds, b.seconds, b.events = 110, 3.01, 1100
			return b
		}(), 0, 30, 1, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sequencerResult(a, tt.b, 10, tt.busy)
			if r == nil || !near(r.MeanMs, tt.mean) || r.P99Ms != tt.p99 || r.MaxMs != tt.max || !near(r.WriterShare, tt.share) || !near(r.EventsPerRound, 10) {
				t.Fatalf("sequencerResult = %+v", r)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Fatalf("the result must encode as JSON: %v", err)
			}
		})
	}
	if r := sequencerResult(a, a, 10, 1); r == nil || r.RoundsPerSec != 0 || r.MeanMs != 0 {
		t.Fatalf("a window without rounds = %+v", r)
	}
}
