package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/bourse-net/bourse/internal/loadtest"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/chain/mempool"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/wallet"
	dto "github.com/prometheus/client_model/go"
)

// The node benchmarks run four validators as real in-process nodes (libp2p
// hosts on 127.0.0.1, GossipSub, Pebble stores) with the shipped default
// timeouts. Goals (issue): a block every ≤ 150 ms without load, a transfer
// final ≤ 150 ms (p50) after submission, ≥ 4,000 signed transfers/s
// committed under load.
//
//	go test ./node -run '^$' -bench NodeBlockInterval4 -benchtime 40x
//	go test ./node -run '^$' -bench NodeTransfers4 -benchtime 1x

const benchChainID = "bourse-bench"

func benchSeedKey(tb testing.TB, tag byte, i int) wallet.PrivateKey {
	seed := make([]byte, 32)
	seed[0] = tag
	binary.BigEndian.PutUint32(seed[1:], uint32(i))
	k, err := wallet.KeyFromSeed(seed)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// benchNodes is newTestNet for benchmarks: n validators with equal stake
// plus accounts funded accounts (keys benchSeedKey(0xac, i)).
type benchNodes struct {
	tb    testing.TB
	homes []string
	cfgs  []Config
	nodes []*Node
}

func newBenchNodes(tb testing.TB, n, accounts int) *benchNodes {
	bn := &benchNodes{tb: tb}
	root := tb.TempDir()
	g := &chain.Genesis{ChainID: benchChainID, GenesisTime: time.Now().UnixMilli() - 1000,
		Timeouts: chain.DefaultTimeouts(), Params: chain.DefaultParams()}
	// These benchmarks time a chain that has work: its rounds, not the
	// idle wait of a quiet one (BenchmarkNodeBlockInterval4 would report
	// idle_ms).
	g.Timeouts.IdleMs = 0
	for i := range accounts {
		g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: benchSeedKey(tb, 0xac, i).Address(), Balance: 1_000_000_000})
	}
	for i := range n {
		home := filepath.Join(root, fmt.Sprintf("node%d", i))
		cfg := DefaultConfig()
		cfg.ChainID = benchChainID
		cfg.Moniker = fmt.Sprintf("node%d", i)
		cfg.API.Listen = "127.0.0.1:0"
		cfg.Gateway.Listen = "127.0.0.1:0"
		cfg.P2P = p2p.LocalConfig()
		cfg.Log.File = ""
		k := benchSeedKey(tb, 0xfa, i)
		if _, err := InitHome(InitOptions{Home: home, Config: cfg, Passphrase: testPass, Scrypt: wallet.LightScrypt, WalletKey: &k}); err != nil {
			tb.Fatal(err)
		}
		g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: k.Address(), Balance: 10_000_000})
		g.Validators = append(g.Validators, chain.GenesisValidator{Address: k.Address(), PubKey: chain.HexKey(k.Public()), Stake: 1000})
		bn.homes = append(bn.homes, home)
		bn.cfgs = append(bn.cfgs, cfg)
	}
	for _, h := range bn.homes {
		if err := g.Save(filepath.Join(h, "genesis.json")); err != nil {
			tb.Fatal(err)
		}
	}
	bn.nodes = make([]*Node, n)
	return bn
}

func (bn *benchNodes) startAll() {
	for i := range bn.nodes {
		cfg := bn.cfgs[i]
		for _, other := range bn.nodes[:i] {
			cfg.P2P.Bootstrap = append(cfg.P2P.Bootstrap, other.Host().Addrs()[0].String())
		}
		var log *slog.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if os.Getenv("BOURSE_TEST_LOG") != "" {
			log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
		}
		n, err := New(context.Background(), Options{Home: bn.homes[i], Passphrase: testPass, Config: &cfg, Logger: log})
		if err != nil {
			bn.tb.Fatalf("node %d: %v", i, err)
		}
		if err := n.Start(context.Background()); err != nil {
			bn.tb.Fatalf("start node %d: %v", i, err)
		}
		bn.nodes[i] = n
	}
}

func (bn *benchNodes) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, n := range bn.nodes {
		if n != nil {
			if err := n.Close(ctx); err != nil {
				bn.tb.Errorf("close node %d: %v", i, err)
			}
		}
	}
}

