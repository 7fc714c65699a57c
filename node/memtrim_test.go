package node

import (
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"testing"
)

// Heap held beyond the live heap is returned once it exceeds
// memTrimSlack, not at or below it, and only by a quiet node: one that
// ran a collection in the last period is left alone.
func TestShouldTrimAtTheBound(t *testing.T) {
	const live = 10 << 20
	for _, c := range []struct {
		name string
		held uint64
		gcs  uint64 // collections in the period
		want bool
	}{
		{"only live", live, 0, false},
		{"at the slack", live + memTrimSlack, 0, false},
		{"one byte over", live + memTrimSlack + 1, 0, true},
		{"one byte over, but busy", live + memTrimSlack + 1, 1, false},
		{"held below live (reads of two moments)", live - 1, 0, false},
		{"far over", 200 << 20, 0, true},
		{"far over, busy", 200 << 20, 40, false},
	} {
		before := heapUse{gcs: 7}
		if got := shouldTrim(heapUse{held: c.held, live: live, gcs: 7 + c.gcs}, before); got != c.want {
			t.Errorf("%s: shouldTrim = %v, want %v", c.name, got, c.want)
		}
	}
}

var trimSink [][]byte

// TestReadHeapUseSeesGarbage: the metrics the trimmer reads exist in this
// runtime, and garbage made after a collection shows as held beyond live
// until the trim's collection returns it.
func TestReadHeapUseSeesGarbage(t *testing.T) {
	s := make([]rtmetrics.Sample, len(heapMetrics))
	for i, n := range heapMetrics {
		s[i].Name = n
	}
	rtmetrics.Read(s)
	for _, x := range s {
		if x.Value.Kind() != rtmetrics.KindUint64 {
			t.Fatalf("metric %s unknown to this runtime", x.Name)
		}
	}
	// No collection while the garbage is made (one would mark it live).
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	before := readHeapUse(s)
	for range 64 {
		trimSink = append(trimSink, make([]byte, 256<<10)) // 16 MiB, garbage once dropped
	}
	trimSink = nil
	u := readHeapUse(s)
	if !shouldTrim(u, before) {
		t.Fatalf("16 MiB of garbage: held %d, live %d, not trimmed", u.held, u.live)
	}
	// The trim returns the garbage. Other tests' goroutines in this process
	// may allocate meanwhile, so only most of the 16 MiB must be gone.
	debug.FreeOSMemory()
	if after := readHeapUse(s); after.held+8<<20 > u.held {
		t.Fatalf("after the trim: held %d, before %d: the garbage was not returned", after.held, u.held)
	}
}

var fragSink [][]byte

// TestFragmentedHeapIsNotTrimmedForNothing: free space inside spans still
// in use (a heap fragmented by a burst whose survivors are scattered)
// cannot be returned by any collection, so it does not count toward the
// slack. Counted, a node after load stayed over the slack for good and
// collected every period for nothing. Other tests' goroutines allocate
// meanwhile, so the heap is fragmented far beyond what they could add.
func TestFragmentedHeapIsNotTrimmedForNothing(t *testing.T) {
	s := make([]rtmetrics.Sample, len(heapMetrics))
	for i, n := range heapMetrics {
		s[i].Name = n
	}
	unused := []rtmetrics.Sample{{Name: "/memory/classes/heap/unused:bytes"}}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	// 64 MiB of 64-byte objects, one in 32 kept: most spans stay in use,
	// nearly empty.
	all := make([][]byte, 0, 64<<20/64)
	for range cap(all) {
		all = append(all, make([]byte, 64))
	}
	for i := 0; i < len(all); i += 32 {
		fragSink = append(fragSink, all[i])
	}
	all = nil
	debug.FreeOSMemory()
	u := readHeapUse(s)
	rtmetrics.Read(unused)
	frag := unused[0].Value.Uint64()
	if frag < 32<<20 {
		t.Fatalf("the heap is not fragmented enough to test: %d bytes unused in spans", frag)
	}
	if u.held > u.live && u.held-u.live >= frag/2 {
		t.Fatalf("held %d, live %d: the %d bytes free inside used spans count toward a trim", u.held, u.live, frag)
	}
	runtime.KeepAlive(fragSink)
	fragSink = nil
}
