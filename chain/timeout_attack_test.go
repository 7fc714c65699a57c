package chain

import (
	"strings"
	"testing"

	"github.com/bourse-net/bourse/market"
)

// Attack: a provider whose job missed its deadline races the timeout.
// With MaxTimeoutsPerBlock timeouts due, the block past the deadline
// settles exactly the bound and defers the rest; a Result for a deferred
// match arrives in that block (or later) hoping to be paid instead of
// slashed, or to settle the match a second time. It is refused every
// time, the deferred match times out in the next block, and every unit of
// escrow goes back to the client exactly once.
func TestResultRacingADeferredTimeoutIsRefusedAndTheMatchSettlesOnce(t *testing.T) {
	old := MaxTimeoutsPerBlock
	MaxTimeoutsPerBlock = 2
	t.Cleanup(func() { MaxTimeoutsPerBlock = old })

	n := newTestNet(t, 6, 4)
	const prov, client = 4, 5
	_, res := n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 100_000} }))
	if res.TxResults[0].Code != 0 {
		t.Fatal(res.TxResults[0].Log)
	}
	offer := n.offer(prov, 1)
	var bids []*market.Bid
	var txs [][]byte
	for i := range MaxTimeoutsPerBlock + 1 {
		b := n.bid(client, uint64(i+1), 100, 2000)
		bids = append(bids, b)
		txs = append(txs, n.matchTx(offer, b))
	}
	clientBefore := n.balance(client)
	n.block(txs...)
	var deadline int64
	var escrow uint64
	for _, b := range bids {
		m, ok, err := n.st.Match(b.ID())
		if err != nil || !ok || m.Status != MatchOpen {
			t.Fatalf("match %s not open: %v", b.ID(), err)
		}
		if deadline != 0 && m.Deadline != deadline {
			t.Fatalf("deadlines differ: %d, %d", deadline, m.Deadline)
		}
		deadline = m.Deadline
		escrow += m.Escrow
	}
	if n.balance(client) != clientBefore-escrow {
		t.Fatalf("client paid %d, escrow %d", clientBefore-n.balance(client), escrow)
	}

	result := func(b *market.Bid) []byte {
		return n.tx(prov, 1, func(tx *Tx) {
			tx.Result = &ResultTx{JobID: b.ID(), ExitCode: 0, Usage: market.Usage{CPUMs: 1, MemMiBMs: 1}}
		})
	}
	timedOut := map[market.BidID]int{}
	count := func(res *Result) int {
		got := 0
		for _, e := range res.Events {
			if e.Type == EvTimedOut {
				timedOut[e.JobID]++
				got++
			}
		}
		return got
	}
	// The block at the deadline: the bound settles, one is deferred, and
	// every Result (deferred or settled) is refused.
	n.step = deadline - n.time
	var rs [][]byte
	for _, b := range bids {
		rs = append(rs, result(b))
	}
	_, res = n.block(rs...)
	if got := count(res); got != MaxTimeoutsPerBlock {
		t.Fatalf("block at the deadline settled %d timeouts, want the bound %d", got, MaxTimeoutsPerBlock)
	}
	var deferred *market.Bid
	for _, b := range bids {
		if timedOut[b.ID()] == 0 {
			deferred = b
		}
	}
	if m, _, _ := n.st.Match(deferred.ID()); m.Status != MatchOpen {
		t.Fatalf("deferred match is %s, want still open", m.Status)
	}
	for i, tr := range res.TxResults {
		if tr.Kind != KindResult {
			continue
		}
		if tr.Code == 0 {
			t.Fatalf("result %d accepted at the deadline (a deferred timeout must not let it pay)", i)
		}
		if !strings.Contains(tr.Log, "deadline") && !strings.Contains(tr.Log, "timed_out") {
			t.Fatalf("result %d refused for the wrong reason: %s", i, tr.Log)
		}
	}
	// The next block settles the deferred one; a late Result still fails.
	n.step = 100
	_, res = n.block(result(deferred))
	if got := count(res); got != 1 {
		t.Fatalf("next block settled %d timeouts, want the 1 deferred", got)
	}
	if res.TxResults[0].Code == 0 {
		t.Fatal("a Result settled a match that had just timed out")
	}
	_, res = n.block(result(deferred))
	if count(res) != 0 || res.TxResults[0].Code == 0 {
		t.Fatalf("settled match settled again: %+v", res)
	}
	for _, b := range bids {
		if timedOut[b.ID()] != 1 {
			t.Fatalf("match %s timed out %d times", b.ID(), timedOut[b.ID()])
		}
		if m, _, _ := n.st.Match(b.ID()); m.Status != MatchTimedOut || m.Paid != 0 {
			t.Fatalf("match %s: %s, paid %d", b.ID(), m.Status, m.Paid)
		}
	}
	if got := n.balance(client); got != clientBefore {
		t.Fatalf("client holds %d after every timeout, want its %d back to the unit", got, clientBefore)
	}
	if g := n.st.Globals(); g.Escrow != 0 {
		t.Fatalf("escrow pool %d after every match settled", g.Escrow)
	}
}
