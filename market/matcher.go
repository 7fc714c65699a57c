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
	// MaxBids and MaxOffers bound what one round considers (0 means
	// DefaultRoundBids and DefaultRoundOffers), so that a round's cost does
	// not grow with the book; see sampleRound.
	MaxBids, MaxOffers int
}

// Default bounds of one round: about 10 ms of matching on one core.
const (
	DefaultRoundBids   = 1024
	DefaultRoundOffers = 512
)

// RoundBids is the most bids one round considers: MaxBids, or
// DefaultRoundBids. Pass it to Book.RoundSample.
func (m Matcher) RoundBids() int { return cmp.Or(m.MaxBids, DefaultRoundBids) }

// Validate checks the configuration.
func (m Matcher) Validate() error {
	if m.MaxBids < 0 || m.MaxOffers < 0 {
		return fmt.Errorf("matcher bounds %d bids, %d offers: must not be negative", m.MaxBids, m.MaxOffers)
	}
	w := m.Weights
	if w.Price > MaxWeight || w.Load > MaxWeight || w.Reputation > MaxWeight || w.Distance > MaxWeight || w.Performance > MaxWeight {
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
// dropped, and so are providers whose newest offer here is older than the
// newest the chain has matched (ProviderState.NewestOfferSeq): CheckMatch
// refuses a superseded offer. The result is sorted by provider address.
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
		if !ok || ps.Collateral < minColl || c.id.Seq < ps.NewestOfferSeq {
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
	matchBy int64 // b.MatchBy, kept here for the sort
	b       *Bid
	id      BidID
	h       uint64 // seedHash(seed, id)
	bal     *uint64
	client  wallet.Address // never placed on its own provider's offer
	excl    []int32        // candidates holding another replica of the bid's job (CodeReplica)
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
		bs = append(bs, orderedBid{matchBy: b.MatchBy, b: b, id: snap.bidID(i)})
	}
	type client struct {
		bal  uint64
		addr wallet.Address
	}
	clients := make(map[wallet.PublicKey]*client)
	out := bs[:0]
	for _, ob := range bs {
		if view.BidClosed(ob.id) {
			continue
		}
		ob.h = seedHash(seed, ob.id[:])
		c, ok := clients[ob.b.Client]
		if !ok {
			addr := ob.b.ClientAddress()
			c = &client{bal: view.Spendable(addr), addr: addr}
			clients[ob.b.Client] = c
		}
		ob.bal, ob.client = &c.bal, c.addr
		out = append(out, ob)
	}
	slices.SortFunc(out, func(a, b orderedBid) int {
		if c := cmp.Compare(a.matchBy, b.matchBy); c != 0 {
			return c
		}
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	// Copies of one bid share id, hence MatchBy and h: they are adjacent.
	out = slices.CompactFunc(out, func(a, b orderedBid) bool { return a.id == b.id })
	return out
}

// Match runs one matching round and returns at most maxMatches matches
// (none if maxMatches ≤ 0), in the order they must appear in the block.
//
// A book larger than the matcher's bounds is sampled first (sampleRound).
// The round considers the offers and bids of the sample that are valid at
// blockTime (see selectOffers and orderBids for duplicates and order),
// and serves bids one at a time: a bid whose client can no longer cover
// its MaxPrice is skipped; otherwise it goes to the feasible offer with
// the lowest placement key (see the scoring table in this package's
// documentation), and the offer's reservation and the client's balance
// are updated before the next bid. Feasible means what CheckMatch checks:
// not the client's own offer, provider collateral, offer not superseded on
// chain, executor, region, labels, reputation, resources
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
	snap = sampleRound(snap, seed, cmp.Or(m.MaxOffers, DefaultRoundOffers), cmp.Or(m.MaxBids, DefaultRoundBids))
	cands := selectOffers(snap.Offers, view, blockTime)
	bids := orderBids(&snap, view, blockTime, seed)
	if len(cands) == 0 || len(bids) == 0 {
		return nil
	}
	r := newRound(m.weights(), cands, bids, seed, blockTime)
	out := make([]Match, 0, min(maxMatches, len(bids)))
	var groups map[BidID][]int32 // replica groups: candidates taken on chain and in this round
	for i := range bids {
		ob := &bids[i]
		if *ob.bal < ob.b.MaxPrice {
			continue
		}
		var group BidID
		if ob.b.Replicas > 1 {
			group = ob.b.GroupID()
			if groups == nil {
				groups = map[BidID][]int32{}
			}
			taken, ok := groups[group]
			if !ok {
				for _, a := range view.ReplicaProviders(group) {
					if j, ok := r.byProvider[a]; ok {
						taken = append(taken, j)
					}
				}
			}
			groups[group], ob.excl = taken, taken
		}
		best, price := r.best(ob)
		if best < 0 {
			continue
		}
		if ob.b.Replicas > 1 {
			groups[group] = append(groups[group], best)
		}
		out = append(out, Match{Offer: *r.cold[best].c.o, Bid: *ob.b, Price: price})
		*ob.bal -= ob.b.MaxPrice
		r.place(best, ob.b.Resources)
		if len(out) == maxMatches {
			break
		}
	}
	return out
}

// Preferences as small integers for the inner loop.
const (
	prefBalanced = iota
	prefCheapest
	prefLeastLoaded
	prefNearest
)

func prefCode(p string) int {
	switch p {
	case PreferCheapest:
		return prefCheapest
	case PreferLeastLoaded:
		return prefLeastLoaded
	case PreferNearest:
		return prefNearest
	}
	return prefBalanced
}

func hasBits(have, want []uint64) bool {
	for i, w := range want {
		if w&^have[i] != 0 {
			return false
		}
	}
	return true
}

// pcBound is the largest PerCPUSecond whose CPU part alone,
// ceil(cpuT×pc/1e6), does not exceed price.
func pcBound(price, cpuT uint64) uint64 {
	if cpuT == 0 {
		return 1<<64 - 1
	}
	hi, lo := bits.Mul64(price, cpuDiv)
	if hi >= cpuT {
		return 1<<64 - 1
	}
	q, _ := bits.Div64(hi, lo, cpuT)
	return q
}

// fastPrice is priceOf for a bid whose millicore·ms and MiB·ms products
// are precomputed; ok is false on overflow.
func fastPrice(t *PriceTerms, cpuT, memT uint64) (uint64, bool) {
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
