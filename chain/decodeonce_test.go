package chain

import (
	"errors"
	"reflect"
	"testing"
)

// A block's transactions are decoded and verified once per node: BuildBlock
// and Execute take what ExecOptions.Held holds (the mempool's, in one
// lookup for the block), hand the decoded forms on in the Result for the
// node's own consumers, and decode and verify only what it does not hold.
// The block and result are the same either way.
func TestBlockTxsAreDecodedOnceAndHandedOn(t *testing.T) {
	n := newTestNet(t, 4, 4)
	var raws [][]byte
	for i := range 6 {
		raws = append(raws, transfer(n, i%4, (i+1)%4, 1, 1))
	}
	held := map[[32]byte]*Tx{}
	for _, raw := range raws[:4] { // the mempool holds four of the six
		tx, err := DecodeTx(raw)
		if err != nil {
			t.Fatal(err)
		}
		held[TxHash(raw)] = tx
	}
	asked := map[[32]byte]int{}
	calls := 0
	heldFn := func(hs [][32]byte) []*Tx {
		calls++
		out := make([]*Tx, len(hs))
		for i, h := range hs {
			asked[h]++
			out[i] = held[h]
		}
		return out
	}
	check := func(step string, cache *SigCache) {
		t.Helper()
		if calls != 1 {
			t.Fatalf("%s: %d lookups, want one for the block", step, calls)
		}
		for i, raw := range raws {
			if asked[TxHash(raw)] != 1 {
				t.Fatalf("%s: tx %d looked up %d times, want once", step, i, asked[TxHash(raw)])
			}
		}
		if v := cache.Verified(); v != 2 {
			t.Fatalf("%s: %d signatures verified, want the 2 not held", step, v)
		}
		calls = 0
		clear(asked)
	}

	n.time += n.step
	tmpl := BlockTemplate{Height: n.st.Height() + 1, Time: n.time, PrevHash: n.prevHash, Proposer: n.proposer().Address()}
	plain, plainRes, err := BuildBlock(n.st, tmpl, raws, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cache := NewSigCache(16)
	b, res, err := BuildBlock(n.st, tmpl, raws, ExecOptions{Held: heldFn, SigCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	if b.Hash() != plain.Hash() || res.StateRoot != plainRes.StateRoot {
		t.Fatal("a block built from held forms differs from one built from bytes")
	}
	check("build", cache)
	cache = NewSigCache(16)
	vres, err := Execute(n.st, b, ExecOptions{Held: heldFn, SigCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	check("execute", cache)
	for i, raw := range raws {
		h := TxHash(raw)
		got := vres.DecodedTx(i)
		if held[h] != nil && got != held[h] {
			t.Fatalf("tx %d: result does not hand on the held form", i)
		}
		fresh, _ := DecodeTx(raw)
		if !reflect.DeepEqual(got, fresh) {
			t.Fatalf("tx %d: handed-on form differs from the bytes", i)
		}
	}
	if vres.DecodedTx(len(raws)) != nil || vres.DecodedTx(-1) != nil || (*Result)(nil).DecodedTx(0) != nil {
		t.Fatal("DecodedTx out of range is not nil")
	}
	// A forged transaction among the ones not held still fails the block.
	forged := append([]byte(nil), raws[5]...)
	forged[len(forged)-1] ^= 1
	bad := *b
	bad.Txs = append(append([][]byte(nil), b.Txs[:5]...), forged)
	bad.Header.TxsRoot = TxsRoot(bad.Txs)
	if _, err := Execute(n.st, &bad, ExecOptions{Held: heldFn}); !errors.Is(err, ErrInvalidBlock) && !errors.Is(err, ErrInvalidTx) {
		t.Fatalf("a forged transaction not held: %v", err)
	}
}
