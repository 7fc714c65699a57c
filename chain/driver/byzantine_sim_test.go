package driver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/wallet"
)

// Byzantine validators in the driver-level test network: real drivers,
// real blocks and execution, the in-memory transport. Each byzantine node
// runs an honest driver whose outgoing gossip passes through byzTransport,
// which, driven by a seeded random source, sends different proposals to
// different validators (the real one, the real id with other bytes, a
// block with another id, an oversized message), withholds proposals and
// votes, double-votes (a conflicting vote to some validators), votes for
// blocks nobody proposed, and replays old messages.
//
// Checked: no two honest nodes commit different blocks at a height and no
// honest node halts or breaks an invariant (agreement, validity); once the
// byzantine nodes stop, the honest ones commit new heights (liveness); and
// every double vote an honest node received both halves of is punished on
// chain by an Evidence transaction in a block (the offender is slashed).
//
// The byzantine choices are a function of the seed; goroutine scheduling
// and timers are not, so a replay repeats the attack, not every
// interleaving. Each run logs its seed; replay one with
// BOURSE_BYZ_SEED=N go test ./chain/driver -run 'TestSimByzantine...$'.
// Seeds: 2 per configuration (seed 1 and one drawn from the clock; seed 1
// only under -race), 20 with
// BOURSE_LONG=1, or BOURSE_BYZ_SEEDS=N.

func byzSeeds(t *testing.T) []uint64 {
	if s := os.Getenv("BOURSE_BYZ_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BOURSE_BYZ_SEED: %v", err)
		}
		return []uint64{n}
	}
	count := 2
	if raceBuild {
		count = 1
	}
	if os.Getenv("BOURSE_LONG") == "1" {
		count = 20
	}
	if s := os.Getenv("BOURSE_BYZ_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("BOURSE_BYZ_SEEDS: %v", err)
		}
		count = n
	}
	seeds := []uint64{1}
	base := uint64(time.Now().UnixNano())
	for i := 1; i < count; i++ {
		seeds = append(seeds, base+uint64(i))
	}
	return seeds
}

// TestSimByzantine1of4: one byzantine validator of four (a quarter of the stake).
func TestSimByzantine1of4(t *testing.T) { runByzSims(t, 4, 1) }

// TestSimByzantine2of7: two byzantine validators of seven (2/7 < 1/3).
func TestSimByzantine2of7(t *testing.T) { runByzSims(t, 7, 2) }

func runByzSims(t *testing.T, n, byz int) {
	for _, seed := range byzSeeds(t) {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d (replay: BOURSE_BYZ_SEED=%d go test ./chain/driver -run '%s$')", seed, seed, t.Name()[:len(t.Name())-len(fmt.Sprint("/seed=", seed))])
			runByzSim(t, n, byz, seed)
		})
		if !ok {
			t.Fatalf("seed %d failed; replay: BOURSE_BYZ_SEED=%d go test ./chain/driver -run '%s'", seed, seed, t.Name())
		}
	}
}

// dvKey names a double vote: its signer and height (slashing is per height).
type dvKey struct {
	val    wallet.Address
	height uint64
}

// byzLog is what the byzantine nodes did and what the honest ones reported.
type byzLog struct {
	mu        sync.Mutex
	delivered map[dvKey]string // double votes some honest node accepted both halves of
	reported  map[dvKey]bool   // evidence an honest node's core produced
	counts    map[string]int   // what the byzantine nodes did, for the log
}

func (l *byzLog) count(what string) {
	l.mu.Lock()
	l.counts[what]++
	l.mu.Unlock()
}

type byzTransport struct {
	memTransport
	key    wallet.PrivateKey
	log    *byzLog
	honest map[string]bool

	mu     sync.Mutex
	rng    *rand.Rand
	past   [][]byte // messages sent, for replays
	active bool
}

func (t *byzTransport) setActive(v bool) { t.mu.Lock(); t.active = v; t.mu.Unlock() }

// deliver hands data to d as its gossip validator would and reports whether
// d accepted it.
func deliverTo(d *Driver, data []byte) bool {
	m, v, _ := d.ValidateGossip(data)
	if v == Accept {
		d.HandleGossip(m)
	}
	return v == Accept
}

