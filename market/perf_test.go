package market

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

// The moving averages, by hand: the first outcome sets the figures, a
// typical job later weighs 1/n, and the cost is (fail + 2·timeout + slow)/4.
func TestPerfObserveFollowsTheDocumentedFormula(t *testing.T) {
	var p Perf
	p = p.Observe(OutcomeCompleted, 30_000, 60_000, 1000, 900, 20, true, t0)
	if p.Jobs != 1 || p.SlowPpm != 500_000 || p.FailPpm != 0 || p.TimeoutPpm != 0 || p.PaidAvg != 900 || p.QuoteAvg != 1000 || p.RTTMs != 20 || p.RTTJobs != 1 || p.UpdatedAt != t0 {
		t.Fatalf("after one completed job: %+v", p)
	}
	p = p.Observe(OutcomeTimedOut, 90_000, 60_000, 1000, 0, 0, false, t0+1)
	// n = 2, T = 1000, q = 1000: weight 1000/2000.
	if p.SlowPpm != 750_000 || p.TimeoutPpm != 500_000 || p.PaidAvg != 450 || p.RTTJobs != 1 {
		t.Fatalf("after a timeout: %+v", p)
	}
	if c := p.Cost(t0 + 1); c != (0+2*500_000+750_000)/4 {
		t.Fatalf("cost %d", c)
	}
	// Forgetting: halved per full PerfHalfLifeMs without news.
	if c, c1 := p.Cost(t0+1+PerfHalfLifeMs), p.Cost(t0+1); c != c1/2 {
		t.Fatalf("cost after a half-life %d, want %d", c, c1/2)
	}
	if c := p.Cost(t0 + 1 + 40*PerfHalfLifeMs); c != 0 {
		t.Fatalf("cost after 40 half-lives %d", c)
	}
	// Saturation at the bounds: huge quotes and payments, long runs.
	q := Perf{Jobs: 1<<64 - 1, QuoteAvg: 1<<64 - 1, PaidAvg: 1 << 60}
	q = q.Observe(OutcomeCompleted, 1<<62, 1, 1<<64-1, 1<<64-1, MaxRTTMs+5, true, t0)
	if q.SlowPpm != 1_000_000/PerfWindow || q.Jobs != 1<<64-1 || q.RTTMs != MaxRTTMs {
		t.Fatalf("at the bounds: %+v", q)
	}
}

// perfSim is a market of identical providers whose jobs all end within
// one block: each block, bids arrive, the matcher places them, and every
// placed job settles with the outcome its provider's health gives, fed
// to Perf.Observe as the chain does.
type perfSim struct {
	view   *fakeView
	offers []*Offer
	keys   []wallet.PrivateKey
	client wallet.PrivateKey
	now    int64
	nonce  uint64
}

func newPerfSim(t *testing.T, providers int) *perfSim {
	s := &perfSim{view: newFakeView(100), now: t0, client: testKey(t, 99)}
	s.view.balances[s.client.Address()] = 1 << 50
	r := rand.New(rand.NewPCG(1, 1))
	for i := range providers {
		key := testKey(t, 40+i)
		o := baseOffer(1)
		o.Provider, o.Sig, o.Load, o.Expires = key.Public(), fakeSig(r), 0, t0+MaxOfferTTL
		o.Total, o.Free = Resources{CPU: 4000, MemMiB: 8192, DiskMiB: 10240}, Resources{CPU: 4000, MemMiB: 8192, DiskMiB: 10240}
		s.offers, s.keys = append(s.offers, &o), append(s.keys, key)
		s.view.providers[key.Address()] = ProviderState{Collateral: 1000, Reputation: 800}
	}
	return s
}

