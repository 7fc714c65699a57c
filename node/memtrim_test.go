package node

import (
	"runtime"
	"testing"
)

// Heap held but unused is returned once it exceeds memTrimSlack, not at
// or below it; memory already released does not count.
func TestShouldTrimAtTheBound(t *testing.T) {
	for _, c := range []struct {
		name           string
		idle, released uint64
		want           bool
	}{
		{"nothing idle", 0, 0, false},
		{"at the slack", memTrimSlack, 0, false},
		{"one byte over", memTrimSlack + 1, 0, true},
		{"over, but released already", memTrimSlack + 1<<20, 1 << 20, false},
		{"released above idle (a stale read)", 1 << 20, 2 << 20, false},
		{"far over", 200 << 20, 10 << 20, true},
	} {
		m := runtime.MemStats{HeapIdle: c.idle, HeapReleased: c.released}
		if got := shouldTrim(&m); got != c.want {
			t.Errorf("%s: shouldTrim = %v, want %v", c.name, got, c.want)
		}
	}
}
