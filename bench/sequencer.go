package bench

import (
	"math"

	dto "github.com/prometheus/client_model/go"
)

// sequencerStats are the audit sequencer's counters as the server exports
// them (recourse_audit_sequencer_round_seconds, cmd/recourse/audit.go):
// every round that signed events, how long its statements held the
// sequencer lock (its COMMIT not counted), and the histogram of those
// times. On SQLite that lock is the one writer, so a
// round's hold is a wait for every write behind it.
type sequencerStats struct {
	rounds, seconds, events float64
	// buckets are the histogram's cumulative counts by upper bound, in
	// seconds, in increasing order.
	buckets []bucket
}

type bucket struct{ le, count float64 }

// SequencerResult is the audit sequencer's share of a scenario's window.
type SequencerResult struct {
	RoundsPerSec   float64 `json:"rounds_per_second"`
	EventsPerRound float64 `json:"events_per_round"`
	// MeanMs is a round's mean hold of the sequencer lock for its
	// statements (a lower bound of its share of the writer: the COMMIT's
	// page writes are not counted); P99Ms the upper
	// bound of the histogram bucket the 99th percentile falls in (so an
	// upper estimate); MaxMs the same for the longest round. -1 stands for
	// longer than the histogram's last bound (2 s).
	MeanMs float64 `json:"mean_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	// WriterShare (SQLite) is the part of the writer's held time that was
	// sequencing rounds' statements.
	WriterShare float64 `json:"writer_share,omitempty"`
}

// sequencerFrom picks the sequencer's histogram out of parsed metrics.
func sequencerFrom(families map[string]*dto.MetricFamily) (sequencerStats, bool) {
	f, ok := families["recourse_audit_sequencer_round_seconds"]
	if !ok || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetHistogram() == nil {
		return sequencerStats{}, false
	}
	h := f.GetMetric()[0].GetHistogram()
	s := sequencerStats{rounds: float64(h.GetSampleCount()), seconds: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		s.buckets = append(s.buckets, bucket{le: b.GetUpperBound(), count: float64(b.GetCumulativeCount())})
	}
	if e, ok := families["recourse_audit_sequenced_events_total"]; ok && len(e.GetMetric()) == 1 && e.GetMetric()[0].GetCounter() != nil {
		s.events = e.GetMetric()[0].GetCounter().GetValue()
	}
	return s, true
}

// sequencerResult is the sequencer's share of a window of seconds; busy is
// the writer's held time in the window (0 without a writer).
func sequencerResult(a, b sequencerStats, seconds, busy float64) *SequencerResult {
	rounds := b.rounds - a.rounds
	if seconds <= 0 || len(a.buckets) != len(b.buckets) {
		return nil
	}
	r := &SequencerResult{RoundsPerSec: rounds / seconds}
	if rounds <= 0 {
		return r
	}
	held := b.seconds - a.seconds
	r.EventsPerRound = (b.events - a.events) / rounds
	r.MeanMs = held * 1000 / rounds
	if busy > 0 {
		r.WriterShare = held / busy
	}
	r.P99Ms = boundMs(quantileBound(a.buckets, b.buckets, rounds, 0.99))
	r.MaxMs = boundMs(quantileBound(a.buckets, b.buckets, rounds, 1))
	return r
}

// boundMs is a bucket bound in milliseconds, -1 for the overflow bucket
// (JSON has no infinity).
func boundMs(le float64) float64 {
	if math.IsInf(le, 1) {
		return -1
	}
	return le * 1000
}

// quantileBound is the upper bound of the first bucket whose count in the
// window reaches q of the window's rounds; +Inf when only the overflow
// bucket does.
func quantileBound(a, b []bucket, rounds, q float64) float64 {
	want := math.Ceil(q * rounds)
	for i := range b {
		if b[i].count-a[i].count >= want {
			return b[i].le
		}
	}
	return math.Inf(1)
}
