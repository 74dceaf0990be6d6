package recourse

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestIDOrder: ids sort by the millisecond they were made in, whatever
// their random bits, and carry only the id alphabet.
func TestIDOrder(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var high, low [10]byte
	for i := range high {
		high[i] = 0xff
	}
	var ids []string
	for i, at := range []time.Time{t0, t0.Add(time.Millisecond), t0.Add(time.Second), t0.Add(24 * time.Hour), t0.AddDate(30, 0, 0)} {
		r := low
		if i%2 == 0 {
			r = high // a later id with lower random bits must still sort after
		}
		ids = append(ids, IDFrom("rr_", at, r))
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids made in order do not sort in order: %v", ids)
	}
	for _, id := range ids {
		if len(id) != len("rr_")+26 || strings.Trim(id[3:], "234567abcdefghijklmnopqrstuvwxyz") != "" {
			t.Errorf("id %q: want rr_ and 26 characters of the id alphabet", id)
		}
	}
}

// TestNewIDUnique: ids made in the same millisecond differ (80 random
// bits) and are valid account ids.
func TestNewIDUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 10_000 {
		id := NewID("au_")
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
		if !ValidID(id) {
			t.Fatalf("NewID made %q, not a valid account id", id)
		}
	}
}
