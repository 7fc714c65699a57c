package market

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

// Attacks of issue 15 on the order book: each test is named after the
// attack it stops.

// admittingBook is a book whose admission reads view.
func admittingBook(t *testing.T, view ChainView, mut func(*BookConfig)) *Book {
	t.Helper()
	return newTestBook(t, func(c *BookConfig) {
		c.View = func() ChainView { return view }
		if mut != nil {
			mut(c)
		}
	})
}

// cheapBid is a small valid bid of client at maxPrice.
func cheapBid(t testing.TB, client wallet.PrivateKey, nonce, maxPrice uint64) *Bid {
	b := baseBid(nonce)
	b.MaxPrice = maxPrice
	return signedBid(t, client, b)
}

// The attack: validly signed bids from hundreds of keys with zero balance
// fill the book; an honest bid is then refused ("order book limit
// reached"). Now every unfunded bid is refused (and counted as such), the
// book stays empty of them, and the honest bid is taken.
func TestZeroBalanceBidsCannotFillTheBookAndLockOutAnHonestBid(t *testing.T) {
	const maxBids = 300
	view := newFakeView(1000)
	bk := admittingBook(t, view, func(c *BookConfig) { c.MaxBids = maxBids; c.MaxBidsPerClient = 256 })
	for k := range 391 {
		key := testKey(t, 20_000+k)
		for n := range 2 {
			err := bk.AddBid(cheapBid(t, key, uint64(n), 1000), t0)
			if err == nil {
				t.Fatalf("an unfunded bid of %s was accepted", key.Address())
			}
			if !errors.Is(err, ErrUnfunded) || VerdictOf(err) != Refuse {
				t.Fatalf("unfunded bid: %v (verdict %d), want ErrUnfunded, Refuse", err, VerdictOf(err))
			}
		}
	}
	if _, n := bk.Len(); n != 0 {
		t.Fatalf("the book holds %d unfunded bids", n)
	}
	if got := bk.Counters()["bid/refuse/unfunded"]; got != 782 {
		t.Fatalf("counted %d unfunded refusals, want 782", got)
	}
	honest := testKey(t, 1)
	view.balances[honest.Address()] = 100_000
	if err := bk.AddBid(cheapBid(t, honest, 1, 100_000), t0); err != nil {
		t.Fatalf("the honest bid was refused: %v", err)
	}
	// Funded exactly: a second bid would need 200,000 in all.
	if err := bk.AddBid(cheapBid(t, honest, 2, 1), t0); !errors.Is(err, ErrUnfunded) {
		t.Fatalf("a bid past the client's balance: %v, want ErrUnfunded", err)
	}
	bk.checkInvariants(t)
}

// The attack: offers from thousands of unregistered keys fill the book's
// provider slots and lock real providers out. Now an offer is admitted only
// from a registered provider with at least the minimum collateral, backing
// its capacity; when the book is full, a provider with more collateral
// takes the place of the least collateralised.
func TestUnregisteredOffersCannotLockOutRealProviders(t *testing.T) {
	const maxOffers = 40
	view := newFakeView(1000)
	bk := admittingBook(t, view, func(c *BookConfig) { c.MaxOffers = maxOffers })
	for k := range 200 {
		err := bk.AddOffer(signedOffer(t, testKey(t, 30_000+k), baseOffer(1)), t0)
		if !errors.Is(err, ErrUnbacked) || VerdictOf(err) != Refuse {
			t.Fatalf("offer of an unregistered key: %v, want ErrUnbacked, Refuse", err)
		}
	}
	// Registered below the minimum: refused too.
	low := testKey(t, 29_999)
	view.providers[low.Address()] = ProviderState{Collateral: 999}
	if err := bk.AddOffer(signedOffer(t, low, baseOffer(1)), t0); !errors.Is(err, ErrUnbacked) {
		t.Fatalf("offer under the minimum collateral: %v, want ErrUnbacked", err)
	}
	// A real provider gets in.
	real := testKey(t, 1)
	view.providers[real.Address()] = ProviderState{Collateral: 5000, Reputation: 500}
	if err := bk.AddOffer(signedOffer(t, real, baseOffer(1)), t0); err != nil {
		t.Fatalf("the registered provider's offer was refused: %v", err)
	}
	// Registered at the minimum, the cheapest way to take slots, they fill
	// the book; a better-collateralised provider still gets in, and the
	// real provider (5,000) keeps its place.
	for k := range maxOffers - 1 {
		key := testKey(t, 31_000+k)
		view.providers[key.Address()] = ProviderState{Collateral: 1000}
		if err := bk.AddOffer(signedOffer(t, key, baseOffer(1)), t0); err != nil {
			t.Fatal(err)
		}
	}
	extra := testKey(t, 32_000)
	view.providers[extra.Address()] = ProviderState{Collateral: 1000}
	if err := bk.AddOffer(signedOffer(t, extra, baseOffer(1)), t0); !errors.Is(err, ErrBookFull) {
		t.Fatalf("an offer backed no better than any held: %v, want ErrBookFull", err)
	}
	late := testKey(t, 2)
	view.providers[late.Address()] = ProviderState{Collateral: 1001}
	if err := bk.AddOffer(signedOffer(t, late, baseOffer(1)), t0); err != nil {
		t.Fatalf("a better-collateralised provider was locked out: %v", err)
	}
	if n, _ := bk.Len(); n != maxOffers {
		t.Fatalf("%d offers held, want %d", n, maxOffers)
	}
	for _, k := range []wallet.PrivateKey{real, late} {
		if _, ok := bk.Offer(k.Address()); !ok {
			t.Fatalf("offer of %s was evicted", k.Address())
		}
	}
	if got := bk.Counters()["offer/evicted"]; got != 1 {
		t.Fatalf("%d offers evicted, want 1", got)
	}
	bk.checkInvariants(t)
}

