package chain

import "testing"

// TestSigCacheEvictsAtItsBoundAndForgetsCommitted: the cache holds at most
// its size (the oldest goes first), Forget drops what it is given, and a
// cache emptied by Forget lets go of its order.
func TestSigCacheEvictsAtItsBoundAndForgetsCommitted(t *testing.T) {
	h := func(i int) [32]byte { return [32]byte{byte(i), byte(i >> 8)} }
	c := NewSigCache(3)
	for i := range 3 {
		c.Add(h(i))
	}
	if len(c.set) != 3 || !c.Has(h(0)) {
		t.Fatalf("at the bound: %d held, first held %v", len(c.set), c.Has(h(0)))
	}
	c.Add(h(3))
	if len(c.set) != 3 || c.Has(h(0)) || !c.Has(h(3)) {
		t.Fatalf("past the bound: %d held, first held %v, newest %v", len(c.set), c.Has(h(0)), c.Has(h(3)))
	}
	c.Forget([][32]byte{h(1), h(9)})
	if len(c.set) != 2 || c.Has(h(1)) {
		t.Fatalf("after Forget: %d held, forgotten held %v", len(c.set), c.Has(h(1)))
	}
	c.Forget([][32]byte{h(2), h(3)})
	if len(c.set) != 0 || c.order != nil {
		t.Fatalf("emptied: %d held, order of %d kept", len(c.set), len(c.order))
	}
	for i := range 5 { // works again from empty, to its bound
		c.Add(h(10 + i))
	}
	if len(c.set) != 3 || !c.Has(h(14)) || c.Has(h(11)) {
		t.Fatalf("refilled: %d held", len(c.set))
	}
	var nilCache *SigCache
	nilCache.Forget([][32]byte{h(1)})
	if nilCache.Has(h(1)) {
		t.Fatal("a nil cache holds something")
	}
}

// A forgotten hash gives its place back at once: a cache of 3 that has
// forgotten 2 holds 3 new ones without evicting the one it kept, and the
// order of what it held stays within its bound however many are added and
// forgotten (the mempool forgets every transaction it queues).
func TestSigCacheForgottenPlacesAreFreeAtOnce(t *testing.T) {
	h := func(i int) [32]byte { return [32]byte{byte(i), byte(i >> 8), byte(i >> 16)} }
	c := NewSigCache(3)
	for i := range 3 {
		c.Add(h(i))
	}
	c.Forget([][32]byte{h(0), h(2)})
	c.Add(h(10))
	c.Add(h(11))
	if len(c.set) != 3 || !c.Has(h(1)) || !c.Has(h(10)) || !c.Has(h(11)) {
		t.Fatalf("after forgetting 2 and adding 2: %d held, kept one %v", len(c.set), c.Has(h(1)))
	}
	c.Add(h(12)) // now full: the oldest held (h(1)) goes
	if len(c.set) != 3 || c.Has(h(1)) || !c.Has(h(12)) {
		t.Fatalf("past the bound: %d held, oldest still held %v", len(c.set), c.Has(h(1)))
	}
	// Churn: a million adds, all but every 1000th forgotten, keep the
	// order bounded by twice what is held plus a constant.
	for i := range 1_000_000 {
		c.Add(h(100 + i))
		if i%1000 != 0 {
			c.Forget([][32]byte{h(100 + i)})
		}
		if len(c.order)-c.head > 2*len(c.set)+64 || len(c.set) > 3 {
			t.Fatalf("after %d: order %d for %d held", i, len(c.order)-c.head, len(c.set))
		}
	}
	if c.Verified() != 0 {
		t.Fatalf("adding is not verifying: %d counted", c.Verified())
	}
}
