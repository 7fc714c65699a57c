package chain

import (
	"strings"
	"testing"

	"github.com/bourse-net/bourse/market"
)

func deregister(n *testNet, p int) []byte {
	return n.tx(p, 1, func(tx *Tx) { tx.ProviderDeregister = &ProviderDeregister{} })
}

func withdraw(n *testNet, p int) []byte {
	return n.tx(p, 1, func(tx *Tx) { tx.ProviderWithdraw = &ProviderWithdraw{} })
}

// mustBody fails unless the block's only transaction succeeded (or, with
// want, failed saying want).
func mustBody(t *testing.T, res *Result, want string) {
	t.Helper()
	tr := res.TxResults[0]
	if want == "" && tr.Code != 0 {
		t.Fatalf("refused: %s", tr.Log)
	}
	if want != "" && (tr.Code == 0 || !strings.Contains(tr.Log, want)) {
		t.Fatalf("result %+v, want a refusal saying %q", tr, want)
	}
}

// A provider leaves cleanly: once deregistered no new match may name it,
// its open match still settles, and after the exit delay it withdraws
// its collateral to the unit (supply checked by the invariants after
// every block).
func TestProviderDeregistersAndWithdrawsItsCollateral(t *testing.T) {
	g := testGenesis(8, 4)
	g.Params.ProviderExitDelayMs = 8000
	n := newTestNetFrom(t, g, 4)
	const prov, client = 6, 7
	_, res := n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 4000} }))
	mustBody(t, res, "")
	offer := n.offer(prov, 1)
	b1 := n.bid(client, 1, 500, 60_000)
	n.block(n.matchTx(offer, b1))
	_, res = n.block(deregister(n, prov))
	mustBody(t, res, "")
	leftAt := n.time
	if ev := res.TxResults[0].Events; len(ev) != 1 || ev[0].Type != EvLeaving || int64(ev[0].Amount) != leftAt+8000 {
		t.Fatalf("events %+v, want leaving until %d", ev, leftAt+8000)
	}
	// No new match on it.
	b2 := n.bid(client, 2, 500, 60_000)
	n.refuseMatch(t, n.matchTx(offer, b2), b2.ID(), market.CodeCollateral)
	// Withdrawing with a match open is refused; so is deregistering twice.
	_, res = n.block(withdraw(n, prov))
	mustBody(t, res, "1 open matches must settle first")
	_, res = n.block(deregister(n, prov))
	mustBody(t, res, "already deregistered")
	// The open match still settles by its result.
	_, res = n.block(n.tx(prov, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: b1.ID(), Usage: market.Usage{CPUMs: 10}} }))
	mustBody(t, res, "")
	// While its payment is held, the collateral stays.
	n.step = 1
	_, res = n.block(withdraw(n, prov))
	mustBody(t, res, "1 results are held for their challenge window")
	n.step = 999
	n.block() // the challenge window ends
	// The exit delay holds to the millisecond.
	n.step = leftAt + 8000 - 1 - n.time
	_, res = n.block(withdraw(n, prov))
	mustBody(t, res, "the exit delay runs until")
	p, _, _ := n.st.Provider(n.keys[prov].Address())
	balBefore, collBefore := n.balance(prov), n.st.Globals().Collateral
	n.step = 1
	_, res = n.block(withdraw(n, prov))
	mustBody(t, res, "")
	if got := n.balance(prov); got != balBefore-1+p.Collateral {
		t.Fatalf("balance %d, want %d (+%d collateral, -1 fee)", got, balBefore-1+p.Collateral, p.Collateral)
	}
	if got := n.st.Globals().Collateral; got != collBefore-p.Collateral {
		t.Fatalf("collateral pool %d, want %d", got, collBefore-p.Collateral)
	}
	after, ok, _ := n.st.Provider(n.keys[prov].Address())
	if !ok || after.Collateral != 0 || after.Completed != 1 {
		t.Fatalf("provider record after withdrawal %+v (kept: %v)", after, ok)
	}
	_, res = n.block(withdraw(n, prov))
	mustBody(t, res, "no collateral left")
	// Registering again ends the departure: matches are valid again.
	_, res = n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 2000} }))
	mustBody(t, res, "")
	b3 := n.bid(client, 3, 500, 60_000)
	offer2 := n.offer(prov, 2)
	if _, res := n.block(n.matchTx(offer2, b3)); len(res.TxResults) != 1 || res.TxResults[0].Code != 0 {
		t.Fatalf("match after registering again: %+v", res.TxResults)
	}
}

// Attack: a provider that will miss a job's deadline deregisters and
// withdraws its collateral before the timeout can slash it. The
// withdrawal waits for the match to settle, and the timeout slashes.
func TestLeavingProviderCannotWithdrawBeforeItsOpenMatchCanSlashIt(t *testing.T) {
	g := testGenesis(8, 4)
	g.Params.ProviderExitDelayMs = 0
	n := newTestNetFrom(t, g, 4)
	const prov, client = 6, 7
	n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 4000} }))
	b := n.bid(client, 1, 500, 5_000)
	n.block(n.matchTx(n.offer(prov, 1), b))
	m, _, _ := n.st.Match(b.ID())
	_, res := n.block(deregister(n, prov))
	mustBody(t, res, "")
	_, res = n.block(withdraw(n, prov))
	mustBody(t, res, "open matches must settle first")
	n.step = m.Deadline - n.time
	_, res = n.block(withdraw(n, prov)) // the timeout settles first, at the start of this block
	mustBody(t, res, "")
	settled, _, _ := n.st.Match(b.ID())
	if settled.Status != MatchTimedOut || settled.Slashed != 400 {
		t.Fatalf("match %s slashed %d, want timed_out with 400 (10%% of 4000)", settled.Status, settled.Slashed)
	}
	if ev := res.TxResults[0].Events; len(ev) != 1 || ev[0].Type != EvWithdrawn || ev[0].Amount != 3600 {
		t.Fatalf("withdrawal events %+v, want 3600 (the collateral after the slash)", ev)
	}
}

func TestProviderExitRefusals(t *testing.T) {
	n := newTestNet(t, 8, 4)
	_, res := n.block(deregister(n, 6))
	mustBody(t, res, "is not a provider")
	_, res = n.block(withdraw(n, 6))
	mustBody(t, res, "is not a provider")
	n.block(n.tx(6, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 2000} }))
	_, res = n.block(withdraw(n, 6))
	mustBody(t, res, "send ProviderDeregister first")
}
