package market

import (
	"errors"
	"testing"
)

// The race: the chain commits a match, and takes the bid's escrow from
// the client's balance, a moment before the node calls Book.Close for it.
// A bid the client sends in that moment used to be measured against the
// lower balance *and* the matched bid's MaxPrice: the matched bid was
// counted twice, and an honest client that could fund its next bid was
// refused (a node test saw it: three bids of 3,000,000 from 10,000,000,
// the third refused as needing 6,000,000 of 4,000,000). Now a bid the
// committed state closed counts against neither the balance nor the
// client's bound. The rows check each bound exactly: the bid that fits
// is taken, one unit or one bid more is refused.
func TestMatchedBidNotYetClosedInTheBookIsNotCountedTwice(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perClient int
		next      []uint64 // MaxPrice of the bids sent after the match
		want      []error  // nil: accepted
	}{
		{name: "balance: the bid that fits is taken, one unit more is not", perClient: 256,
			next: []uint64{3_000_000, 1}, want: []error{nil, ErrUnfunded}},
		{name: "client bound: the matched bid frees its slot, and only its slot", perClient: 2,
			next: []uint64{1, 1}, want: []error{nil, ErrBookFull}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			view := newFakeView(1000)
			bk := admittingBook(t, view, func(c *BookConfig) { c.MaxBidsPerClient = tc.perClient })
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
			for i, price := range tc.next {
				err := bk.AddBid(cheapBid(t, client, uint64(10+i), price), t0)
				if tc.want[i] == nil && err != nil || tc.want[i] != nil && !errors.Is(err, tc.want[i]) {
					t.Fatalf("bid %d of %d after the match: %v, want %v", i, price, err, tc.want[i])
				}
				bk.checkInvariants(t)
			}
			// The node closes the match: the book agrees with the chain.
			bk.Close(t0, matched.ID())
			bk.checkInvariants(t)
			if _, n := bk.Len(); n != 2 {
				t.Fatalf("the book holds %d bids, want the 2 open ones", n)
			}
		})
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
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("bid %d: %v, want %v", i, err, want)
		}
	}
	bk.checkInvariants(t)
}
