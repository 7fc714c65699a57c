package chain

import (
	"testing"
)

// TestBuildBlockDropsWhatWouldInvalidateIt: the proposer's candidates may
// hold anything; the block it builds keeps exactly the includable ones,
// in order, and every validator accepts it.
func TestBuildBlockDropsWhatWouldInvalidateIt(t *testing.T) {
	n := newTestNet(t, 8, 4)
	prop := n.proposer()
	good1 := transfer(n, 5, 6, 10, 1)
	badSig := transfer(n, 6, 5, 10, 1)
	badSig[len(badSig)-1] ^= 0x55
	n.pending[n.keys[6].Address()] = 0
	// Account 7 drains itself, then its next transaction cannot pay its fee.
	drain := transfer(n, 7, 5, n.balance(7)-1, 1)
	unpayable := transfer(n, 7, 5, 1, 1)
	// A match signed by someone other than the proposer.
	notProposer := 0
	for n.keys[notProposer].Address() == prop.Address() {
		notProposer++
	}
	o := n.offer(5, 1)
	b := n.bid(6, 1, 100, 1000)
	foreignMatch := n.tx(notProposer, 0, func(tx *Tx) { tx.Match = &MatchTx{Offer: *o, Bid: *b, Price: 1} })
	good2 := transfer(n, 5, 6, 10, 1) // nonce 1 of account 5
	candidates := [][]byte{good1, badSig, {0xff, 0x00}, drain, unpayable, foreignMatch, good2, good1}

	n.time += 1000
	blk, res, err := BuildBlock(n.st, BlockTemplate{Height: 1, Time: n.time, Proposer: prop.Address()}, candidates, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{good1, drain, good2}
	if len(blk.Txs) != len(want) {
		t.Fatalf("block has %d txs, want %d", len(blk.Txs), len(want))
	}
	for i := range want {
		if TxHash(blk.Txs[i]) != TxHash(want[i]) {
			t.Fatalf("tx %d is not the expected one", i)
		}
	}
	again, err := Execute(n.st, blk, ExecOptions{})
	if err != nil {
		t.Fatalf("validators refuse the proposer's block: %v", err)
	}
	if again.StateRoot != res.StateRoot || blk.Header.StateRoot != res.StateRoot {
		t.Fatal("roots disagree")
	}
	// The same candidates, forced into a block, make it invalid.
	forced := *blk
	forced.Txs = [][]byte{good1, foreignMatch}
	forced.Header.TxsRoot = TxsRoot(forced.Txs)
	if _, err := Execute(n.st, &forced, ExecOptions{SkipStateRootCheck: true}); err == nil {
		t.Fatal("a block with a match from a non-proposer was accepted")
	}
}
