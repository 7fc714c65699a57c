package driver

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// Tests of issue 13's attacks on the driver, each by a byzantine proposer
// whose key the test holds. The victim is an honest driver that the test
// feeds by hand and whose broadcasts it records.

// tapTransport records what a driver broadcasts and delivers it nowhere;
// it has no sync peers until open is set.
type tapTransport struct {
	memTransport
	mu   sync.Mutex
	sent []consensus.Message
	open bool // gossip and sync reach the network
}

func (t *tapTransport) Broadcast(ctx context.Context, topic string, data []byte) error {
	if m, err := consensus.DecodeMessage(data); err == nil {
		t.mu.Lock()
		t.sent = append(t.sent, m)
		t.mu.Unlock()
	}
	t.mu.Lock()
	open := t.open
	t.mu.Unlock()
	if open {
		return t.memTransport.Broadcast(ctx, topic, data)
	}
	return nil
}

func (t *tapTransport) Peers() []string {
	t.mu.Lock()
	open := t.open
	t.mu.Unlock()
	if !open {
		return nil
	}
	return t.memTransport.Peers()
}

func (t *tapTransport) setOpen() { t.mu.Lock(); t.open = true; t.mu.Unlock() }

// prevote waits for the victim's prevote at height/round and returns its
// block id.
func (t *tapTransport) prevote(tb testing.TB, h uint64, r int32) consensus.BlockID {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		t.mu.Lock()
		for _, m := range t.sent {
			if v := m.Vote; v != nil && v.Type == consensus.Prevote && v.Height == h && v.Round == r {
				t.mu.Unlock()
				return v.BlockID
			}
		}
		t.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatalf("no prevote at %d/%d", h, r)
	return consensus.BlockID{}
}

// genesisSet is the consensus validator set of height 1.
func (c *cluster) genesisSet() *consensus.ValidatorSet {
	c.t.Helper()
	g, err := chain.ParseGenesis(c.genesis)
	if err != nil {
		c.t.Fatal(err)
	}
	st, err := g.State()
	if err != nil {
		c.t.Fatal(err)
	}
	vals, err := st.ValidatorsAt(1)
	if err != nil {
		c.t.Fatal(err)
	}
	vs, err := consensus.NewValidatorSet(toConsensus(vals))
	if err != nil {
		c.t.Fatal(err)
	}
	return vs
}

// nodeOf is the test node holding the validator key of addr.
func (c *cluster) nodeOf(addr wallet.Address) *testNode {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.key.Valid() && n.key.Address() == addr {
			return n
		}
	}
	c.t.Fatalf("no node with key %s", addr)
	return nil
}

// startTapped starts n's driver with a tapTransport: it hears nothing and
// reaches no one until the tap is opened.
func (c *cluster) startTapped(n *testNode) *tapTransport {
	c.t.Helper()
	tr := &tapTransport{memTransport: memTransport{net: c.net, id: n.id}}
	d, err := New(Config{GenesisJSON: c.genesis, Key: n.key, CatchupInterval: 50 * time.Millisecond}, n.store, tr)
	if err != nil {
		c.t.Fatalf("start %s: %v", n.id, err)
	}
	n.d = d
	d.Start(context.Background())
	return tr
}

