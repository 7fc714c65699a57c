package market

import (
	"cmp"
	"math/bits"
	"slices"

	"github.com/bourse-net/bourse/wallet"
)

// hot is the part of a candidate the inner loop reads, kept small so that
// a thousand of them stay in cache.
// One cache line: resources fit in 32 bits because Validate bounds an
// offer's Total (reservations beyond 32 bits saturate, which only weakens
// the bound test in exceeds).
type hot struct {
	avCPU, avMem, avDisk, avGPU uint32 // Total minus reservations, clamped
	tCPU, tMem                  uint32 // Total
	rCPU, rMem                  uint32 // reservations, saturated
	util                        uint64 // load with nothing placed: a lower bound of loadAfter
	lbBal                       uint64 // balanced score with price 0 and load util: a lower bound
	pc                          uint64 // Terms.PerCPUSecond
	region                      int32  // index into the round's regions, -1 for none
	rep                         uint16 // reputation, at most MaxReputation
}

func sat32(x uint64) uint32 { return uint32(min(x, 1<<32-1)) }

// exceeds reports loads above bound that the cpu and memory dimensions
// alone prove: true means loadAfter(need) > bound for sure; false means
// "compute it". floor(a×1e6/t) > bound ⇔ a×1e6 ≥ (bound+1)×t.
func (h *hot) exceeds(needCPU, needMem, bound uint64) bool {
	if h.util > bound {
		return true
	}
	// r+need < 2^33, so (r+need)×1e6 cannot overflow.
	if t := uint64(h.tCPU); needCPU > 0 && t > 0 {
		if hi, lo := bits.Mul64(bound+1, t); hi == 0 && (uint64(h.rCPU)+needCPU)*scale >= lo {
			return true
		}
	}
	if t := uint64(h.tMem); needMem > 0 && t > 0 {
		if hi, lo := bits.Mul64(bound+1, t); hi == 0 && (uint64(h.rMem)+needMem)*scale >= lo {
			return true
		}
	}
	return false
}

// capa is a candidate's capacity and reservations, for loadAfter.
type capa struct {
	total, reserved [4]uint64 // cpu, memory, disk, gpus
	terms           PriceTerms
}

// loadWith is loadAfter(o.Load, Total, reserved, need) for a candidate
// whose load with nothing placed is util: only the dimensions that need
// uses can raise it.
func (c *capa) loadWith(util uint64, need *[4]uint64) uint64 {
	l := util
	for d := range 4 {
		if need[d] > 0 && c.total[d] > 0 {
			l = max(l, ratio(satAdd(c.reserved[d], need[d]), c.total[d]))
		}
	}
	return l
}

func dims(r Resources) [4]uint64 { return [4]uint64{r.CPU, r.MemMiB, r.DiskMiB, uint64(r.GPUs)} }

// cold is the rest of a compiled candidate.
type cold struct {
	c        *candidate
	reserved Resources
	tie      uint64 // seedHash(seed, offer id)
	perfTerm uint64 // Weights.Performance × Perf.Cost(block time)
	idb      [28]byte
	exec     uint8 // executor bits
}

// round is one matching round's working state.
type round struct {
	w    Weights
	hot  []hot
	capa []capa
	cold []cold
	// Candidate indexes sorted by a lower bound of a preference's key, so
	// that a scan can stop at the first candidate whose bound exceeds the
	// best key found: by util (least-loaded, nearest), by lbBal
	// (balanced), by PerCPUSecond (cheapest; static).
	// There is one set per executor, holding the candidates that support it.
	byUtil, byBal, byCPU [3]ordering
	// byRegion[e][region] lists by util the candidates of one region; the
	// lists of one executor share their pos slice (a candidate is in one).
	byRegion [3][]ordering

	byProvider  map[wallet.Address]int32 // provider → its candidate (one per provider)
	regions     map[string]int32         // offer regions → bit positions
	labels      map[string]int           // labels some bid requires → bit positions
	lw          int                      // words per label bitset
	offerLabels []uint64                 // lw words per candidate
	minNeed     Resources                // smallest cpu and memory of any bid

	// Scratch reused bid after bid.
	regionBits, bidLabels []uint64
	rank                  []uint64
	segs                  [][]int32
	rttSeg                []int32  // a nearest bid's listed candidates, nearest first
	rttMs                 []uint64 // their round trips
}