// block places n one-core balanced bids and settles them; slow[i] makes
// provider i time out. It returns the jobs per provider.
func (s *perfSim) block(t *testing.T, n int, slow map[int]bool) []int {
	r := rand.New(rand.NewPCG(s.nonce, 7))
	for _, o := range s.offers { // the providers' heartbeats
		o.Expires = s.now + MaxOfferTTL
	}
	var bids []*Bid
	for range n {
		b := baseBid(s.nonce)
		s.nonce++
		b.Client, b.Sig, b.Preference, b.MatchBy = s.client.Public(), fakeSig(r), PreferBalanced, s.now+30_000
		b.Constraints, b.Near = Constraints{}, nil
		bids = append(bids, &b)
	}
	var seed [32]byte
	seed[0], seed[1] = byte(s.nonce), byte(s.nonce>>8)
	ms := Matcher{}.Match(NewSnapshot(s.offers, bids), s.view, s.now, seed, n)
	got := make([]int, len(s.keys))
	for _, m := range ms {
		for i, k := range s.keys {
			if m.Offer.Provider != k.Public() {
				continue
			}
			got[i]++
			ps := s.view.providers[k.Address()]
			if slow[i] {
				ps.Perf = ps.Perf.Observe(OutcomeTimedOut, m.Bid.TimeoutMs+60_000, m.Bid.TimeoutMs, m.Price, 0, 0, false, s.now)
			} else {
				ps.Perf = ps.Perf.Observe(OutcomeCompleted, m.Bid.TimeoutMs/10, m.Bid.TimeoutMs, m.Price, m.Price, 0, false, s.now)
			}
			s.view.providers[k.Address()] = ps
		}
	}
	s.now += 10_000
	return got
}

// The seed's learning, shown: a provider that starts timing out receives
// a falling share of new jobs (only what the healthy ones cannot take),
// and regains its share once it completes its jobs again.
func TestSlowProviderLosesShareAndRegainsItWhenItRecovers(t *testing.T) {
	s := newPerfSim(t, 3)
	share := func(phase string, blocks int, slow map[int]bool) float64 {
		jobs, total := 0, 0
		for range blocks {
			got := s.block(t, 9, slow) // 9 one-core jobs for 12 cores
			jobs += got[2]
			for _, g := range got {
				total += g
			}
		}
		f := float64(jobs) / float64(total)
		t.Logf("%-28s provider C took %3d of %3d jobs (%.0f%%), cost %d ppm", phase, jobs, total, 100*f, s.view.providers[s.keys[2].Address()].Perf.Cost(s.now))
		return f
	}
	healthy := share("healthy, 10 blocks", 10, nil)
	share("C times out, 10 blocks", 10, map[int]bool{2: true})
	degraded := share("C times out, 20 more", 20, map[int]bool{2: true})
	share("C recovered, 10 blocks", 10, nil)
	recovered := share("C recovered, 20 more", 20, nil)
	if healthy < 0.3 || degraded > 0.15 || recovered < 0.3 {
		t.Fatalf("C's share: healthy %.2f, degraded %.2f, recovered %.2f; want ≥ 0.30, ≤ 0.15, ≥ 0.30", healthy, degraded, recovered)
	}
}

// The attack: a provider with a record of timeouts washes it with many
// tiny jobs it pays itself through a second key, each completed at once.
// Samples are weighted by the job's quote against the provider's typical
// one (floored at PerfQuotePrior), so a hundred 3-unit jobs move the
// record by about a third of one typical job; counted per job (as the
// first version did), they erased it.
func TestPerfCannotBeWashedWithTinySelfPaidJobs(t *testing.T) {
	var p Perf
	for i := range PerfWindow {
		p = p.Observe(OutcomeTimedOut, 120_000, 60_000, 5000, 0, 0, false, t0+int64(i))
	}
	before := p.Cost(t0 + 100)
	for i := range 100 {
		p = p.Observe(OutcomeCompleted, 1, 60_000, 3, 3, 0, false, t0+100+int64(i))
	}
	after := p.Cost(t0 + 200)
	t.Logf("cost %d ppm before, %d after 100 self-paid 3-unit jobs; timeout rate %d ppm", before, after, p.TimeoutPpm)
	if after < before*3/4 {
		t.Fatalf("100 tiny jobs cut the cost from %d to %d", before, after)
	}
	// A real job of typical worth still moves it by its full weight.
	q := p.Observe(OutcomeCompleted, 1, 60_000, 5000, 5000, 0, false, t0+300)
	if q.TimeoutPpm >= p.TimeoutPpm-p.TimeoutPpm/PerfWindow+1 {
		t.Fatalf("a typical job moved the timeout rate from %d to %d only", p.TimeoutPpm, q.TimeoutPpm)
	}
}

