package bench

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxSamples bounds the latencies kept per step: beyond it, reservoir
// sampling keeps a uniform sample (percentiles stay unbiased; max is exact).
const maxSamples = 200_000

// step accumulates one step's latencies.
type step struct {
	name    string
	http    bool
	order   int
	count   int64
	errors  int64
	seen    int64
	max     time.Duration
	samples []time.Duration
}

// recorder collects a scenario's measurements from every client.
type recorder struct {
	// measuring is false during the warm-up: nothing is recorded.
	measuring atomic.Bool
	requests  atomic.Int64
	flows     atomic.Int64
	failed    atomic.Int64

	mu     sync.Mutex
	steps  map[string]*step
	errors map[string]int64
	// flowKinds counts completed flows by kind (mixed runs several).
	flowKinds map[string]int64
}

func newRecorder() *recorder {
	return &recorder{steps: map[string]*step{}, errors: map[string]int64{}, flowKinds: map[string]int64{}}
}

// observe records one step. http marks an HTTP request (counted in
// requests/s); other steps (waiting for a mail) only have a latency.
func (r *recorder) observe(name string, http bool, d time.Duration, failed bool) {
	if !r.measuring.Load() {
		return
	}
	if http {
		r.requests.Add(1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.steps[name]
	if s == nil {
		s = &step{name: name, http: http, order: len(r.steps)}
		r.steps[name] = s
	}
	if failed {
		s.errors++
		return
	}
	s.count++
	s.max = max(s.max, d)
	s.seen++
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, d)
	} else if j := rand.Int64N(s.seen); j < maxSamples {
		s.samples[j] = d
	}
}

// fail records an error by kind ("submit code: HTTP 400 invalid").
func (r *recorder) fail(kind string) {
	if !r.measuring.Load() {
		return
	}
	r.mu.Lock()
	r.errors[kind]++
	r.mu.Unlock()
}

// flowDone counts a finished flow.
func (r *recorder) flowDone(kind string, ok bool) {
	if !r.measuring.Load() {
		return
	}
	if !ok {
		r.failed.Add(1)
		return
	}
	r.flows.Add(1)
	r.mu.Lock()
	r.flowKinds[kind]++
	r.mu.Unlock()
}

// StepResult is one step's latency distribution, in milliseconds.
type StepResult struct {
	Name   string  `json:"name"`
	HTTP   bool    `json:"http"`
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P95    float64 `json:"p95_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

// stepOrder is the order steps are reported in: the order of the flows.
var stepOrder = []string{"start (known)", "start (unknown)", "code mailed (async job)", "submit code", "status", "vote (manager)",
	"continue", "complete", "enrol app: begin", "enrol app: confirm", "sign in: password", "sign in: app code",
	"add recovery contact", "list sessions", "remove recovery contact", "re-authenticate"}

// stepResults summarises every step, in flow order.
func (r *recorder) stepResults() []StepResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	steps := make([]*step, 0, len(r.steps))
	for _, s := range r.steps {
		steps = append(steps, s)
	}
	rank := func(s *step) int {
		if i := slices.Index(stepOrder, s.name); i >= 0 {
			return i
		}
		return len(stepOrder) + s.order
	}
	sort.Slice(steps, func(i, j int) bool { return rank(steps[i]) < rank(steps[j]) })
	out := make([]StepResult, 0, len(steps))
	for _, s := range steps {
		sorted := slices.Clone(s.samples)
		slices.Sort(sorted)
		out = append(out, StepResult{Name: s.name, HTTP: s.http, Count: s.count, Errors: s.errors,
			P50: ms(percentile(sorted, 50)), P95: ms(percentile(sorted, 95)), P99: ms(percentile(sorted, 99)), Max: ms(s.max)})
	}
	return out
}

// percentile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// thousands formats n with commas: 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
