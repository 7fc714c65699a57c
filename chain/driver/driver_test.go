package driver

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/internal/clock"
	"github.com/bourse-net/bourse/wallet"
)

// memNet is an in-memory network of drivers: gossip is delivered through
// each receiver's validator, requests call the receiver's handler. Nodes
// can be cut off.
type memNet struct {
	maxMsg atomic.Int64 // the largest consensus message broadcast
	mu     sync.Mutex
	nodes  map[string]*Driver
	down   map[string]bool
	liars  map[string]func(req []byte) ([]byte, error) // peers that answer sync requests their own way
}

func newMemNet() *memNet { return &memNet{nodes: map[string]*Driver{}, down: map[string]bool{}} }

func (n *memNet) set(id string, d *Driver) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.nodes[id] = d
	n.down[id] = d == nil
}

func (n *memNet) others(id string) map[string]*Driver {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]*Driver{}
	if n.down[id] {
		return out
	}
	for k, d := range n.nodes {
		if k != id && d != nil && !n.down[k] {
			out[k] = d
		}
	}
	return out
}

type memTransport struct {
	net  *memNet
	id   string
	only func() []string // when set, the peers this node sees for sync
}

func (t *memTransport) Broadcast(_ context.Context, _ string, data []byte) error {
	for {
		m := t.net.maxMsg.Load()
		if int64(len(data)) <= m || t.net.maxMsg.CompareAndSwap(m, int64(len(data))) {
			break
		}
	}
	for _, d := range t.net.others(t.id) {
		if m, v, _ := d.ValidateGossip(data); v == Accept {
			d.HandleGossip(m)
		}
	}
	return nil
}

func (t *memTransport) Peers() []string {
	if t.only != nil {
		if ps := t.only(); ps != nil {
			return ps
		}
	}
	var ps []string
	for k := range t.net.others(t.id) {
		ps = append(ps, k)
	}
	t.net.mu.Lock()
	for k := range t.net.liars {
		ps = append(ps, k)
	}
	t.net.mu.Unlock()
	return ps
}

func (t *memTransport) Request(ctx context.Context, peer, _ string, req []byte, _ int) ([]byte, error) {
	t.net.mu.Lock()
	liar := t.net.liars[peer]
	t.net.mu.Unlock()
	if liar != nil {
		return liar(req)
	}
	d, ok := t.net.others(t.id)[peer]
	if !ok {
		return nil, errors.New("peer unreachable")
	}
	return d.HandleSync(ctx, req)
}

type testNode struct {
	id    string
	key   wallet.PrivateKey
	store *store.Store
	d     *Driver
	ptxs  ProposerTxs // this node's Matches, if any
	onEv  func(consensus.DuplicateVoteEvidence)
	tr    Transport // when set, used instead of a plain memTransport
}

type cluster struct {
	t       testing.TB
	net     *memNet
	genesis []byte
	nodes   []*testNode
	user    wallet.PrivateKey
	clk     clock.Clock   // nil: the real clock
	catchup time.Duration // the drivers' CatchupInterval; zero: 100 ms
}

func key(t testing.TB, i byte) wallet.PrivateKey {
	k, err := wallet.KeyFromSeed(bytes.Repeat([]byte{i + 1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCluster(t testing.TB, validators int) *cluster { return newClusterWith(t, validators, nil) }

// newClusterWith is newCluster with a hook that adjusts the genesis.
func newClusterWith(t testing.TB, validators int, adjust func(*chain.Genesis)) *cluster {
	c := &cluster{t: t, net: newMemNet(), user: key(t, 100)}
	g := chain.Genesis{
		ChainID: "drv-test", GenesisTime: time.Now().UnixMilli() - 1000,
		Accounts: []chain.GenesisAccount{{Address: c.user.Address(), Balance: 1_000_000}},
		Timeouts: chain.Timeouts{ProposeMs: 200, ProposeDeltaMs: 50, PrevoteMs: 50, PrevoteDeltaMs: 25,
			PrecommitMs: 50, PrecommitDeltaMs: 25, CommitMs: 10},
		Params: chain.DefaultParams(),
	}
	for i := range validators {
		k := key(t, byte(i))
		g.Validators = append(g.Validators, chain.GenesisValidator{Address: k.Address(), PubKey: chain.HexKey(k.Public()), Stake: 100})
		g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: k.Address(), Balance: 1000})
	}
	if adjust != nil {
		adjust(&g)
	}
	var buf bytes.Buffer
	path := t.TempDir() + "/genesis.json"
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	parsed, err := chain.LoadGenesis(path)
	if err != nil {
		t.Fatal(err)
	}
	_ = parsed
	raw, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(raw)
	c.genesis = buf.Bytes()
	for i := range validators {
		c.nodes = append(c.nodes, &testNode{id: fmt.Sprintf("n%d", i), key: key(t, byte(i)), store: store.NewMem()})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n)
		}
	})
	return c
}

