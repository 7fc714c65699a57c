package chain

import "testing"

// TestSigCacheEvictsAtItsBoundAndForgetsCommitted: the cache holds at most
// its size (the oldest goes first), Forget drops what it is given, and a
// cache emptied by Forget lets go of its ring.
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
	if len(c.set) != 0 || c.ring != nil {
		t.Fatalf("emptied: %d held, ring of %d kept", len(c.set), len(c.ring))
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
