package chain

import (
	"testing"

	"github.com/bourse-net/bourse/market"
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

// benchBlockAtScale times the execution of a block holding txs on a state
// seeded with 100,000 records of the kind txs add to, against the same
// block without them ("empty"): the difference is what one more item
// costs when 100,000 are already there.
func benchBlockAtScale(b *testing.B, seed func(n *testNet), txs func(n *testNet) [][]byte) {
	for _, tc := range []struct {
		name string
		with bool
	}{{"empty", false}, {"with-tx", true}} {
		b.Run(tc.name, func(b *testing.B) {
			n := newTestNet(b, 6, 4)
			seed(n)
			var raws [][]byte
			if tc.with {
				raws = txs(n)
			}
			n.time += 1000
			blk, _, err := BuildBlock(n.st, BlockTemplate{Height: n.st.Height() + 1, Time: n.time, Proposer: n.proposer().Address(), PrevHash: n.prevHash}, raws, ExecOptions{SigCache: n.cache})
			if err != nil {
				b.Fatal(err)
			}
			if len(blk.Txs) != len(raws) {
				b.Fatalf("block kept %d of %d", len(blk.Txs), len(raws))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Execute(n.st, blk, ExecOptions{SigCache: n.cache}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBlockWithThe100001stBond: one Bond when 100,000 accounts are
// bonded (the stake index).
func BenchmarkBlockWithThe100001stBond(b *testing.B) {
	benchBlockAtScale(b, func(n *testNet) {
		n.seed(func(o *overlay, g *Globals) {
			for i := 0; i < 100_000; i++ {
				putStake(o, Stake{}, Stake{Address: seedAddress(i), Amount: 1 + uint64(i%5000)})
				g.Supply += 1 + uint64(i%5000)
				g.Bonded += 1 + uint64(i%5000)
			}
		})
	}, func(n *testNet) [][]byte {
		return [][]byte{n.tx(5, 1, func(tx *Tx) { tx.Bond = &Bond{Amount: 2500} })}
	})
}

// BenchmarkBlockWithAMatchIntoAFullDeadlineSecond: one Match whose
// deadline second already holds 100,000 open matches.
func BenchmarkBlockWithAMatchIntoAFullDeadlineSecond(b *testing.B) {
	const prov, client = 4, 5
	var offer *market.Offer
	benchBlockAtScale(b, func(n *testNet) {
		reg := n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 100_000} })
		n.block(reg)
		offer = n.offer(prov, 1)
		deadline := n.time + 1000 + 60_000 + int64(n.st.Params().ResultGraceMs)
		provAddr := n.keys[prov].Address()
		n.seed(func(o *overlay, g *Globals) {
			var p Provider
			if _, err := getRecord(o, addrKey(pfxProvider, provAddr), &p); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < 100_000; i++ {
				bid := market.Bid{Executor: market.ExecWASM, Nonce: uint64(i) + 1000, Resources: market.Resources{CPU: 1}, MaxPrice: 1, TimeoutMs: 1}
				m := Match{Match: market.Match{Offer: *offer, Bid: bid, Price: 1}, Status: MatchOpen, Escrow: 1, Deadline: deadline - int64(i%1000)}
				id := bid.ID()
				o.put(pfxMatch+string(id[:]), m)
				o.put(deadlineKey(m.Deadline, id), true)
				p.Open++ // (no reservation, so the offer still has room)
				g.Escrow++
				g.Supply++
			}
			o.put(addrKey(pfxProvider, provAddr), p)
		})
	}, func(n *testNet) [][]byte {
		return [][]byte{n.matchTx(offer, n.bid(client, 1, 1000, 60_000))}
	})
}
