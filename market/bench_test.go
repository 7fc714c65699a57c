package market

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

// What a validator spends per Match in a block (two signature checks
// dominate).
func BenchmarkCheckMatch(b *testing.B) {
	prov, client := testKey(b, 1), testKey(b, 2)
	m := Match{Offer: *signedOffer(b, prov, baseOffer(1)), Bid: *signedBid(b, client, baseBid(1))}
	m.Price, _ = PriceFor(&m.Offer, &m.Bid)
	v := newFakeView(0)
	v.providers[prov.Address()] = ProviderState{Collateral: 1}
	v.balances[client.Address()] = 1 << 40
	for b.Loop() {
		if err := CheckMatch(testChain, &m, v, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// What a gossip validator spends per bid: decode, validate, verify, insert.
func BenchmarkBookAddBid(b *testing.B) {
	client := testKey(b, 2)
	var msgs [][]byte
	for i := 0; i < 1024; i++ {
		data, err := signedBid(b, client, baseBid(uint64(i))).Encode()
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, data)
	}
	i := 0
	var bk *Book
	for b.Loop() {
		if i%len(msgs) == 0 {
			var err error
			if bk, err = NewBook(DefaultBookConfig(testChain)); err != nil {
				b.Fatal(err)
			}
			bk.cfg.MaxBidsPerClient = len(msgs)
		}
		if err := bk.Add(KindBid, msgs[i%len(msgs)], t0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBook100kBidsMemory fills a book with 100,000 realistic bids (a
// WASM job as the node signs it: payload hash, size and the client's peer
// id, the hash of a manifest of two arguments and one environment
// variable, a region constraint, 400 clients of 250 bids each) through
// the gossip path, and reports what the
// book holds per bid: the Go heap in use after a GC with the book full,
// less the heap before, over 100,000 (the encoded messages are allocated
// before the first reading and live until after the second, so they are
// not counted). Also reported: the encoded size per bid, which
// BookConfig.MaxBidBytes bounds. Run it once:
//
//	go test ./market -run '^$' -bench Book100kBidsMemory -benchtime 1x
func BenchmarkBook100kBidsMemory(b *testing.B) {
	const clients, perClient = 400, 250
	const n = clients * perClient
	sum := sha256.Sum256([]byte("hello.wasm"))
	msgs := make([][]byte, 0, n)
	for c := range clients {
		key := testKey(b, 1000+c)
		for i := range perClient {
			bid := Bid{
				Nonce:    uint64(i),
				Executor: ExecWASM,
				Payload: Payload{SHA256: sum[:], Size: 2_345_678,
					Peer:     "12D3KooWGzBHtBGSgPEqaXZo2Wr3YhYs5bd6sNBb1mwqdqmoEW7L",
					Manifest: manifestHash(Manifest{Args: []string{"--n", strconv.Itoa(i)}, Env: []string{"GREETING=hi"}})},
				Resources:   Resources{CPU: 250, MemMiB: 64, DiskMiB: 16},
				MaxPrice:    5_000_000,
				MatchBy:     t0 + 60_000 + int64(i),
				TimeoutMs:   180_000,
				Constraints: Constraints{Regions: []string{"eu-west"}},
				Preference:  PreferCheapest,
				Replicas:    1,
			}
			data, err := signedBid(b, key, bid).Encode()
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, data)
		}
	}
	encoded := 0
	for _, m := range msgs {
		encoded += len(m)
	}
	var held int64
	for b.Loop() {
		cfg := DefaultBookConfig(testChain)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		bk, err := NewBook(cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if err := bk.Add(KindBid, m, t0); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if _, nb := bk.Len(); nb != n {
			b.Fatalf("book holds %d bids, want %d", nb, n)
		}
		held = int64(after.HeapAlloc) - int64(before.HeapAlloc)
		runtime.KeepAlive(bk)
	}
	b.ReportMetric(float64(held)/n, "heap-bytes/bid")
	b.ReportMetric(float64(encoded)/n, "encoded-bytes/bid")
	b.ReportMetric(float64(held)/(1<<20), "heap-MiB/100k-bids")
}

// The proposer's whole round over a full book: RoundSample of 100,000
// bids and 10,000 offers (under the book's lock), then Match with at most
// one block's 256 matches. The book is filled directly (its admission is
// measured by BenchmarkBookAddBid).
func BenchmarkProposerRoundFullBook(b *testing.B) {
	snap, view := benchWorldN(b, 10_000, 100_000)
	bk, err := NewBook(DefaultBookConfig(testChain))
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range snap.Offers {
		e := &offerEntry{o: o, addr: o.ProviderAddress(), li: len(bk.offerList)}
		bk.offers[e.addr] = e
		bk.offerList = append(bk.offerList, e)
	}
	for i, bd := range snap.Bids {
		e := &bidEntry{b: bd, id: snap.bidID(i), client: bd.ClientAddress(), li: len(bk.bidList)}
		bk.bids[e.id] = e
		bk.bidList, bk.bidIDs = append(bk.bidList, e), append(bk.bidIDs, e.id)
	}
	m := Matcher{}
	seed := [32]byte{1}
	want := matchKeys(m.Match(bk.RoundSnapshot(), view, t0, seed, 256))
	if got := matchKeys(m.Match(bk.RoundSample(seed, m.RoundBids()), view, t0, seed, 256)); !slices.Equal(got, want) {
		b.Fatal("RoundSample and RoundSnapshot give different rounds")
	}
	cpu := processCPU()
	var n int
	for b.Loop() {
		n = len(m.Match(bk.RoundSample(seed, m.RoundBids()), view, t0, seed, 256))
	}
	b.ReportMetric(float64(n), "matches")
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
}

// maximalBid is the largest bid Validate accepts, field by field.
func maximalBid(i int) Bid {
	sum := sha256.Sum256([]byte("hello.wasm"))
	b := Bid{
		Nonce:    uint64(i),
		Executor: ExecWASM,
		Payload: Payload{SHA256: sum[:], Size: MaxPayloadSize,
			Peer: strings.Repeat("P", MaxPeerIDLen)},
		Resources:  Resources{CPU: 250, MemMiB: 64, DiskMiB: 16},
		MaxPrice:   5_000_000,
		MatchBy:    t0 + 60_000 + int64(i),
		TimeoutMs:  180_000,
		Preference: PreferCheapest,
		Replicas:   1,
	}
	for r := range MaxRegions {
		reg := fmt.Sprintf("r%02d", r) + strings.Repeat("x", MaxRegionLen-3)
		b.Constraints.Regions = append(b.Constraints.Regions, reg)
		b.Near = append(b.Near, reg)
	}
	for r := range MaxRegions { // weights, and a full distance list: both at their bounds
		b.Constraints.RegionWeights = append(b.Constraints.RegionWeights, uint32(MaxRegionWeight-r))
	}
	for e := range MaxRTTEntries {
		var a wallet.Address
		a[0], a[19] = byte(e+1), 0xff
		b.RTT = append(b.RTT, PeerRTT{Provider: a, Ms: MaxRTTMs - uint32(MaxRTTEntries-e)})
	}
	for l := range MaxLabels {
		k := fmt.Sprintf("k%02d=", l)
		b.Constraints.Labels = append(b.Constraints.Labels, k+strings.Repeat("v", MaxLabelLen-len(k)))
	}
	// An image reference is longer than a content reference.
	b.Executor = ExecDocker
	b.Payload = Payload{Image: strings.Repeat("i", MaxImageLen), Peer: b.Payload.Peer, Manifest: sum[:]}
	return b
}

// BenchmarkBook10kMaximalBidsMemory is BenchmarkBook100kBidsMemory with
// 10,000 maximal bids (every list and string at its bound; see
// maximalBid), reported per bid and scaled to 100,000 (a book of 100,000
// of them would not fit a test machine before small bids). Run it once:
//
//	go test ./market -run '^$' -bench Book10kMaximalBidsMemory -benchtime 1x
func BenchmarkBook10kMaximalBidsMemory(b *testing.B) {
	const clients, perClient = 40, 250
	const n = clients * perClient
	msgs := make([][]byte, 0, n)
	for c := range clients {
		key := testKey(b, 1000+c)
		for i := range perClient {
			bid := maximalBid(i)
			data, err := signedBid(b, key, bid).Encode()
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, data)
		}
	}
	encoded := 0
	for _, m := range msgs {
		encoded += len(m)
	}
	var held int64
	for b.Loop() {
		cfg := DefaultBookConfig(testChain)
		cfg.MaxBidBytes = 1 << 40 // measure the bids, not the byte bound
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		bk, err := NewBook(cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if err := bk.Add(KindBid, m, t0); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if _, nb := bk.Len(); nb != n {
			b.Fatalf("book holds %d bids, want %d", nb, n)
		}
		held = int64(after.HeapAlloc) - int64(before.HeapAlloc)
		runtime.KeepAlive(bk)
	}
	b.ReportMetric(float64(held)/n, "heap-bytes/bid")
	b.ReportMetric(float64(encoded)/n, "encoded-bytes/bid")
	b.ReportMetric(float64(held)*100_000/n/(1<<30), "heap-GiB/100k-bids")
}
