package market

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

func newTestBook(t *testing.T, mut func(*BookConfig)) *Book {
	t.Helper()
	cfg := DefaultBookConfig(testChain)
	if mut != nil {
		mut(&cfg)
	}
	bk, err := NewBook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return bk
}

func TestBookConfigValidate(t *testing.T) {
	for name, mut := range map[string]func(*BookConfig){
		"no chain":         func(c *BookConfig) { c.ChainID = "" },
		"no offers":        func(c *BookConfig) { c.MaxOffers = 0 },
		"no bids":          func(c *BookConfig) { c.MaxBids = -1 },
		"client above all": func(c *BookConfig) { c.MaxBidsPerClient = c.MaxBids + 1 },
		"no closed memory": func(c *BookConfig) { c.MaxClosed = 0 },
	} {
		cfg := DefaultBookConfig(testChain)
		mut(&cfg)
		if _, err := NewBook(cfg); err == nil {
			t.Errorf("%s: NewBook accepted %+v", name, cfg)
		}
	}
}

// Each step adds one message and expects an outcome; the book's content
// and counters are checked at the end.
func TestBookAddOutcomes(t *testing.T) {
	prov, client := testKey(t, 1), testKey(t, 2)
	bk := newTestBook(t, func(c *BookConfig) { c.MaxBidsPerClient = 2; c.MaxOffers = 2 })
	o1 := signedOffer(t, prov, baseOffer(1))
	o2 := signedOffer(t, prov, baseOffer(2))
	o2twin := baseOffer(2)
	o2twin.Load = 999
	o2conflict := signedOffer(t, prov, o2twin)
	tampered := *signedOffer(t, testKey(t, 5), baseOffer(1))
	tampered.Load = 7
	otherChain := baseOffer(1)
	if err := otherChain.Sign("other", testKey(t, 6)); err != nil {
		t.Fatal(err)
	}
	expired := baseOffer(1)
	expired.Expires = t0
	b1, b2, b3 := signedBid(t, client, baseBid(1)), signedBid(t, client, baseBid(2)), signedBid(t, client, baseBid(3))
	bad := baseBid(9)
	bad.Replicas = MaxReplicas + 1
	badBid := signedBid(t, client, bad)
	steps := []struct {
		name string
		add  func() error
		want Verdict
		is   error
		code Code
	}{
		{"offer", func() error { return bk.AddOffer(o1, t0) }, Accept, nil, ""},
		{"same offer again", func() error { return bk.AddOffer(o1, t0) }, Ignore, ErrDuplicate, ""},
		{"newer offer replaces", func() error { return bk.AddOffer(o2, t0) }, Accept, nil, ""},
		{"older offer is stale", func() error { return bk.AddOffer(o1, t0) }, Ignore, ErrStale, ""},
		{"same seq, other content", func() error { return bk.AddOffer(o2conflict, t0) }, Ignore, ErrStale, ""},
		{"tampered offer", func() error { return bk.AddOffer(&tampered, t0) }, Reject, nil, CodeSignature},
		{"offer for another chain", func() error { return bk.AddOffer(&otherChain, t0) }, Reject, nil, CodeSignature},
		{"expired offer", func() error { return bk.AddOffer(signedOffer(t, testKey(t, 7), expired), t0) }, Ignore, nil, CodeExpired},
		{"second provider", func() error { return bk.AddOffer(signedOffer(t, testKey(t, 8), baseOffer(1)), t0) }, Accept, nil, ""},
		{"third provider: full", func() error { return bk.AddOffer(signedOffer(t, testKey(t, 9), baseOffer(1)), t0) }, Ignore, ErrBookFull, ""},
		{"offer bytes: garbage", func() error { return bk.Add(KindOffer, []byte{0xff}, t0) }, Reject, nil, CodeDecode},
		{"nil offer", func() error { return bk.AddOffer(nil, t0) }, Reject, nil, CodeDecode},
		{"nil bid", func() error { return bk.AddBid(nil, t0) }, Reject, nil, CodeDecode},
		{"bid", func() error { return bk.AddBid(b1, t0) }, Accept, nil, ""},
		{"same bid", func() error { return bk.AddBid(b1, t0) }, Ignore, ErrDuplicate, ""},
		{"second bid as bytes", func() error { data, _ := b2.Encode(); return bk.Add(KindBid, data, t0) }, Accept, nil, ""},
		{"third bid: client limit", func() error { return bk.AddBid(b3, t0) }, Ignore, ErrBookFull, ""},
		{"invalid bid", func() error { return bk.AddBid(badBid, t0) }, Reject, nil, CodeField},
		{"closed bid cannot come back", func() error { bk.Close(t0, b1.ID()); return bk.AddBid(b1, t0) }, Ignore, ErrStale, ""},
		{"room again after close", func() error { return bk.AddBid(b3, t0) }, Accept, nil, ""},
	}
	for _, s := range steps {
		err := s.add()
		if got := VerdictOf(err); got != s.want {
			t.Fatalf("%s: verdict %d (%v), want %d", s.name, got, err, s.want)
		}
		if s.is != nil && !errors.Is(err, s.is) {
			t.Fatalf("%s: error %v, want %v", s.name, err, s.is)
		}
		if s.code != "" && CodeOf(err) != s.code {
			t.Fatalf("%s: code %q (%v), want %q", s.name, CodeOf(err), err, s.code)
		}
	}
	if o, ok := bk.Offer(prov.Address()); !ok || o.Seq != 2 || o.Load != o2.Load {
		t.Fatalf("held offer = %+v, want seq 2 as first signed", o)
	}
	snap := bk.Snapshot()
	if len(snap.Offers) != 2 || len(snap.Bids) != 2 {
		t.Fatalf("snapshot has %d offers, %d bids; want 2, 2", len(snap.Offers), len(snap.Bids))
	}
	for i := range snap.Bids {
		if snap.bidID(i) != snap.Bids[i].ID() {
			t.Fatal("snapshot bid ids out of step with bids")
		}
	}
	c := bk.Counters()
	for k, want := range map[string]uint64{
		"offer/accept": 3, "offer/ignore/duplicate": 1, "offer/ignore/stale": 2, "offer/reject/signature": 2,
		"offer/ignore/expired": 1, "offer/ignore/full": 1, "offer/reject/decode": 2,
		"bid/accept": 3, "bid/reject/decode": 1, "bid/ignore/duplicate": 1, "bid/ignore/full": 1, "bid/reject/field": 1, "bid/ignore/stale": 1,
	} {
		if c[k] != want {
			t.Errorf("counter %s = %d, want %d (all: %v)", k, c[k], want, c)
		}
	}
	if err := bk.Add(Kind(9), nil, t0); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestBookPruneAndTotalBound(t *testing.T) {
	bk := newTestBook(t, func(c *BookConfig) { c.MaxBids = 3; c.MaxBidsPerClient = 3; c.MaxClosed = 2 })
	client := testKey(t, 2)
	var bids []*Bid
	for i := 0; i < 4; i++ {
		b := baseBid(uint64(i))
		b.MatchBy = t0 + int64(1000*(i+1))
		bids = append(bids, signedBid(t, client, b))
	}
	for i, b := range bids {
		err := bk.AddBid(b, t0)
		if want := i < 3; (err == nil) != want {
			t.Fatalf("bid %d: %v", i, err)
		}
	}
	o := baseOffer(1)
	o.Expires = t0 + 1500
	if err := bk.AddOffer(signedOffer(t, testKey(t, 1), o), t0); err != nil {
		t.Fatal(err)
	}
	offers, dropped := bk.Prune(t0 + 2000) // bids 0 and 1 and the offer expire
	if offers != 1 || dropped != 2 {
		t.Fatalf("Prune dropped %d offers, %d bids; want 1, 2", offers, dropped)
	}
	if no, nb := bk.Len(); no != 0 || nb != 1 {
		t.Fatalf("Len = %d, %d", no, nb)
	}
	if _, ok := bk.Bid(bids[2].ID()); !ok {
		t.Fatal("unexpired bid pruned")
	}
	// The closed memory is bounded: the ids that expire first are forgotten.
	bk.Close(t0, bids[2].ID(), bids[0].ID(), bids[1].ID())
	if n := len(bk.closed); n != 2 {
		t.Fatalf("closed memory holds %d ids, want 2", n)
	}
	if _, ok := bk.Bid(bids[2].ID()); ok {
		t.Fatal("closed bid still held")
	}
	if err := bk.AddBid(bids[0], t0); !errors.Is(err, ErrStale) {
		t.Fatalf("remembered closed bid re-added: %v", err)
	}
	// bids[2] expires first (its MatchBy, against now+MaxBidTTL for the
	// two the book no longer held), so it was forgotten; the chain's
	// BidClosed stays the final guard against matching it twice.
	if err := bk.AddBid(bids[2], t0); err != nil {
		t.Fatalf("forgotten closed bid: %v", err)
	}
}

// Many goroutines adding, pruning, closing and snapshotting at once: run
// under -race; the book stays within its bounds and consistent.
func TestBookConcurrentUse(t *testing.T) {
	bk := newTestBook(t, func(c *BookConfig) { c.MaxBids = 50; c.MaxBidsPerClient = 10 })
	var offers []*Offer
	var bids []*Bid
	for i := 0; i < 20; i++ {
		offers = append(offers, signedOffer(t, testKey(t, i), baseOffer(uint64(1+i%3))))
		bids = append(bids, signedBid(t, testKey(t, 100+i%8), baseBid(uint64(i))))
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				switch (i + g) % 5 {
				case 0:
					_ = bk.AddOffer(offers[(i*7+g)%len(offers)], t0)
				case 1:
					_ = bk.AddBid(bids[(i*3+g)%len(bids)], t0)
				case 2:
					snap := bk.Snapshot()
					if len(snap.Bids) > 50 {
						panic(fmt.Sprintf("snapshot holds %d bids over the bound", len(snap.Bids)))
					}
				case 3:
					bk.Close(t0, bids[(i+g)%len(bids)].ID())
				case 4:
					bk.Prune(t0 - 1)
				}
			}
		}()
	}
	wg.Wait()
	bk.mu.Lock()
	defer bk.mu.Unlock()
	bk.checkInvariants(t)
}

