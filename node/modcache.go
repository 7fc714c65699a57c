package node

import (
	"container/list"
	"sync"
)

// modCache keeps recently run payloads in memory after their hash was
// checked, so a provider running the same module again neither reads nor
// hashes it again. Bounded by entries and bytes; least recently used goes.
type modCache struct {
	mu       sync.Mutex
	maxN     int
	maxBytes int
	bytes    int
	order    *list.List // of [32]byte, most recent first
	entries  map[[32]byte]*modEntry
}

type modEntry struct {
	data []byte
	elem *list.Element
}

func newModCache(maxN, maxBytes int) *modCache {
	return &modCache{maxN: maxN, maxBytes: maxBytes, order: list.New(), entries: map[[32]byte]*modEntry{}}
}

// get returns a verified payload. The slice is shared: callers must not
// modify it.
func (c *modCache) get(h [32]byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[h]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e.elem)
	return e.data, true
}

// put remembers a payload whose sha256 the caller checked to be h.
func (c *modCache) put(h [32]byte, data []byte) {
	if len(data) > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[h]; ok {
		c.order.MoveToFront(e.elem)
		return
	}
	c.entries[h] = &modEntry{data: data, elem: c.order.PushFront(h)}
	c.bytes += len(data)
	for len(c.entries) > c.maxN || c.bytes > c.maxBytes {
		last := c.order.Back()
		old := last.Value.([32]byte)
		c.bytes -= len(c.entries[old].data)
		delete(c.entries, old)
		c.order.Remove(last)
	}
}
