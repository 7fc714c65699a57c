package latency

import (
	"testing"
	"time"
)

func TestQuantilesWithinBucketError(t *testing.T) {
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Observe(time.Duration(i) * time.Millisecond)
	}
	s := h.Summary()
	check := func(name string, got, want time.Duration) {
		t.Helper()
		if got < want || float64(got) > float64(want)*1.1 {
			t.Errorf("%s = %v, want %v to +10%%", name, got, want)
		}
	}
	check("p50", s.P50, 500*time.Millisecond)
	check("p99", s.P99, 990*time.Millisecond)
	if s.Count != 1000 || s.Max != time.Second || s.Mean != 500500*time.Microsecond {
		t.Errorf("summary %+v", s)
	}
	var empty Hist
	if empty.Summary() != (Summary{}) || empty.Quantile(0.5) != 0 {
		t.Error("empty histogram is not zero")
	}
	var tiny Hist
	tiny.Observe(0)
	tiny.Observe(100 * time.Hour) // past the last bucket
	if tiny.Quantile(1) != 100*time.Hour || tiny.Quantile(0.5) > time.Microsecond {
		t.Errorf("tiny: %v %v", tiny.Quantile(1), tiny.Quantile(0.5))
	}
}