// The collateral rule at its bound: at the minimum collateral (1,000) a
// provider may advertise 64 capacity units; one more needs more
// collateral.
func TestOfferCapacityIsBoundedByCollateral(t *testing.T) {
	view := newFakeView(1000)
	bk := admittingBook(t, view, nil)
	prov := testKey(t, 1)
	view.providers[prov.Address()] = ProviderState{Collateral: 1000}
	o := baseOffer(1)
	o.Total = Resources{CPU: 32_000, MemMiB: 32 * 4096, DiskMiB: 1 << 20} // 32 + 32 = 64 units
	o.Free = o.Total
	if u := CapacityUnits(o.Total); u != 64 {
		t.Fatalf("CapacityUnits = %d, want 64", u)
	}
	if err := bk.AddOffer(signedOffer(t, prov, o), t0); err != nil {
		t.Fatalf("64 units at the minimum collateral: %v", err)
	}
	o.Seq, o.Total.CPU, o.Free.CPU = 2, 32_001, 32_001 // 65 units
	err := bk.AddOffer(signedOffer(t, prov, o), t0)
	if !errors.Is(err, ErrUnbacked) {
		t.Fatalf("65 units at the minimum collateral: %v, want ErrUnbacked", err)
	}
	t.Log(err)
	view.providers[prov.Address()] = ProviderState{Collateral: 1016} // ceil(65×1000/64)
	if err := bk.AddOffer(signedOffer(t, prov, o), t0); err != nil {
		t.Fatalf("65 units at collateral 1,016: %v", err)
	}
	o.Seq, o.Total.GPUs, o.Free.GPUs = 3, 1, 1 // 73 units need 1,141
	if err := bk.AddOffer(signedOffer(t, prov, o), t0); !errors.Is(err, ErrUnbacked) {
		t.Fatalf("73 units at collateral 1,016: %v, want ErrUnbacked", err)
	}
}

