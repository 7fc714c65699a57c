package chain

import (
	"bytes"
	"testing"
)

func seedTxs(f *testing.F) *testNet {
	n := newTestNet(f, 6, 4)
	f.Add(transfer(n, 0, 1, 5, 1))
	f.Add(n.tx(1, 1, func(tx *Tx) { tx.Bond = &Bond{Amount: 3} }))
	f.Add(n.tx(2, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: [32]byte{1}, ExitCode: 2} }))
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	return n
}

// FuzzDecodeTx: decoding never panics, and whatever decodes re-encodes to
// the same bytes (one transaction, one encoding, one hash).
func FuzzDecodeTx(f *testing.F) {
	seedTxs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tx, err := DecodeTx(data)
		if err != nil {
			return
		}
		again, err := tx.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded tx re-encodes differently: %v", err)
		}
		_ = VerifyTx(tx)
	})
}

// FuzzDecodeBlock: decoding never panics; a decoded block's header
// commits to its body.
func FuzzDecodeBlock(f *testing.F) {
	n := seedTxs(f)
	b, _ := n.block(transfer(n, 0, 1, 5, 1))
	raw, _ := b.Encode()
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBlock(data)
		if err != nil {
			return
		}
		if TxsRoot(b.Txs) != b.Header.TxsRoot {
			t.Fatal("decoded block with a wrong txs root")
		}
		again, err := b.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatal("decoded block re-encodes differently")
		}
	})
}

// FuzzDecodeTxBatch covers the txs gossip topic.
func FuzzDecodeTxBatch(f *testing.F) {
	n := newTestNet(f, 2, 1)
	raw, _ := EncodeTxBatch([][]byte{transfer(n, 0, 1, 5, 1), transfer(n, 0, 1, 6, 1)})
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		txs, err := DecodeTxBatch(data)
		if err != nil {
			return
		}
		if len(txs) == 0 || len(txs) > MaxTxBatch {
			t.Fatalf("batch of %d accepted", len(txs))
		}
	})
}

// FuzzParseGenesis: a genesis file is user input; it errors, never panics,
// and an accepted genesis builds a state.
func FuzzParseGenesis(f *testing.F) {
	g := testGenesis(3, 2)
	f.Add(genesisJSON(f, g))
	f.Add([]byte(`{"chain_id":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGenesis(data)
		if err != nil {
			return
		}
		if _, err := g.State(); err != nil {
			t.Fatalf("valid genesis gives no state: %v", err)
		}
	})
}