func (c *cluster) start(n *testNode) {
	c.t.Helper()
	var tr Transport = &memTransport{net: c.net, id: n.id}
	if n.tr != nil {
		tr = n.tr
	}
	d, err := New(Config{GenesisJSON: c.genesis, Key: n.key, CatchupInterval: cmp.Or(c.catchup, 100*time.Millisecond), ProposerTxs: n.ptxs, OnEvidence: n.onEv, Clock: c.clk},
		n.store, tr)
	if err != nil {
		c.t.Fatalf("start %s: %v", n.id, err)
	}
	n.d = d
	c.net.set(n.id, d)
	d.Start(context.Background())
}

func (c *cluster) stop(n *testNode) {
	if n.d == nil {
		return
	}
	c.net.set(n.id, nil)
	if err := n.d.Close(); err != nil {
		c.t.Errorf("%s halted: %v", n.id, err)
	}
	n.d = nil
}

// waitHeight runs the cluster until every running node has committed
// height h, within the cluster's time (virtual on a Manual clock).
func (c *cluster) waitHeight(h uint64, within time.Duration) {
	c.t.Helper()
	c.until(fmt.Sprintf("height %d", h), within, func() bool {
		for _, n := range c.nodes {
			if n.d != nil && n.store.Height() < h {
				return false
			}
		}
		return true
	})
}

// checkAgreement asserts that all stores hold the same blocks (hence the
// same state roots) at every height they share.
func (c *cluster) checkAgreement() {
	c.t.Helper()
	ctx := context.Background()
	var ref *testNode
	for _, n := range c.nodes {
		if n.store.Height() > 0 && (ref == nil || n.store.Height() > ref.store.Height()) {
			ref = n
		}
	}
	for _, n := range c.nodes {
		// Nodes keep committing while we look: compare what both hold.
		upto := min(n.store.Height(), ref.store.Height())
		for h := uint64(1); h <= upto; h++ {
			a, err1 := ref.store.Block(ctx, h)
			b, err2 := n.store.Block(ctx, h)
			if err1 != nil || err2 != nil {
				c.t.Fatalf("block %d: %v %v", h, err1, err2)
			}
			if a.Hash() != b.Hash() {
				c.t.Fatalf("fork at height %d: %s and %s disagree", h, ref.id, n.id)
			}
		}
	}
}

func (c *cluster) transfer(nonce uint64, to wallet.Address, amount uint64) []byte {
	tx := &chain.Tx{ChainID: "drv-test", Sender: c.user.Public(), Nonce: nonce, Fee: 1,
		Transfer: &chain.Transfer{To: to, Amount: amount}}
	if err := tx.Sign(c.user); err != nil {
		c.t.Fatal(err)
	}
	raw, err := tx.Encode()
	if err != nil {
		c.t.Fatal(err)
	}
	c.addTx(raw)
	return raw
}

// addTx puts raw in every running node's mempool, as gossip would. Only the
// first node must take it: by the time a later one is asked, a block may
// already hold it and its nonce be used.
func (c *cluster) addTx(raw []byte) {
	c.t.Helper()
	first := true
	for _, n := range c.nodes {
		if n.d == nil {
			continue
		}
		if _, err := n.d.Mempool().Add(raw); err != nil && first {
			c.t.Fatalf("%s mempool: %v", n.id, err)
		}
		first = false
	}
}

