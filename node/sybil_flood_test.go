package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/wallet"
)

// Attack (issue 15): a hostile peer floods the market topics with
// well-formed, correctly signed messages nobody can back: bids from many
// unfunded Sybil keys and offers from unregistered ones, published
// directly on the bids and offers gossip topics from a real libp2p host as
// fast as it can sign them. When the nodes graylist one peer identity it
// comes back under a fresh one (peer ids are free). Meanwhile an honest
// client submits hello jobs. The order book's admission against chain
// state refuses every hostile message (so no book holds one and nothing is
// forwarded), the refusals graylist each identity, and the honest jobs
// still match, run and are paid while blocks keep coming; the books stay
// within their bounds and the process heap does not grow with the flood.
func TestSybilFloodCannotStopHonestJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes and a hostile host")
	}
	sybilFlood(t, floodPlan{baseline: 1, jobs: 1, sybils: 256, minFlood: 5 * time.Second})
}

// TestLongSybilFloodCannotStopHonestJobs is the same attack at length:
// thousands of Sybil keys, twenty honest jobs under the flood.
// BOURSE_LONG=1 (make test-long) runs it.
func TestLongSybilFloodCannotStopHonestJobs(t *testing.T) {
	if os.Getenv("BOURSE_LONG") == "" {
		t.Skip("BOURSE_LONG=1 runs the full-size Sybil flood")
	}
	sybilFlood(t, floodPlan{baseline: 10, jobs: 20, sybils: 4096, minFlood: 60 * time.Second})
}

// floodPlan sizes a Sybil flood.
type floodPlan struct {
	baseline int           // honest jobs run before the flood
	jobs     int           // honest jobs run during it
	sybils   int           // Sybil wallet keys signing the hostile bids and offers
	minFlood time.Duration // the flood lasts at least this long
}

// floodStats is what the hostile peer did.
type floodStats struct {
	bids, offers atomic.Int64 // published
	identities   atomic.Int64 // peer identities used
	graylisted   atomic.Int64 // identities every node graylisted before they gave up
	flooding     atomic.Int64 // ns spent publishing, all identities together
	mu           sync.Mutex
	toGraylist   []time.Duration // from first publication to graylisted by every node
}

