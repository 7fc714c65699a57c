package market

import (
	"errors"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

// The race: the chain commits a match, and takes the bid's escrow from
// the client's balance, a moment before the node calls Book.Close for it.
// A bid the client sends in that moment used to be measured against the
// lower balance *and* the matched bid's MaxPrice: the matched bid was
// counted twice, and an honest client that could fund its next bid was
// refused (a node test saw it: three bids of 3,000,000 from 10,000,000,
// the third refused as needing 6,000,000 of 4,000,000). Now a bid the
// committed state closed no longer counts against the balance. The test
// checks the bound exactly: the bid that fits is taken, one unit more is
// refused.
func TestMatchedBidNotYetClosedInTheBookIsNotCountedTwice(t *testing.T) {
	view := newFakeView(1000)
	bk := admittingBook(t, view, nil)
	client := testKey(t, 7)
	view.balances[client.Address()] = 9_000_000
	matched := cheapBid(t, client, 1, 3_000_000)
	for _, b := range []*Bid{matched, cheapBid(t, client, 2, 3_000_000)} {
		if err := bk.AddBid(b, t0); err != nil {
			t.Fatalf("bid %d: %v", b.Nonce, err)
		}
	}
	// The chain matches the first bid; the book has not heard yet.
	view.balances[client.Address()] -= matched.MaxPrice
	view.closed[matched.ID()] = true
	for i, tc := range []struct {
		price uint64
		want  error // nil: accepted
	}{{3_000_000, nil}, {1, ErrUnfunded}} {
		err := bk.AddBid(cheapBid(t, client, uint64(10+i), tc.price), t0)
		if !errors.Is(err, tc.want) { // errors.Is(nil, nil) holds
			t.Fatalf("bid %d of %d after the match: %v, want %v", i, tc.price, err, tc.want)
		}
		bk.checkInvariants(t)
	}
	// The node closes the match: the book agrees with the chain.
	bk.Close(t0, matched.ID())
	bk.checkInvariants(t)
	if _, n := bk.Len(); n != 2 {
		t.Fatalf("the book holds %d bids, want the 2 open ones", n)
	}
}

// The same check with nothing closed on the chain: a client cannot
// overspend by sending bids while none of its bids has matched.
func TestOpenBidsStillCountAgainstTheBalance(t *testing.T) {
	view := newFakeView(1000)
	bk := admittingBook(t, view, nil)
	client := testKey(t, 8)
	view.balances[client.Address()] = 6_000_000
	for i, want := range []error{nil, nil, ErrUnfunded} {
		err := bk.AddBid(cheapBid(t, client, uint64(i), 3_000_000), t0)
		if !errors.Is(err, want) {
			t.Fatalf("bid %d: %v, want %v", i, err, want)
		}
	}
	bk.checkInvariants(t)
}

// hookView is a fakeView that counts BidClosed reads and can run a hook
// once, on the next Spendable: the moment a block commits in the tests
// below.
type hookView struct {
	*fakeView
	closedReads int
	onSpendable func()
}

func (v *hookView) BidClosed(id BidID) bool {
	v.closedReads++
	return v.fakeView.BidClosed(id)
}

func (v *hookView) Spendable(a wallet.Address) uint64 {
	s := v.fakeView.Spendable(a)
	if h := v.onSpendable; h != nil {
		v.onSpendable = nil
		h()
	}
	return s
}

// The attack: a restarted node's book remembers no closed bids, so a peer
// replays bids the chain matched or cancelled. Such a bid can never match;
// left in the book, and closed on the chain, it would count against
// neither its client's bound nor its balance. Each is now Stale (Ignore:
// an honest relay may carry a late copy) and none enters the book.
func TestBookAttackReplayedClosedBidsAreStale(t *testing.T) {
	view := &hookView{fakeView: newFakeView(1000)}
	bk := admittingBook(t, view, func(c *BookConfig) { c.MaxBidsPerClient = 4 })
	client := testKey(t, 9)
	view.balances[client.Address()] = 1000
	for i := range 40 {
		b := cheapBid(t, client, uint64(i), 1)
		view.closed[b.ID()] = true
		err := bk.AddBidFrom(b, "replayer", t0)
		if !errors.Is(err, ErrStale) || VerdictOf(err) != Ignore {
			t.Fatalf("replayed closed bid %d: %v (verdict %d), want ErrStale, Ignore", i, err, VerdictOf(err))
		}
	}
	if _, n := bk.Len(); n != 0 {
		t.Fatalf("the book holds %d replayed bids", n)
	}
	// The client's own new bids are unaffected: exactly 4 fit.
	for i, want := range []error{nil, nil, nil, nil, ErrBookFull} {
		err := bk.AddBid(cheapBid(t, client, uint64(100+i), 1), t0)
		if !errors.Is(err, want) {
			t.Fatalf("new bid %d: %v, want %v", i, err, want)
		}
	}
	bk.checkInvariants(t)
}

// The attack: badly signed bids naming a client whose open bids use up
// its balance. Looking up which of its open bids the chain closed costs a
// read per open bid; a forged bid must not buy them. Each message costs
// one read (whether the bid itself is closed) and is rejected for its
// signature. A client at its bid bound is not looked up at all.
func TestBookAttackForgedBidsBuyNoChainLookups(t *testing.T) {
	view := &hookView{fakeView: newFakeView(1000)}
	bk := admittingBook(t, view, func(c *BookConfig) { c.MaxBidsPerClient = 150 })
	victim := testKey(t, 10)
	view.balances[victim.Address()] = 100
	for i := range 100 {
		if err := bk.AddBid(cheapBid(t, victim, uint64(i), 1), t0); err != nil {
			t.Fatal(err)
		}
	}
	forge := func(nonce uint64) *Bid {
		b := cheapBid(t, victim, nonce, 1)
		b.Sig = append([]byte(nil), b.Sig...)
		b.Sig[0] ^= 0xff
		return b
	}
	view.closedReads = 0
	for i := range 100 {
		if err := bk.AddBidFrom(forge(uint64(1000+i)), "forger", t0); VerdictOf(err) != Reject {
			t.Fatalf("forged bid %d: %v (verdict %d), want Reject", i, err, VerdictOf(err))
		}
	}
	if view.closedReads != 100 {
		t.Fatalf("100 forged bids cost %d chain reads, want 100", view.closedReads)
	}
	// A validly signed bid past the balance does look, once per open bid,
	// and is refused: none of the 100 has closed.
	view.closedReads = 0
	if err := bk.AddBid(cheapBid(t, victim, 5000, 1), t0); !errors.Is(err, ErrUnfunded) {
		t.Fatalf("bid past the balance: %v, want ErrUnfunded", err)
	}
	if view.closedReads != 1+100 {
		t.Fatalf("a bid past the balance cost %d reads, want 101", view.closedReads)
	}
	// At the bid bound nothing is looked up: the bid is ignored.
	view.balances[victim.Address()] = 1000
	for i := range 50 {
		if err := bk.AddBid(cheapBid(t, victim, uint64(6000+i), 1), t0); err != nil {
			t.Fatal(err)
		}
	}
	view.closedReads = 0
	if err := bk.AddBidFrom(forge(7000), "forger", t0); !errors.Is(err, ErrBookFull) || VerdictOf(err) != Ignore {
		t.Fatalf("bid past the bound: %v, want ErrBookFull (Ignore)", err)
	}
	if view.closedReads != 1 {
		t.Fatalf("a bid past the bound cost %d reads, want 1", view.closedReads)
	}
	bk.checkInvariants(t)
}

// The race: the block matching bid Y commits, and the node closes Y,
// after the book first read the client's balance. Paired with that older
// balance, the sum without Y would admit a bid the client cannot fund.
// The final check reads the balance again under the book's lock.
func TestBidCheckedAgainstTheBalanceAfterAConcurrentClose(t *testing.T) {
	view := &hookView{fakeView: newFakeView(1000)}
	bk := admittingBook(t, view, nil)
	client := testKey(t, 11)
	view.balances[client.Address()] = 6_000_000
	y := cheapBid(t, client, 1, 3_000_000)
	if err := bk.AddBid(y, t0); err != nil {
		t.Fatal(err)
	}
	view.onSpendable = func() {
		view.balances[client.Address()] -= y.MaxPrice
		view.closed[y.ID()] = true
		bk.Close(t0, y.ID())
	}
	if err := bk.AddBid(cheapBid(t, client, 2, 3_000_001), t0); !errors.Is(err, ErrUnfunded) {
		t.Fatalf("a bid of 3,000,001 against a balance of 3,000,000: %v, want ErrUnfunded", err)
	}
	if err := bk.AddBid(cheapBid(t, client, 3, 3_000_000), t0); err != nil {
		t.Fatalf("a bid of exactly the balance: %v", err)
	}
	bk.checkInvariants(t)
}