func TestFourValidatorsCommitTransfers(t *testing.T) {
	c := newCluster(t, 4)
	c.virtual()
	for _, n := range c.nodes {
		c.start(n)
	}
	c.waitHeight(3, 10*time.Second)
	dest := key(t, 50).Address()
	for i := range 5 {
		c.transfer(uint64(i), dest, 10)
	}
	c.until("the transfers committed", 10*time.Second, func() bool {
		acc, err := c.nodes[0].d.State().Account(dest)
		return err == nil && acc.Balance == 50
	})
	h := c.nodes[0].store.Height()
	c.waitHeight(h+1, 5*time.Second)
	c.checkAgreement()
	for _, n := range c.nodes {
		if err := chain.CheckInvariants(n.d.State()); err != nil {
			t.Fatalf("%s: %v", n.id, err)
		}
	}
}

func TestRestartAndLateJoinCatchUp(t *testing.T) {
	c := newCluster(t, 4)
	// A fifth node, not a validator (zero key), joins late.
	late := &testNode{id: "late", store: store.NewMem()}
	c.nodes = append(c.nodes, late)
	c.virtual()
	for _, n := range c.nodes[:4] {
		c.start(n)
	}
	c.waitHeight(3, 10*time.Second)

	// Stop one validator: three of four still hold more than 2/3.
	c.stop(c.nodes[0])
	h := c.nodes[1].store.Height()
	c.waitHeight(h+3, 10*time.Second)

	// It restarts from its store and catches up.
	c.start(c.nodes[0])
	// The late node starts from genesis and syncs.
	c.start(late)
	top := c.nodes[1].store.Height()
	c.waitHeight(top+2, 15*time.Second)
	c.checkAgreement()
}

func TestHaltsWithoutQuorumAndResumes(t *testing.T) {
	c := newCluster(t, 4)
	c.virtual()
	for _, n := range c.nodes {
		c.start(n)
	}
	c.waitHeight(2, 10*time.Second)
	c.stop(c.nodes[2])
	c.stop(c.nodes[3])
	c.runFor(300 * time.Millisecond) // let in-flight heights settle
	// The two left may be a height apart and sync to each other: take the
	// higher as where the chain stood.
	h := max(c.nodes[0].store.Height(), c.nodes[1].store.Height())
	c.runFor(10 * time.Second) // dozens of rounds of timeouts, in virtual time
	for _, n := range c.nodes[:2] {
		if got := n.store.Height(); got > h+1 {
			t.Fatalf("two of four validators made progress without a quorum: %s %d → %d", n.id, h, got)
		}
	}
	c.start(c.nodes[2])
	c.waitHeight(h+2, 15*time.Second)
	c.checkAgreement()
}

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

