package audit

import (
	"context"
	"crypto/sha256"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/market"
)

// Accounts of the busy chain: 0-3 validators, 4-7 providers, 8-11 clients.
const (
	firstProvider = 4
	providers     = 4
	firstClient   = 8
	clients       = 4
)

type pending struct {
	bid  *market.Bid
	prov int
	seq  uint64 // the job's ordinal: its outcome
}

// busyChain commits `blocks` certified blocks to a fresh store on a map
// datastore it returns too: every block carries transfers, matches and
// settlements of every kind (completed, failed, payload unavailable,
// timed out), and now and then a transaction whose body fails.
func busyChain(t testing.TB, blocks int) (*store.Store, ds.Batching, *chaintest.Net) {
	t.Helper()
	ctx := context.Background()
	g := chaintest.Genesis(firstClient+clients, 4)
	g.Params.ResultGraceMs = chain.MinResultGraceMs
	g.Params.TimeoutSlashBps = 10
	for c := firstClient; c < firstClient+clients; c++ {
		g.Accounts[c].Balance = 1 << 40 // enough for every job of a long chain
	}
	n := chaintest.NewNetFrom(t, g, 4)
	n.CheckEvery(1 << 62) // the audit checks them; building does not
	d := dssync.MutexWrap(ds.NewMapDatastore())
	s, err := store.NewOn(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(ctx, chaintest.GenesisJSON(t, g), n.St); err != nil {
		t.Fatal(err)
	}
	commit := func(txs ...[]byte) *chain.Result {
		b, res, c := n.Certified(txs...)
		if err := s.SaveBlock(ctx, b, c, res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	var reg [][]byte
	for p := firstProvider; p < firstProvider+providers; p++ {
		reg = append(reg, n.Tx(p, 1, func(tx *chain.Tx) { tx.ProviderRegister = &chain.ProviderRegister{Collateral: 500_000} }))
	}
	commit(reg...)
	var (
		open  []pending // matched last block, to settle now
		jobs  uint64
		nonce uint64
	)
	for h := 2; h <= blocks; h++ {
		var txs [][]byte
		// Settle what the last block matched.
		for _, p := range open {
			id := p.bid.ID()
			switch p.seq % 8 {
			case 0, 1, 2, 3, 4:
				rh := sha256.Sum256(id[:])
				txs = append(txs, n.Tx(p.prov, 1, func(tx *chain.Tx) {
					tx.Result = &chain.ResultTx{JobID: id, ResultHash: rh, Usage: market.Usage{CPUMs: 500, MemMiBMs: 1000}}
				}))
			case 5, 6:
				rh := sha256.Sum256(id[:])
				txs = append(txs, n.Tx(p.prov, 1, func(tx *chain.Tx) {
					tx.Result = &chain.ResultTx{JobID: id, ResultHash: rh, ExitCode: 2, Usage: market.Usage{CPUMs: 100}}
				}))
			case 7:
				if p.seq%16 == 7 {
					txs = append(txs, n.Tx(p.prov, 1, func(tx *chain.Tx) { tx.PayloadUnavailable = &chain.PayloadUnavailable{JobID: id} }))
				} // else: left to time out
			}
		}
		open = open[:0]
		// Transfers among the clients, one of them beyond its balance
		// every tenth block (committed, failed).
		for c := 0; c < clients; c++ {
			txs = append(txs, n.Transfer(firstClient+c, firstClient+(c+1)%clients, 7, 1))
		}
		if h%10 == 0 {
			txs = append(txs, n.Transfer(firstClient, firstClient+1, 1<<50, 1))
		}
		// One new job per provider.
		for p := firstProvider; p < firstProvider+providers; p++ {
			nonce++
			jobs++
			bid := n.Bid(firstClient+int(jobs%clients), nonce, 1000, 2000)
			txs = append(txs, n.MatchTx(n.Offer(p, uint64(h)), bid))
			open = append(open, pending{bid: bid, prov: p, seq: jobs})
		}
		res := commit(txs...)
		if len(res.TxResults) != len(txs) {
			t.Fatalf("block %d kept %d of %d transactions", h, len(res.TxResults), len(txs))
		}
	}
	return s, d, n
}
