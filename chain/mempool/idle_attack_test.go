package mempool

import (
	"bytes"
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
	"github.com/bourse-net/bourse/wallet"
)

func drainAdded(mp *Mempool) {
	select {
	case <-mp.Added():
	default:
	}
}

func signalled(mp *Mempool) bool {
	select {
	case <-mp.Added():
		return true
	default:
		return false
	}
}

// TestMempoolAttackFreeParkedTxDoesNotWakeTheChain: a peer gossips a
// transaction from a key never funded, with a nonce gap and no fee. It is
// parked (relayed transactions may arrive out of order) but can never
// execute, so it never pays: it must not signal Added, which wakes a
// resting chain. Filling a gap with a transaction that can pay does.
func TestMempoolAttackFreeParkedTxDoesNotWakeTheChain(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{}, n.St)
	drainAdded(mp)
	poor, err := wallet.KeyFromSeed(bytes.Repeat([]byte{0xee}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tx := &chain.Tx{ChainID: chaintest.ChainID, Sender: poor.Public(), Nonce: 1, Fee: 0,
		Transfer: &chain.Transfer{To: n.Keys[5].Address(), Amount: 1 << 40}}
	if err := tx.Sign(poor); err != nil {
		t.Fatal(err)
	}
	raw, _ := tx.Encode()
	if _, errs := mp.AddRelayed([][]byte{raw}); errs[0] != nil || mp.Parked() != 1 {
		t.Fatalf("parked %d (%v)", mp.Parked(), errs[0])
	}
	if signalled(mp) {
		t.Fatal("a parked, fee-less transaction from an unfunded key signalled Added: it would wake a resting chain for free")
	}
	// A funded sender's nonce 1 parks (no signal); its nonce 0 fills the
	// gap, and both join the queue (a signal).
	first, second := n.Transfer(0, 5, 10, 1), n.Transfer(0, 5, 10, 1)
	if _, errs := mp.AddRelayed([][]byte{second}); errs[0] != nil || mp.Parked() != 2 {
		t.Fatalf("parked %d (%v)", mp.Parked(), errs[0])
	}
	if signalled(mp) {
		t.Fatal("a parked transaction signalled Added")
	}
	if _, errs := mp.AddRelayed([][]byte{first}); errs[0] != nil || mp.Parked() != 1 {
		t.Fatalf("after the gap filled: parked %d (%v)", mp.Parked(), errs[0])
	}
	if txs, _ := mp.Size(); txs != 2 || !signalled(mp) {
		t.Fatalf("%d queued, signalled: a payable transaction joined the queue without signalling Added", txs)
	}
}
