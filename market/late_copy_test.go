package market

import "testing"

// TestGossipAttackLateCopiesAreIgnoredNotRefused: gossip may bring a copy
// of a bid or offer late (GossipSub forgets ids after 15 s), after the
// client's escrow or the provider's collateral went down. The copy is a
// duplicate (held) or stale (closed, superseded): Ignore, which costs the
// relay nothing. It used to meet the funding check first and be Refused,
// a penalty point for an honest relay.
func TestGossipAttackLateCopiesAreIgnoredNotRefused(t *testing.T) {
	v := newFakeView(10)
	cfg := DefaultBookConfig(testChain)
	cfg.View = func() ChainView { return v }
	bk, err := NewBook(cfg)
	if err != nil {
		t.Fatal(err)
	}

	b := signedBid(t, testKey(t, 7), baseBid(1))
	v.balances[b.ClientAddress()] = b.MaxPrice
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.AddFrom(KindBid, raw, "peerA", t0); err != nil {
		t.Fatal(err)
	}
	v.balances[b.ClientAddress()] = b.MaxPrice / 2
	if err := bk.AddFrom(KindBid, raw, "peerB", t0+1000); VerdictOf(err) != Ignore {
		t.Errorf("late copy of a held bid, client since poorer: %v (%v), want Ignore", VerdictOf(err), err)
	}
	bk.Close(t0+2000, b.ID())
	if err := bk.AddFrom(KindBid, raw, "peerC", t0+20000); VerdictOf(err) != Ignore {
		t.Errorf("late copy of a closed bid: %v (%v), want Ignore", VerdictOf(err), err)
	}

	key := testKey(t, 8)
	o := signedOffer(t, key, baseOffer(1))
	v.providers[o.ProviderAddress()] = ProviderState{Collateral: 1000}
	rawO, err := o.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.AddFrom(KindOffer, rawO, "peerA", t0); err != nil {
		t.Fatal(err)
	}
	v.providers[o.ProviderAddress()] = ProviderState{Collateral: 1} // slashed meanwhile
	if err := bk.AddFrom(KindOffer, rawO, "peerB", t0+1000); VerdictOf(err) != Ignore {
		t.Errorf("late copy of the held offer, provider since slashed: %v (%v), want Ignore", VerdictOf(err), err)
	}
	// A new offer of the provider is still judged against the chain.
	o2 := signedOffer(t, key, baseOffer(2))
	raw2, err := o2.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.AddFrom(KindOffer, raw2, "peerA", t0+2000); VerdictOf(err) != Refuse {
		t.Errorf("a new offer from a slashed provider: %v (%v), want Refuse", VerdictOf(err), err)
	}
}