func sybilFlood(t *testing.T, plan floodPlan) {
	payload := example(t, "hello")
	tn := providerNet(t)
	ctx := context.Background()
	c := tn.client(0)

	runJobs := func(n int) []time.Duration {
		var lat []time.Duration
		for range n {
			start := time.Now()
			// A fifth of the client's balance per bid: the previous job's
			// escrow stays held until its ack commits, a block or so after
			// the job shows paid.
			spec := helloSpec()
			spec.MaxPrice = 1_000_000
			job, err := c.SubmitJob(ctx, spec, bytes.NewReader(payload))
			if err != nil {
				t.Fatal(err)
			}
			done := waitJob(t, c, job.ID, 5*time.Minute)
			if done.State != api.StatePaid || done.Paid == 0 {
				t.Fatalf("honest job %s ended %s (paid %d): %s", job.ID, done.State, done.Paid, done.Error)
			}
			lat = append(lat, time.Since(start))
		}
		return lat
	}
	quiet := runJobs(plan.baseline)
	heapBefore, rssBefore := memNow()

	// The flood, owned by this test: cancelled and waited for below.
	fctx, stop := context.WithCancel(ctx)
	var st floodStats
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() }) // also when a t.Fatal below ends the test early; before the nodes stop
	wg.Add(1)
	go func() {
		defer wg.Done()
		hostileFlood(fctx, t, tn, plan.sybils, &st)
	}()
	// Sample the books while the flood runs.
	var maxBids, maxOffers int
	var maxBytes int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, n := range tn.nodes {
				o, b := n.market.book.Len()
				by := n.market.book.Bytes()
				maxOffers, maxBids, maxBytes = max(maxOffers, o), max(maxBids, b), max(maxBytes, by)
			}
			select {
			case <-fctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	// The flood must reach the nodes before the honest jobs count.
	refused := func() uint64 {
		var sum uint64
		for _, n := range tn.nodes {
			cs := n.market.book.Counters()
			sum += cs["bid/refuse/unfunded"] + cs["offer/refuse/unbacked"]
		}
		return sum
	}
	// Arrived: refused, or held by a book.
	arrived := func() int {
		n := int(refused())
		for _, nd := range tn.nodes {
			n += len(hostileEntries(tn, nd.market.book.Snapshot()))
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); arrived() < 100; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			stop()
			wg.Wait()
			t.Fatalf("the flood did not reach the nodes: %d refused, %d bids and %d offers published", refused(), st.bids.Load(), st.offers.Load())
		}
	}
	floodStart := time.Now()
	h0 := tn.nodes[0].store.Height()
	flooded := runJobs(plan.jobs)
	for time.Since(floodStart) < plan.minFlood {
		time.Sleep(100 * time.Millisecond)
	}
	h1 := tn.nodes[0].store.Height()
	stop()
	wg.Wait()
	heapAfter, rssAfter := memNow()

	// No book holds a hostile message, on any node.
	for i, n := range tn.nodes {
		if h := hostileEntries(tn, n.market.book.Snapshot()); len(h) > 0 {
			t.Errorf("node %d's book holds %d hostile offers and bids, e.g. from %s", i, len(h), h[0])
		}
	}
	cfg := market.DefaultBookConfig(tn.chainID)
	if maxBids > cfg.MaxBids || maxBytes > cfg.MaxBidBytes || maxOffers > cfg.MaxOffers {
		t.Errorf("a book held %d bids of %d bytes and %d offers; bounds %d, %d, %d", maxBids, maxBytes, maxOffers, cfg.MaxBids, cfg.MaxBidBytes, cfg.MaxOffers)
	}
	if maxOffers > 3 || maxBids > plan.jobs+plan.baseline {
		t.Errorf("a book held %d offers and %d bids during the flood: more than the honest ones", maxOffers, maxBids)
	}
	// Blocks kept coming: the chain moved during the flood (every honest
	// job needs at least its Match and Result blocks).
	if h1 < h0+uint64(2*plan.jobs) {
		t.Errorf("height %d → %d during the flood", h0, h1)
	}
	// A coarse bound: the flood did not leave the heap hundreds of MiB larger.
	if heapAfter > heapBefore+256<<20 {
		t.Errorf("heap grew from %d MiB to %d MiB during the flood", heapBefore>>20, heapAfter>>20)
	}
	if st.identities.Load() > 1 && st.graylisted.Load() == 0 {
		t.Errorf("%d hostile identities, none graylisted by every node", st.identities.Load())
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	published := st.bids.Load() + st.offers.Load()
	t.Logf("flood: %s, %d bids and %d offers published (%.0f/s while publishing) by %d Sybil keys under %d peer identities (%d graylisted by every node, in %s), %d refused by the nodes; heights %d → %d",
		time.Since(floodStart).Round(time.Second), st.bids.Load(), st.offers.Load(), float64(published)/time.Duration(st.flooding.Load()).Seconds(),
		plan.sybils, st.identities.Load(), st.graylisted.Load(), quantiles(st.toGraylist), refused(), h0, h1)
	t.Logf("honest job latency submit → paid: without the flood %s; during it %s", quantiles(quiet), quantiles(flooded))
	t.Logf("memory: heap %d → %d MiB, RSS %d → %d MiB; books at most %d offers, %d bids, %d bid bytes",
		heapBefore>>20, heapAfter>>20, rssBefore>>20, rssAfter>>20, maxOffers, maxBids, maxBytes)
}

// hostileEntries lists the signers of the offers and bids in snap that
// are not the test network's: offers not from the providers (nodes 1 to
// 3), bids not from the client (node 0).
func hostileEntries(tn *testNet, snap market.Snapshot) []wallet.Address {
	var out []wallet.Address
	for _, o := range snap.Offers {
		if !slices.ContainsFunc(tn.nodes[1:], func(p *Node) bool { return p.Address() == o.ProviderAddress() }) {
			out = append(out, o.ProviderAddress())
		}
	}
	for _, b := range snap.Bids {
		if b.ClientAddress() != tn.nodes[0].Address() {
			out = append(out, b.ClientAddress())
		}
	}
	return out
}

// hostileFlood runs the hostile peer until ctx ends: one libp2p host at a
// time, under a fresh peer identity, connected to every node, publishing
// Sybil bids and offers on the market topics as fast as it signs them.
// When every node scores the identity below the graylist threshold (or
// after 20 s) it closes the host and starts over under a new identity.
func hostileFlood(ctx context.Context, t *testing.T, tn *testNet, sybils int, st *floodStats) {
	keys := make([]wallet.PrivateKey, sybils)
	for i := range keys {
		k, err := wallet.GenerateKey(rand.Reader)
		if err != nil {
			t.Error(err)
			return
		}
		keys[i] = k
	}
	var seq uint64
	for ctx.Err() == nil {
		if err := hostileIdentity(ctx, tn, keys, &seq, st); err != nil && ctx.Err() == nil {
			t.Errorf("hostile peer: %v", err)
			return
		}
	}
}

