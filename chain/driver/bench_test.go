package driver

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/bourse-net/bourse/internal/loadtest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/wallet"
)

// The chain benchmarks run four validators on the in-memory network, with
// the shipped default timeouts (chain.DefaultTimeouts). Goals (issue): a
// block every ≤ 150 ms without load, a transfer final ≤ 150 ms (p50) after
// submission, ≥ 4,000 signed transfers/s committed under load.
//
//	go test ./chain/driver -run '^$' -bench BlockInterval4 -benchtime 40x
//	go test ./chain/driver -run '^$' -bench Transfers4 -benchtime 1x

const benchChainID = "drv-bench"

// benchAccountKey is the key of funded account i of the bench genesis.
func benchAccountKey(tb testing.TB, i int) wallet.PrivateKey {
	seed := make([]byte, 32)
	seed[0] = 0xbe
	binary.BigEndian.PutUint32(seed[1:], uint32(i))
	k, err := wallet.KeyFromSeed(seed)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// benchGenesis is a genesis with validators equal-stake validators (keys
// key(i)) and accounts funded accounts (keys benchAccountKey(i)).
func benchGenesis(tb testing.TB, validators, accounts int) []byte {
	g := chain.Genesis{
		ChainID: benchChainID, GenesisTime: time.Now().UnixMilli() - 1000,
		Timeouts: chain.DefaultTimeouts(), Params: chain.DefaultParams(),
	}
	for i := range accounts {
		g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: benchAccountKey(tb, i).Address(), Balance: 1_000_000_000})
	}
	for i := range validators {
		k := key(tb, byte(i))
		g.Validators = append(g.Validators, chain.GenesisValidator{Address: k.Address(), PubKey: chain.HexKey(k.Public()), Stake: 100})
		g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: k.Address(), Balance: 1000})
	}
	if err := g.Validate(); err != nil {
		tb.Fatal(err)
	}
	raw, err := json.Marshal(&g)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// benchTransfers signs perAccount transfers from each of accounts funded
// accounts (see loadtest.Transfers).
func benchTransfers(tb testing.TB, accounts, perAccount int) [][]byte {
	keys := make([]wallet.PrivateKey, accounts)
	for i := range keys {
		keys[i] = benchAccountKey(tb, i)
	}
	return loadtest.Transfers(tb, benchChainID, keys, perAccount)
}

// benchNet is four drivers on a memNet, on in-memory stores.
type benchNet struct {
	tb     testing.TB
	net    *memNet
	ds     []*Driver
	stores []*store.Store
}

func newBenchNet(tb testing.TB, genesis []byte, validators int) *benchNet {
	bn := &benchNet{tb: tb, net: newMemNet()}
	for i := range validators {
		id := fmt.Sprintf("n%d", i)
		st := store.NewMem()
		d, err := New(Config{GenesisJSON: genesis, Key: key(tb, byte(i))}, st, &memTransport{net: bn.net, id: id})
		if err != nil {
			tb.Fatal(err)
		}
		bn.net.set(id, d)
		bn.ds = append(bn.ds, d)
		bn.stores = append(bn.stores, st)
	}
	return bn
}

func (bn *benchNet) start() {
	for _, d := range bn.ds {
		d.Start(context.Background())
	}
}

func (bn *benchNet) close() {
	for i, d := range bn.ds {
		bn.net.set(fmt.Sprintf("n%d", i), nil)
		if err := d.Close(); err != nil {
			bn.tb.Errorf("node %d halted: %v", i, err)
		}
	}
}

