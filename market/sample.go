package market

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/bourse-net/bourse/wallet"
)

// sampleRound bounds a round: at most maxBids bids and the offers of at
// most maxOffers providers of snap. A smaller snapshot is returned whole.
// Its cost is linear in the book with a small constant (one keyed 64-bit
// hash per bid and per offer, no allocation per entry, no sort of the
// whole book), and what the round then does depends on the bounds only.
//
// Bids: the maxBids distinct ids with the smallest windowHash(seed, id),
// ties by id. The seed is the previous block's hash, unknown when a bid
// is signed, so every bid has the same chance, maxBids/len, of being in
// each round, whatever its id; a bid is considered about every
// len/maxBids blocks (100,000 bids at 1,024 per round: every 98 blocks).
// Within the sample the round serves bids as always (earliest MatchBy
// first).
//
// Offers, by provider (all versions of a provider go together, so that
// the round still picks its newest), in three parts:
//
//   - half the bound: the providers with the lowest PerCPUSecond (so the
//     cheapest preference finds the cheapest offers), ties by hash;
//   - up to a quarter: the providers that the sampled bids rank nearest
//     (the first entry of each bid's RTT list, bids in sample order), so
//     that nearest finds the provider its client measured;
//   - the rest: a seeded sample of the others, like bids.
//
// The result depends only on the content of snap and the seed, not on the
// order of its slices.
func sampleRound(snap Snapshot, seed [32]byte, maxOffers, maxBids int) Snapshot {
	out := snap
	if len(snap.Bids) > maxBids {
		out.Bids, out.bidIDs = sampleBids(&snap, seed, maxBids)
	}
	if len(snap.Offers) > maxOffers {
		out.Offers, out.offerAddrs = sampleOffers(&snap, out.Bids, seed, maxOffers)
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

// sampled is one entry of a selection: its hash, and its index.
type sampled struct {
	h uint64
	i int32
}

// sampleBids returns the k distinct bids of snap with the smallest
// (windowHash(seed, id), id), in that order (sampleIdx).
func sampleBids(snap *Snapshot, seed [32]byte, k int) ([]*Bid, []BidID) {
	ids := snap.bidIDs
	if len(ids) != len(snap.Bids) {
		ids = make([]BidID, len(snap.Bids))
		for i := range snap.Bids {
			ids[i] = snap.Bids[i].ID()
		}
	}
	idx := sampleIdx(ids, seed, k)
	bids := make([]*Bid, len(idx))
	out := make([]BidID, len(idx))
	for j, i := range idx {
		bids[j], out[j] = snap.Bids[i], ids[i]
	}
	return bids, out
}

// sampleIdx returns the indexes of the k distinct ids with the smallest
// (windowHash(seed, id), id), in that order. It keeps the entries below a
// threshold that k/n of uniform hashes fall under, with a margin, and
// widens it in the rare case that too few do: one pass over the ids and a
// sort of about 1.3·k entries.
func sampleIdx(ids []BidID, seed [32]byte, k int) []int32 {
	n := len(ids)
	frac := uint64(k)*5/4 + 16 // expected count under the threshold, over n
	var keep []sampled
	for {
		t := ^uint64(0)
		if frac < uint64(n) {
			t = (^uint64(0) / uint64(n)) * frac
		}
		keep = keep[:0]
		for i := range ids {
			if h := windowHash(&seed, ids[i][:]); h <= t {
				keep = append(keep, sampled{h: h, i: int32(i)})
			}
		}
		if len(keep) >= k || t == ^uint64(0) {
			break
		}
		frac *= 2
	}
	slices.SortFunc(keep, func(a, b sampled) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return bytes.Compare(ids[a.i][:], ids[b.i][:])
	})
	out := make([]int32, 0, k)
	for j, s := range keep {
		if len(out) == k {
			break
		}
		// Copies of one bid share an id, hence a hash: they are adjacent.
		if j > 0 && ids[keep[j-1].i] == ids[s.i] {
			continue
		}
		out = append(out, s.i)
	}
	return out
}

// provEntry is one offer, keyed for grouping by provider.
type provEntry struct {
	h  uint64 // windowHash(seed, provider key)
	pc uint64 // Terms.PerCPUSecond
	i  int32  // index in offers
}

func sampleOffers(snap *Snapshot, bids []*Bid, seed [32]byte, k int) ([]*Offer, []wallet.Address) {
	offers := snap.Offers
	es := make([]provEntry, 0, len(offers))
	for i, o := range offers {
		if o == nil {
			continue
		}
		es = append(es, provEntry{h: windowHash(&seed, o.Provider[:]), pc: o.Terms.PerCPUSecond, i: int32(i)})
	}
	// Group the versions of one provider: same key, same hash.
	keyOf := func(e provEntry) []byte { return offers[e.i].Provider[:] }
	slices.SortFunc(es, func(a, b provEntry) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return bytes.Compare(keyOf(a), keyOf(b))
	})
	type prov struct {
		h, pc     uint64
		from, to  int32 // its entries es[from:to]
		taken     bool
		firstAddr int32 // index of its first entry, for its key
	}
	provs := make([]prov, 0, len(es))
	for j := 0; j < len(es); {
		p := prov{h: es[j].h, pc: es[j].pc, from: int32(j), firstAddr: es[j].i}
		j++
		for j < len(es) && es[j].h == p.h && bytes.Equal(keyOf(es[j]), keyOf(es[p.from])) {
			p.pc = min(p.pc, es[j].pc)
			j++
		}
		p.to = int32(j)
		provs = append(provs, p)
	}
	if len(provs) <= k {
		return offers, snap.offerAddrs
	}
	var out []*Offer
	var addrs []wallet.Address
	take := func(p *prov) {
		p.taken = true
		for _, e := range es[p.from:p.to] {
			out = append(out, offers[e.i])
			addrs = append(addrs, snap.offerAddr(int(e.i)))
		}
	}
	// The cheapest half: provs is in hash order, so a stable sort by
	// price keeps ties by hash (then key).
	type priced struct {
		pc uint64
		j  int32 // index in provs, which is in (hash, key) order
	}
	byPrice := make([]priced, len(provs))
	for j := range provs {
		byPrice[j] = priced{pc: provs[j].pc, j: int32(j)}
	}
	slices.SortFunc(byPrice, func(a, b priced) int {
		if c := cmp.Compare(a.pc, b.pc); c != 0 {
			return c
		}
		return cmp.Compare(a.j, b.j)
	})
	taken := 0
	for _, x := range byPrice[:k/2] {
		take(&provs[x.j])
		taken++
	}
	// The providers the sampled bids measured nearest.
	if near := k / 4; near > 0 {
		var byKey map[wallet.Address]int32
		for _, b := range bids {
			if taken >= k/2+near {
				break
			}
			if b == nil || len(b.RTT) == 0 {
				continue
			}
			if byKey == nil {
				byKey = make(map[wallet.Address]int32, len(provs))
				for j := range provs {
					byKey[snap.offerAddr(int(provs[j].firstAddr))] = int32(j)
				}
			}
			if j, ok := byKey[b.RTT[0].Provider]; ok && !provs[j].taken {
				take(&provs[j])
				taken++
			}
		}
	}
	// The rest by hash: provs is already in hash order.
	for j := range provs {
		if taken == k {
			break
		}
		if !provs[j].taken {
			take(&provs[j])
			taken++
		}
	}
	return out, addrs
}
