package mempool

import (
	"errors"
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
)

// Gossip delivers one sender's batches out of order: a relay parks the
// later nonces, queues them once the gap fills, and a block built from
// the queue carries all of them in order. A client's own submission of a
// gapped nonce is still refused.
func TestMempoolRelayOutOfOrderParksThenQueues(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{}, n.St)
	var txs [][]byte
	for range 6 {
		txs = append(txs, n.Transfer(0, 5, 1, 1))
	}
	if _, errs := mp.AddBatch(txs[3:4]); !errors.Is(errs[0], ErrNonceGap) {
		t.Fatalf("client gap: %v", errs[0])
	}
	// The second half first.
	_, errs := mp.AddRelayed(txs[3:])
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := mp.Size(); c != 0 || mp.Parked() != 3 {
		t.Fatalf("queued %d parked %d, want 0 and 3", c, mp.Parked())
	}
	if _, errs := mp.AddRelayed(txs[3:4]); !errors.Is(errs[0], ErrTxKnown) {
		t.Fatalf("parked twice: %v", errs[0])
	}
	_, errs = mp.AddRelayed(txs[:3])
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := mp.Size(); c != 6 || mp.Parked() != 0 {
		t.Fatalf("queued %d parked %d, want 6 and 0", c, mp.Parked())
	}
	reaped := mp.Reap(1<<20, 100)
	_, res := n.Block(reaped...)
	if len(res.TxHashes) != 6 {
		t.Fatalf("block carried %d of 6", len(res.TxHashes))
	}
	mp.Update(res.Height, res.TxHashes, n.St)
	if c, _ := mp.Size(); c != 0 {
		t.Fatalf("%d left after the block", c)
	}
}

// A relay flooded with transactions ahead of gaps that never fill parks
// at most MaxParked, refuses the rest as full, and forgets them after
// ParkHeights blocks.
func TestMempoolAttackParkedFloodBoundedAtTheBound(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{MaxParked: 4, ParkHeights: 2}, n.St)
	gap := n.Transfer(1, 5, 1, 1) // never relayed: the gap
	_ = gap
	var ahead [][]byte
	for range 5 {
		ahead = append(ahead, n.Transfer(1, 5, 1, 1))
	}
	_, errs := mp.AddRelayed(ahead)
	for i, err := range errs[:4] {
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
	}
	if !errors.Is(errs[4], ErrMempoolFull) || mp.Parked() != 4 {
		t.Fatalf("past the bound: %v, parked %d", errs[4], mp.Parked())
	}
	for h := range 2 {
		_, res := n.Block()
		mp.Update(res.Height, res.TxHashes, n.St)
		if want := []int{4, 0}[h]; mp.Parked() != want {
			t.Fatalf("after %d blocks: parked %d, want %d", h+1, mp.Parked(), want)
		}
	}
	// Garbage relayed is undecodable, which a relay rejects outright.
	if _, errs := mp.AddRelayed([][]byte{{0xde, 0xad}}); !errors.Is(errs[0], ErrUndecodable) || !errors.Is(errs[0], chain.ErrInvalidTx) {
		t.Fatalf("garbage: %v", errs[0])
	}
}

// TestMempoolAttackParkedJunkExpiresByBlockTimeOnARestingChain: parked
// transactions cost nothing to relay, and a resting chain makes a block a
// second or slower, so twenty heights would hold them twenty seconds or
// more. They also leave once ParkMs of block time has passed: kept below
// the bound, gone at it.
func TestMempoolAttackParkedJunkExpiresByBlockTimeOnARestingChain(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4) // a block a second of block time
	mp := New(Config{MaxParked: 4, ParkHeights: 20, ParkMs: 2000}, n.St)
	_ = n.Transfer(1, 5, 1, 1) // never relayed: the gap
	var ahead [][]byte
	for range 4 {
		ahead = append(ahead, n.Transfer(1, 5, 1, 1))
	}
	if _, errs := mp.AddRelayed(ahead); errs[0] != nil || mp.Parked() != 4 {
		t.Fatalf("parked %d (%v)", mp.Parked(), errs[0])
	}
	for h, want := range []int{4, 0} { // 1 s of block time: kept; 2 s: gone
		_, res := n.Block()
		mp.Update(res.Height, res.TxHashes, n.St)
		if mp.Parked() != want {
			t.Fatalf("after %d blocks (%d ms): parked %d, want %d", h+1, (h+1)*1000, mp.Parked(), want)
		}
	}
}
