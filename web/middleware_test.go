package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

// TestRequestIDs: each request gets an id of the project's kind
// (recourse.NewID: the millisecond, then random bits), so ids differ and
// later requests' ids do not sort before earlier ones' — the audit log's
// index of request ids grows at its end. (id_test.go tests the order to
// the millisecond.)
func TestRequestIDs(t *testing.T) {
	var s Server
	var seen string
	h := s.requestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = requestIDFrom(r) }))
	format := regexp.MustCompile(`^req_[2-7a-z]{26}$`)
	ids := map[string]bool{}
	prev := ""
	for range 2000 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		id := rec.Header().Get("X-Request-Id")
		if !format.MatchString(id) || id != seen {
			t.Fatalf("X-Request-Id %q, in the context %q; want the same req_ id", id, seen)
		}
		if ids[id] {
			t.Fatalf("id %q made twice", id)
		}
		ids[id] = true
		// The first nine characters after the prefix are 45 of the id's
		// 48 bits of milliseconds.
		if prev != "" && id[:13] < prev[:13] {
			t.Fatalf("id %q of a later request sorts before %q", id, prev)
		}
		prev = id
	}
}