func (t *byzTransport) Broadcast(ctx context.Context, topic string, data []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.active {
		return t.memTransport.Broadcast(ctx, topic, data)
	}
	m, err := consensus.DecodeMessage(data)
	if err != nil {
		return err
	}
	peers := t.net.others(t.id)
	ids := make([]string, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	slices.Sort(ids) // the seed decides, not map order
	r := t.rng
	switch {
	case m.Proposal != nil:
		t.proposal(m.Proposal, ids, peers)
	case m.Vote != nil:
		t.vote(m.Vote, ids, peers)
	}
	if len(t.past) > 0 && r.IntN(5) == 0 {
		old := t.past[r.IntN(len(t.past))]
		deliverTo(peers[ids[r.IntN(len(ids))]], old)
		t.log.count("replay")
	}
	if len(t.past) < 256 {
		t.past = append(t.past, data)
	} else {
		t.past[r.IntN(len(t.past))] = data
	}
	return nil
}

func (t *byzTransport) signProposal(p consensus.Proposal, value []byte, id consensus.BlockID) []byte {
	p.Value, p.BlockID = value, id
	p.Signature = t.key.Sign("drv-test", consensus.MsgTypeProposal, p.SignBytes())
	raw, err := consensus.EncodeMessage(consensus.Message{Proposal: &p})
	if err != nil {
		panic(err)
	}
	return raw
}

func (t *byzTransport) signVote(v consensus.Vote, id consensus.BlockID) []byte {
	v.BlockID = id
	typ := consensus.MsgTypePrevote
	if v.Type == consensus.Precommit {
		typ = consensus.MsgTypePrecommit
	}
	v.Signature = t.key.Sign("drv-test", typ, v.SignBytes())
	raw, err := consensus.EncodeMessage(consensus.Message{Vote: &v})
	if err != nil {
		panic(err)
	}
	return raw
}

// proposal sends each validator its own version of p. Per proposal the
// seed picks a plan: poison one honest validator (it alone gets the real
// id with other bytes, the rest the real block: the real block is
// decided and must still execute at the victim), split (each validator a
// random version), oversized to all, withheld from all, or honest.
func (t *byzTransport) proposal(p *consensus.Proposal, ids []string, peers map[string]*Driver) {
	r := t.rng
	junk := func() []byte {
		b := make([]byte, 1+r.IntN(2000))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	version := func(k int) []byte {
		switch k {
		case 0:
			t.log.count("proposal: real")
			return t.signProposal(*p, p.Value, p.BlockID)
		case 1:
			t.log.count("proposal: real id, other bytes")
			return t.signProposal(*p, junk(), p.BlockID)
		case 2:
			b, err := chain.DecodeBlock(p.Value)
			if err != nil {
				return nil
			}
			b.Header.Time += 1 + int64(r.IntN(1000))
			raw, err := b.Encode()
			if err != nil {
				return nil
			}
			t.log.count("proposal: other block")
			return t.signProposal(*p, raw, consensus.BlockID(b.Hash()))
		case 3:
			t.log.count("proposal: oversized")
			return t.signProposal(*p, make([]byte, MaxProposalBytes+1), p.BlockID)
		}
		t.log.count("proposal: withheld")
		return nil
	}
	var honestIDs []string
	for _, id := range ids {
		if t.honest[id] {
			honestIDs = append(honestIDs, id)
		}
	}
	plan := r.IntN(20)
	victim := ""
	if len(honestIDs) > 0 {
		victim = honestIDs[r.IntN(len(honestIDs))]
	}
	for _, id := range ids {
		var k int
		switch {
		case plan < 8: // poison
			if id == victim {
				k = 1
			}
		case plan < 15: // split
			k = r.IntN(5)
		case plan < 17:
			k = 3
		case plan < 19:
			k = 4
		}
		if data := version(k); data != nil {
			deliverTo(peers[id], data)
		}
	}
}

// vote sends v, or withholds it, or replaces it by a vote for a block
// nobody proposed, or sends it with a conflicting vote to some validators.
func (t *byzTransport) vote(v *consensus.Vote, ids []string, peers map[string]*Driver) {
	r := t.rng
	randomID := func() consensus.BlockID {
		var id consensus.BlockID
		for i := range id {
			id[i] = byte(r.Uint32())
		}
		return id
	}
	real := t.signVote(*v, v.BlockID)
	switch k := r.IntN(10); {
	case k < 1:
		t.log.count("vote: withheld from all")
	case k < 2:
		unknown := t.signVote(*v, randomID())
		for _, id := range ids {
			deliverTo(peers[id], unknown)
		}
		t.log.count("vote: for an unknown block")
	case k < 5:
		other := consensus.BlockID{}
		if other == v.BlockID || r.IntN(2) == 0 {
			other = randomID()
		}
		second := t.signVote(*v, other)
		var hit bool
		for _, id := range ids {
			first := deliverTo(peers[id], real)
			if r.IntN(2) == 0 || (!hit && id == ids[len(ids)-1]) {
				if deliverTo(peers[id], second) && first && t.honest[id] {
					hit = true
				}
			}
		}
		t.log.count("vote: double")
		if hit {
			t.log.mu.Lock()
			t.log.delivered[dvKey{v.Validator, v.Height}] = fmt.Sprintf("%s %d/%d", v.Type, v.Height, v.Round)
			t.log.mu.Unlock()
		}
	default:
		for _, id := range ids {
			if r.IntN(6) == 0 {
				t.log.count("vote: withheld from one")
				continue
			}
			deliverTo(peers[id], real)
		}
	}
}

// evidenceSubmitter turns evidence into Evidence transactions, one per
// offender and height, each from its own funded account (a refused one
// then blocks no other), put in every honest mempool.
type evidenceSubmitter struct {
	mu      sync.Mutex
	c       *cluster
	honest  []*testNode
	keys    []wallet.PrivateKey
	next    int
	seen    map[dvKey]bool
	log     *byzLog
	errOnce sync.Once
}

func (s *evidenceSubmitter) submit(ev consensus.DuplicateVoteEvidence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := dvKey{ev.A.Validator, ev.A.Height}
	s.log.mu.Lock()
	s.log.reported[k] = true
	s.log.mu.Unlock()
	if s.seen[k] {
		return
	}
	s.seen[k] = true
	if s.next == len(s.keys) {
		s.errOnce.Do(func() { s.c.t.Errorf("out of evidence submitter accounts") })
		return
	}
	sender := s.keys[s.next]
	s.next++
	data, err := consensus.EncodeEvidence(&ev)
	if err != nil {
		s.c.t.Errorf("encode evidence: %v", err)
		return
	}
	tx := &chain.Tx{ChainID: "drv-test", Sender: sender.Public(), Nonce: 0, Fee: 1, Evidence: &chain.EvidenceTx{Data: data}}
	if err := tx.Sign(sender); err != nil {
		s.c.t.Errorf("sign evidence: %v", err)
		return
	}
	raw, err := tx.Encode()
	if err != nil {
		s.c.t.Errorf("encode evidence tx: %v", err)
		return
	}
	for _, n := range s.honest {
		if d := n.d; d != nil {
			_, _ = d.Mempool().Add(raw) // one honest mempool taking it is enough
		}
	}
}

const evidenceAccounts = 120

func runByzSim(t *testing.T, n, byz int, seed uint64) {
	var submitters []wallet.PrivateKey
	for i := range evidenceAccounts {
		submitters = append(submitters, key(t, byte(120+i)))
	}
	c := newClusterWith(t, n, func(g *chain.Genesis) {
		for _, k := range submitters {
			g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: k.Address(), Balance: 100})
		}
	})
	log := &byzLog{delivered: map[dvKey]string{}, reported: map[dvKey]bool{}, counts: map[string]int{}}
	honest, byzNodes := c.nodes[:n-byz], c.nodes[n-byz:]
	sub := &evidenceSubmitter{c: c, honest: honest, keys: submitters, seen: map[dvKey]bool{}, log: log}
	isHonest := map[string]bool{}
	for _, h := range honest {
		isHonest[h.id] = true
		h.onEv = sub.submit
	}
	var trs []*byzTransport
	for i, b := range byzNodes {
		tr := &byzTransport{memTransport: memTransport{net: c.net, id: b.id}, key: b.key, log: log, honest: isHonest,
			rng: rand.New(rand.NewPCG(seed, uint64(i))), active: true}
		b.tr = tr
		trs = append(trs, tr)
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}

	// Phase 1: the byzantine nodes attack for a while.
	minHonest := func() uint64 {
		m := ^uint64(0)
		for _, h := range honest {
			m = min(m, h.store.Height())
		}
		return m
	}
	deadline := time.Now().Add(15 * time.Second)
	for minHonest() < 15 && time.Now().Before(deadline) {
		checkHonest(t, honest)
		time.Sleep(20 * time.Millisecond)
	}
	reached := minHonest()

	// Phase 2: they stop; the honest nodes must go on.
	for _, tr := range trs {
		tr.setActive(false)
	}
	for _, b := range byzNodes {
		c.stop(b)
	}
	top := uint64(0)
	for _, h := range honest {
		top = max(top, h.store.Height())
	}
	waitHonest(t, honest, top+3, 30*time.Second)

	// Every double vote an honest node took both halves of lands on chain.
	log.mu.Lock()
	want := maps(log.delivered)
	log.mu.Unlock()
	deadline = time.Now().Add(30 * time.Second)
	for {
		punished := evidenceOnChain(t, honest[0])
		var missing []string
		for k, what := range want {
			if !punished[k] {
				missing = append(missing, fmt.Sprintf("%s by %s (reported %v)", what, k.val, log.reportedOf(k)))
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seed %d: %d double votes never punished on chain: %v", seed, len(missing), missing)
		}
		checkHonest(t, honest)
		time.Sleep(50 * time.Millisecond)
	}
	checkHonest(t, honest)
	for _, h := range honest {
		if err := chain.CheckInvariants(h.d.State()); err != nil {
			t.Fatalf("%s: %v", h.id, err)
		}
	}
	log.mu.Lock()
	t.Logf("seed %d: honest nodes at height %d under attack, then %d; %d double votes delivered, all slashed; actions %v",
		seed, reached, minHonest(), len(want), log.counts)
	log.mu.Unlock()
}

func maps(m map[dvKey]string) map[dvKey]string {
	out := make(map[dvKey]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (l *byzLog) reportedOf(k dvKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reported[k]
}

// checkHonest: no honest node halted, and all agree on every height they
// share.
func checkHonest(t *testing.T, honest []*testNode) {
	t.Helper()
	ctx := context.Background()
	for _, n := range honest {
		if err := n.d.Err(); err != nil {
			t.Fatalf("honest %s halted: %v", n.id, err)
		}
	}
	ref := honest[0]
	for _, n := range honest[1:] {
		upto := min(n.store.Height(), ref.store.Height())
		for h := uint64(1); h <= upto; h++ {
			a, err1 := ref.store.Block(ctx, h)
			b, err2 := n.store.Block(ctx, h)
			if err1 != nil || err2 != nil {
				t.Fatalf("block %d: %v %v", h, err1, err2)
			}
			if a.Hash() != b.Hash() {
				t.Fatalf("fork at height %d: %s and %s committed different blocks", h, ref.id, n.id)
			}
		}
	}
}

func waitHonest(t *testing.T, honest []*testNode, h uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok := true
		for _, n := range honest {
			ok = ok && n.store.Height() >= h
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, n := range honest {
				t.Logf("%s at height %d", n.id, n.store.Height())
			}
			t.Fatalf("honest nodes did not reach height %d within %s after the byzantine nodes stopped", h, within)
		}
		checkHonest(t, honest)
		time.Sleep(20 * time.Millisecond)
	}
}

// evidenceOnChain lists the (offender, height) pairs punished by Evidence
// transactions in n's committed blocks (a committed block holds only
// transactions that executed).
func evidenceOnChain(t *testing.T, n *testNode) map[dvKey]bool {
	t.Helper()
	out := map[dvKey]bool{}
	ctx := context.Background()
	for h := uint64(1); h <= n.store.Height(); h++ {
		b, err := n.store.Block(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range b.Txs {
			tx, err := chain.DecodeTx(raw)
			if err != nil || tx.Evidence == nil {
				continue
			}
			e, err := consensus.DecodeEvidence(tx.Evidence.Data)
			if err != nil {
				t.Fatalf("evidence in block %d does not decode: %v", h, err)
			}
			out[dvKey{e.A.Validator, e.A.Height}] = true
		}
	}
	return out
}
