package market

import (
	"bytes"
	"cmp"
	"fmt"
	"math/bits"
	"slices"

	"github.com/bourse-net/bourse/wallet"
)

// Matcher places bids on offers. It is a pure function of its inputs: no
// clock, no randomness but the seed, no I/O. Its zero value uses
// DefaultWeights. The configuration is local to a proposer (validators
// check a Match's validity with CheckMatch, not its optimality).
type Matcher struct {
	// Weights of the balanced preference; the zero value means DefaultWeights.
	Weights Weights
}

// Validate checks the configuration.
func (m Matcher) Validate() error {
	w := m.Weights
	if w.Price > MaxWeight || w.Load > MaxWeight || w.Reputation > MaxWeight {
		return fmt.Errorf("matcher weights %+v: each must be at most %d", w, MaxWeight)
	}
	return nil
}

func (m Matcher) weights() Weights {
	if m.Weights == (Weights{}) {
		return DefaultWeights
	}
	return m.Weights
}

// candidate is an offer the round may use, with its provider state.
type candidate struct {
	o  *Offer
	id OfferID
	ps ProviderState
}

// selectOffers applies the offer rules of a round: an offer counts only if
// it is valid at blockTime (so not expired), and per provider only the one
// with the highest Seq counts (ties: the smaller signature, then the
// smaller signing bytes). Providers not registered with MinCollateral are
// dropped. The result is sorted by provider address.
func selectOffers(offers []*Offer, view ChainView, blockTime int64) []candidate {
	cs := make([]candidate, 0, len(offers))
	for _, o := range offers {
		if o == nil || o.Validate(blockTime) != nil {
			continue
		}
		cs = append(cs, candidate{o: o, id: o.ID()})
	}
	slices.SortFunc(cs, compareCandidates)
	minColl := view.MinCollateral()
	out := cs[:0]
	for i, c := range cs {
		if i > 0 && cs[i-1].id.Provider == c.id.Provider {
			continue
		}
		ps, ok := view.Provider(c.id.Provider)
		if !ok || ps.Collateral < minColl {
			continue
		}
		c.ps = ps
		out = append(out, c)
	}
	return out
}

// compareCandidates orders by provider address, then newest first (higher
// Seq, then smaller signature, then smaller signing bytes).
func compareCandidates(a, b candidate) int {
	if c := bytes.Compare(a.id.Provider[:], b.id.Provider[:]); c != 0 {
		return c
	}
	if c := cmp.Compare(b.id.Seq, a.id.Seq); c != 0 {
		return c
	}
	if c := bytes.Compare(a.o.Sig, b.o.Sig); c != 0 {
		return c
	}
	x, _ := a.o.SigningBytes()
	y, _ := b.o.SigningBytes()
	return bytes.Compare(x, y)
}

type orderedBid struct {
	b   *Bid
	id  BidID
	h   uint64 // seedHash(seed, id)
	bal *uint64
}

