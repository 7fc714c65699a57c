package store

import (
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
)

// BenchmarkStoreSaveBlock: one block of 4,000 transfers saved to Pebble
// (one synced batch).
func BenchmarkStoreSaveBlock(b *testing.B) {
	n := chaintest.NewNet(b, 1000, 4)
	var raws [][]byte
	for j := 0; j < 4; j++ {
		for i := 0; i < 1000; i++ {
			raws = append(raws, n.Transfer(i, (i+1)%1000, 1, 1))
		}
	}
	n.Time += 1000
	blk, _, err := chain.BuildBlock(n.St, chain.BlockTemplate{Height: 1, Time: n.Time, Proposer: n.Proposer().Address()}, raws, chain.ExecOptions{})
	if err != nil {
		b.Fatal(err)
	}
	res, err := chain.Execute(n.St, blk, chain.ExecOptions{SkipStateRootCheck: true})
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
		if err := s.InitGenesis(b.Context(), nil, n.St); err != nil {
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
