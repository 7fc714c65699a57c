package market

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

// referenceMatch is the matcher written as plainly as possible, from the
// package documentation: quadratic selection, checkPair for feasibility,
// big.Int for the scores, sha256 for every tie. Match must agree with it.
func referenceMatch(w Weights, snap Snapshot, view ChainView, blockTime int64, seed [32]byte, maxMatches int) []Match {
	if maxMatches <= 0 {
		return nil
	}
	// Offers: valid at blockTime; per provider the newest.
	var valid []*Offer
	for _, o := range snap.Offers {
		if o.Validate(blockTime) == nil {
			valid = append(valid, o)
		}
	}
	newer := func(a, b *Offer) bool { // a strictly preferred over b
		if a.Seq != b.Seq {
			return a.Seq > b.Seq
		}
		if c := bytes.Compare(a.Sig, b.Sig); c != 0 {
			return c < 0
		}
		x, _ := a.SigningBytes()
		y, _ := b.SigningBytes()
		return bytes.Compare(x, y) < 0
	}
	var offers []*Offer
	for _, o := range valid {
		best := true
		for _, p := range valid {
			if p != o && p.ProviderAddress() == o.ProviderAddress() && newer(p, o) {
				best = false
			}
		}
		dup := false
		for _, q := range offers {
			if q.ProviderAddress() == o.ProviderAddress() {
				dup = true // identical twin already chosen
			}
		}
		if best && !dup {
			offers = append(offers, o)
		}
	}
	// Bids: valid, open, unique, ordered by (MatchBy, h(seed,id), id).
	h := func(x []byte) uint64 {
		s := sha256.Sum256(append(append([]byte{}, seed[:]...), x...))
		return binary.BigEndian.Uint64(s[:8])
	}
	type rb struct {
		b  *Bid
		id BidID
	}
	var bids []rb
	seen := map[BidID]bool{}
	for _, b := range snap.Bids {
		id := b.ID()
		if b.Validate(blockTime) != nil || view.BidClosed(id) || seen[id] {
			continue
		}
		seen[id] = true
		bids = append(bids, rb{b, id})
	}
	sort.Slice(bids, func(i, j int) bool {
		a, b := bids[i], bids[j]
		if a.b.MatchBy != b.b.MatchBy {
			return a.b.MatchBy < b.b.MatchBy
		}
		if ha, hb := h(a.id[:]), h(b.id[:]); ha != hb {
			return ha < hb
		}
		return bytes.Compare(a.id[:], b.id[:]) < 0
	})
	maxU := new(big.Int).SetUint64(1<<64 - 1)
	sat := func(x *big.Int) uint64 {
		if x.Cmp(maxU) > 0 {
			return 1<<64 - 1
		}
		return x.Uint64()
	}
	bi := func(x uint64) *big.Int { return new(big.Int).SetUint64(x) }
	reserved := map[wallet.Address]Resources{}
	for _, o := range offers {
		ps, _ := view.Provider(o.ProviderAddress())
		reserved[o.ProviderAddress()] = ps.Reserved
	}
	spent := map[wallet.Address]uint64{}
	var out []Match
	for _, x := range bids {
		b := x.b
		client := b.ClientAddress()
		if view.Spendable(client)-spent[client] < b.MaxPrice { // spent never exceeds spendable
			continue
		}
		var bestO *Offer
		var bestK [3]uint64
		var bestP uint64
		for _, o := range offers {
			addr := o.ProviderAddress()
			ps, ok := view.Provider(addr)
			if len(checkPair(o, b, ps, ok, view.MinCollateral(), reserved[addr])) > 0 {
				continue
			}
			price, _ := PriceFor(o, b)
			res := reserved[addr]
			load := bi(uint64(max(o.Load, o.HostCPU, o.HostMem)) * 1000)
			for _, d := range [][3]uint64{
				{o.Total.CPU, res.CPU, b.Resources.CPU},
				{o.Total.MemMiB, res.MemMiB, b.Resources.MemMiB},
				{o.Total.DiskMiB, res.DiskMiB, b.Resources.DiskMiB},
				{uint64(o.Total.GPUs), uint64(res.GPUs), uint64(b.Resources.GPUs)},
			} {
				if d[0] == 0 {
					continue
				}
				u := new(big.Int).Add(bi(d[1]), bi(d[2]))
				u.Mul(u, bi(1_000_000)).Quo(u, bi(d[0]))
				if u.Cmp(load) > 0 {
					load = u
				}
			}
			l := sat(load)
			var k [3]uint64
			switch b.Preference {
			case PreferCheapest:
				k = [3]uint64{price, l}
			case PreferLeastLoaded:
				k = [3]uint64{l, 0}
			case PreferNearest:
				rank := uint64(len(b.Near))
				for i, r := range b.Near {
					if r == o.Region {
						rank = uint64(i)
					}
				}
				k1 := MaxRTTMs + 1 + rank
				for _, e := range b.RTT {
					if e.Provider == addr {
						k1 = uint64(e.Ms)
					}
				}
				k = [3]uint64{k1, l}
			case PreferBalanced:
				pn := new(big.Int).Mul(bi(price), bi(1_000_000))
				pn.Quo(pn, bi(b.MaxPrice))
				s := new(big.Int).Mul(bi(w.Price), pn)
				s.Add(s, new(big.Int).Mul(bi(w.Load), bi(l)))
				s.Add(s, new(big.Int).Mul(bi(w.Reputation), bi(uint64(1000-ps.Reputation)*1000)))
				dist := new(big.Int)
				if len(b.RTT) > 0 {
					dist.SetUint64(1_000_000)
					for _, e := range b.RTT {
						if e.Provider == addr {
							dist.SetUint64(uint64(min(e.Ms, RTTScaleMs)) * 1_000_000 / RTTScaleMs)
						}
					}
				}
				if ws := b.Constraints.RegionWeights; len(ws) > 0 {
					var maxW, wt uint64
					for i, x := range ws {
						maxW = max(maxW, uint64(x))
						if b.Constraints.Regions[i] == o.Region {
							wt = uint64(x)
						}
					}
					dist.Add(dist, bi((maxW-wt)*1_000_000/maxW))
				}
				s.Add(s, dist.Mul(dist, bi(w.Distance)))
				raw := (uint64(ps.Perf.FailPpm) + 2*uint64(ps.Perf.TimeoutPpm) + uint64(ps.Perf.SlowPpm)) / 4
				if ps.Perf.UpdatedAt > 0 && blockTime > ps.Perf.UpdatedAt {
					raw >>= min((blockTime-ps.Perf.UpdatedAt)/PerfHalfLifeMs, 63)
				}
				s.Add(s, new(big.Int).Mul(bi(w.Performance), bi(raw)))
				k = [3]uint64{sat(s), 0}
			}
			idb := o.ID().Bytes()
			k[2] = mix64(h(idb[:]) ^ h(x.id[:]))
			better := bestO == nil
			if !better {
				bid := bestO.ID().Bytes()
				switch {
				case k != bestK:
					better = k[0] < bestK[0] || k[0] == bestK[0] && (k[1] < bestK[1] || k[1] == bestK[1] && k[2] < bestK[2])
				default:
					better = bytes.Compare(idb[:], bid[:]) < 0
				}
			}
			if better {
				bestO, bestK, bestP = o, k, price
			}
		}
		if bestO == nil {
			continue
		}
		out = append(out, Match{Offer: *bestO, Bid: *b, Price: bestP})
		addr := bestO.ProviderAddress()
		reserved[addr], _ = reserved[addr].Add(b.Resources)
		spent[client] += b.MaxPrice
		if len(out) == maxMatches {
			break
		}
	}
	return out
}

