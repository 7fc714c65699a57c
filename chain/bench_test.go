package chain

import (
	"testing"
)

// transferBlock builds a block of txsPerSender transfers from each of
// senders accounts.
func transferBlock(b *testing.B, senders, txsPerSender int) (*testNet, *Block) {
	n := newTestNet(b, senders, 4)
	var raws [][]byte
	for j := 0; j < txsPerSender; j++ {
		for i := 0; i < senders; i++ {
			raws = append(raws, transfer(n, i, (i+1)%senders, 1, 1))
		}
	}
	n.time += 1000
	blk, _, err := BuildBlock(n.st, BlockTemplate{Height: 1, Time: n.time, Proposer: n.proposer().Address()}, raws, ExecOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if len(blk.Txs) != len(raws) {
		b.Fatalf("block kept %d of %d", len(blk.Txs), len(raws))
	}
	return n, blk
}

func benchExecute(b *testing.B, cached bool) {
	n, blk := transferBlock(b, 1000, 4)
	opts := ExecOptions{}
	if cached {
		opts.SigCache = NewSigCache(len(blk.Txs))
		for _, raw := range blk.Txs {
			opts.SigCache.Add(TxHash(raw))
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Execute(n.st, blk, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(blk.Txs)*b.N)/b.Elapsed().Seconds(), "tx/s")
}

// BenchmarkExecuteTransfers: a block of 4,000 signed transfers from 1,000
// senders, every signature verified (batch) during execution.
func BenchmarkExecuteTransfers(b *testing.B) { benchExecute(b, false) }

// BenchmarkExecuteTransfersVerified: the same block when the mempool has
// already verified every signature (the common case on a validator).
func BenchmarkExecuteTransfersVerified(b *testing.B) { benchExecute(b, true) }

// BenchmarkMempoolAddBatch: gossip batches of 256 transfers into the
// mempool (decode, batch signature check, state check).
func BenchmarkMempoolAddBatch(b *testing.B) {
	n := newTestNet(b, 256, 4)
	var batches [][][]byte
	for j := 0; j < 8; j++ {
		var batch [][]byte
		for i := 0; i < 256; i++ {
			batch = append(batch, transfer(n, i, (i+1)%256, 1, 1))
		}
		batches = append(batches, batch)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mp := NewMempool(MempoolConfig{}, n.st)
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

// BenchmarkStoreSaveBlock: one block of 4,000 transfers saved to Pebble
// (one synced batch).
func BenchmarkStoreSaveBlock(b *testing.B) {
	n, blk := transferBlock(b, 1000, 4)
	res, err := Execute(n.st, blk, ExecOptions{SkipStateRootCheck: true})
	if err != nil {
		b.Fatal(err)
	}
	blk.Header.StateRoot = res.StateRoot
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		if err := s.InitGenesis(b.Context(), nil, n.st); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.SaveBlock(b.Context(), blk, nil, res); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = s.Close()
		b.StartTimer()
	}
}