func (bn *benchNodes) waitHeight(h uint64, within time.Duration) {
	deadline := time.Now().Add(within)
	for _, n := range bn.nodes {
		for n.store.Height() < h {
			if time.Now().After(deadline) {
				bn.tb.Fatalf("height %d not reached within %s", h, within)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// BenchmarkNodeBlockInterval4 measures the time between consecutive blocks
// of an idle four-node network: one op is one block.
func BenchmarkNodeBlockInterval4(b *testing.B) {
	bn := newBenchNodes(b, 4, 0)
	bn.startAll()
	defer bn.close()
	ch, cancel := bn.nodes[0].Driver().Subscribe(4096)
	defer cancel()
	bn.waitHeight(3, 30*time.Second)
	loadtest.BlockIntervals(b, ch)
	var dropped uint64
	for _, n := range bn.nodes {
		dropped += n.Driver().Dropped()
	}
	b.ReportMetric(float64(dropped), "dropped-msgs")
}

var benchTxs struct {
	sync.Mutex
	m map[[2]int][][]byte
}

// benchTransfers signs perAccount transfers from each of accounts funded
// accounts, interleaved by sender, once per process (every run starts from
// a fresh genesis, so they are valid again).
func benchTransfers(tb testing.TB, accounts, perAccount int) [][]byte {
	benchTxs.Lock()
	defer benchTxs.Unlock()
	if benchTxs.m == nil {
		benchTxs.m = map[[2]int][][]byte{}
	}
	if t := benchTxs.m[[2]int{accounts, perAccount}]; t != nil {
		return t
	}
	keys := make([]wallet.PrivateKey, accounts)
	for i := range keys {
		keys[i] = benchSeedKey(tb, 0xac, i)
	}
	out := loadtest.Transfers(tb, benchChainID, keys, perAccount)
	benchTxs.m[[2]int{accounts, perAccount}] = out
	return out
}

// runLoad runs loadtest.Run with node 0's blocks as the observer.
func runLoad(tb testing.TB, txs [][]byte, batch int, rate float64, observer <-chan driver.Committed,
	submit func(i int, raws [][]byte), within time.Duration) loadtest.Result {
	return loadtest.Run(tb, txs, batch, rate, observer, func(c driver.Committed) loadtest.Block {
		b := loadtest.Block{TxHashes: c.Result.TxHashes}
		if c.Commit != nil {
			b.Round = c.Commit.Round
		}
		return b
	}, submit, within)
}

// BenchmarkNodeTransfers4 publishes batches of 200 signed transfers from
// 2,000 funded accounts on the txs topic, round robin from the four nodes
// (the origin admits the batch to its mempool first, as the tx sender
// does; the others admit it in their topic validator). One op is a whole
// load run; the metrics are committed tx/s, the offered rate and
// submission → commit latency at node 0.
func BenchmarkNodeTransfers4(b *testing.B) {
	const accounts, batch = 2000, 200
	for _, tc := range []struct {
		name       string
		perAccount int
		rate       float64
	}{
		{"rate=500", 1, 500},
		{"rate=5000", 10, 5000},
		{"rate=max", 10, 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			txs := benchTransfers(b, accounts, tc.perAccount)
			var last loadtest.Result
			var refused, pubErrs, dropped uint64
			var txRejects, gossipDropped, minScore float64
			for range b.N {
				b.StopTimer()
				bn := newBenchNodes(b, 4, accounts)
				bn.startAll()
				ch, cancel := bn.nodes[0].Driver().Subscribe(4096)
				bn.waitHeight(2, 30*time.Second)
				// The txs mesh must have formed, or the first batches go
				// nowhere.
				for _, n := range bn.nodes {
					for len(n.topics[p2p.TopicTxs].Peers()) < len(bn.nodes)-1 {
						time.Sleep(10 * time.Millisecond)
					}
				}
				var ref, perr atomic.Uint64
				b.StartTimer()
				last = runLoad(b, txs, batch, tc.rate, ch, func(i int, raws [][]byte) {
					n := bn.nodes[i%len(bn.nodes)]
					_, errs := n.Driver().Mempool().AddBatch(raws)
					for _, err := range errs {
						if err != nil && !errors.Is(err, mempool.ErrTxKnown) {
							ref.Add(1)
						}
					}
					data, err := mempool.EncodeTxBatch(raws)
					if err != nil {
						b.Fatal(err)
					}
					if err := n.topics[p2p.TopicTxs].Publish(context.Background(), data); err != nil {
						perr.Add(1)
					}
				}, 10*time.Second)
				b.StopTimer()
				refused += ref.Load()
				pubErrs += perr.Load()
				for _, n := range bn.nodes {
					dropped += n.Driver().Dropped()
					txRejects += sumMetric(b, n, "validation_total", "reject")
					minScore = min(minScore, minMetric(b, n, "peer_score"))
					gossipDropped += sumMetric(b, n, "gossip_dropped_total", "")
				}
				cancel()
				bn.close()
			}
			last.Report(b)
			b.ReportMetric(float64(refused)/float64(b.N), "origin-refused")
			b.ReportMetric(float64(dropped)/float64(b.N), "dropped-msgs")
			b.ReportMetric(txRejects/float64(b.N), "gossip-rejects")
			b.ReportMetric(gossipDropped/float64(b.N), "gossip-dropped")
			b.ReportMetric(minScore, "min-peer-score")
		})
	}
}

// sumMetric adds up the samples of the node's metric whose name ends in
// suffix and, if label is set, that carry a label with that value.
func sumMetric(tb testing.TB, n *Node, suffix, label string) float64 {
	mfs, err := n.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if !strings.HasSuffix(mf.GetName(), suffix) {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == label }) {
				continue
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// minMetric is the lowest sample of the node's gauge whose name ends in
// suffix (0 if there is none).
func minMetric(tb testing.TB, n *Node, suffix string) float64 {
	mfs, err := n.reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var lo float64
	for _, mf := range mfs {
		if !strings.HasSuffix(mf.GetName(), suffix) {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetGauge().GetValue(); v < lo {
				lo = v
			}
		}
	}
	return lo
}
