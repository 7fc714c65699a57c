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
// that frees it: after load a node's RSS stays near its peak. trimMemory
// looks every memTrimEvery and, when the heap holds more than
// memTrimSlack beyond what was live at the last collection (garbage not
// yet collected, free pages not yet returned) and no collection has run
// for a whole period (the node is quiet: nothing would collect it soon),
// collects and returns it at once (debug.FreeOSMemory). A busy node is
// left to the runtime: it collects often and reuses what it holds, and a
// forced collection and page-out there only costs.
//
// The free space inside spans still in use (the runtime's heap/unused
// class) is not counted: no collection returns it. Counted, it kept a
// node that had been under load above the slack for good, and the
// trimmer collected every period for nothing.
const (
	memTrimEvery = 15 * time.Second
	memTrimSlack = 1 << 20
)

// heapUse is what the trimmer reads: bytes of heap a trim could shrink
// (objects, live or garbage, plus free pages not returned to the OS),
// bytes live at the last collection, and collections so far.
type heapUse struct{ held, live, gcs uint64 }

var heapMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/gc/heap/live:bytes",
	"/gc/cycles/total:gc-cycles",
}

func readHeapUse(s []rtmetrics.Sample) heapUse {
	rtmetrics.Read(s)
	var u heapUse
	for _, x := range s {
		if x.Value.Kind() != rtmetrics.KindUint64 {
			continue
		}
		switch x.Name {
		case "/gc/heap/live:bytes":
			u.live = x.Value.Uint64()
		case "/gc/cycles/total:gc-cycles":
			u.gcs = x.Value.Uint64()
		default:
			u.held += x.Value.Uint64()
		}
	}
	return u
}

// shouldTrim reports whether the heap held beyond the live heap is worth
// a collection to return, given the reading a period before.
func shouldTrim(u, before heapUse) bool {
	return u.gcs == before.gcs && u.held > u.live && u.held-u.live > memTrimSlack
}

// trimMemory runs until ctx ends.
func trimMemory(ctx context.Context) {
	t := time.NewTicker(memTrimEvery)
	defer t.Stop()
	s := make([]rtmetrics.Sample, len(heapMetrics))
	for i, n := range heapMetrics {
		s[i].Name = n
	}
	last := readHeapUse(s)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		u := readHeapUse(s)
		if shouldTrim(u, last) {
			debug.FreeOSMemory()
			u = readHeapUse(s) // the trim's own collection is not the node's
		}
		last = u
	}
}
