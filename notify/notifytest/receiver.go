package notifytest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Event is a webhook call the receiver accepted: verified, and the first
// with its webhook-id.
type Event struct {
	ID        string
	Type      string
	Timestamp time.Time
	Data      map[string]any
	Body      []byte
}

// Call is one request the receiver got, whatever became of it.
type Call struct {
	ID       string
	Status   int
	Verified bool
	// Duplicate is a verified call whose webhook-id was already accepted.
	Duplicate bool
	Signature string
}

// Receiver is a webhook receiver on 127.0.0.1 that behaves as the
// Standard Webhooks specification asks receivers to: it verifies each call
// with the reference library (signature and timestamp tolerance) under the
// secrets it holds, and processes each webhook-id once.
type Receiver struct {
	URL string

	mu       sync.Mutex
	secrets  []*standardwebhooks.Webhook
	script   []int
	calls    []Call
	events   []Event
	accepted map[string]bool
	changed  chan struct{}
}

// AcceptThenFail is a scripted answer: process the call, then answer 500
// as if the receiver crashed before answering. The sender retries, and the
// retry is a duplicate.
const AcceptThenFail = -500

// NewReceiver starts a receiver holding the secrets ("whsec_…"). It stops
// with the test.
func NewReceiver(t testing.TB, secrets ...string) *Receiver {
	t.Helper()
	r := &Receiver{accepted: map[string]bool{}, changed: make(chan struct{}, 1)}
	r.SetSecrets(t, secrets...)
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hooks/recourse"
	return r
}

// SetSecrets replaces the secrets calls are verified with (a receiver
// switching to a rotated secret).
func (r *Receiver) SetSecrets(t testing.TB, secrets ...string) {
	t.Helper()
	var whs []*standardwebhooks.Webhook
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		whs = append(whs, wh)
	}
	r.mu.Lock()
	r.secrets = whs
	r.mu.Unlock()
}

// Respond scripts the answers to the next verified calls (then 204).
func (r *Receiver) Respond(statuses ...int) {
	r.mu.Lock()
	r.script = append(r.script, statuses...)
	r.mu.Unlock()
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil || req.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer func() {
		r.mu.Unlock()
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}()
	c := Call{ID: req.Header.Get("webhook-id"), Signature: req.Header.Get("webhook-signature")}
	for _, wh := range r.secrets {
		if wh.Verify(body, req.Header) == nil {
			c.Verified = true
			break
		}
	}
	status := http.StatusNoContent
	switch {
	case !c.Verified:
		status = http.StatusUnauthorized
	case r.accepted[c.ID]:
		c.Duplicate = true
	case len(r.script) > 0:
		status = r.script[0]
		r.script = r.script[1:]
	}
	process := c.Verified && !c.Duplicate && (status == AcceptThenFail || status/100 == 2)
	if status == AcceptThenFail {
		status = http.StatusInternalServerError
	}
	if process {
		var p struct {
			Type      string         `json:"type"`
			Timestamp time.Time      `json:"timestamp"`
			Data      map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			status, process = http.StatusBadRequest, false
		} else {
			r.accepted[c.ID] = true
			r.events = append(r.events, Event{ID: c.ID, Type: p.Type, Timestamp: p.Timestamp, Data: p.Data, Body: body})
		}
	}
	c.Status = status
	r.calls = append(r.calls, c)
	w.WriteHeader(status)
}

// Events returns the accepted events, each once, in the order accepted.
func (r *Receiver) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Calls returns every request received.
func (r *Receiver) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Types returns the accepted events' types in order.
func (r *Receiver) Types() []string {
	var out []string
	for _, e := range r.Events() {
		out = append(out, e.Type)
	}
	return out
}

// WaitFor polls until cond holds on the calls received, failing the test
// after timeout.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, cond func(events []Event, calls []Call) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if cond(r.Events(), r.Calls()) {
			return
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("webhook receiver: %s: not within %s (events %v, %d calls)", what, timeout, r.Types(), len(r.Calls()))
		}
	}
}
