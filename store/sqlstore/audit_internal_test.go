package sqlstore

import "testing"

func TestRowsPerStatement(t *testing.T) {
	shapes := map[int]bool{}
	for n := 1; n <= 1000; n++ {
		covered := 0
		for rest := n; rest > 0; {
			c := rowsPerStatement(rest)
			if c < 1 || c > rest || c > maxRowsPerStatement {
				t.Fatalf("rowsPerStatement(%d) = %d", rest, c)
			}
			shapes[c] = true
			covered += c
			rest -= c
		}
		if covered != n {
			t.Fatalf("%d rows split into statements covering %d", n, covered)
		}
	}
	if len(shapes) != 7 {
		t.Errorf("%d statement shapes, want 7 (1, 2, 4 … 64)", len(shapes))
	}
}
