package client_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/recourse/recourse/client"
)

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://", "://x"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	if _, err := client.New("https://recourse.example.com/"); err != nil {
		t.Error(err)
	}
}

// TestErrorsAndRetries: API errors come back as *client.Error; retries
// resend a write with the same Idempotency-Key; credentials and headers go
// where the API expects them.
func TestErrorsAndRetries(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	calls := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch r.URL.Path {
		case "/api/v1/recoveries":
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			if r.Header.Get("Authorization") != "Bearer rcs_test" || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v", r.Header)
			}
			if len(keys) < 3 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Idempotent-Replayed", "true")
			_, _ = io.WriteString(w, `{"id":"rr_x","state":"collecting"}`)
		case "/api/v1/recoveries/rr_gone":
			w.Header().Set("X-Request-Id", "abc")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"No such recovery request.","request_id":"abc"}}`)
		case "/api/v1/self-service/recoveries/rr_x":
			if r.Header.Get("Recourse-Recovery-Secret") != "rrb_s" {
				t.Errorf("secret header = %q", r.Header.Get("Recourse-Recovery-Secret"))
			}
			_, _ = io.WriteString(w, `{"id":"rr_x","revealed":false,"state":"collecting"}`)
		default:
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer ts.Close()
	c, err := client.New(ts.URL, client.WithAPIKey("rcs_test"), client.WithRetries(3, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var replayed bool
	r, err := c.OpenRecovery(ctx, client.OpenRecoveryRequest{Account: "a", Action: "password.reset", Reason: "other"}, client.Replayed(&replayed))
	if err != nil || r.ID != "rr_x" || !replayed {
		t.Fatalf("OpenRecovery = %+v, %v", r, err)
	}
	if len(keys) != 3 || keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("Idempotency-Keys across retries = %q", keys)
	}

	_, err = c.Recovery(ctx, "rr_gone")
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "not_found" || e.RequestID != "abc" || !client.IsCode(err, "not_found") {
		t.Fatalf("error = %#v", err)
	}
	before := calls
	if _, err := c.Recovery(ctx, "rr_gone"); err == nil || calls != before+1 {
		t.Fatalf("a 404 was retried: %d calls", calls-before)
	}

	// A non-JSON error still carries the status.
	_, err = c.Policy(ctx)
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != "http_502" {
		t.Fatalf("non-JSON error = %#v", err)
	}

	st, err := c.RecoveryStatus(ctx, &client.RecoveryHandle{RequestID: "rr_x", Secret: "rrb_s"})
	if err != nil || st.Revealed {
		t.Fatalf("RecoveryStatus = %+v, %v", st, err)
	}
}