// The attack: the per-client cap (256 open bids) is per key and keys are
// free, so 391 keys hold 100,000 bids. Now the cap that matters is money:
// each key's bids must be covered by its balance, and a full book lets an
// honest bid in by evicting the least valuable bids, which the Sybils'
// cheap ones are. Matching the book's least valuable bid is not enough
// (ties keep what is held): the honest client must offer more.
func TestSybilKeysCannotBypassThePerClientCapOrLockOutAnHonestBid(t *testing.T) {
	const maxBids = 400
	view := newFakeView(1000)
	bk := admittingBook(t, view, func(c *BookConfig) { c.MaxBids = maxBids; c.MaxBidsPerClient = 256 })
	// 391 keys with 3 units each: each holds 3 bids of max price 1, the
	// book fills with 400 of them, the rest find no room.
	accepted := 0
	for k := range 391 {
		key := testKey(t, 40_000+k)
		view.balances[key.Address()] = 3
		for n := range 5 {
			err := bk.AddBid(cheapBid(t, key, uint64(n), 1), t0)
			switch {
			case err == nil:
				accepted++
			case n < 3 && !errors.Is(err, ErrBookFull), n >= 3 && !errors.Is(err, ErrUnfunded) && !errors.Is(err, ErrBookFull):
				t.Fatalf("Sybil bid %d of key %d: %v", n, k, err)
			}
		}
	}
	if accepted != maxBids {
		t.Fatalf("%d Sybil bids accepted, want the book's %d", accepted, maxBids)
	}
	honest := testKey(t, 1)
	view.balances[honest.Address()] = 1 << 30
	if err := bk.AddBid(cheapBid(t, honest, 1, 1), t0); !errors.Is(err, ErrBookFull) {
		t.Fatalf("a bid worth no more than the cheapest held: %v, want ErrBookFull", err)
	}
	for n := range 256 {
		if err := bk.AddBid(cheapBid(t, honest, uint64(100+n), 5000), t0); err != nil {
			t.Fatalf("honest bid %d refused over a book of Sybil bids: %v", n, err)
		}
	}
	if _, n := bk.Len(); n != maxBids {
		t.Fatalf("%d bids held, want %d", n, maxBids)
	}
	if got := bk.Counters()["bid/evicted"]; got != 256 {
		t.Fatalf("%d bids evicted, want 256", got)
	}
	// The honest client is at its own cap now, whatever its balance.
	if err := bk.AddBid(cheapBid(t, honest, 9999, 5000), t0); !errors.Is(err, ErrBookFull) {
		t.Fatalf("bid 257 of one client: %v, want ErrBookFull", err)
	}
	bk.checkInvariants(t)
}

// Bids cost book memory by their size: the byte bound holds at its limit,
// and a large bid must be worth more per KiB than what it displaces.
func TestBookByteBoundHoldsAndLargeBidsPayPerKiB(t *testing.T) {
	view := newFakeView(1000)
	client, big := testKey(t, 1), testKey(t, 2)
	view.balances[client.Address()], view.balances[big.Address()] = 1<<40, 1<<40
	one := cheapBid(t, client, 1000, 1000) // nonces 1000..1199 encode alike
	msg, _ := one.SigningBytes()
	per := int64(len(msg) + len(one.Sig) + 3) // the book's size of one such bid: its encoding
	bk := admittingBook(t, view, func(c *BookConfig) { c.MaxBidBytes = 200 * per; c.MaxBidsPerClient = 256 })
	if per > 1024 {
		t.Fatalf("test bid of %d bytes: want under 1 KiB", per)
	}
	for n := range 200 {
		if err := bk.AddBid(cheapBid(t, client, uint64(1000+n), 1000), t0); err != nil {
			t.Fatal(err)
		}
	}
	if got := bk.Bytes(); got != 200*per {
		t.Fatalf("book holds %d bytes, want %d", got, 200*per)
	}
	// A ~5 KiB bid (every label at its bound) at the same total price is
	// worth ~5× less per KiB: refused. Priced above 1,000 per KiB, it
	// displaces small bids.
	large := baseBid(7)
	large.Constraints.Labels = nil
	for i := range MaxLabels {
		large.Constraints.Labels = append(large.Constraints.Labels, fmt.Sprintf("k%02d=%0*d", i, MaxLabelLen-4, i))
	}
	large.MaxPrice = 1000
	if err := bk.AddBid(signedBid(t, big, large), t0); !errors.Is(err, ErrBookFull) {
		t.Fatalf("large cheap bid: %v, want ErrBookFull", err)
	}
	if got := bk.Bytes(); got != 200*per {
		t.Fatalf("a refused bid changed the book: %d bytes", got)
	}
	lm, _ := signedBid(t, big, large).SigningBytes()
	large.MaxPrice = 1000 * uint64((len(lm)+67+1023)/1024+1)
	if err := bk.AddBid(signedBid(t, big, large), t0); err != nil {
		t.Fatalf("large bid worth more per KiB: %v", err)
	}
	if got := bk.Bytes(); got > 200*per {
		t.Fatalf("book holds %d bytes over its bound %d", got, 200*per)
	}
	bk.checkInvariants(t)
}

