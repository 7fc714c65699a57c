package chain

import (
	"reflect"
	"testing"
)

// A block's transactions are decoded once per node: BuildBlock and Execute
// take the forms ExecOptions.Decoded holds (the mempool's), hand them on
// in the Result for the node's own consumers, and decode only what it
// does not hold, once each. The block and result are the same either way.
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
	decoded := func(h [32]byte) *Tx { asked[h]++; return held[h] }

	n.time += n.step
	tmpl := BlockTemplate{Height: n.st.Height() + 1, Time: n.time, PrevHash: n.prevHash, Proposer: n.proposer().Address()}
	plain, plainRes, err := BuildBlock(n.st, tmpl, raws, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, res, err := BuildBlock(n.st, tmpl, raws, ExecOptions{Decoded: decoded})
	if err != nil {
		t.Fatal(err)
	}
	if b.Hash() != plain.Hash() || res.StateRoot != plainRes.StateRoot {
		t.Fatal("a block built from held forms differs from one built from bytes")
	}
	for i, raw := range raws {
		if asked[TxHash(raw)] != 1 {
			t.Fatalf("build: tx %d looked up %d times, want once", i, asked[TxHash(raw)])
		}
	}
	clear(asked)
	vres, err := Execute(n.st, b, ExecOptions{Decoded: decoded})
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range raws {
		h := TxHash(raw)
		if asked[h] != 1 {
			t.Fatalf("execute: tx %d looked up %d times, want once", i, asked[h])
		}
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
}