func matchKeys(ms []Match) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%s->%s@%d", m.ID(), m.Offer.ID(), m.Price)
	}
	return out
}

// The matcher agrees with the reference on thousands of random books,
// across preferences, weights and round limits.
func TestMatchAgreesWithReference(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 1))
	iterations := 3000
	if testing.Short() || raceEnabled {
		iterations = 200
	}
	total := 0
	for it := 0; it < iterations; it++ {
		w := genWorld(t, r, 1+r.IntN(12), 1+r.IntN(6), r.IntN(40), false)
		var bseed [32]byte
		binary.BigEndian.PutUint64(bseed[:], r.Uint64())
		m := Matcher{}
		if r.IntN(3) == 0 {
			m.Weights = Weights{Price: uint64(r.IntN(5)), Load: uint64(r.IntN(5)), Reputation: uint64(r.IntN(5)),
				Distance: uint64(r.IntN(5)), Performance: uint64(r.IntN(5))}
		}
		limit := 1 + r.IntN(50)
		snap := NewSnapshot(w.offers, w.bids)
		got := m.Match(snap, w.view, w.now, bseed, limit)
		want := referenceMatch(m.weights(), snap, w.view, w.now, bseed, limit)
		if !reflect.DeepEqual(matchKeys(got), matchKeys(want)) {
			t.Fatalf("seed %d iteration %d: matcher and reference differ\n got %v\nwant %v", seed, it, matchKeys(got), matchKeys(want))
		}
		total += len(got)
	}
	if total == 0 {
		t.Fatalf("seed %d: no match in %d books: the generator is broken", seed, iterations)
	}
	t.Logf("%d matches over %d books", total, iterations)
}

