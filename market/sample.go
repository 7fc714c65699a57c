package market

import (
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"slices"

	"github.com/bourse-net/bourse/wallet"
)

// sampleRound bounds a round: at most maxBids bids and the offers of at
// most maxOffers providers of snap. A smaller snapshot is returned whole.
//
// Bids: the maxBids with the smallest windowHash(seed, id). The seed is
// the previous block's hash, unknown when a bid is signed, so every bid
// has the same chance, maxBids/len, of being in each round, whatever its
// id; a bid is considered about every len/maxBids blocks (100,000 bids at
// 2,048 per round: every 49 blocks). Within the sample the round serves
// bids as always (earliest MatchBy first).
//
// Offers, by provider (all versions of a provider go together, so that
// the round still picks its newest): half the bound goes to the providers
// with the lowest PerCPUSecond (the cheapest preference finds the
// cheapest offers), the rest to a seeded sample of the others, like bids.
//
// The result depends only on the content of snap and the seed, not on the
// order of its slices.
func sampleRound(snap Snapshot, seed [32]byte, maxOffers, maxBids int) Snapshot {
	out := snap
	if len(snap.Bids) > maxBids {
		out.Bids, out.bidIDs = sampleBids(&snap, seed, maxBids)
	}
	if len(snap.Offers) > maxOffers {
		out.Offers = sampleOffers(snap.Offers, seed, maxOffers)
	}
	return out
}

// windowHash is a keyed 64-bit hash of an id for sampling: cheap (no
// sha256 per bid), and uniform while the seed is unknown.
func windowHash(seed *[32]byte, id []byte) uint64 {
	s0, s1 := binary.LittleEndian.Uint64(seed[0:]), binary.LittleEndian.Uint64(seed[8:])
	s2 := binary.LittleEndian.Uint64(seed[16:])
	h := mix64(s0 ^ binary.LittleEndian.Uint64(id[0:]))
	h = mix64(h ^ s1 ^ binary.LittleEndian.Uint64(id[8:]))
	return mix64(h ^ s2 ^ binary.LittleEndian.Uint64(id[12:]))
}

type sampled struct {
	h  uint64
	id []byte
	i  int
}

func lessSampled(a, b *sampled) bool {
	if a.h != b.h {
		return a.h < b.h
	}
	return bytes.Compare(a.id, b.id) < 0
}

// topHeap keeps the k smallest: a max-heap of them.
type topHeap []sampled

func (h topHeap) Len() int           { return len(h) }
func (h topHeap) Less(i, j int) bool { return lessSampled(&h[j], &h[i]) }
func (h topHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *topHeap) Push(x any)        { *h = append(*h, x.(sampled)) }
func (h *topHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// smallest returns the indexes of the k smallest of n keyed items.
func smallest(n, k int, key func(i int) sampled) []int {
	h := make(topHeap, 0, k)
	for i := range n {
		x := key(i)
		switch {
		case len(h) < k:
			heap.Push(&h, x)
		case lessSampled(&x, &h[0]):
			h[0] = x
			heap.Fix(&h, 0)
		}
	}
	out := make([]int, len(h))
	for j, x := range h {
		out[j] = x.i
	}
	slices.Sort(out)
	return out
}

func sampleBids(snap *Snapshot, seed [32]byte, k int) ([]*Bid, []BidID) {
	ids := make([]BidID, len(snap.Bids))
	for i := range snap.Bids {
		ids[i] = snap.bidID(i)
	}
	// Copies of one bid share an id: the sample takes k distinct ids.
	seen := make(map[BidID]bool, k)
	idx := smallest(len(ids), k, func(i int) sampled {
		return sampled{h: windowHash(&seed, ids[i][:]), id: ids[i][:], i: i}
	})
	bids := make([]*Bid, 0, len(idx))
	out := make([]BidID, 0, len(idx))
	for _, i := range idx {
		if !seen[ids[i]] {
			seen[ids[i]] = true
			bids = append(bids, snap.Bids[i])
			out = append(out, ids[i])
		}
	}
	return bids, out
}

func sampleOffers(offers []*Offer, seed [32]byte, k int) []*Offer {
	type prov struct {
		addr wallet.PublicKey // the provider's key: one per address, no hashing
		pc   uint64           // lowest PerCPUSecond of its versions
		os   []*Offer
	}
	byAddr := map[wallet.PublicKey]*prov{}
	var provs []*prov
	for _, o := range offers {
		if o == nil {
			continue
		}
		a := o.Provider
		p := byAddr[a]
		if p == nil {
			p = &prov{addr: a, pc: o.Terms.PerCPUSecond}
			byAddr[a] = p
			provs = append(provs, p)
		}
		p.pc = min(p.pc, o.Terms.PerCPUSecond)
		p.os = append(p.os, o)
	}
	if len(provs) <= k {
		return offers
	}
	slices.SortFunc(provs, func(a, b *prov) int {
		if c := cmp.Compare(a.pc, b.pc); c != 0 {
			return c
		}
		if c := cmp.Compare(windowHash(&seed, a.addr[:]), windowHash(&seed, b.addr[:])); c != 0 {
			return c
		}
		return bytes.Compare(a.addr[:], b.addr[:])
	})
	cheap := k / 2
	rest := provs[cheap:]
	idx := smallest(len(rest), k-cheap, func(i int) sampled {
		return sampled{h: windowHash(&seed, rest[i].addr[:]), id: rest[i].addr[:], i: i}
	})
	var out []*Offer
	for _, p := range provs[:cheap] {
		out = append(out, p.os...)
	}
	for _, i := range idx {
		out = append(out, rest[i].os...)
	}
	return out
}
