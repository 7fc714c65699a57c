package market

import "testing"

// Attacks of issue 13 on the market's match rules: each test is named
// after the attack it stops.

// A provider that bids on its own offer (to farm reputation, or to make the
// chain book its own capacity) is never placed there by the matcher, and
// CheckMatch refuses such a Match should a proposer build one by hand.
func TestSelfMatchProviderBiddingOnOwnOfferIsNeverProposedNorAccepted(t *testing.T) {
	prov, other := testKey(t, 1), testKey(t, 2)
	view := newFakeView(500)
	view.providers[prov.Address()] = ProviderState{Collateral: 500, Reputation: 500}
	view.balances[prov.Address()] = 1 << 30
	own := signedOffer(t, prov, baseOffer(1))
	b := signedBid(t, prov, baseBid(1)) // the provider's own key bids

	// Only its own offer fits: no match.
	if ms := (Matcher{}).Match(NewSnapshot([]*Offer{own}, []*Bid{b}), view, t0, [32]byte{}, 10); len(ms) != 0 {
		t.Fatalf("matcher placed a provider's bid on its own offer: %s", matchKeys(ms))
	}
	// With a dearer offer of another provider, the bid goes there even
	// though its own offer is the cheapest.
	dear := baseOffer(1)
	dear.Terms.PerCPUSecond *= 3
	theirs := signedOffer(t, other, dear)
	view.providers[other.Address()] = ProviderState{Collateral: 500, Reputation: 500}
	ms := (Matcher{}).Match(NewSnapshot([]*Offer{own, theirs}, []*Bid{b}), view, t0, [32]byte{}, 10)
	if len(ms) != 1 || ms[0].Offer.ProviderAddress() != other.Address() {
		t.Fatalf("got %s, want the bid on %s's offer", matchKeys(ms), other.Address())
	}
	if err := CheckMatch(testChain, &ms[0], view, t0); err != nil {
		t.Fatalf("the proposed match fails CheckMatch: %v", err)
	}
	// A hand-built self-match is refused.
	self := Match{Offer: *own, Bid: *b}
	self.Price, _ = PriceFor(own, b)
	if err := CheckMatch(testChain, &self, view, t0); CodeOf(err) != CodeSelfMatch {
		t.Fatalf("CheckMatch(self-match) = %v, want code %q", err, CodeSelfMatch)
	}
	// Explain tells the provider why.
	rs := (Matcher{}).Explain(b, NewSnapshot([]*Offer{own}, nil), view, t0)
	if len(rs) != 1 || rs[0].Fits || len(rs[0].Failures) == 0 || rs[0].Failures[0].Code != CodeSelfMatch {
		t.Fatalf("Explain = %+v, want the own offer refused as %q", rs, CodeSelfMatch)
	}
}

// The attack: the chain committed a Match on the provider's offer #2 (it
// sells 1,000 millicores at 20 per cpu-second); offer #1 (4,000 millicores
// at 10) is still unexpired. A Match on #1 would book the provider past
// what it sells now, at its old prices. CheckMatch refuses it, the matcher
// never proposes it (even when its book only holds #1, because #2's gossip
// has not reached it), and more matches on #2 itself stay valid.
func TestOlderOfferVersionIsNotMatchableAfterAMatchOnANewerOne(t *testing.T) {
	prov, client := testKey(t, 1), testKey(t, 2)
	view := newFakeView(500)
	view.providers[prov.Address()] = ProviderState{Collateral: 500, Reputation: 500}
	view.balances[client.Address()] = 1 << 30
	old := signedOffer(t, prov, baseOffer(1))
	o2 := baseOffer(2)
	o2.Total, o2.Free = Resources{CPU: 1000, MemMiB: 8192, DiskMiB: 10240}, Resources{CPU: 1000, MemMiB: 6000, DiskMiB: 10000}
	o2.Terms.PerCPUSecond = 20
	newer := signedOffer(t, prov, o2)
	mk := func(o *Offer, nonce uint64, cpu uint64) Match {
		bb := baseBid(nonce)
		bb.Resources.CPU = cpu
		b := signedBid(t, client, bb)
		m := Match{Offer: *o, Bid: *b}
		m.Price, _ = PriceFor(o, b)
		return m
	}
	// Block k: a match on offer #2, which the chain applies.
	m2 := mk(newer, 1, 500)
	if err := CheckMatch(testChain, &m2, view, t0); err != nil {
		t.Fatal(err)
	}
	view.apply(t, &m2)
	if got := view.providers[prov.Address()].NewestOfferSeq; got != 2 {
		t.Fatalf("NewestOfferSeq %d after a match on #2", got)
	}
	// A match on the older offer #1 (3,000 millicores free there at 10): refused.
	m1 := mk(old, 2, 3000)
	if err := CheckMatch(testChain, &m1, view, t0); CodeOf(err) != CodeSuperseded {
		t.Fatalf("CheckMatch(match on superseded offer #1) = %v, want code %q", err, CodeSuperseded)
	}
	// The proposer's book only has #1: it proposes nothing on it.
	bid := m1.Bid
	if ms := (Matcher{}).Match(NewSnapshot([]*Offer{old}, []*Bid{&bid}), view, t0, [32]byte{}, 10); len(ms) != 0 {
		t.Fatalf("matcher proposed a match on a superseded offer: %s", matchKeys(ms))
	}
	// Another match on #2 is fine (equal seq), and the matcher makes it.
	small := mk(newer, 3, 500).Bid
	ms := (Matcher{}).Match(NewSnapshot([]*Offer{old, newer}, []*Bid{&bid, &small}), view, t0, [32]byte{}, 10)
	if len(ms) != 1 || ms[0].Offer.Seq != 2 || ms[0].ID() != small.ID() {
		t.Fatalf("got %s, want only the 500-millicore bid on offer #2", matchKeys(ms))
	}
	if err := CheckMatch(testChain, &ms[0], view, t0); err != nil {
		t.Fatalf("second match on offer #2 refused: %v", err)
	}
	// Explain names the reason for #1.
	rs := (Matcher{}).Explain(&bid, NewSnapshot([]*Offer{old}, nil), view, t0)
	if len(rs) != 1 || rs[0].Fits || rs[0].Failures[0].Code != CodeSuperseded {
		t.Fatalf("Explain = %+v, want offer #1 refused as %q", rs, CodeSuperseded)
	}
}