// Same inputs in any order give the same output.
func TestMatchIsDeterministicUnderShuffling(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 2))
	iterations := 300
	if testing.Short() || raceEnabled {
		iterations = 50
	}
	for it := 0; it < iterations; it++ {
		w := genWorld(t, r, 1+r.IntN(20), 1+r.IntN(8), r.IntN(80), false)
		var bseed [32]byte
		binary.BigEndian.PutUint64(bseed[:], r.Uint64())
		want := matchKeys(Matcher{}.Match(NewSnapshot(w.offers, w.bids), w.view, w.now, bseed, 1000))
		for k := 0; k < 3; k++ {
			offers := append([]*Offer(nil), w.offers...)
			bids := append([]*Bid(nil), w.bids...)
			r.Shuffle(len(offers), func(i, j int) { offers[i], offers[j] = offers[j], offers[i] })
			r.Shuffle(len(bids), func(i, j int) { bids[i], bids[j] = bids[j], bids[i] })
			got := matchKeys(Matcher{}.Match(NewSnapshot(offers, bids), w.view, w.now, bseed, 1000))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d iteration %d shuffle %d: output depends on input order\n got %v\nwant %v", seed, it, k, got, want)
			}
		}
	}
}

// Played as a chain would: every match the matcher returns passes
// CheckMatch in order, and none is accepted twice; settlement keeps supply
// and escrow invariants.
func TestMatchesPassCheckMatchAndSettle(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 3))
	for it := 0; it < 40; it++ {
		w := genWorld(t, r, 2+r.IntN(8), 1+r.IntN(4), 5+r.IntN(30), true)
		var bseed [32]byte
		binary.BigEndian.PutUint64(bseed[:], r.Uint64())
		ms := Matcher{}.Match(NewSnapshot(w.offers, w.bids), w.view, w.now, bseed, 100)
		view := w.view.clone()
		supply := uint64(0)
		for _, b := range view.balances {
			supply += b
		}
		escrow := map[BidID]uint64{}
		for i := range ms {
			if err := CheckMatch(testChain, &ms[i], view, w.now); err != nil {
				t.Fatalf("seed %d iteration %d: match %d rejected: %v", seed, it, i, err)
			}
			view.apply(t, &ms[i])
			escrow[ms[i].ID()] = ms[i].Escrow()
			if err := CheckMatch(testChain, &ms[i], view, w.now); CodeOf(err) != CodeBidUsed {
				t.Fatalf("seed %d: a match replayed gives %v, want %s", seed, err, CodeBidUsed)
			}
			// Capacity is never double booked: on every dimension the bid
			// uses, the provider's reservations stay within the offer.
			ps := view.providers[ms[i].Offer.ProviderAddress()]
			tot, need := ms[i].Offer.Total, ms[i].Bid.Resources
			if need.CPU > 0 && ps.Reserved.CPU > tot.CPU || need.MemMiB > 0 && ps.Reserved.MemMiB > tot.MemMiB ||
				need.DiskMiB > 0 && ps.Reserved.DiskMiB > tot.DiskMiB || need.GPUs > 0 && ps.Reserved.GPUs > tot.GPUs {
				t.Fatalf("seed %d: provider %s double booked: reserved %v, total %v", seed, ms[i].Offer.ID(), ps.Reserved, tot)
			}
		}
		// Settle every match with random usage; escrow goes to provider or
		// back to client, and nothing is created or lost.
		paid := uint64(0)
		for i := range ms {
			m := &ms[i]
			u := Usage{CPUMs: r.Uint64N(1 << 40), MemMiBMs: r.Uint64N(1 << 50)}
			if r.IntN(3) == 0 {
				u = Usage{}
			}
			p, err := Settle(m, u)
			if err != nil {
				t.Fatalf("seed %d: settle: %v", seed, err)
			}
			if p.Provider+p.Refund != escrow[m.ID()] || p.Provider > m.Price {
				t.Fatalf("seed %d: payout %+v for escrow %d price %d", seed, p, escrow[m.ID()], m.Price)
			}
			paid += p.Provider
			view.balances[m.Bid.ClientAddress()] += p.Refund
			delete(escrow, m.ID())
			ps := view.providers[m.Offer.ProviderAddress()]
			ps.Reserved, err = ps.Reserved.Sub(m.Bid.Resources)
			if err != nil {
				t.Fatalf("seed %d: release reservation: %v", seed, err)
			}
			view.providers[m.Offer.ProviderAddress()] = ps
		}
		after := paid
		for _, b := range view.balances {
			after += b
		}
		if after != supply || len(escrow) != 0 {
			t.Fatalf("seed %d: supply %d became %d, escrow left %v", seed, supply, after, escrow)
		}
		for a, ps := range view.providers {
			if ps.Reserved != w.view.providers[a].Reserved {
				t.Fatalf("seed %d: reservation of %s not released: %v, was %v", seed, a, ps.Reserved, w.view.providers[a].Reserved)
			}
		}
	}
}

