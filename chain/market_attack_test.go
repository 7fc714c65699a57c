package chain

import (
	"math"
	"testing"

	"github.com/bourse-net/bourse/market"
)

// Attacks of issue 13 on the chain's market state: each test is named after
// the attack it stops.

// The chain committed a Match on the provider's offer #2 (1,000 millicores
// at 20 per cpu-second); its offer #1 (4,000 millicores at 10) has not
// expired. A Match on #1 would book the provider past what it sells now,
// at its old prices, into timeouts and slashing: the block holding it is
// invalid and BuildBlock leaves it out. Further matches on #2 stay valid.
func TestOlderOfferVersionIsNotMatchableAfterAMatchOnANewerOne(t *testing.T) {
	n := newTestNet(t, 8, 4)
	const prov, client = 6, 7
	n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))
	o1 := n.offer(prov, 1) // 4,000 millicores at 10
	o2 := *o1
	o2.Seq, o2.Sig = 2, nil
	o2.Total.CPU, o2.Free.CPU, o2.Terms.PerCPUSecond = 1000, 1000, 20
	if err := o2.Sign(testChainID, n.keys[prov]); err != nil {
		t.Fatal(err)
	}
	b := n.bid(client, 1, 500, 10_000)
	if _, res := n.block(n.matchTx(&o2, b)); len(res.TxResults) != 1 || res.TxResults[0].Code != 0 {
		t.Fatalf("match on offer #2: %+v", res.TxResults)
	}
	if p, _, _ := n.st.Provider(n.keys[prov].Address()); p.NewestOfferSeq != 2 {
		t.Fatalf("provider record %+v: NewestOfferSeq want 2", p)
	}
	old := n.bid(client, 2, 3000, 10_000) // fits #1's 4,000 millicores, not #2's 1,000
	n.refuseMatch(t, n.matchTx(o1, old), old.ID(), market.CodeSuperseded)
	// Equal sequence: another match on #2 is fine.
	b3 := n.bid(client, 3, 500, 10_000)
	if _, res := n.block(n.matchTx(&o2, b3)); len(res.TxResults) != 1 || res.TxResults[0].Code != 0 {
		t.Fatalf("second match on offer #2: %+v", res.TxResults)
	}
	if p, _, _ := n.st.Provider(n.keys[prov].Address()); p.Reserved.CPU != 1000 || p.Open != 2 {
		t.Fatalf("provider record %+v: want 1000 millicores reserved by 2 matches", p)
	}
	// The proposer's matcher, whose book only holds #1, proposes nothing.
	snap := market.NewSnapshot([]*market.Offer{o1}, []*market.Bid{old})
	if ms := (market.Matcher{}).Match(snap, n.st.View(), n.time+n.step, [32]byte{}, 10); len(ms) != 0 {
		t.Fatalf("matcher proposed %d matches on the superseded offer", len(ms))
	}
}

// A provider bids on its own offer with its own key: the Match is refused
// (the block invalid, BuildBlock drops it) and the matcher over the chain's
// view never proposes it.
func TestSelfMatchProviderBiddingOnOwnOfferIsRefused(t *testing.T) {
	n := newTestNet(t, 8, 4)
	const prov = 6
	n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))
	o := n.offer(prov, 1)
	b := n.bid(prov, 1, 1000, 10_000) // the provider's key is the client
	n.refuseMatch(t, n.matchTx(o, b), b.ID(), market.CodeSelfMatch)
	snap := market.NewSnapshot([]*market.Offer{o}, []*market.Bid{b})
	if ms := (market.Matcher{}).Match(snap, n.st.View(), n.time+n.step, [32]byte{}, 10); len(ms) != 0 {
		t.Fatalf("matcher proposed a self-match")
	}
	if p, _, _ := n.st.Provider(n.keys[prov].Address()); p.Open != 0 || p.Completed != 0 {
		t.Fatalf("provider record %+v after a refused self-match", p)
	}
}

// The attack: a provider farms reputation with ten tiny jobs that a second
// key of its own bids and pays (before: 500 → 916 for ten fees, the same as
// ten real jobs). Reputation now weighs what clients paid: ten self-paid
// jobs of 3 units each raise it to 507, while ten real jobs (4 cores for a
// minute, 2,478 each) raise another provider to 962.
func TestReputationFarmingWithTinySelfPaidJobsViaSecondKeyGainsLittle(t *testing.T) {
	n := newTestNet(t, 10, 4)
	const farmer, sybil, honest, client = 6, 7, 8, 9
	for _, p := range []int{farmer, honest} {
		n.block(n.tx(p, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))
	}
	run := func(prov, cl int, cpu uint64, timeoutMs int64, usage market.Usage) uint64 {
		var paid uint64
		for i := range 10 {
			b := n.bid(cl, uint64(100+i), cpu, timeoutMs)
			if _, res := n.block(n.matchTx(n.offer(prov, uint64(1+i)), b)); res.TxResults[0].Code != 0 {
				t.Fatalf("match %d: %s", i, res.TxResults[0].Log)
			}
			_, res := n.block(n.tx(prov, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: b.ID(), Usage: usage} }))
			if res.TxResults[0].Code != 0 {
				t.Fatalf("result %d: %s", i, res.TxResults[0].Log)
			}
			n.block() // the challenge window ends: the held result is paid
			m, _, _ := n.st.Match(b.ID())
			paid += m.Paid
		}
		return paid
	}
	// Tiny: 10 millicores for a second, no usage: the per-job price, 3.
	tinyPaid := run(farmer, sybil, 10, 1000, market.Usage{})
	// Real: 4 cores and 256 MiB for a minute, fully used: 2400+75+3.
	realPaid := run(honest, client, 4000, 60_000, market.Usage{CPUMs: 4 * 60_000, MemMiBMs: 256 * 60_000})
	if tinyPaid != 30 || realPaid != 24_780 {
		t.Fatalf("paid %d and %d, want 30 and 24780", tinyPaid, realPaid)
	}
	pf, _, _ := n.st.Provider(n.keys[farmer].Address())
	ph, _, _ := n.st.Provider(n.keys[honest].Address())
	if pf.Completed != 10 || ph.Completed != 10 {
		t.Fatalf("completed %d and %d, want 10 each", pf.Completed, ph.Completed)
	}
	if got := pf.Reputation(); got != 507 { // (30+1000)·1000/(30+2000)
		t.Fatalf("farmer's reputation after 10 tiny self-paid jobs = %d, want 507", got)
	}
	if got := ph.Reputation(); got != 962 { // (24780+1000)·1000/(24780+2000)
		t.Fatalf("honest provider's reputation after 10 real jobs = %d, want 962", got)
	}
	// What the view hands the matcher and CheckMatch.
	if ps, ok := n.st.View().Provider(n.keys[farmer].Address()); !ok || ps.Reputation != 507 || ps.NewestOfferSeq != 10 {
		t.Fatalf("view of the farmer %+v", ps)
	}
}

