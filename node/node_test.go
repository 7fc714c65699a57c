package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/wallet"
)

// testNet is a network of in-process nodes on 127.0.0.1: real libp2p hosts,
// real Pebble stores in temp dirs, real HTTP APIs.
type testNet struct {
	t       testing.TB
	chainID string
	homes   []string
	nodes   []*Node
	cfgs    []Config
	genesis *chain.Genesis
}

const testPass = "test-passphrase"

// newTestNet makes n homes, every node a validator with equal stake and a
// funded account; edit may change each node's config (provider settings).
func newTestNet(t *testing.T, n int, edit func(i int, c *Config)) *testNet {
	t.Helper()
	return newTestNetGenesis(t, n, nil, edit)
}

// newTestNetGenesis is newTestNet with a hook on the genesis.
func newTestNetGenesis(t testing.TB, n int, genesis func(*chain.Genesis), edit func(i int, c *Config)) *testNet {
	t.Helper()
	tn := &testNet{t: t, chainID: "bourse-test"}
	root := t.TempDir()
	g := &chain.Genesis{
		ChainID:     tn.chainID,
		GenesisTime: time.Now().UnixMilli() - 1000,
		Timeouts:    chain.Timeouts{ProposeMs: 300, ProposeDeltaMs: 100, PrevoteMs: 100, PrevoteDeltaMs: 50, PrecommitMs: 100, PrecommitDeltaMs: 50, CommitMs: 20},
		Params:      chain.DefaultParams(),
	}
	for i := range n {
		home := filepath.Join(root, fmt.Sprintf("node%d", i))
		cfg := DefaultConfig()
		cfg.ChainID = tn.chainID
		cfg.Moniker = fmt.Sprintf("node%d", i)
		cfg.API.Listen = "127.0.0.1:0"
		cfg.Gateway.Listen = "127.0.0.1:0"
		cfg.P2P = p2p.LocalConfig()
		cfg.Log.File = ""
		cfg.Chain.CheckInvariants = true
		if edit != nil {
			edit(i, &cfg)
		}
		res, err := InitHome(InitOptions{Home: home, Config: cfg, Passphrase: testPass, Scrypt: wallet.LightScrypt})
		if err != nil {
			t.Fatal(err)
		}
		k, err := Keystore(home).Unlock("default", testPass)
		if err != nil {
			t.Fatal(err)
		}
		g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: res.Wallet.Address, Balance: 10_000_000})
		g.Validators = append(g.Validators, chain.GenesisValidator{Address: k.Address(), PubKey: chain.HexKey(k.Public()), Stake: 1000})
		tn.homes = append(tn.homes, home)
		tn.cfgs = append(tn.cfgs, cfg)
	}
	if genesis != nil {
		genesis(g)
	}
	for _, h := range tn.homes {
		if err := g.Save(filepath.Join(h, "genesis.json")); err != nil {
			t.Fatal(err)
		}
	}
	tn.genesis = g
	tn.nodes = make([]*Node, n)
	t.Cleanup(func() {
		for i := range tn.nodes {
			tn.stop(i)
		}
	})
	return tn
}

func (tn *testNet) logger(i int) *slog.Logger {
	if os.Getenv("BOURSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", i)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// start starts node i, bootstrapping from the nodes already running.
func (tn *testNet) start(i int) *Node {
	tn.t.Helper()
	cfg := tn.cfgs[i]
	cfg.P2P.Bootstrap = nil
	for j, other := range tn.nodes {
		if other != nil && j != i {
			for _, a := range other.Host().Addrs() {
				cfg.P2P.Bootstrap = append(cfg.P2P.Bootstrap, a.String())
				break
			}
		}
	}
	n, err := New(context.Background(), Options{Home: tn.homes[i], Passphrase: testPass, Config: &cfg, Logger: tn.logger(i)})
	if err != nil {
		tn.t.Fatalf("node %d: %v", i, err)
	}
	if err := n.Start(context.Background()); err != nil {
		tn.t.Fatalf("start node %d: %v", i, err)
	}
	tn.nodes[i] = n
	return n
}

func (tn *testNet) stop(i int) {
	if n := tn.nodes[i]; n != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			tn.t.Errorf("close node %d: %v", i, err)
		}
		tn.nodes[i] = nil
	}
}

func (tn *testNet) startAll() {
	for i := range tn.nodes {
		tn.start(i)
	}
}