// A client that empties its account after its bids were admitted (to reuse
// the same money for more bids elsewhere) loses them at the next Recheck,
// least valuable first; an offer whose provider was slashed under the
// minimum goes too.
func TestRecheckDropsBidsAndOffersTheChainNoLongerBacks(t *testing.T) {
	view := newFakeView(1000)
	bk := admittingBook(t, view, nil)
	client, prov := testKey(t, 1), testKey(t, 2)
	view.balances[client.Address()] = 3000
	view.providers[prov.Address()] = ProviderState{Collateral: 1000}
	for n, p := range []uint64{1000, 500, 1500} {
		if err := bk.AddBid(cheapBid(t, client, uint64(n), p), t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := bk.AddOffer(signedOffer(t, prov, baseOffer(1)), t0); err != nil {
		t.Fatal(err)
	}
	view.balances[client.Address()] = 1600
	view.providers[prov.Address()] = ProviderState{Collateral: 900}
	if o, b := bk.Recheck(1000); o != 1 || b != 2 {
		t.Fatalf("Recheck dropped %d offers and %d bids, want 1 and 2", o, b)
	}
	if _, ok := bk.Bid(cheapBid(t, client, 2, 1500).ID()); !ok {
		t.Fatal("the most valuable covered bid was dropped")
	}
	bk.checkInvariants(t)
}

// A round over a book larger than its bounds considers exactly the bound,
// the same sample whatever the snapshot's order, and across blocks (seeds)
// every bid gets its turn: none starves behind the others.
func TestMatchRoundIsBoundedFairAndDeterministic(t *testing.T) {
	w := genWorld(t, rand.New(rand.NewPCG(7, 7)), 30, 20, 400, false)
	snap := NewSnapshot(w.offers, w.bids)
	distinct := map[BidID]bool{}
	for i := range snap.Bids {
		distinct[snap.bidID(i)] = true
	}
	seen := map[BidID]bool{}
	for s := range 200 {
		seed := [32]byte{byte(s), byte(s >> 8)}
		got := sampleRound(snap, seed, 10, 40)
		// At most the bound; fewer only by copies of one bid in the snapshot.
		if len(got.Bids) > 40 || len(got.Bids) < 40-(len(snap.Bids)-len(distinct)) || len(got.bidIDs) != len(got.Bids) {
			t.Fatalf("seed %d: %d bids sampled, want the bound 40", s, len(got.Bids))
		}
		provs := map[wallet.PublicKey]bool{}
		for _, o := range got.Offers {
			provs[o.Provider] = true
		}
		if len(provs) != 10 {
			t.Fatalf("seed %d: offers of %d providers sampled, want the bound 10", s, len(provs))
		}
		for _, id := range got.bidIDs {
			seen[id] = true
		}
		if s == 0 {
			rev := NewSnapshot(slices.Clone(w.offers), slices.Clone(w.bids))
			slices.Reverse(rev.Offers)
			slices.Reverse(rev.Bids)
			rev = NewSnapshot(rev.Offers, rev.Bids)
			again := sampleRound(rev, seed, 10, 40)
			a, b := slices.Clone(got.bidIDs), slices.Clone(again.bidIDs)
			cmpIDs := func(x, y BidID) int { return bytes.Compare(x[:], y[:]) }
			slices.SortFunc(a, cmpIDs)
			slices.SortFunc(b, cmpIDs)
			if !slices.Equal(a, b) {
				t.Fatal("the sample depends on the snapshot's order")
			}
		}
	}
	if len(seen) != len(distinct) {
		t.Fatalf("over 200 rounds %d of %d bids were considered", len(seen), len(distinct))
	}
	// The matcher applies its bounds.
	if ms := (Matcher{MaxBids: 5, MaxOffers: 3}).Match(snap, w.view, w.now, [32]byte{9}, 100); len(ms) > 5 {
		t.Fatalf("%d matches from a round bounded to 5 bids", len(ms))
	}
}

// The attack: one gossip peer relays a flood of funded bids from many
// Sybil keys (each under the per-client cap), each worth more than an
// honest bid, until the book is full; the honest bid, arriving from
// another peer, is then refused. Now the flooding peer fills its share
// (MaxBidsPerPeer) and no more: its further bids are ignored (not
// penalised: an honest relay can hit the share too), and the honest bid
// from another peer, and the node's own clients, still get in. On the
// code before the per-peer share, the book filled and refused the honest
// bid (ErrBookFull).
func TestOnePeerRelayingSybilKeysHitsThePeerShareNotTheBook(t *testing.T) {
	const maxBids, share = 100, 25
	view := newFakeView(1000)
	bk := admittingBook(t, view, func(c *BookConfig) { c.MaxBids = maxBids; c.MaxBidsPerClient = 10 })
	flooded, refused := 0, 0
	for k := range 30 { // 30 keys × 10 bids: 3 books' worth
		key := testKey(t, 30_000+k)
		view.balances[key.Address()] = 1 << 40
		for n := range 10 {
			data, err := cheapBid(t, key, uint64(n), 50_000).Encode()
			if err != nil {
				t.Fatal(err)
			}
			switch err := bk.AddFrom(KindBid, data, "12D3KooWflooder", t0); {
			case err == nil:
				flooded++
			case errors.Is(err, ErrPeerFull) && errors.Is(err, ErrBookFull) && VerdictOf(err) == Ignore:
				refused++
			default:
				t.Fatalf("flood bid: %v", err)
			}
		}
	}
	if flooded != share || refused != 300-share {
		t.Fatalf("the flooding peer placed %d bids (%d refused), want its share %d", flooded, refused, share)
	}
	if got := bk.Counters()["bid/ignore/peer-full"]; got != uint64(refused) {
		t.Fatalf("counted %d peer-full refusals, want %d", got, refused)
	}
	honest := testKey(t, 2)
	view.balances[honest.Address()] = 1 << 40
	data, err := cheapBid(t, honest, 1, 1000).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.AddFrom(KindBid, data, "12D3KooWhonest", t0); err != nil {
		t.Fatalf("honest bid from another peer refused: %v", err)
	}
	if err := bk.AddBid(cheapBid(t, honest, 2, 1000), t0); err != nil {
		t.Fatalf("the node's own client refused: %v", err)
	}
	// The share is freed as the peer's bids close: it may send again.
	var one BidID
	for id, e := range bk.bids {
		if e.peer == "12D3KooWflooder" && e.client == testKey(t, 30_000).Address() {
			one = id
			break
		}
	}
	bk.Close(t0, one)
	data, err = cheapBid(t, testKey(t, 30_000), 99, 50_000).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.AddFrom(KindBid, data, "12D3KooWflooder", t0); err != nil {
		t.Fatalf("after one of its bids closed, the peer's next bid: %v", err)
	}
	bk.checkInvariants(t)
	// The share is checked at its bound: exactly MaxBidsPerPeer held.
	if got := bk.peers["12D3KooWflooder"]; got != share {
		t.Fatalf("peer holds %d bids, want exactly its share %d", got, share)
	}
}

// The book's round sample is the round the matcher would draw from the
// whole book, at any size around the bound and under churn (adds,
// closes, evictions), so proposers that sample in the book and those
// that sample in the matcher agree.
func TestRoundSampleIsTheMatchersOwnSample(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	w := genWorld(t, r, 20, 8, 300, true)
	bk := newTestBook(t, func(c *BookConfig) { c.MaxBids = 250; c.MaxBidsPerClient = 250; c.MaxOffers = 15 })
	for _, o := range w.offers {
		_ = bk.AddOffer(o, w.now) // some are expired or older: refused, as gossip would be
	}
	matched := 0
	m := Matcher{MaxBids: 40, MaxOffers: 6}
	for i, b := range w.bids {
		_ = bk.AddBid(b, w.now) // some are expired or duplicates
		if i%7 == 0 {
			bk.Close(w.now, b.ID())
		}
		if i%25 != 0 {
			continue
		}
		bk.checkInvariants(t)
		seed := [32]byte{byte(i), 3}
		want := matchKeys(m.Match(bk.RoundSnapshot(), w.view, w.now, seed, 100))
		got := matchKeys(m.Match(bk.RoundSample(seed, m.RoundBids()), w.view, w.now, seed, 100))
		if !slices.Equal(got, want) {
			t.Fatalf("after %d bids: RoundSample gives %v, the whole book %v", i, got, want)
		}
		matched += len(got)
	}
	if matched == 0 {
		t.Fatal("no round matched anything: the comparison proves nothing")
	}
	if _, n := bk.Len(); n <= m.MaxBids {
		t.Fatalf("the book holds %d bids: the bound %d was never exceeded", n, m.MaxBids)
	}
}
