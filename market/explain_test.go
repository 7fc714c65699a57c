package market

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

func TestExplainGivesAReasonPerOffer(t *testing.T) {
	client := testKey(t, 100)
	view := newFakeView(500)
	view.balances[client.Address()] = 1 << 40
	var offers []*Offer
	wants := map[OfferID][]Code{}
	add := func(i int, registered bool, ps ProviderState, mut func(*Offer), codes ...Code) {
		key := testKey(t, i)
		o := baseOffer(1)
		if mut != nil {
			mut(&o)
		}
		so := signedOffer(t, key, o)
		offers = append(offers, so)
		if registered {
			view.providers[key.Address()] = ps
		}
		wants[so.ID()] = codes
	}
	ok := ProviderState{Collateral: 500, Reputation: 800}
	add(1, true, ok, func(o *Offer) { o.Seq = 2 })                                     // fits
	add(2, true, ok, func(o *Offer) { o.Terms.PerCPUSecond = 1 })                      // fits, cheaper
	add(3, false, ok, nil, CodeCollateral, CodeReputation)                             // unregistered: no reputation either
	add(4, true, ProviderState{Collateral: 499, Reputation: 800}, nil, CodeCollateral) // poor
	add(5, true, ok, func(o *Offer) { o.Executors = []string{ExecDocker} }, CodeExecutor)
	add(6, true, ok, func(o *Offer) { o.Region = "ap-south" }, CodeRegion)
	add(7, true, ok, func(o *Offer) { o.Labels = nil }, CodeLabel)
	add(8, true, ProviderState{Collateral: 500, Reputation: 100}, nil, CodeReputation)
	add(9, true, ProviderState{Collateral: 500, Reputation: 800, Reserved: Resources{CPU: 3500}}, nil, CodeResources)
	add(10, true, ok, func(o *Offer) { o.Terms.PerJob = 1 << 20 }, CodePrice)
	add(11, true, ok, func(o *Offer) { o.Expires = t0 }, CodeExpired)
	add(12, true, ProviderState{Reputation: 0}, func(o *Offer) { o.Region = "ap-south"; o.Terms.PerJob = 1 << 20 },
		CodeCollateral, CodeRegion, CodeReputation, CodePrice) // everything at once
	// An older offer of provider 1 is superseded and not explained.
	offers = append(offers, signedOffer(t, testKey(t, 1), baseOffer(1)))
	b := baseBid(1)
	b.Constraints.MinReputation = 500
	bid := signedBid(t, client, b)

	rs := Matcher{}.Explain(bid, NewSnapshot(offers, nil), view, t0)
	got := map[OfferID][]Code{}
	var order []OfferID
	for _, r := range rs {
		if r.Offer == (OfferID{}) {
			t.Fatalf("unexpected bid-level reason %+v", r)
		}
		var codes []Code
		for _, f := range r.Failures {
			codes = append(codes, f.Code)
			if f.Detail == "" {
				t.Errorf("offer %s: %s without detail", r.Offer, f.Code)
			}
		}
		if r.Fits != (len(codes) == 0) {
			t.Errorf("offer %s: Fits=%v with failures %v", r.Offer, r.Fits, codes)
		}
		if _, dup := got[r.Offer]; dup {
			t.Errorf("offer %s explained twice", r.Offer)
		}
		got[r.Offer] = codes
		order = append(order, r.Offer)
	}
	if !reflect.DeepEqual(got, wants) {
		t.Fatalf("reasons:\n got %v\nwant %v", got, wants)
	}
	// Fitting offers come first, best first: the cheaper one for a
	// "cheapest" bid.
	if order[0] != offers[1].ID() || order[1] != offers[0].ID() {
		t.Fatalf("fitting offers not first in preference order: %v", order[:2])
	}
	// Explain and Match agree: the bid alone goes to the first fit.
	ms := Matcher{}.Match(NewSnapshot(offers, []*Bid{bid}), view, t0, [32]byte{}, 1)
	if len(ms) != 1 || ms[0].Offer.ID() != order[0] {
		t.Fatalf("Match placed the bid on %v, Explain ranks %s first", matchKeys(ms), order[0])
	}
}

func TestExplainBidLevelReasons(t *testing.T) {
	client := testKey(t, 100)
	view := newFakeView(0)
	view.providers[testKey(t, 1).Address()] = ProviderState{Reputation: 900}
	offers := []*Offer{signedOffer(t, testKey(t, 1), baseOffer(1))}
	b := baseBid(1)
	b.MatchBy = t0 + 10
	bid := signedBid(t, client, b)
	view.closed[bid.ID()] = true
	view.balances[client.Address()] = b.MaxPrice - 1
	rs := Matcher{}.Explain(bid, NewSnapshot(offers, nil), view, t0+10)
	if len(rs) < 2 || rs[0].Offer != (OfferID{}) {
		t.Fatalf("want a bid-level reason first, got %+v", rs)
	}
	var codes []Code
	for _, f := range rs[0].Failures {
		codes = append(codes, f.Code)
	}
	if want := []Code{CodeExpired, CodeBidUsed, CodeBalance}; !slices.Equal(codes, want) {
		t.Fatalf("bid-level codes %v, want %v", codes, want)
	}
	if got := (Matcher{}).Explain(nil, Snapshot{}, view, t0); len(got) != 1 || got[0].Failures[0].Code != CodeField {
		t.Fatalf("nil bid: %+v", got)
	}
}

// On random books, Explain and Match agree bid by bid: a bid served alone
// goes to the first offer Explain lists as fitting, and to none when
// Explain finds no fit or a bid-level problem.
func TestExplainAgreesWithMatch(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 7))
	iterations := 300
	if raceEnabled {
		iterations = 40
	}
	fits := 0
	for it := 0; it < iterations; it++ {
		w := genWorld(t, r, 1+r.IntN(10), 1+r.IntN(4), 1+r.IntN(10), false)
		snap := NewSnapshot(w.offers, nil)
		for _, b := range w.bids {
			rs := Matcher{}.Explain(b, snap, w.view, w.now)
			var want *OfferID
			for _, x := range rs {
				if x.Offer == (OfferID{}) {
					break // a bid-level problem: no match
				}
				if x.Fits {
					want = &x.Offer
					break
				}
			}
			ms := Matcher{}.Match(NewSnapshot(w.offers, []*Bid{b}), w.view, w.now, [32]byte{}, 1)
			switch {
			case want == nil && len(ms) != 0:
				t.Fatalf("seed %d: Explain finds no fit for %s, Match placed it on %s", seed, b.ID(), ms[0].Offer.ID())
			case want != nil && (len(ms) != 1 || ms[0].Offer.ID() != *want):
				t.Fatalf("seed %d: Explain ranks %s first for %s, Match gave %v", seed, *want, b.ID(), matchKeys(ms))
			case want != nil:
				fits++
			}
		}
	}
	if fits == 0 {
		t.Fatalf("seed %d: no bid fitted anywhere: the generator is broken", seed)
	}
}