// waitHeight waits until every node committed h.
func (bn *benchNet) waitHeight(h uint64, within time.Duration) {
	deadline := time.Now().Add(within)
	for _, st := range bn.stores {
		for st.Height() < h {
			if time.Now().After(deadline) {
				bn.tb.Fatalf("height %d not reached within %s", h, within)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// BenchmarkBlockInterval4 measures the time between consecutive blocks of
// an idle four-validator network: one op is one block.
func BenchmarkBlockInterval4(b *testing.B) {
	bn := newBenchNet(b, benchGenesis(b, 4, 0), 4)
	ch, cancel := bn.ds[0].Subscribe(4096)
	defer cancel()
	bn.start()
	defer bn.close()
	bn.waitHeight(2, 20*time.Second)
	loadtest.BlockIntervals(b, ch)
}

// loadResult is what a transfer load run measured.
type loadResult struct {
	loadtest.Result
	refused int64 // mempool refusals, summed over nodes
}

func (r loadResult) report(b *testing.B) {
	r.Result.Report(b)
	b.ReportMetric(float64(r.refused), "refused")
}

// runLoad runs loadtest.Run with the driver's blocks as the observer.
func runLoad(tb testing.TB, txs [][]byte, batch int, rate float64, observer <-chan Committed,
	submit func(i int, raws [][]byte), within time.Duration) loadResult {
	return loadResult{Result: loadtest.Run(tb, txs, batch, rate, observer, committedBlock, submit, within)}
}

func committedBlock(c Committed) loadtest.Block {
	b := loadtest.Block{TxHashes: c.Result.TxHashes}
	if c.Commit != nil {
		b.Round = c.Commit.Round
	}
	return b
}

var benchTxCache struct {
	sync.Mutex
	txs map[[2]int][][]byte
}

// cachedTransfers signs once per process; every run starts from a fresh
// genesis state, so the same transactions are valid again.
func cachedTransfers(tb testing.TB, accounts, perAccount int) [][]byte {
	benchTxCache.Lock()
	defer benchTxCache.Unlock()
	if benchTxCache.txs == nil {
		benchTxCache.txs = map[[2]int][][]byte{}
	}
	k := [2]int{accounts, perAccount}
	if benchTxCache.txs[k] == nil {
		benchTxCache.txs[k] = benchTransfers(tb, accounts, perAccount)
	}
	return benchTxCache.txs[k]
}

// BenchmarkTransfers4 commits signed transfers from 2,000 funded accounts
// on an in-memory four-validator network. Each batch of 200 is "gossiped":
// handed to every node's mempool concurrently (each node verifies every
// signature once, as over the txs topic). One op is one whole load run;
// the metrics are committed tx/s, the offered rate and submission →
// commit latency at node 0.
func BenchmarkTransfers4(b *testing.B) {
	const accounts, batch = 2000, 200
	for _, tc := range []struct {
		name       string
		perAccount int
		rate       float64
	}{
		{"rate=500", 1, 500},    // light load: latency
		{"rate=5000", 10, 5000}, // the goal's load
		{"rate=max", 10, 0},     // everything at once: capacity
	} {
		b.Run(tc.name, func(b *testing.B) {
			genesis := benchGenesis(b, 4, accounts)
			txs := cachedTransfers(b, accounts, tc.perAccount)
			var last loadResult
			for range b.N {
				b.StopTimer()
				bn := newBenchNet(b, genesis, 4)
				ch, cancel := bn.ds[0].Subscribe(4096)
				bn.start()
				bn.waitHeight(1, 20*time.Second)
				b.StartTimer()
				var refused atomic.Int64
				last = runLoad(b, txs, batch, tc.rate, ch, func(_ int, raws [][]byte) {
					var wg sync.WaitGroup
					for _, d := range bn.ds {
						wg.Go(func() {
							_, errs := d.Mempool().AddBatch(raws)
							for _, err := range errs {
								if err != nil {
									if refused.Add(1) <= 3 {
										b.Logf("mempool: %v", err)
									}
								}
							}
						})
					}
					wg.Wait()
				}, 10*time.Second)
				last.refused = refused.Load()
				b.StopTimer()
				cancel()
				bn.close()
			}
			last.report(b)
		})
	}
}
