package node

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"
)

// The Go runtime keeps heap it no longer uses and hands it back to the OS
// slowly (its scavenger paces itself), so after a burst of load a node's
// RSS stays near its peak for minutes. memTrimmer looks every
// memTrimEvery and, when more than memTrimSlack of heap is held but
// unused, returns it at once (debug.FreeOSMemory: one full collection).
// Idle nodes trim nothing; a node under steady load trims at most once
// per period, a collection it would have run soon anyway.
const (
	memTrimEvery = 15 * time.Second
	memTrimSlack = 16 << 20
)

// shouldTrim reports whether idle-but-held heap (HeapIdle less what is
// already released) is worth a collection to return.
func shouldTrim(m *runtime.MemStats) bool {
	return m.HeapIdle-min(m.HeapReleased, m.HeapIdle) > memTrimSlack
}

// trimMemory runs until ctx ends.
func trimMemory(ctx context.Context) {
	t := time.NewTicker(memTrimEvery)
	defer t.Stop()
	var m runtime.MemStats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		runtime.ReadMemStats(&m)
		if shouldTrim(&m) {
			debug.FreeOSMemory()
		}
	}
}