// checkInvariants checks the book's indexes against its bids and offers:
// per-client counts and sums, the byte total and the eviction heaps.
func (bk *Book) checkInvariants(t testing.TB) {
	t.Helper()
	per := map[wallet.Address]int{}
	sums := map[wallet.Address]uint64{}
	var size int64
	for id, e := range bk.bids {
		if e.id != id || e.b.ID() != id {
			t.Fatalf("bid %s filed under %s", e.id, id)
		}
		per[e.client]++
		sums[e.client] += e.b.MaxPrice
		size += e.size
		if bk.bidMin[e.hi] != e {
			t.Fatalf("bid %s not at its heap index", id)
		}
	}
	peers := map[string]int{}
	for _, e := range bk.bids {
		if e.peer != "" {
			peers[e.peer]++
		}
	}
	if len(bk.bidList) != len(bk.bids) || len(bk.bidIDs) != len(bk.bids) || len(bk.offerList) != len(bk.offers) {
		t.Fatalf("dense lists: %d bids, %d ids for %d; %d offers for %d", len(bk.bidList), len(bk.bidIDs), len(bk.bids), len(bk.offerList), len(bk.offers))
	}
	for i, e := range bk.bidList {
		if e.li != i || bk.bidIDs[i] != e.id || bk.bids[e.id] != e {
			t.Fatalf("bid list entry %d misfiled", i)
		}
	}
	for i, e := range bk.offerList {
		if e.li != i || bk.offers[e.addr] != e {
			t.Fatalf("offer list entry %d misfiled", i)
		}
	}
	if !maps.Equal(peers, bk.peers) {
		t.Fatalf("peer shares %v, the bids say %v", bk.peers, peers)
	}
	for c, n := range per {
		ce := bk.clients[c]
		if ce == nil || len(ce.bids) != n || ce.sum != sums[c] {
			t.Fatalf("client %s: index %+v, holds %d bids worth %d", c, ce, n, sums[c])
		}
	}
	if len(per) != len(bk.clients) || len(bk.bidMin) != len(bk.bids) || size != bk.bidBytes {
		t.Fatalf("%d clients indexed for %d; heap %d for %d bids; %d bytes counted for %d", len(bk.clients), len(per), len(bk.bidMin), len(bk.bids), bk.bidBytes, size)
	}
	for a, e := range bk.offers {
		if e.addr != a || bk.offerMin[e.hi] != e {
			t.Fatalf("offer of %s misfiled", a)
		}
	}
	if len(bk.offerMin) != len(bk.offers) {
		t.Fatalf("offer heap %d for %d offers", len(bk.offerMin), len(bk.offers))
	}
}