func TestProviderReputationIsWeightedByValue(t *testing.T) {
	const huge = math.MaxUint64
	for _, tc := range []struct {
		name string
		p    Provider
		want uint32
	}{
		{"new provider", Provider{}, 500},
		{"counts alone move nothing", Provider{Completed: 1000, Failed: 3, TimedOut: 2}, 500},
		{"one completed job worth the prior", Provider{PaidCompleted: 1000}, 666},               // 2000/3000
		{"one failed job worth the prior", Provider{ValueFailed: 1000}, 333},                    // 1000/3000
		{"one timed-out job worth the prior counts double", Provider{ValueTimedOut: 1000}, 250}, // 1000/4000
		{"a large record outweighs a small failure", Provider{PaidCompleted: 1_000_000, ValueTimedOut: 1000}, 997},
		{"saturated paid sum", Provider{PaidCompleted: huge}, 999},
		{"every sum saturated", Provider{PaidCompleted: huge, ValueFailed: huge, ValueTimedOut: huge}, 250},
		{"saturated failures", Provider{ValueFailed: huge, ValueTimedOut: huge}, 0},
	} {
		if got := tc.p.Reputation(); got != tc.want {
			t.Errorf("%s: Reputation() = %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := addTrack(MaxTrackValue-1, 5); got != MaxTrackValue {
		t.Errorf("addTrack does not saturate: %d", got)
	}
	if got := addTrack(huge, 5); got != MaxTrackValue {
		t.Errorf("addTrack above the cap: %d", got)
	}
}

// A failed job weighs like one typical job of the provider: a griefing
// client whose bid of a huge quote (74,253 units) crashes at once, and a
// provider that fails a job and reports no usage to look harmless, each
// lower a record of ten real 2,478-unit jobs (962) by one such job.
// Weighted by the quote, the griefer's one bid would have sunk it to 255.
func TestReputationFailureWeighsOneTypicalJobNotTheQuote(t *testing.T) {
	n := newTestNet(t, 10, 4)
	const prov, client, griefer = 6, 7, 8
	n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))
	seq := uint64(0)
	job := func(cl int, cpu uint64, timeoutMs int64, exit int32, usage market.Usage) {
		t.Helper()
		seq++
		b := n.bid(cl, seq, cpu, timeoutMs)
		if _, res := n.block(n.matchTx(n.offer(prov, seq), b)); res.TxResults[0].Code != 0 {
			t.Fatalf("match %d: %s", seq, res.TxResults[0].Log)
		}
		if _, res := n.block(n.tx(prov, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: b.ID(), ExitCode: exit, Usage: usage} })); res.TxResults[0].Code != 0 {
			t.Fatalf("result %d: %s", seq, res.TxResults[0].Log)
		}
		n.block() // the challenge window ends: the held result settles
	}
	rep := func() uint32 {
		p, _, _ := n.st.Provider(n.keys[prov].Address())
		return p.Reputation()
	}
	full := market.Usage{CPUMs: 4 * 60_000, MemMiBMs: 256 * 60_000}
	for range 10 {
		job(client, 4000, 60_000, 0, full)
	}
	if got := rep(); got != 962 {
		t.Fatalf("reputation after 10 real jobs %d, want 962", got)
	}
	job(griefer, 4000, 30*60_000, 1, market.Usage{}) // quote 72,000+2,250+3, paid 3
	if got := rep(); got != 881 {                    // 25780·1000/(24780+2478+2000)
		t.Fatalf("reputation after a crashing bid of a huge quote %d, want 881", got)
	}
	job(client, 4000, 60_000, 1, market.Usage{}) // the provider fails a real job, reports nothing
	if got := rep(); got != 812 {                // 25780·1000/(24780+2·2478+2000)
		t.Fatalf("reputation after a failure reported without usage %d, want 812", got)
	}
	p, _, _ := n.st.Provider(n.keys[prov].Address())
	if p.Failed != 2 || p.ValueFailed != 2*2478 {
		t.Fatalf("provider record %+v: want 2 failures weighing 4956", p)
	}
}
