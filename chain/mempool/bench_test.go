package mempool

import (
	"testing"

	"github.com/bourse-net/bourse/chain/internal/chaintest"
)

// BenchmarkMempoolAddBatch: gossip batches of 256 transfers into the
// mempool (decode, batch signature check, state check).
func BenchmarkMempoolAddBatch(b *testing.B) {
	n := chaintest.NewNet(b, 256, 4)
	var batches [][][]byte
	for j := 0; j < 8; j++ {
		var batch [][]byte
		for i := 0; i < 256; i++ {
			batch = append(batch, n.Transfer(i, (i+1)%256, 1, 1))
		}
		batches = append(batches, batch)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mp := New(Config{}, n.St)
		for _, batch := range batches {
			_, errs := mp.AddBatch(batch)
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(8*256*b.N)/b.Elapsed().Seconds(), "tx/s")
}

// FuzzDecodeTxBatch covers the txs gossip topic.
func FuzzDecodeTxBatch(f *testing.F) {
	n := chaintest.NewNet(f, 2, 1)
	raw, _ := EncodeTxBatch([][]byte{n.Transfer(0, 1, 5, 1), n.Transfer(0, 1, 6, 1)})
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
