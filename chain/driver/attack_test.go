package driver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
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
		b, _, err := chain.BuildBlock(d.st, chain.BlockTemplate{Height: 1, Time: d.genesis.GenesisTime + 1,
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
