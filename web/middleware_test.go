package web

import (
	"regexp"
	"testing"
	"time"
)

// TestNewRequestID: ids are 24 hex digits, differ within a millisecond,
// and sort in time order, so the audit log's index of request ids grows
// at its end.
func TestNewRequestID(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	hex24 := regexp.MustCompile(`^[0-9a-f]{24}$`)
	seen := map[string]bool{}
	prev := ""
	for i := range 2000 {
		// Two ids a millisecond, then the next millisecond.
		id := newRequestID(t0.Add(time.Duration(i/2) * time.Millisecond))
		if !hex24.MatchString(id) {
			t.Fatalf("id %q is not 24 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		if i%2 == 0 && id <= prev {
			t.Fatalf("id %q of a later millisecond sorts before %q", id, prev)
		}
		prev = id
	}
	if a, b := newRequestID(t0), newRequestID(t0); a[:12] != b[:12] || a[12:] == b[12:] {
		t.Fatalf("ids of one millisecond: %q, %q; want the same time and different random parts", a, b)
	}
}
