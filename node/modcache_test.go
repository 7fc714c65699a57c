package node

import (
	"bytes"
	"testing"
)

func TestModCacheBounds(t *testing.T) {
	c := newModCache(2, 10)
	h := func(b byte) [32]byte { return [32]byte{b} }
	c.put(h(1), []byte("aaaa"))
	c.put(h(2), []byte("bbbb"))
	if _, ok := c.get(h(1)); !ok { // 1 is now the most recent
		t.Fatal("1 missing")
	}
	c.put(h(3), []byte("cccc")) // over 2 entries: 2, the least recent, goes
	if _, ok := c.get(h(2)); ok {
		t.Fatal("2 not evicted")
	}
	if b, ok := c.get(h(3)); !ok || !bytes.Equal(b, []byte("cccc")) {
		t.Fatal("3 missing")
	}
	c.put(h(4), []byte("ddddddd")) // 4+7 > 10 bytes: evict until it fits
	if _, ok := c.get(h(1)); ok {
		t.Fatal("1 not evicted by bytes")
	}
	if c.bytes > 10 || len(c.entries) > 2 {
		t.Fatalf("bounds broken: %d bytes, %d entries", c.bytes, len(c.entries))
	}
	c.put(h(5), make([]byte, 11)) // larger than the cache: not kept
	if _, ok := c.get(h(5)); ok {
		t.Fatal("oversized entry kept")
	}
}