func TestMatchHonoursPreferences(t *testing.T) {
	view := newFakeView(10)
	var offers []*Offer
	mk := func(i int, region string, load uint32, perCPU uint64, rep uint32) {
		key := testKey(t, i)
		o := baseOffer(1)
		o.Region, o.Load, o.Terms.PerCPUSecond = region, load, perCPU
		offers = append(offers, signedOffer(t, key, o))
		view.providers[key.Address()] = ProviderState{Collateral: 10, Reputation: rep}
	}
	mk(1, "eu-west", 900, 1, 500)  // cheapest, busy
	mk(2, "us-east", 100, 50, 900) // idle, dear, trusted
	mk(3, "ap-south", 500, 20, 100)
	client := testKey(t, 100)
	view.balances[client.Address()] = 1 << 40
	cases := []struct {
		pref string
		near []string
		want int // index into offers
	}{
		{PreferCheapest, nil, 0},
		{PreferLeastLoaded, nil, 1},
		{PreferNearest, []string{"ap-south", "eu-west"}, 2},
		{PreferNearest, []string{"mars"}, 1}, // nobody near: least loaded
		{PreferBalanced, nil, 1},
	}
	for _, c := range cases {
		t.Run(c.pref+fmt.Sprint(c.near), func(t *testing.T) {
			b := baseBid(7)
			b.Preference, b.Near, b.Constraints = c.pref, c.near, Constraints{}
			bid := signedBid(t, client, b)
			ms := Matcher{}.Match(NewSnapshot(offers, []*Bid{bid}), view, t0, [32]byte{}, 10)
			if len(ms) != 1 {
				t.Fatalf("got %d matches, want 1", len(ms))
			}
			if got, want := ms[0].Offer.ID(), offers[c.want].ID(); got != want {
				t.Fatalf("placed on %s, want %s", got, want)
			}
		})
	}
}

func TestMatchLimitAndEmpty(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	w := genWorld(t, r, 10, 3, 60, false)
	snap := NewSnapshot(w.offers, w.bids)
	all := Matcher{}.Match(snap, w.view, w.now, [32]byte{}, 1000)
	if len(all) < 3 {
		t.Fatalf("only %d matches in a busy world", len(all))
	}
	for _, n := range []int{-1, 0, 1, 2} {
		got := Matcher{}.Match(snap, w.view, w.now, [32]byte{}, n)
		want := all[:max(n, 0)]
		if !reflect.DeepEqual(matchKeys(got), matchKeys(want)) {
			t.Errorf("limit %d: got %v, want prefix %v", n, matchKeys(got), matchKeys(want))
		}
	}
	if got := (Matcher{}).Match(Snapshot{}, w.view, w.now, [32]byte{}, 10); got != nil {
		t.Errorf("empty snapshot gave %v", got)
	}
}