// The attack: a client lies in its RTT list (claims a far provider is 1 ms
// away). The list is signed with its bid, so it steers that bid only: its
// job goes where it said, another client's identical bid is placed as if
// the liar did not exist. Tampering with a signed list breaks the
// signature; an oversized, unsorted or out-of-range list is refused.
func TestLyingAboutRTTOnlyMovesTheLiarsOwnJob(t *testing.T) {
	near, far := testKey(t, 50), testKey(t, 51)
	view := newFakeView(100)
	r := rand.New(rand.NewPCG(3, 3))
	var offers []*Offer
	for _, k := range []wallet.PrivateKey{near, far} {
		o := baseOffer(1)
		o.Provider, o.Sig = k.Public(), fakeSig(r)
		offers = append(offers, &o)
		view.providers[k.Address()] = ProviderState{Collateral: 100, Reputation: 500}
	}
	honestKey, liarKey := testKey(t, 52), testKey(t, 53)
	view.balances[honestKey.Address()], view.balances[liarKey.Address()] = 1<<40, 1<<40
	mk := func(k wallet.PrivateKey, nonce uint64, rtt []PeerRTT) *Bid {
		b := baseBid(nonce)
		b.Client, b.Sig, b.Preference, b.RTT = k.Public(), fakeSig(r), PreferNearest, rtt
		return &b
	}
	truth := []PeerRTT{{Provider: near.Address(), Ms: 5}, {Provider: far.Address(), Ms: 180}}
	sortRTT(truth)
	lie := []PeerRTT{{Provider: far.Address(), Ms: 1}, {Provider: near.Address(), Ms: 900}}
	sortRTT(lie)
	honest, liar := mk(honestKey, 1, truth), mk(liarKey, 2, lie)
	alone := Matcher{}.Match(NewSnapshot(offers, []*Bid{honest}), view, t0, [32]byte{1}, 10)
	both := Matcher{}.Match(NewSnapshot(offers, []*Bid{honest, liar}), view, t0, [32]byte{1}, 10)
	if len(alone) != 1 || alone[0].Offer.Provider != near.Public() {
		t.Fatalf("honest bid alone: %v", matchKeys(alone))
	}
	for _, m := range both {
		want := near.Public()
		if m.Bid.Client == liarKey.Public() {
			want = far.Public() // where it asked to go
		}
		if m.Offer.Provider != want {
			t.Fatalf("bid of %s went to %s", m.Bid.ClientAddress(), m.Offer.ProviderAddress())
		}
	}
	if len(both) != 2 {
		t.Fatalf("%d matches", len(both))
	}
	// Signed: a relay cannot rewrite a client's list.
	signed := signedBid(t, honestKey, func() Bid { b := baseBid(3); b.RTT = truth; return b }())
	signed.RTT = lie
	if err := signed.Verify(testChain); CodeOf(err) != CodeSignature {
		t.Fatalf("a rewritten RTT list verifies: %v", err)
	}
	// Bounded, at the bound.
	var list []PeerRTT
	for i := range MaxRTTEntries + 1 {
		list = append(list, PeerRTT{Provider: testKey(t, 200+i).Address(), Ms: uint32(i)})
	}
	for _, c := range []struct {
		name string
		rtt  []PeerRTT
		ok   bool
	}{
		{"at the bound", list[:MaxRTTEntries], true},
		{"one above the bound", list, false},
		{"unsorted", []PeerRTT{list[1], list[0]}, false},
		{"ms above MaxRTTMs", []PeerRTT{{Provider: list[0].Provider, Ms: MaxRTTMs + 1}}, false},
		{"ms at MaxRTTMs", []PeerRTT{{Provider: list[0].Provider, Ms: MaxRTTMs}}, true},
		{"a provider twice", []PeerRTT{{Provider: list[0].Provider, Ms: 1}, {Provider: list[0].Provider, Ms: 2}}, false},
		{"empty provider", []PeerRTT{{Ms: 1}}, false},
	} {
		b := baseBid(4)
		b.Client, b.RTT = liarKey.Public(), c.rtt
		err := b.Validate(t0)
		var ie *InvalidError
		if c.ok != (err == nil) || err != nil && (!errors.As(err, &ie) || ie.Field != "bid.rtt") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// The attack: a provider reports no load at all (Load, HostCPU, HostMem
// 0) while its open matches fill most of its capacity. Placement takes
// the larger of the reported load and the chain's reservations, so the
// lie gains nothing over a provider honestly reporting less than that:
// the bound is (reserved + need)/Total, which the chain enforces.
func TestLyingAboutLoadCannotBeatTheChainsReservations(t *testing.T) {
	liar, honest := testKey(t, 60), testKey(t, 61)
	view := newFakeView(100)
	r := rand.New(rand.NewPCG(4, 4))
	mk := func(k wallet.PrivateKey, load, cpu uint32) *Offer {
		o := baseOffer(1)
		o.Provider, o.Sig, o.Load, o.HostCPU = k.Public(), fakeSig(r), load, cpu
		return &o
	}
	offers := []*Offer{mk(liar, 0, 0), mk(honest, 400, 600)} // honest: 60% busy
	view.providers[liar.Address()] = ProviderState{Collateral: 100, Reputation: 500, Reserved: Resources{CPU: 3000}}
	view.providers[honest.Address()] = ProviderState{Collateral: 100, Reputation: 500}
	client := testKey(t, 62)
	view.balances[client.Address()] = 1 << 40
	b := baseBid(1)
	b.Client, b.Sig, b.Preference, b.Resources = client.Public(), fakeSig(r), PreferLeastLoaded, Resources{CPU: 500, MemMiB: 64}
	ms := Matcher{}.Match(NewSnapshot(offers, []*Bid{&b}), view, t0, [32]byte{2}, 1)
	if len(ms) != 1 || ms[0].Offer.Provider != honest.Public() {
		t.Fatalf("least-loaded went to %v; the liar's reservations make it 87.5%% loaded, the honest one reports 60%%", matchKeys(ms))
	}
	// Reported load is the largest of Load, HostCPU and HostMem.
	if got := (&Offer{Load: 1, HostCPU: 700, HostMem: 300}).ReportedLoad(); got != 700 {
		t.Fatalf("ReportedLoad %d", got)
	}
	o := baseOffer(1)
	o.Provider, o.HostMem = liar.Public(), MaxLoad+1
	if err := o.Validate(t0); err == nil {
		t.Fatal("host memory above 1000 per mille accepted")
	}
}

// A bid with a full distance list and region weights survives the gossip
// and match decoders' limits (nesting: match → bid → rtt → entry).
func TestBidWithFullDistanceListDecodes(t *testing.T) {
	b := baseBid(1)
	for i := range MaxRTTEntries {
		b.RTT = append(b.RTT, PeerRTT{Provider: testKey(t, 300+i).Address(), Ms: MaxRTTMs - uint32(MaxRTTEntries-i)})
	}
	sortRTT(b.RTT)
	b.Constraints.RegionWeights = []uint32{MaxRegionWeight, 1}
	sb := signedBid(t, testKey(t, 2), b)
	data, err := sb.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBid(data)
	if err != nil || got.ID() != sb.ID() || got.Verify(testChain) != nil || got.Validate(t0) != nil {
		t.Fatalf("decode bid: %v", err)
	}
	m := Match{Offer: *signedOffer(t, testKey(t, 1), baseOffer(1)), Bid: *sb}
	m.Offer.HostCPU, m.Offer.HostMem = 0, 0
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeMatch(raw); err != nil {
		t.Fatalf("decode match: %v", err)
	}
	t.Logf("bid with %d RTT entries: %d bytes encoded", len(b.RTT), len(data))
}
