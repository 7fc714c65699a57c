package chain

import "testing"

// Attack: a provider dilutes the mean paid value that its failures are
// weighed by. One tiny job that a second key of its own bids and pays
// (3 units, one Result fee) made its mean 3, so every real job it then
// failed while reporting no usage weighed 3 instead of a typical job:
// ten such failures left it at 493, almost the 500 of a new provider.
// Failures now weigh at least the prior (capped by the quote), so the
// self-paid job buys nothing: the provider ends where a new provider
// that failed the same ten jobs does.
func TestProviderDilutingItsMeanWithATinySelfPaidJobStillPaysForFailures(t *testing.T) {
	n := newTestNet(t, 10, 4)
	const diluter, plain, sybil, client = 6, 7, 8, 9
	for _, p := range []int{diluter, plain} {
		n.block(n.tx(p, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 5000} }))
	}
	seq := uint64(0)
	job := func(prov, cl int, cpu uint64, timeoutMs int64, exit int32) {
		t.Helper()
		seq++
		b := n.bid(cl, seq, cpu, timeoutMs)
		if _, res := n.block(n.matchTx(n.offer(prov, seq), b)); res.TxResults[0].Code != 0 {
			t.Fatalf("match %d: %s", seq, res.TxResults[0].Log)
		}
		if _, res := n.block(n.tx(prov, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: b.ID(), ExitCode: exit} })); res.TxResults[0].Code != 0 {
			t.Fatalf("result %d: %s", seq, res.TxResults[0].Log)
		}
		n.block() // the challenge window ends: the held result settles
	}
	job(diluter, sybil, 10, 1000, 0) // the self-paid tiny job: 3 units
	for range 10 {
		job(diluter, client, 4000, 60_000, 1) // real jobs failed, no usage reported
		job(plain, client, 4000, 60_000, 1)
	}
	pd, _, _ := n.st.Provider(n.keys[diluter].Address())
	pp, _, _ := n.st.Provider(n.keys[plain].Address())
	if pd.PaidCompleted != 3 || pd.Failed != 10 || pp.Failed != 10 {
		t.Fatalf("records %+v and %+v", pd, pp)
	}
	if got := pp.Reputation(); got != 83 { // 1000·1000/(10·1000+2000)
		t.Fatalf("new provider after 10 failures: %d, want 83", got)
	}
	if got := pd.Reputation(); got > pp.Reputation() {
		t.Fatalf("diluted provider after the same 10 failures: %d, above the %d of one that did not dilute", got, pp.Reputation())
	}
}
