package clock

import (
	"slices"
	"testing"
	"time"
)

func TestManualRunsDueFunctionsInOrderOfDueTime(t *testing.T) {
	start := time.UnixMilli(1_000)
	c := NewManual(start)
	var got []string
	var at []time.Duration
	rec := func(name string) func() {
		return func() { got = append(got, name); at = append(at, c.Now().Sub(start)) }
	}
	c.AfterFunc(3*time.Second, rec("c"))
	c.AfterFunc(time.Second, rec("a"))
	stopped := c.AfterFunc(2*time.Second, rec("never"))
	c.AfterFunc(time.Second, func() { rec("b")(); c.AfterFunc(time.Second, rec("b+1")) }) // same due time as a: scheduling order
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop reports whether it prevented the run")
	}
	c.Advance(999 * time.Millisecond)
	if len(got) != 0 {
		t.Fatalf("ran %v before anything was due", got)
	}
	c.Advance(5 * time.Second)
	want := []string{"a", "b", "b+1", "c"}
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	if wantAt := []time.Duration{time.Second, time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(at, wantAt) {
		t.Fatalf("ran at %v, want %v (each at its due time)", at, wantAt)
	}
	if c.Now().Sub(start) != 5999*time.Millisecond || c.Pending() != 0 {
		t.Fatalf("now %v, pending %d", c.Now().Sub(start), c.Pending())
	}
}

func TestRealClockTimerStops(t *testing.T) {
	tm := Real().AfterFunc(time.Hour, func() { t.Error("ran") })
	if !tm.Stop() {
		t.Fatal("a pending real timer did not stop")
	}
}