// forge is a proposal message signed by k.
func forge(tb testing.TB, k wallet.PrivateKey, h uint64, r int32, id consensus.BlockID, value []byte, vr int32) []byte {
	tb.Helper()
	p := &consensus.Proposal{Height: h, Round: r, BlockID: id, Value: value, ValidRound: vr, Proposer: k.Address()}
	p.Signature = k.Sign("drv-test", consensus.MsgTypeProposal, p.SignBytes())
	raw, err := consensus.EncodeMessage(consensus.Message{Proposal: p})
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func forgeVote(tb testing.TB, k wallet.PrivateKey, t consensus.VoteType, h uint64, r int32, id consensus.BlockID) []byte {
	tb.Helper()
	v := &consensus.Vote{Type: t, Height: h, Round: r, BlockID: id, Timestamp: time.Now().UnixMilli(), Validator: k.Address()}
	typ := consensus.MsgTypePrevote
	if t == consensus.Precommit {
		typ = consensus.MsgTypePrecommit
	}
	v.Signature = k.Sign("drv-test", typ, v.SignBytes())
	raw, err := consensus.EncodeMessage(consensus.Message{Vote: v})
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// deliver hands raw to d as gossip; the driver must accept it.
func deliver(tb testing.TB, d *Driver, raw []byte) {
	tb.Helper()
	m, verdict, err := d.ValidateGossip(raw)
	if verdict != Accept {
		tb.Fatalf("gossip refused: verdict %d, %v", verdict, err)
	}
	d.HandleGossip(m)
}

// buildBlock1 is a valid block 1 proposed by proposer, built on d's state.
func buildBlock1(tb testing.TB, c *cluster, d *Driver, proposer wallet.Address) (consensus.BlockID, []byte) {
	tb.Helper()
	var raw []byte
	var id consensus.BlockID
	if err := d.call(context.Background(), func() {
		b, _, err := chain.BuildBlock(d.app.st, chain.BlockTemplate{Height: 1, Time: d.app.genesis.GenesisTime + 1,
			PrevHash: d.store.LastHash(), Proposer: proposer}, nil, chain.ExecOptions{SkipStateRootCheck: true})
		if err != nil {
			tb.Error(err)
			return
		}
		id = consensus.BlockID(b.Hash())
		raw, err = b.Encode()
		if err != nil {
			tb.Error(err)
		}
	}); err != nil {
		tb.Fatal(err)
	}
	if raw == nil {
		tb.FailNow()
	}
	return id, raw
}

// TestByzantineProposerForgedBytesCannotHaltValidator (issue 13, attack 2):
// the proposer of height 1 sends one validator a proposal that names the
// real block 1's id but carries garbage. The victim must not take that as
// the verdict on the real block: when the certified block 1 reaches it by
// sync it executes it and follows the chain. (It used to cache "invalid"
// under the id and halt: "certified block 1 from sync does not execute
// here".)
func TestByzantineProposerForgedBytesCannotHaltValidator(t *testing.T) {
	c := newCluster(t, 4)
	vs := c.genesisSet()
	byz := c.nodeOf(vs.Proposer(0).Address)
	var victim *testNode
	for _, n := range c.nodes {
		if n != byz && victim == nil {
			victim = n
		}
	}
	for _, n := range c.nodes {
		if n != victim {
			c.start(n)
		}
	}
	c.waitHeight(3, 15*time.Second)
	real1, err := byz.store.Block(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	realID := consensus.BlockID(real1.Hash())

	tap := c.startTapped(victim)
	deliver(t, victim.d, forge(t, byz.key, 1, 0, realID, []byte("garbage, not a block"), -1))
	// The forged proposal is answered at once: the victim prevotes nil.
	if got := tap.prevote(t, 1, 0); !got.IsNil() {
		t.Fatalf("the victim prevoted %s for garbage bytes", got)
	}
	// Now the victim meets the network and syncs the certified blocks.
	c.net.set(victim.id, victim.d)
	tap.setOpen()
	top := byz.store.Height()
	c.waitHeight(top+1, 15*time.Second)
	if err := victim.d.Err(); err != nil {
		t.Fatalf("the victim halted: %v", err)
	}
	c.checkAgreement()
}

// TestByzantineProposerForgedBytesNotValidByRealID (issue 13, attack 2,
// the other way round): once a validator found the real block valid, a
// proposal with the same id and garbage bytes must not be taken as valid.
// The victim sees the real block proposed at round 0 (it prevotes it),
// moves to round 1 on two validators' round-1 prevotes, and gets from the
// round-1 proposer the real id with garbage: it must prevote nil. (The
// cache keyed by id alone answered "valid", so the victim prevoted a
// block id whose bytes it never had.)
func TestByzantineProposerForgedBytesNotValidByRealID(t *testing.T) {
	c := newCluster(t, 4)
	vs := c.genesisSet()
	p0, p1 := vs.Proposer(0).Address, vs.Proposer(1).Address
	var victim *testNode
	var others []*testNode
	for _, n := range c.nodes {
		a := n.key.Address()
		if victim == nil && a != p0 && a != p1 {
			victim = n
		} else {
			others = append(others, n)
		}
	}
	tap := c.startTapped(victim)
	id, raw := buildBlock1(t, c, victim.d, p0)
	deliver(t, victim.d, forge(t, c.nodeOf(p0).key, 1, 0, id, raw, -1))
	if got := tap.prevote(t, 1, 0); got != id {
		t.Fatalf("the victim prevoted %s for the real block %s", got, id)
	}
	for _, n := range others[:2] {
		deliver(t, victim.d, forgeVote(t, n.key, consensus.Prevote, 1, 1, consensus.BlockID{}))
	}
	deliver(t, victim.d, forge(t, c.nodeOf(p1).key, 1, 1, id, []byte("garbage under the real id"), -1))
	if got := tap.prevote(t, 1, 1); !got.IsNil() {
		t.Fatalf("the victim prevoted %s for garbage bytes under the real block's id", got)
	}
}

// TestByzantineProposerHeaderNamesAnotherProposer (issue 13, attack 9): the
// round's proposer signs a proposal for a block that is valid in every
// other way but whose header names another validator as Proposer (who is
// paid the fees and alone may send Matches). A validator must prevote nil;
// the same block naming the signer is prevoted (the control).
func TestByzantineProposerHeaderNamesAnotherProposer(t *testing.T) {
	c := newCluster(t, 4)
	vs := c.genesisSet()
	p0 := vs.Proposer(0).Address
	var victims []*testNode
	var other wallet.Address
	for _, n := range c.nodes {
		if n.key.Address() != p0 {
			victims = append(victims, n)
			other = n.key.Address()
		}
	}
	for i, tc := range []struct {
		name   string
		header wallet.Address
		valid  bool
	}{{"header names the signer", p0, true}, {"header names another validator", other, false}} {
		v := victims[i]
		tap := c.startTapped(v)
		id, raw := buildBlock1(t, c, v.d, tc.header)
		deliver(t, v.d, forge(t, c.nodeOf(p0).key, 1, 0, id, raw, -1))
		got := tap.prevote(t, 1, 0)
		if tc.valid && got != id || !tc.valid && !got.IsNil() {
			t.Fatalf("%s: the victim prevoted %s (block %s)", tc.name, got, id)
		}
	}
}

// market is a provider and a client with 512 maximal bids (16 regions,
// 16 nearness hints, 32 labels of 128 bytes: about 7 KiB per bid, 11 KiB
// per Match with the offer carrying the same labels) that all fit one
// offer, for proposers to match.
type testMarket struct {
	provider, client wallet.PrivateKey
	offer            market.Offer
	bids             []market.Bid
}

func newTestMarket(tb testing.TB) *testMarket {
	m := &testMarket{provider: key(tb, 60), client: key(tb, 61)}
	now := time.Now().UnixMilli()
	var labels, regions []string
	for i := range market.MaxLabels {
		labels = append(labels, fmt.Sprintf("k%02d=%0*d", i, market.MaxLabelLen-4, i))
	}
	for i := range market.MaxRegions {
		regions = append(regions, fmt.Sprintf("r%02d-%0*d", i, market.MaxRegionLen-4, i))
	}
	m.offer = market.Offer{PeerID: "peer", Seq: 1, Expires: now + 10*60*1000,
		Total:     market.Resources{CPU: market.MaxCPU, MemMiB: 1 << 20, DiskMiB: 1024},
		Free:      market.Resources{CPU: market.MaxCPU, MemMiB: 1 << 20, DiskMiB: 1024},
		Executors: []string{market.ExecWASM}, Terms: market.PriceTerms{PerCPUSecond: 10, PerGiBSecond: 5, PerJob: 3},
		Region: regions[0], Labels: labels}
	if err := m.offer.Sign("drv-test", m.provider); err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256([]byte("payload"))
	for i := range 512 {
		b := market.Bid{Executor: market.ExecWASM, Nonce: uint64(i),
			Payload:   market.Payload{SHA256: sum[:], Size: 100, Peer: "peer", Manifest: sum[:]},
			Resources: market.Resources{CPU: 1000, MemMiB: 16}, MaxPrice: 100_000,
			MatchBy: now + 60*60*1000, TimeoutMs: 10_000, Preference: market.PreferCheapest, Replicas: 1,
			Constraints: market.Constraints{Regions: regions, Labels: labels}, Near: regions}
		if err := b.Sign("drv-test", m.client); err != nil {
			tb.Fatal(err)
		}
		m.bids = append(m.bids, b)
	}
	return m
}

func (m *testMarket) genesis(g *chain.Genesis) {
	g.Accounts = append(g.Accounts,
		chain.GenesisAccount{Address: m.provider.Address(), Balance: 100_000},
		chain.GenesisAccount{Address: m.client.Address(), Balance: 1_000_000_000})
}

// matches are Match transactions signed by k for every bid still open on
// st, with k's next nonces: what a proposer's matcher returns.
func (m *testMarket) matches(tb testing.TB, st *chain.State, k wallet.PrivateKey, limit int) [][]byte {
	acc, err := st.Account(k.Address())
	if err != nil {
		tb.Error(err)
		return nil
	}
	view := st.View()
	var out [][]byte
	for i := range m.bids {
		b := &m.bids[i]
		if len(out) == limit {
			break
		}
		if view.BidClosed(b.ID()) {
			continue
		}
		price, err := market.PriceFor(&m.offer, b)
		if err != nil {
			tb.Error(err)
			return nil
		}
		tx := &chain.Tx{ChainID: "drv-test", Sender: k.Public(), Nonce: acc.Nonce + uint64(len(out)),
			Match: &chain.MatchTx{Offer: m.offer, Bid: *b, Price: price}}
		if err := tx.Sign(k); err != nil {
			tb.Error(err)
			return nil
		}
		raw, err := tx.Encode()
		if err != nil {
			tb.Error(err)
			return nil
		}
		out = append(out, raw)
	}
	return out
}

// TestBlocksOutgrowNetwork256MaximalBids (issue 13, attack 5): every
// proposer's matcher offers up to 512 Matches of maximal bids (about 5.6 MB;
// bids no longer carry args and env, so it takes more of them).
// Honest proposers must stop adding Matches before the proposal would
// exceed MaxProposalBytes (below the 1 MiB gossip publish limit): no
// consensus message on the wire is larger, every committed block fits, and
// the bids are matched over several blocks. Then a byzantine proposer
// sends a valid block with more Matches than fit: validators refuse it,
// in gossip validation and in block validation (it came by another path).
// Before, a proposer filled blocks up to the genesis' 4 MiB.
func TestBlocksOutgrowNetwork256MaximalBids(t *testing.T) {
	if raceBuild {
		t.Skip("builds blocks of ~30 maximal Matches: make test runs it without -race")
	}
	m := newTestMarket(t)
	c := newClusterWith(t, 4, func(g *chain.Genesis) {
		m.genesis(g)
		// Building and checking a block of ~30 maximal Matches takes
		// seconds under the race detector: rounds must outlast it.
		g.Timeouts.ProposeMs, g.Timeouts.ProposeDeltaMs = 3000, 1000
	})
	var matching atomic.Bool
	for _, n := range c.nodes {
		k := n.key
		n.ptxs = func(st *chain.State, _ uint64, _ int64, _ [][]byte) [][]byte {
			if !matching.Load() {
				return nil
			}
			return m.matches(t, st, k, 256)
		}
		c.start(n)
	}
	reg := &chain.Tx{ChainID: "drv-test", Sender: m.provider.Public(), Nonce: 0, Fee: 1,
		ProviderRegister: &chain.ProviderRegister{Collateral: 5000}}
	if err := reg.Sign(m.provider); err != nil {
		t.Fatal(err)
	}
	raw, err := reg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	c.addTx(raw)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := c.nodes[0].d.State().Account(m.provider.Address()); err == nil {
			if acc, _ := c.nodes[0].d.State().Account(m.provider.Address()); acc.Nonce == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the provider's registration was not committed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	matching.Store(true)
	// Wait for two blocks with Matches.
	ctx := context.Background()
	from := c.nodes[0].store.Height() + 1
	var withMatches, matched int
	for h := from; withMatches < 2; h++ {
		c.waitHeight(h, 30*time.Second)
		rawB, err := c.nodes[0].store.RawBlock(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		b, err := chain.DecodeBlock(rawB)
		if err != nil {
			t.Fatal(err)
		}
		if len(rawB) > maxProposalValue {
			t.Fatalf("block %d is %d bytes, more than a proposal carries (%d)", h, len(rawB), maxProposalValue)
		}
		if len(b.Txs) > 0 {
			withMatches++
			matched += len(b.Txs)
			if len(b.Txs) >= 256 {
				t.Fatalf("block %d holds all %d matches", h, len(b.Txs))
			}
			t.Logf("block %d: %d matches, %d bytes", h, len(b.Txs), len(rawB))
		}
	}
	if got := c.net.maxMsg.Load(); got > MaxProposalBytes || got > 1<<20 {
		t.Fatalf("a consensus message of %d bytes was broadcast (bound %d, gossip publish limit %d)", got, MaxProposalBytes, 1<<20)
	}
	c.checkAgreement()

	// The byzantine proposer. Stop everyone; restart one victim alone.
	for _, n := range c.nodes {
		c.stop(n)
	}
	var victim, byz *testNode
	var tap *tapTransport
	var r int32
	for _, n := range c.nodes {
		tap = c.startTapped(n)
		if err := n.d.call(ctx, func() { r = n.d.cs.Round() + 1 }); err != nil {
			t.Fatal(err)
		}
		if p := n.d.app.vs.Proposer(r).Address; p != n.key.Address() {
			victim, byz = n, c.nodeOf(p)
			break
		}
		c.stop(n)
	}
	d := victim.d
	h := d.Height()
	var id consensus.BlockID
	var big []byte
	if err := d.call(ctx, func() {
		bt, err := d.app.blockTime(h, d.app.lastCommit)
		if err != nil {
			t.Error(err)
			return
		}
		b, _, err := chain.BuildBlock(d.app.st, chain.BlockTemplate{Height: h, Time: bt, PrevHash: d.store.LastHash(),
			Proposer: byz.key.Address(), LastCommit: d.app.lastCommit}, m.matches(t, d.app.st, byz.key, 120), chain.ExecOptions{SkipStateRootCheck: true})
		if err != nil {
			t.Error(err)
			return
		}
		id = consensus.BlockID(b.Hash())
		big, err = b.Encode()
		if err != nil {
			t.Error(err)
		}
	}); err != nil || big == nil {
		t.Fatalf("build the oversized block: %v", err)
	}
	if len(big) <= MaxProposalBytes || len(big) > 3<<20 {
		t.Fatalf("the byzantine block is %d bytes; the test wants one between %d and 3 MiB", len(big), MaxProposalBytes)
	}
	msg := forge(t, byz.key, h, r, id, big, -1)
	if _, verdict, err := d.ValidateGossip(msg); verdict != Reject {
		t.Fatalf("gossip validation of a %d-byte proposal: verdict %d (%v), want Reject", len(msg), verdict, err)
	}
	// The same proposal by a path that skips gossip validation: the block
	// is refused, the victim prevotes nil once two others move to round r.
	pm, err := consensus.DecodeMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	d.HandleGossip(pm)
	var voters int
	for _, n := range c.nodes {
		if n != victim && voters < 2 {
			deliver(t, d, forgeVote(t, n.key, consensus.Prevote, h, r, consensus.BlockID{}))
			voters++
		}
	}
	if got := tap.prevote(t, h, r); !got.IsNil() {
		t.Fatalf("the victim prevoted the %d-byte block %s", len(big), got)
	}
}

// TestValidatorRestartsAfter50RoundsAtOneHeight (issue 13, attack 3): a
// validator whose signer state holds 50 rounds of votes at height 1 (it
// timed out alone through rounds 0-49) opens its store again and follows
// the chain with the others; it used to fail in New (the signer state
// did not decode past 8 rounds).
func TestValidatorRestartsAfter50RoundsAtOneHeight(t *testing.T) {
	c := newCluster(t, 4)
	n := c.nodes[0]
	cfg := consensus.DefaultConfig()
	st, err := consensus.New(cfg, "drv-test", n.key, 1, c.genesisSet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var last *consensus.SignerState
	take := func(out []consensus.Output) {
		for _, o := range out {
			if p, ok := o.(consensus.Persist); ok {
				s := p.State
				last = &s
			}
		}
	}
	now := time.Now().UnixMilli()
	take(st.Start(now))
	for r := int32(0); r < 50; r++ {
		for _, step := range []consensus.RoundStep{consensus.StepPropose, consensus.StepPrevote, consensus.StepPrecommit} {
			take(st.Step(consensus.Input{Now: now, Event: consensus.Timeout{Height: 1, Round: r, Step: step}}))
		}
	}
	if last == nil || last.Round != 49 {
		t.Fatalf("signer state not at round 49: %+v", last)
	}
	raw, err := consensus.EncodeSignerState(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.store.SaveSignerState(context.Background(), raw, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		c.start(n) // fails the test if New fails
	}
	c.waitHeight(3, 20*time.Second)
	c.checkAgreement()
}
