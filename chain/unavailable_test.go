package chain

import (
	"strings"
	"testing"

	"github.com/bourse-net/bourse/market"
)

// unavailableNet registers providers 4 and 6 and commits a match of
// client 5's bid on provider 4's offer.
func unavailableNet(t *testing.T) (*testNet, *market.Bid) {
	t.Helper()
	n := newTestNet(t, 8, 4)
	for _, p := range []int{4, 6} {
		_, res := n.block(n.tx(p, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 10_000} }))
		if res.TxResults[0].Code != 0 {
			t.Fatal(res.TxResults[0].Log)
		}
	}
	bid := n.bid(5, 1, 1000, 10_000)
	n.block(n.matchTx(n.offer(4, 1), bid))
	return n, bid
}

func unavailable(n *testNet, from int, id market.BidID) []byte {
	return n.tx(from, 1, func(tx *Tx) { tx.PayloadUnavailable = &PayloadUnavailable{JobID: id} })
}

// Attack: a client withholds its payload (or drip-feeds it) so that the
// provider misses the deadline and is slashed, and the client gets a full
// refund. The provider declares the payload unavailable before the
// deadline instead: its collateral is intact, the client gets its escrow
// back less the unavailability fee, which is burned.
func TestClientWithholdingPayloadCannotGetProviderSlashed(t *testing.T) {
	n, bid := unavailableNet(t)
	m, _, _ := n.st.Match(bid.ID())
	clientBefore, burnedBefore := n.balance(5), n.st.Globals().Burned
	provBefore, _, _ := n.st.Provider(n.keys[4].Address())
	_, res := n.block(unavailable(n, 4, bid.ID()))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("payload unavailable refused: %s", res.TxResults[0].Log)
	}
	fee := m.Escrow * DefaultUnavailableFeeBps / 10_000
	if fee == 0 {
		t.Fatalf("escrow %d too small for a fee: the test would prove nothing", m.Escrow)
	}
	if got := n.balance(5); got != clientBefore+m.Escrow-fee {
		t.Fatalf("client balance %d, want %d (escrow %d back less fee %d)", got, clientBefore+m.Escrow-fee, m.Escrow, fee)
	}
	if got := n.st.Globals().Burned - burnedBefore; got != fee {
		t.Fatalf("burned %d, want the fee %d", got, fee)
	}
	p, _, _ := n.st.Provider(n.keys[4].Address())
	if p.Collateral != provBefore.Collateral || p.Open != 0 || !p.Reserved.IsZero() {
		t.Fatalf("provider after the claim: %+v (collateral before %d)", p, provBefore.Collateral)
	}
	if p.Unavailable != 1 || p.Failed != 1 {
		t.Fatalf("provider record counts unavailable %d, failed %d; want 1, 1", p.Unavailable, p.Failed)
	}
	settled, _, _ := n.st.Match(bid.ID())
	if settled.Status != MatchUnavailable || settled.Refunded != m.Escrow-fee || settled.Burned != fee || settled.Escrow != 0 {
		t.Fatalf("match after the claim: %+v", settled)
	}
	if len(res.TxResults[0].Events) != 1 || res.TxResults[0].Events[0].Type != EvUnavailable || res.TxResults[0].Events[0].Amount != fee {
		t.Fatalf("events %+v", res.TxResults[0].Events)
	}
	// The deadline passes: nothing is left to time out or slash.
	n.step = m.Deadline - n.time + 1
	_, res = n.block()
	for _, e := range res.Events {
		if e.Type == EvTimedOut {
			t.Fatalf("a settled match timed out: %+v", e)
		}
	}
}

func TestPayloadUnavailableRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(n *testNet, bid *market.Bid) []byte
		want string
	}{
		{"from the client", func(n *testNet, bid *market.Bid) []byte { return unavailable(n, 5, bid.ID()) }, "is not the provider"},
		{"from another provider", func(n *testNet, bid *market.Bid) []byte { return unavailable(n, 6, bid.ID()) }, "is not the provider"},
		{"unknown job", func(n *testNet, bid *market.Bid) []byte { return unavailable(n, 4, market.BidID{9}) }, "no such match"},
		{"after the result", func(n *testNet, bid *market.Bid) []byte {
			n.block(n.tx(4, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: bid.ID(), Usage: market.Usage{CPUMs: 10}} }))
			return unavailable(n, 4, bid.ID())
		}, "match is completed"},
		{"twice", func(n *testNet, bid *market.Bid) []byte {
			n.block(unavailable(n, 4, bid.ID()))
			return unavailable(n, 4, bid.ID())
		}, "match is payload_unavailable"},
		{"at the deadline", func(n *testNet, bid *market.Bid) []byte {
			m, _, _ := n.st.Match(bid.ID())
			n.step = m.Deadline - n.time - 1 // the next block is the last before the deadline
			n.block()
			n.step = 1
			return unavailable(n, 4, bid.ID())
		}, "match is timed_out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, bid := unavailableNet(t)
			raw := tc.run(n, bid)
			supply := n.st.Globals().Supply
			_, res := n.block(raw)
			if res.TxResults[0].Code == 0 || !strings.Contains(res.TxResults[0].Log, tc.want) {
				t.Fatalf("result %+v, want a refusal saying %q", res.TxResults[0], tc.want)
			}
			if n.st.Globals().Supply != supply {
				t.Fatal("supply changed")
			}
		})
	}
}

// A provider that cannot or will not run a job gains nothing for its
// reputation by claiming the payload was unavailable instead of reporting
// a failed run: both count as one failure of the same weight.
func TestPayloadUnavailableWeighsLikeAFailedRun(t *testing.T) {
	n := newTestNet(t, 8, 4)
	for _, p := range []int{4, 6} {
		n.block(n.tx(p, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 10_000} }))
	}
	b1, b2 := n.bid(5, 1, 1000, 10_000), n.bid(7, 2, 1000, 10_000)
	n.block(n.matchTx(n.offer(4, 1), b1), n.matchTx(n.offer(6, 1), b2))
	_, res := n.block(unavailable(n, 4, b1.ID()), n.tx(6, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: b2.ID(), ExitCode: 1} }))
	for _, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatal(tr.Log)
		}
	}
	claimed, _, _ := n.st.Provider(n.keys[4].Address())
	failed, _, _ := n.st.Provider(n.keys[6].Address())
	if claimed.Reputation() > failed.Reputation() {
		t.Fatalf("reputation after claiming unavailability %d, after a failed run %d", claimed.Reputation(), failed.Reputation())
	}
	if claimed.Reputation() >= 500 {
		t.Fatalf("reputation %d after a claim: it cost nothing", claimed.Reputation())
	}
}