func TestMatcherValidate(t *testing.T) {
	if err := (Matcher{}).Validate(); err != nil {
		t.Error(err)
	}
	if err := (Matcher{Weights: Weights{Price: MaxWeight + 1}}).Validate(); err == nil {
		t.Error("weight above MaxWeight accepted")
	}
}

// benchWorld is 1,000 offers and 10,000 bids in a market where capacity
// runs out part way, with every preference in use.
func benchWorld(b *testing.B) (Snapshot, *fakeView) { return benchWorldN(b, 1000, 10_000) }

// benchWorldN is benchWorld with nOffers offers and nBids bids.
func benchWorldN(b *testing.B, nOffers, nBids int) (Snapshot, *fakeView) {
	r := rand.New(rand.NewPCG(42, 42))
	view := newFakeView(100)
	var offers []*Offer
	for i := 0; i < nOffers; i++ {
		key := testKey(b, i)
		o := Offer{
			Provider:  key.Public(),
			PeerID:    "peer",
			Seq:       1,
			Expires:   t0 + 300_000,
			Total:     Resources{CPU: uint64(4+r.IntN(28)) * 1000, MemMiB: uint64(8+r.IntN(56)) * 1024, DiskMiB: 100 << 10},
			Load:      uint32(r.IntN(800)),
			Executors: testExecs[r.IntN(len(testExecs))],
			Terms:     PriceTerms{PerCPUSecond: uint64(5 + r.IntN(20)), PerGiBSecond: uint64(1 + r.IntN(5)), PerJob: uint64(r.IntN(100))},
			Region:    testRegions[r.IntN(len(testRegions))],
			Labels:    pickSet(r, testLabels, 0.5),
			Sig:       fakeSig(r),
		}
		o.Free = o.Total
		offers = append(offers, &o)
		view.providers[key.Address()] = ProviderState{Collateral: 1000, Reputation: uint32(r.IntN(1001))}
	}
	var bids []*Bid
	for i := 0; i < nBids; i++ {
		key := testKey(b, 100_000+i%500)
		view.balances[key.Address()] = 1 << 40
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		bd := Bid{
			Client:     key.Public(),
			Nonce:      uint64(i),
			Executor:   []string{ExecWASM, ExecWASM, ExecDocker}[r.IntN(3)],
			Payload:    Payload{SHA256: sum[:], Size: 1000, Peer: "client"},
			Resources:  Resources{CPU: uint64(1+r.IntN(8)) * 250, MemMiB: uint64(1+r.IntN(16)) * 256, DiskMiB: 1024},
			MaxPrice:   uint64(20_000 + r.IntN(200_000)),
			MatchBy:    t0 + int64(1000+r.IntN(600_000)),
			TimeoutMs:  int64(1000 * (10 + r.IntN(600))),
			Preference: testPrefs[r.IntN(len(testPrefs))],
			Near:       pickSet(r, testRegions, 0.5),
			Replicas:   1,
			Sig:        fakeSig(r),
		}
		if r.IntN(4) == 0 {
			bd.Constraints.Regions = pickSet(r, testRegions, 0.5)
		}
		if r.IntN(4) == 0 {
			bd.Constraints.Labels = pickSet(r, testLabels, 0.3)
		}
		bids = append(bids, &bd)
	}
	return NewSnapshot(offers, bids), view
}

func BenchmarkMatch10kBids1kOffers(b *testing.B) {
	snap, view := benchWorld(b)
	var n int
	cpu := processCPU()
	for b.Loop() {
		n = len(Matcher{}.Match(snap, view, t0, [32]byte{1}, 10_000))
	}
	b.ReportMetric(float64(n), "matches")
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
}

// A round the size of one block: the same book, at most 500 matches.
func BenchmarkMatch10kBids1kOffers500PerBlock(b *testing.B) {
	snap, view := benchWorld(b)
	cpu := processCPU()
	for b.Loop() {
		Matcher{}.Match(snap, view, t0, [32]byte{1}, 500)
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
}

// A proposer's round over a full book: 100,000 bids and 10,000 offers, at
// most one block's 256 matches.
func BenchmarkMatch100kBids10kOffers(b *testing.B) {
	snap, view := benchWorldN(b, 10_000, 100_000)
	cpu := processCPU()
	var n int
	for b.Loop() {
		n = len(Matcher{}.Match(snap, view, t0, [32]byte{1}, 256))
	}
	b.ReportMetric(float64(n), "matches")
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
}