func (r *round) refresh(i int) {
	h, c := &r.hot[i], &r.cold[i]
	t := c.c.o.Total
	av := Available(t, c.reserved)
	h.avCPU, h.avMem, h.avDisk, h.avGPU = sat32(av.CPU), sat32(av.MemMiB), sat32(av.DiskMiB), av.GPUs
	h.tCPU, h.tMem = sat32(t.CPU), sat32(t.MemMiB)
	h.rCPU, h.rMem = sat32(c.reserved.CPU), sat32(c.reserved.MemMiB)
	h.util = loadAfter(c.c.o.ReportedLoad(), t, c.reserved, Resources{})
	h.lbBal = balancedScore(r.w, 0, 1, h.util, uint32(h.rep), c.perfTerm)
	r.capa[i] = capa{total: dims(t), reserved: dims(c.reserved), terms: c.c.o.Terms}
}

// ordering is a list of candidate indexes in ascending order of a key.
type ordering struct {
	order []int32
	pos   []int32 // pos[candidate] = its index in order, -1 if absent
}

func newOrdering(n int, member func(int32) bool, key func(int32) uint64) ordering {
	o := ordering{pos: make([]int32, n)}
	for i := range int32(n) {
		o.pos[i] = -1
		if member(i) {
			o.order = append(o.order, i)
		}
	}
	slices.SortFunc(o.order, func(a, b int32) int {
		if c := cmp.Compare(key(a), key(b)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for p, i := range o.order {
		o.pos[i] = int32(p)
	}
	return o
}

// siftRight restores ascending order after the key of candidate i grew.
func (o *ordering) remove(i int32) {
	p := o.pos[i]
	if p < 0 {
		return
	}
	copy(o.order[p:], o.order[p+1:])
	o.order = o.order[:len(o.order)-1]
	for q := p; q < int32(len(o.order)); q++ {
		o.pos[o.order[q]] = q
	}
	o.pos[i] = -1
}

func (o *ordering) siftRight(hs []hot, i int32, byBal bool) {
	p := o.pos[i]
	if p < 0 {
		return
	}
	n := int32(len(o.order))
	if byBal {
		for k := hs[i].lbBal; p+1 < n && hs[o.order[p+1]].lbBal < k; p++ {
			o.order[p] = o.order[p+1]
			o.pos[o.order[p]] = p
		}
	} else {
		for k := hs[i].util; p+1 < n && hs[o.order[p+1]].util < k; p++ {
			o.order[p] = o.order[p+1]
			o.pos[o.order[p]] = p
		}
	}
	o.order[p] = i
	o.pos[i] = p
}

// newRound compiles the candidates for the bids of one round.
func newRound(w Weights, cands []candidate, bids []orderedBid, seed [32]byte, blockTime int64) *round {
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
	r := &round{w: w, hot: make([]hot, len(cands)), capa: make([]capa, len(cands)), cold: make([]cold, len(cands)),
		byProvider: make(map[wallet.Address]int32, len(cands))}
	for i := range cands {
		c := &cands[i]
		r.byProvider[c.id.Provider] = int32(i)
		h, cd := &r.hot[i], &r.cold[i]
		cd.c = c
		cd.idb = c.id.Bytes()
		cd.tie = seedHash(seed, cd.idb[:])
		cd.reserved = c.ps.Reserved
		cd.perfTerm = satMul(w.Performance, c.ps.Perf.Cost(blockTime))
		h.rep = uint16(min(c.ps.Reputation, MaxReputation)) // minimum reputations are at most that
		h.pc = c.o.Terms.PerCPUSecond
		h.region = -1
		if c.o.Region != "" {
			h.region = regions[c.o.Region]
		}
		for _, e := range c.o.Executors {
			cd.exec |= executorBit(e)
		}
		for _, l := range c.o.Labels {
			if j, ok := labels[l]; ok {
				offerLabels[i*lw+j/64] |= 1 << (j % 64)
			}
		}
		r.refresh(i)
	}
	for e := range 3 {
		bit := uint8(1) << e
		member := func(i int32) bool { return r.cold[i].exec&bit != 0 }
		r.byUtil[e] = newOrdering(len(cands), member, func(i int32) uint64 { return r.hot[i].util })
		r.byBal[e] = newOrdering(len(cands), member, func(i int32) uint64 { return r.hot[i].lbBal })
		r.byCPU[e] = newOrdering(len(cands), member, func(i int32) uint64 { return r.hot[i].pc })
		r.byRegion[e] = make([]ordering, len(regions))
		pos := make([]int32, len(cands))
		for i := range pos {
			pos[i] = -1
		}
		for x := range r.byRegion[e] {
			r.byRegion[e][x] = ordering{pos: pos}
		}
		for _, i := range r.byUtil[e].order { // already by util
			if x := r.hot[i].region; x >= 0 {
				o := &r.byRegion[e][x]
				pos[i] = int32(len(o.order))
				o.order = append(o.order, i)
			}
		}
	}

	// The smallest cpu and memory any bid of the round needs: an offer with
	// less left is dropped from the scans.
	r.minNeed = Resources{CPU: 1<<64 - 1, MemMiB: 1<<64 - 1}
	for _, ob := range bids {
		r.minNeed.CPU = min(r.minNeed.CPU, ob.b.Resources.CPU)
		r.minNeed.MemMiB = min(r.minNeed.MemMiB, ob.b.Resources.MemMiB)
	}
	r.regions, r.labels, r.lw, r.offerLabels = regions, labels, lw, offerLabels
	r.regionBits = make([]uint64, rw)
	r.bidLabels = make([]uint64, lw)
	r.rank = make([]uint64, len(regions)+1) // rank[region+1]; index 0 is "no region"
	return r
}

// best returns the candidate the bid goes to (-1 for none) and the price.
// It scans the candidates in an order sorted by a lower bound of the
// bid's key and stops where the bound exceeds the best key found.
func (r *round) best(ob *orderedBid) (int32, uint64) {
	b := ob.b
	rank, regionBits, bidLabels, offerLabels, lw := r.rank, r.regionBits, r.bidLabels, r.offerLabels, r.lw
	hs, caps, colds := r.hot, r.capa, r.cold
	// Compile the bid's constraints.
	needRegion := len(b.Constraints.Regions) > 0
	if needRegion {
		clear(regionBits)
		for _, rg := range b.Constraints.Regions {
			if j, ok := r.regions[rg]; ok {
				regionBits[j/64] |= 1 << (j % 64)
			}
		}
	}
	needLabels := len(b.Constraints.Labels) > 0
	if needLabels {
		clear(bidLabels)
		for _, l := range b.Constraints.Labels {
			j := r.labels[l]
			bidLabels[j/64] |= 1 << (j % 64)
		}
	}
	pref := prefCode(b.Preference)
	if pref == prefNearest {
		for j := range rank {
			rank[j] = uint64(len(b.Near))
		}
		for j, rg := range b.Near {
			if x, ok := r.regions[rg]; ok {
				rank[x+1] = uint64(j)
			}
		}
	}
	need := b.Resources
	needD := dims(need)
	gpuModel := ""
	if need.GPUs > 0 {
		gpuModel = need.GPUModel
	}
	// Validate bounds every need below 2^31.
	nRep, nCPU, nMem, nDisk, nGPU := int64(b.Constraints.MinReputation), int64(need.CPU), int64(need.MemMiB), int64(need.DiskMiB), int64(need.GPUs)
	eb := executorBit(b.Executor)
	ms := uint64(b.TimeoutMs)
	cpuT, memT := need.CPU*ms, need.MemMiB*ms // bounded by Validate: no overflow
	e := bits.TrailingZeros8(eb)              // Validate admits only known executors
	// The lists to scan, in order. Nearest scans the offers of each
	// region of Near in turn (each by util) and stops at the first
	// region with a fit; failing that, all offers by util, skipping
	// the regions already scanned. The others scan one list.
	segs := r.segs[:0]
	nearSegs := 0
	switch pref {
	case prefCheapest:
		segs = append(segs, r.byCPU[e].order)
	case prefBalanced:
		segs = append(segs, r.byBal[e].order)
	case prefNearest:
		if len(b.RTT) > 0 {
			r.rttSeg, r.rttMs = r.rttSeg[:0], r.rttMs[:0]
			for _, x := range b.RTT {
				if j, ok := r.byProvider[x.Provider]; ok && colds[j].exec&eb != 0 {
					r.rttSeg = append(r.rttSeg, j)
					r.rttMs = append(r.rttMs, uint64(x.Ms))
				}
			}
			segs = append(segs, r.rttSeg)
		}
		for _, rg := range b.Near {
			if x, ok := r.regions[rg]; ok {
				segs = append(segs, r.byRegion[e][x].order)
			}
		}
		nearSegs = len(segs)
		segs = append(segs, r.byUtil[e].order)
	default:
		segs = append(segs, r.byUtil[e].order)
	}

	self := int32(-1) // the client's own offer, if it is a candidate: never a fit
	if j, ok := r.byProvider[ob.client]; ok {
		self = j
	}
	best := int32(-1)
	var bestKey key
	var bestPrice uint64
	pcMax := uint64(1<<64 - 1)
	bestLoadKnown := true // cheapest: bestKey.k2 (the load) is computed only on a price tie
	rttFirst := pref == prefNearest && len(b.RTT) > 0
	const nearBase = MaxRTTMs + 1 // nearest's first key of an offer the bid's RTT list does not name
	for si, order := range segs {
		rankFloor := uint64(0)
		inRTT := rttFirst && si == 0
		if pref == prefNearest {
			if best >= 0 {
				break // found in a nearer region
			}
			if si == nearSegs {
				rankFloor = uint64(len(b.Near))
			}
		}
	scan:
		for pos, i := range order {
			h := &hs[i]
			var nk1 uint64 // nearest's first key for this candidate
			if pref == prefNearest {
				if inRTT {
					nk1 = r.rttMs[pos]
				} else {
					nk1 = nearBase + rank[h.region+1]
				}
			}
			// Stop, or skip, where the key cannot beat the best so far.
			switch pref {
			case prefLeastLoaded:
				if best >= 0 && h.util > bestKey.k1 {
					break scan
				}
			case prefNearest:
				if inRTT { // ascends by round trip
					if best >= 0 && nk1 > bestKey.k1 {
						break scan
					}
					break
				}
				// Within a list every rank is the same (regions of Near
				// already scanned are skipped in the last list), and
				// the list ascends by util.
				if rank[h.region+1] < rankFloor {
					continue
				}
				if best >= 0 && h.util > bestKey.k2 {
					break scan
				}
			case prefBalanced:
				if best >= 0 && h.lbBal > bestKey.k1 {
					break scan
				}
			case prefCheapest:
				// ceil(cpuT×pc/1e6) > best price ⇔ pc > pcMax; pc ascends.
				if h.pc > pcMax {
					break scan
				}
			}
			// (The order lists only offers that support the bid's executor.)
			// Reputation and the four resources in one branch: all values
			// are below 2^32, so any shortfall makes a difference negative.
			// Never the client's own offer (CodeSelfMatch).
			if (int64(h.rep)-nRep)|(int64(h.avCPU)-nCPU)|(int64(h.avMem)-nMem)|(int64(h.avDisk)-nDisk)|(int64(h.avGPU)-nGPU) < 0 || i == self || len(ob.excl) > 0 && slices.Contains(ob.excl, i) {
				continue
			}
			if needRegion && (h.region < 0 || regionBits[h.region/64]&(1<<(h.region%64)) == 0) {
				continue
			}
			if needLabels && !hasBits(offerLabels[int(i)*lw:(int(i)+1)*lw], bidLabels) {
				continue
			}
			if gpuModel != "" && colds[i].c.o.Total.GPUModel != gpuModel {
				continue
			}
			cp := &caps[i]
			cd := &colds[i]
			if pref == prefCheapest {
				price, ok := fastPrice(&cp.terms, cpuT, memT)
				if !ok || price > b.MaxPrice || best >= 0 && price > bestKey.k1 {
					continue
				}
				if best >= 0 && price == bestKey.k1 {
					if !bestLoadKnown {
						bestKey.k2 = caps[best].loadWith(hs[best].util, &needD)
						bestLoadKnown = true
					}
					k := key{k1: price, k2: cp.loadWith(h.util, &needD), tie: mix64(cd.tie ^ ob.h), id: cd.idb}
					if k.less(bestKey) {
						best, bestKey, bestPrice = i, k, price
					}
					continue
				}
				// A strictly lower price (or the first candidate) wins outright.
				best, bestPrice, bestLoadKnown = i, price, false
				bestKey = key{k1: price, tie: mix64(cd.tie ^ ob.h), id: cd.idb}
				pcMax = pcBound(price, cpuT)
				continue
			}
			// Other preferences: first rule out, by multiplication only, a
			// load that cannot give a key at most the best one.
			if best >= 0 {
				bound := uint64(1<<64 - 1)
				switch pref {
				case prefLeastLoaded:
					bound = bestKey.k1
				case prefNearest:
					if nk1 == bestKey.k1 {
						bound = bestKey.k2
					}
				default:
					rw := satAdd(satMul(r.w.Reputation, uint64(MaxReputation-h.rep)*1000), cd.perfTerm)
					if r.w.Load > 0 && rw <= bestKey.k1 && bestKey.k1 < 1<<64-1 {
						bound = (bestKey.k1 - rw) / r.w.Load
					}
				}
				if bound < 1<<64-1 && h.exceeds(need.CPU, need.MemMiB, bound) {
					continue
				}
			}
			// Then compute the key, and the price only for a candidate
			// that would become the best.
			load := cp.loadWith(h.util, &needD)
			var k1, k2, price, ext uint64
			switch pref {
			case prefLeastLoaded:
				k1 = load
			case prefNearest:
				k1, k2 = nk1, load
			default: // balanced: the score without price bounds the score
				ext = satAdd(satMul(r.w.Distance, distCost(b, cd.c.id.Provider, cd.c.o.Region)), cd.perfTerm)
				if best >= 0 && balancedScore(r.w, 0, b.MaxPrice, load, uint32(h.rep), ext) > bestKey.k1 {
					continue
				}
			}
			if best >= 0 && pref != prefBalanced && (k1 > bestKey.k1 || k1 == bestKey.k1 && k2 > bestKey.k2) {
				continue
			}
			price, ok := fastPrice(&cp.terms, cpuT, memT)
			if !ok || price > b.MaxPrice {
				continue
			}
			if pref == prefBalanced {
				k1 = balancedScore(r.w, price, b.MaxPrice, load, uint32(h.rep), ext)
			}
			k := key{k1: k1, k2: k2, tie: mix64(cd.tie ^ ob.h), id: cd.idb}
			if best < 0 || k.less(bestKey) {
				best, bestKey, bestPrice = i, k, price
			}
		}
	}
	r.segs = segs
	return best, bestPrice
}

// place records candidate best taking need: its reservation grows, and it
// moves in (or leaves) the scan orders.
func (r *round) place(best int32, need Resources) {
	cd := &r.cold[best]
	cd.reserved, _ = cd.reserved.Add(need) // fits in Total ≤ bounds: cannot overflow
	r.refresh(int(best))
	if h := &r.hot[best]; uint64(h.avCPU) < r.minNeed.CPU || uint64(h.avMem) < r.minNeed.MemMiB {
		// No bid of the round fits any more: stop scanning it.
		for e := range 3 {
			r.byUtil[e].remove(best)
			r.byBal[e].remove(best)
			r.byCPU[e].remove(best)
			if x := r.hot[best].region; x >= 0 {
				r.byRegion[e][x].remove(best)
			}
		}
	} else {
		for e := range 3 {
			r.byUtil[e].siftRight(r.hot, best, false)
			r.byBal[e].siftRight(r.hot, best, true)
			if x := r.hot[best].region; x >= 0 {
				r.byRegion[e][x].siftRight(r.hot, best, false)
			}
		}
	}
}