func hostileIdentity(ctx context.Context, tn *testNet, keys []wallet.PrivateKey, seq *uint64, st *floodStats) error {
	id, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return err
	}
	cfg := p2p.LocalConfig()
	cfg.DHT = false
	for _, n := range tn.nodes {
		cfg.Bootstrap = append(cfg.Bootstrap, n.Host().Addrs()[0].String()+"/p2p/"+n.Host().ID().String())
	}
	h, err := p2p.New(ctx, cfg, tn.chainID, id, nil)
	if err != nil {
		return fmt.Errorf("start a hostile host: %w", err)
	}
	defer h.Close()
	st.identities.Add(1)
	all := p2p.ValidatorFunc(func(context.Context, peer.ID, []byte) (any, p2p.Result) { return nil, p2p.Accept })
	bids, err := h.Join(p2p.TopicBids, all)
	if err != nil {
		return err
	}
	offers, err := h.Join(p2p.TopicOffers, all)
	if err != nil {
		return err
	}
	for len(bids.Peers()) < len(tn.nodes) || len(offers.Peers()) < len(tn.nodes) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	graylisted := func() bool {
		for _, n := range tn.nodes {
			if s, ok := n.Host().PeerScores()[h.ID()]; !ok || s >= p2p.GraylistThreshold {
				return false
			}
		}
		return true
	}
	sum := sha256.Sum256([]byte("not a payload anyone holds"))
	peerID := h.ID().String()
	start := time.Now()
	defer func() { st.flooding.Add(int64(time.Since(start))) }()
	for i := 0; ctx.Err() == nil; i++ {
		if i%64 == 0 && graylisted() {
			st.graylisted.Add(1)
			st.mu.Lock()
			st.toGraylist = append(st.toGraylist, time.Since(start))
			st.mu.Unlock()
			return nil
		}
		if time.Since(start) > 20*time.Second {
			return nil
		}
		*seq++
		k := keys[*seq%uint64(len(keys))]
		now := time.Now().UnixMilli()
		if *seq%2 == 0 {
			b := market.Bid{
				Nonce: *seq, Executor: market.ExecWASM,
				Payload:   market.Payload{SHA256: sum[:], Size: 1 << 20, Peer: peerID},
				Resources: market.Resources{CPU: 250, MemMiB: 64, DiskMiB: 16},
				// The most valuable bid a book could hold, if it were funded.
				MaxPrice: 1 << 50, MatchBy: now + 10*60_000, TimeoutMs: 60_000,
				Preference: market.PreferCheapest, Replicas: 1,
			}
			if err := b.Sign(tn.chainID, k); err != nil {
				return err
			}
			raw, err := b.Encode()
			if err != nil {
				return err
			}
			if err := bids.Publish(ctx, raw); err != nil {
				return nil // closing
			}
			st.bids.Add(1)
		} else {
			o := market.Offer{
				PeerID: peerID, Seq: *seq, Expires: now + 5*60_000,
				Total:     market.Resources{CPU: 64_000, MemMiB: 256 << 10, DiskMiB: 1 << 20},
				Free:      market.Resources{CPU: 64_000, MemMiB: 256 << 10, DiskMiB: 1 << 20},
				Executors: []string{market.ExecWASM},
				// Cheaper than any honest provider: what the cheapest preference would pick.
				Terms: market.PriceTerms{PerCPUSecond: 1},
			}
			if err := o.Sign(tn.chainID, k); err != nil {
				return err
			}
			raw, err := o.Encode()
			if err != nil {
				return err
			}
			if err := offers.Publish(ctx, raw); err != nil {
				return nil
			}
			st.offers.Add(1)
		}
		if i%16 == 0 {
			runtime.Gosched() // as fast as it can, but let the nodes' goroutines run on this shared machine
		}
	}
	return nil
}

// memNow returns the Go heap in use after a GC and the process's resident
// set (0 where /proc is missing).
func memNow() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return ms.HeapAlloc, rss
}

// quantiles formats the p50 and p99 of ds (nearest rank).
func quantiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("p50 %s p99 %s (n=%d)", at(0.5).Round(time.Millisecond), at(0.99).Round(time.Millisecond), len(s))
}