// TestSyncRefusesLyingPeer: a peer that claims a higher chain and serves a
// block whose certificate is forged is penalised, and the node syncs from
// honest peers.
func TestSyncRefusesLyingPeer(t *testing.T) {
	c := newCluster(t, 4)
	c.virtual()
	for _, n := range c.nodes {
		c.start(n)
	}
	c.waitHeight(3, 10*time.Second)
	honest := c.nodes[0].d
	var lied sync.Once
	liedCh := make(chan struct{})
	c.net.mu.Lock()
	c.net.liars = map[string]func([]byte) ([]byte, error){"liar": func(req []byte) ([]byte, error) {
		var r syncRequest
		if err := reqDecoder.Unmarshal(req, &r); err != nil {
			return nil, err
		}
		resp, err := honest.HandleSync(context.Background(), req)
		if err != nil || r.Kind != reqBlocks {
			return resp, err
		}
		var bs syncBlocks
		if err := respDecoder.Unmarshal(resp, &bs); err != nil {
			return nil, err
		}
		for i := range bs.Commits { // forge: certify the block with another block's commit
			bs.Commits[i] = bs.Commits[len(bs.Commits)-1-i]
			if len(bs.Commits) == 1 {
				bs.Commits[i] = []byte{0xa0}
			}
		}
		lied.Do(func() { close(liedCh) })
		return codec.MustMarshal(bs), nil
	}}
	c.net.mu.Unlock()
	// The late node first sees only the liar, then everyone.
	var onlyLiar atomicBool
	onlyLiar.set(true)
	late := &testNode{id: "late", store: store.NewMem()}
	c.nodes = append(c.nodes, late)
	d, err := New(Config{GenesisJSON: c.genesis, CatchupInterval: 50 * time.Millisecond, Clock: c.clk}, late.store,
		&memTransport{net: c.net, id: late.id, only: func() []string {
			if onlyLiar.get() {
				return []string{"liar"}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	late.d = d
	c.net.set(late.id, d)
	d.Start(context.Background())
	c.until("the late node asking the liar", 10*time.Second, func() bool {
		select {
		case <-liedCh:
			return true
		default:
			return false
		}
	})
	c.until("the lying peer penalised", 5*time.Second, func() bool {
		d.badMu.Lock()
		defer d.badMu.Unlock()
		_, penalised := d.bad["liar"]
		return penalised
	})
	if h := late.store.Height(); h != 0 {
		t.Fatalf("the late node applied %d blocks from the liar", h)
	}
	onlyLiar.set(false)
	top := c.nodes[0].store.Height()
	c.waitHeight(top+1, 15*time.Second)
	c.checkAgreement()
}

type atomicBool struct {
	mu sync.Mutex
	v  bool
}

func (b *atomicBool) set(v bool) { b.mu.Lock(); b.v = v; b.mu.Unlock() }
func (b *atomicBool) get() bool  { b.mu.Lock(); defer b.mu.Unlock(); return b.v }

// TestRestartRebuildsProposerPriorities: after the validator set changed
// twice, a driver opened on a stopped node's store rebuilds the very
// proposer priorities the running driver had, for the next height and the
// last one.
func TestRestartRebuildsProposerPriorities(t *testing.T) {
	c := newCluster(t, 4)
	for _, n := range c.nodes {
		c.start(n)
	}
	c.waitHeight(2, 10*time.Second)
	for nonce, amount := range []uint64{10, 30} {
		tx := &chain.Tx{ChainID: "drv-test", Sender: c.user.Public(), Nonce: uint64(nonce), Fee: 1,
			Bond: &chain.Bond{Amount: amount}}
		if err := tx.Sign(c.user); err != nil {
			t.Fatal(err)
		}
		raw, err := tx.Encode()
		if err != nil {
			t.Fatal(err)
		}
		c.addTx(raw)
		// The set changes two heights after the bond commits; a few more
		// heights advance the new priorities.
		c.waitHeight(c.nodes[0].store.Height()+6, 15*time.Second)
	}
	if _, start := c.nodes[0].store.ValidatorRun(); start < 3 {
		t.Fatalf("the validator set never changed (run starts at %d)", start)
	}
	for _, n := range c.nodes {
		live := n.d
		c.stop(n)
		re, err := New(Config{GenesisJSON: c.genesis, Key: n.key}, n.store, &memTransport{net: c.net, id: n.id})
		if err != nil {
			t.Fatalf("%s: reopen: %v", n.id, err)
		}
		for _, p := range []struct {
			name        string
			live, built *consensus.ValidatorSet
		}{{"next height", live.app.vs, re.app.vs}, {"last height", live.app.prevVS, re.app.prevVS}} {
			if p.live.Hash() != p.built.Hash() || !slices.Equal(p.live.Priorities(), p.built.Priorities()) ||
				p.live.Proposer(0).Address != p.built.Proposer(0).Address {
				t.Fatalf("%s at %d, %s: rebuilt priorities %v, the running driver had %v",
					n.id, n.store.Height(), p.name, p.built.Priorities(), p.live.Priorities())
			}
		}
		if err := re.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
