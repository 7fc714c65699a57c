package market

import (
	"bytes"
	"fmt"
	"slices"
)

// Reason explains how one offer relates to one bid. A Reason with a zero
// Offer is about the bid itself (invalid, already closed, client balance
// too low); Explain lists those first.
type Reason struct {
	Offer    OfferID   `json:"offer"`
	Fits     bool      `json:"fits"`
	Price    uint64    `json:"price,omitempty"` // PriceFor, when it can be computed
	Failures []Failure `json:"failures,omitempty"`
}

// Explain tells why the bid would or would not be matched at blockTime
// against the offers of snap, for `job submit --dry-run` and for telling a
// user why a job waits. It returns, in order:
//
//   - at most one bid-level Reason (zero Offer) listing what is wrong with
//     the bid itself: Validate's code (expired, resources, …), CodeBidUsed,
//     CodeBalance;
//   - one Reason per offer that fits, best placement first (the order a
//     round would prefer if this bid were served alone, ties broken with a
//     zero seed);
//   - one Reason per offer that does not fit, by offer id, with every rule
//     it breaks: CodeExpired (or another Validate code) for an offer no
//     longer valid, otherwise the codes of CheckMatch: self-match,
//     collateral, superseded, executor, region, label, reputation,
//     resources, price.
//
// Offers superseded by a newer offer of the same provider are left out.
func (m Matcher) Explain(b *Bid, snap Snapshot, view ChainView, blockTime int64) []Reason {
	if b == nil {
		return []Reason{{Failures: []Failure{{Code: CodeField, Detail: "no bid"}}}}
	}
	var out []Reason
	var bidFail []Failure
	if err := b.Validate(blockTime); err != nil {
		bidFail = append(bidFail, Failure{Code: CodeOf(err), Detail: err.Error()})
	}
	id := b.ID()
	if view.BidClosed(id) {
		bidFail = append(bidFail, Failure{Code: CodeBidUsed, Detail: fmt.Sprintf("job %s is already matched or cancelled", id)})
	}
	if have := view.Spendable(b.ClientAddress()); have < b.MaxPrice {
		bidFail = append(bidFail, Failure{Code: CodeBalance, Detail: fmt.Sprintf("client has %d, escrow needs %d", have, b.MaxPrice)})
	}
	if len(bidFail) > 0 {
		out = append(out, Reason{Failures: bidFail})
	}

	var live []candidate
	var dead []Reason
	for _, o := range snap.Offers {
		if o == nil {
			continue
		}
		if err := o.Validate(blockTime); err != nil {
			dead = append(dead, Reason{Offer: o.ID(), Failures: []Failure{{Code: CodeOf(err), Detail: err.Error()}}})
			continue
		}
		live = append(live, candidate{o: o, id: o.ID()})
	}
	slices.SortFunc(live, compareCandidates)

	type fit struct {
		r Reason
		k key
	}
	var fits []fit
	w := m.weights()
	minColl := view.MinCollateral()
	for i, c := range live {
		if i > 0 && live[i-1].id.Provider == c.id.Provider {
			continue // superseded
		}
		ps, ok := view.Provider(c.id.Provider)
		r := Reason{Offer: c.id}
		if p, err := PriceFor(c.o, b); err == nil {
			r.Price = p
		}
		r.Failures = checkPair(c.o, b, ps, ok, minColl, ps.Reserved)
		if len(r.Failures) > 0 {
			dead = append(dead, r)
			continue
		}
		r.Fits = true
		idb := c.id.Bytes()
		load := loadAfter(c.o.ReportedLoad(), c.o.Total, ps.Reserved, b.Resources)
		k1, k2 := scoreKeys(w, b, r.Price, load, c.id.Provider, c.o.Region, ps.Reputation, ps.Perf.Cost(blockTime))
		var zero [32]byte
		k := key{k1: k1, k2: k2, tie: mix64(seedHash(zero, idb[:]) ^ seedHash(zero, id[:])), id: idb}
		fits = append(fits, fit{r: r, k: k})
	}
	slices.SortFunc(fits, func(a, b fit) int {
		switch {
		case a.k.less(b.k):
			return -1
		case b.k.less(a.k):
			return 1
		}
		return 0
	})
	for _, f := range fits {
		out = append(out, f.r)
	}
	slices.SortStableFunc(dead, func(a, b Reason) int {
		x, y := a.Offer.Bytes(), b.Offer.Bytes()
		return bytes.Compare(x[:], y[:])
	})
	return append(out, dead...)
}
