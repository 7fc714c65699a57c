package node

import (
	"context"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// The Go runtime keeps heap it no longer uses and hands it back to the OS
// slowly (its scavenger paces itself), and an idle node allocates so
// little that the garbage of a burst waits minutes for the collection
// that frees it: after load a node's RSS stays near its peak. memTrimmer
// looks every memTrimEvery and, when the heap holds more than
// memTrimSlack beyond what was live at the last collection (garbage not
// yet collected, free pages not yet returned), collects and returns it at
// once (debug.FreeOSMemory). Under load that is one extra collection per
// period, among the many the load causes anyway.
const (
	memTrimEvery = 15 * time.Second
	memTrimSlack = 8 << 20
)

// heapUse is what the trimmer reads: bytes of heap the process holds
// (objects, live or garbage, plus free pages not returned to the OS) and
// bytes live at the last collection.
type heapUse struct{ held, live uint64 }

var heapMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/gc/heap/live:bytes",
}

func readHeapUse(s []rtmetrics.Sample) heapUse {
	rtmetrics.Read(s)
	var u heapUse
	for _, x := range s {
		if x.Value.Kind() != rtmetrics.KindUint64 {
			continue
		}
		if x.Name == "/gc/heap/live:bytes" {
			u.live = x.Value.Uint64()
		} else {
			u.held += x.Value.Uint64()
		}
	}
	return u
}

// shouldTrim reports whether the heap held beyond the live heap is worth
// a collection to return.
func shouldTrim(u heapUse) bool { return u.held > u.live && u.held-u.live > memTrimSlack }

// trimMemory runs until ctx ends.
func trimMemory(ctx context.Context) {
	t := time.NewTicker(memTrimEvery)
	defer t.Stop()
	s := make([]rtmetrics.Sample, len(heapMetrics))
	for i, n := range heapMetrics {
		s[i].Name = n
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if shouldTrim(readHeapUse(s)) {
			debug.FreeOSMemory()
		}
	}
}