// orderBids applies the bid rules of a round: a bid counts if it is valid
// at blockTime and not closed on chain; duplicates (same id) count once.
// Bids are served by earliest MatchBy, then by h(seed, id), then by id.
func orderBids(snap *Snapshot, view ChainView, blockTime int64, seed [32]byte) []orderedBid {
	bs := make([]orderedBid, 0, len(snap.Bids))
	for i, b := range snap.Bids {
		if b == nil || b.Validate(blockTime) != nil {
			continue
		}
		bs = append(bs, orderedBid{b: b, id: snap.bidID(i)})
	}
	slices.SortFunc(bs, func(a, b orderedBid) int { return bytes.Compare(a.id[:], b.id[:]) })
	bs = slices.CompactFunc(bs, func(a, b orderedBid) bool { return a.id == b.id })
	out := bs[:0]
	balances := make(map[wallet.PublicKey]*uint64)
	for _, ob := range bs {
		if view.BidClosed(ob.id) {
			continue
		}
		ob.h = seedHash(seed, ob.id[:])
		bal, ok := balances[ob.b.Client]
		if !ok {
			v := view.Spendable(ob.b.ClientAddress())
			bal = &v
			balances[ob.b.Client] = bal
		}
		ob.bal = bal
		out = append(out, ob)
	}
	slices.SortFunc(out, func(a, b orderedBid) int {
		if c := cmp.Compare(a.b.MatchBy, b.b.MatchBy); c != 0 {
			return c
		}
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	return out
}

// slot is a candidate compiled for the hot loop.
type slot struct {
	avCPU, avMem, avDisk uint64
	avGPU                uint32
	exec                 uint8
	region               int32 // index into the round's regions, -1 for none
	rep                  uint32
	util                 uint64 // load with nothing placed: a lower bound of loadAfter
	terms                PriceTerms
	tie                  uint64 // seedHash(seed, offer id)
	reserved             Resources
	c                    *candidate
	idb                  [28]byte
}

func (s *slot) refresh() {
	t := s.c.o.Total
	av := Available(t, s.reserved)
	s.avCPU, s.avMem, s.avDisk, s.avGPU = av.CPU, av.MemMiB, av.DiskMiB, av.GPUs
	s.util = loadAfter(s.c.o.Load, t, s.reserved, Resources{})
}

// Match runs one matching round and returns at most maxMatches matches
// (none if maxMatches ≤ 0), in the order they must appear in the block.
//
// The round considers the offers and bids of snap that are valid at
// blockTime (see selectOffers and orderBids for duplicates and order),
// and serves bids one at a time: a bid whose client can no longer cover
// its MaxPrice is skipped; otherwise it goes to the feasible offer with
// the lowest placement key (see the scoring table in this package's
// documentation), and the offer's reservation and the client's balance
// are updated before the next bid. Feasible means what CheckMatch checks:
// provider collateral, executor, region, labels, reputation, resources
// within Total minus the chain's and this round's reservations, and
// PriceFor ≤ MaxPrice. Every returned match therefore passes CheckMatch
// when the chain applies them in order, provided the snapshot holds only
// correctly signed offers and bids (the Book guarantees it).
//
// Same inputs, same output, whatever the order of snap's slices.
func (m Matcher) Match(snap Snapshot, view ChainView, blockTime int64, seed [32]byte, maxMatches int) []Match {
	if maxMatches <= 0 {
		return nil
	}
	w := m.weights()
	cands := selectOffers(snap.Offers, view, blockTime)
	bids := orderBids(&snap, view, blockTime, seed)
	if len(cands) == 0 || len(bids) == 0 {
		return nil
	}

	// Intern offer regions and bid-required labels into bit positions.
	regions := map[string]int32{}
	for _, c := range cands {
		if r := c.o.Region; r != "" {
			if _, ok := regions[r]; !ok {
				regions[r] = int32(len(regions))
			}
		}
	}
	labels := map[string]int{}
	for _, ob := range bids {
		for _, l := range ob.b.Constraints.Labels {
			if _, ok := labels[l]; !ok {
				labels[l] = len(labels)
			}
		}
	}
	rw, lw := (len(regions)+63)/64, (len(labels)+63)/64
	offerLabels := make([]uint64, len(cands)*lw)
	slots := make([]slot, len(cands))
	for i := range cands {
		c := &cands[i]
		s := &slots[i]
		s.c = c
		s.idb = c.id.Bytes()
		s.tie = seedHash(seed, s.idb[:])
		s.rep = c.ps.Reputation
		s.terms = c.o.Terms
		s.reserved = c.ps.Reserved
		s.region = -1
		if c.o.Region != "" {
			s.region = regions[c.o.Region]
		}
		for _, e := range c.o.Executors {
			s.exec |= executorBit(e)
		}
		for _, l := range c.o.Labels {
			if j, ok := labels[l]; ok {
				offerLabels[i*lw+j/64] |= 1 << (j % 64)
			}
		}
		s.refresh()
	}

	regionBits := make([]uint64, rw)
	bidLabels := make([]uint64, lw)
	var out []Match
	for _, ob := range bids {
		b := ob.b
		if *ob.bal < b.MaxPrice {
			continue
		}
		// Compile the bid's constraints.
		needRegion := len(b.Constraints.Regions) > 0
		if needRegion {
			clear(regionBits)
			for _, r := range b.Constraints.Regions {
				if j, ok := regions[r]; ok {
					regionBits[j/64] |= 1 << (j % 64)
				}
			}
		}
		needLabels := len(b.Constraints.Labels) > 0
		if needLabels {
			clear(bidLabels)
			for _, l := range b.Constraints.Labels {
				j := labels[l]
				bidLabels[j/64] |= 1 << (j % 64)
			}
		}
		need := b.Resources
		gpuModel := ""
		if need.GPUs > 0 {
			gpuModel = need.GPUModel
		}
		eb := executorBit(b.Executor)
		minRep := b.Constraints.MinReputation
		ms := uint64(b.TimeoutMs)
		cpuT, memT := need.CPU*ms, need.MemMiB*ms // bounded by Validate: no overflow
		pref := b.Preference

		best := -1
		var bestKey key
		var bestPrice uint64
		for i := range slots {
			s := &slots[i]
			if s.exec&eb == 0 || s.rep < minRep ||
				need.CPU > s.avCPU || need.MemMiB > s.avMem || need.DiskMiB > s.avDisk || need.GPUs > s.avGPU {
				continue
			}
			if gpuModel != "" && s.c.o.Total.GPUModel != gpuModel {
				continue
			}
			if needRegion && (s.region < 0 || regionBits[s.region/64]&(1<<(s.region%64)) == 0) {
				continue
			}
			if needLabels && !hasBits(offerLabels[i*lw:(i+1)*lw], bidLabels) {
				continue
			}
			// Prune offers whose key cannot beat the best so far.
			if best >= 0 {
				switch pref {
				case PreferLeastLoaded:
					if s.util > bestKey.k1 {
						continue
					}
				case PreferNearest:
					r := nearRank(b.Near, s.c.o.Region)
					if r > bestKey.k1 || r == bestKey.k1 && s.util > bestKey.k2 {
						continue
					}
				case PreferBalanced:
					if balancedScore(w, 0, b.MaxPrice, s.util, s.rep) > bestKey.k1 {
						continue
					}
				}
			}
			price, ok := fastPrice(s.terms, cpuT, memT)
			if !ok || price > b.MaxPrice {
				continue
			}
			if best >= 0 && pref == PreferCheapest && price > bestKey.k1 {
				continue
			}
			load := loadAfter(s.c.o.Load, s.c.o.Total, s.reserved, need)
			k1, k2 := scoreKeys(w, b, price, load, s.c.o.Region, s.rep)
			k := key{k1: k1, k2: k2, tie: mix64(s.tie ^ ob.h), id: s.idb}
			if best < 0 || k.less(bestKey) {
				best, bestKey, bestPrice = i, k, price
			}
		}
		if best < 0 {
			continue
		}
		s := &slots[best]
		out = append(out, Match{Offer: *s.c.o, Bid: *b, Price: bestPrice})
		*ob.bal -= b.MaxPrice
		s.reserved, _ = s.reserved.Add(need) // fits in Total ≤ bounds: cannot overflow
		s.refresh()
		if len(out) == maxMatches {
			break
		}
	}
	return out
}

func hasBits(have, want []uint64) bool {
	for i, w := range want {
		if w&^have[i] != 0 {
			return false
		}
	}
	return true
}

// fastPrice is priceOf for a bid whose millicore·ms and MiB·ms products
// are precomputed; ok is false on overflow.
func fastPrice(t PriceTerms, cpuT, memT uint64) (uint64, bool) {
	cpu, ok1 := mulCeil(cpuT, t.PerCPUSecond, cpuDiv)
	mem, ok2 := mulCeil(memT, t.PerGiBSecond, memDiv)
	if !ok1 || !ok2 {
		return 0, false
	}
	s, c1 := bits.Add64(cpu, mem, 0)
	s, c2 := bits.Add64(s, t.PerJob, 0)
	return s, c1|c2 == 0
}

// mulCeil is ceil(a×b/d) for a constant d, false on overflow.
func mulCeil(a, b uint64, d uint64) (uint64, bool) {
	hi, lo := bits.Mul64(a, b)
	if hi == 0 && lo <= ^uint64(0)-(d-1) {
		return (lo + d - 1) / d, true
	}
	q, err := mulDivCeil(a, 1, b, d)
	return q, err == nil
}