// waitHeight waits until every running node has committed height h.
func (tn *testNet) waitHeight(h uint64, within time.Duration) {
	tn.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok := true
		for _, n := range tn.nodes {
			if n != nil && n.store.Height() < h {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for i, n := range tn.nodes {
				if n != nil {
					tn.t.Logf("node %d at %d, peers %d, err %v", i, n.store.Height(), len(n.host.Peers()), n.drv.Err())
				}
			}
			tn.t.Fatalf("height %d not reached in %s", h, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// committed returns the result of a transaction the API accepted, waiting
// for its block when the daemon answered "pending" (it waits 10 s, which
// a loaded machine under -race can pass).
func committed(t testing.TB, c *api.Client, res api.TxResult, err error) api.TxResult {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for res.Status == "pending" {
		if tx, err := c.Tx(context.Background(), res.Hash); err == nil && tx.Height > 0 {
			if tx.Status != api.TxOK {
				t.Fatalf("tx %s: %s %s", res.Hash, tx.Status, tx.Log)
			}
			return api.TxResult{Hash: res.Hash, Height: tx.Height, Status: "committed"}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tx %s not committed in a minute", res.Hash)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if res.Status != "committed" {
		t.Fatalf("tx %+v", res)
	}
	return res
}

// client returns an API client for node i.
func (tn *testNet) client(i int) *api.Client {
	tn.t.Helper()
	tok, err := ReadAPIToken(tn.homes[i])
	if err != nil {
		tn.t.Fatal(err)
	}
	c, err := api.NewClient("http://"+tn.nodes[i].APIAddr(), tok, nil)
	if err != nil {
		tn.t.Fatal(err)
	}
	return c
}

func TestNodesMakeBlocksAndServeTheAPI(t *testing.T) {
	tn := newTestNet(t, 4, nil)
	tn.startAll()
	tn.waitHeight(3, 30*time.Second)

	ctx := context.Background()
	c := tn.client(0)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Height < 3 || st.ChainID != tn.chainID || len(st.Roles) < 2 {
		t.Fatalf("status = %+v", st)
	}
	if tip, err := c.Block(ctx, st.Height); err != nil || tip.Hash != st.LatestBlockHash {
		t.Fatalf("status names block %s, block %d is %s (%v)", st.LatestBlockHash, st.Height, tip.Hash, err)
	}
	// A transfer from node 0 to a fresh address commits, and every node
	// agrees on the balance.
	to := mustKey(t, 77).Address()
	res, err := c.Send(ctx, to.String(), 1234)
	res = committed(t, c, res, err)
	tn.waitHeight(res.Height+1, 10*time.Second)
	for i := range tn.nodes {
		acc, err := tn.client(i).Account(ctx, to.String())
		if err != nil || acc.Balance != 1234 {
			t.Fatalf("node %d sees balance %d (%v)", i, acc.Balance, err)
		}
	}
	tx, err := c.Tx(ctx, res.Hash)
	if err != nil || tx.Type != "transfer" || tx.Height != res.Height {
		t.Fatalf("tx = %+v, %v", tx, err)
	}
	blk, err := c.Block(ctx, res.Height)
	if err != nil || blk.TxCount == 0 || blk.Hash == "" {
		t.Fatalf("block = %+v, %v", blk, err)
	}

	// Metrics need the token too, and carry the chain's series.
	url := "http://" + tn.nodes[0].APIAddr() + "/metrics"
	if resp, err := http.Get(url); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without token: %v %v", resp, err)
	}
	body := metricsOf(t, tn, 0)
	for _, series := range []string{"bourse_chain_height", "bourse_chain_block_interval_seconds_bucket", "bourse_consensus_commit_round", "bourse_mempool_txs", "bourse_chain_signatures_verified_total"} {
		if !strings.Contains(body, series) {
			t.Errorf("metrics lack %s", series)
		}
	}
}

func mustKey(t *testing.T, b byte) wallet.PrivateKey {
	seed := make([]byte, 32)
	seed[0] = b
	k, err := wallet.KeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestNodesBondRestartLateJoin: four validators over real libp2p with
// Pebble stores bond and unbond stake (the set changes two heights later),
// one validator restarts and catches up, a fifth node joins late and syncs
// from genesis, and every node holds the same blocks (so the same state
// roots) at every height.
func TestNodesBondRestartLateJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five nodes")
	}
	tn := newTestNetGenesis(t, 5, func(g *chain.Genesis) { g.Validators = g.Validators[:4] }, nil)
	for i := range 4 {
		tn.start(i)
	}
	tn.waitHeight(3, 30*time.Second)
	ctx := context.Background()
	c := tn.client(0)
	power := func() uint64 {
		vals, err := c.Validators(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if v.Address == tn.nodes[0].Address().String() {
				return v.Power
			}
		}
		return 0
	}
	if p := power(); p != 1000 {
		t.Fatalf("power %d before bonding", p)
	}
	for _, step := range []struct {
		bond  bool
		amt   uint64
		power uint64
	}{{true, 500, 1500}, {false, 200, 1300}} {
		var res api.TxResult
		var err error
		if step.bond {
			res, err = c.Bond(ctx, step.amt)
		} else {
			res, err = c.Unbond(ctx, step.amt)
		}
		res = committed(t, c, res, err)
		tn.waitHeight(res.Height+2, 10*time.Second) // effective two heights later
		if p := power(); p != step.power {
			t.Fatalf("after bond=%v %d at height %d: power %d, want %d", step.bond, step.amt, res.Height, p, step.power)
		}
	}

	// One validator restarts; the others carry on and it catches up.
	tn.stop(1)
	h := tn.nodes[0].store.Height()
	tn.waitHeight(h+3, 15*time.Second)
	tn.start(1)
	// The fifth node joins late and syncs from genesis.
	tn.start(4)
	top := tn.nodes[0].store.Height()
	tn.waitHeight(top+2, 30*time.Second)

	ref := tn.nodes[0].store
	upto := ref.Height()
	for _, n := range tn.nodes {
		upto = min(upto, n.store.Height())
	}
	for hh := uint64(1); hh <= upto; hh++ {
		want, err := ref.Block(ctx, hh)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range tn.nodes[1:] {
			got, err := n.store.Block(ctx, hh)
			if err != nil {
				t.Fatal(err)
			}
			if got.Hash() != want.Hash() || got.Header.StateRoot != want.Header.StateRoot {
				t.Fatalf("node %d disagrees at height %d", i+1, hh)
			}
		}
	}
	for i, n := range tn.nodes {
		if err := chain.CheckInvariants(n.drv.State()); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
}

// metricsOf returns node i's /metrics page, fetched with its API token.
func metricsOf(t testing.TB, tn *testNet, i int) string {
	t.Helper()
	tok, err := ReadAPIToken(tn.homes[i])
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+tn.nodes[i].APIAddr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
