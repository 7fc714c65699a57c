package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// decoderLimit is the element limit of the wire decoder that state records
// were once read with: a collection past it no longer decoded.
const decoderLimit = 65_536

// skipAtScaleUnderRace skips a single-goroutine test at the scale of the
// decoder limit under -race (minutes there); make test runs it without.
func skipAtScaleUnderRace(t *testing.T) {
	if raceBuild {
		t.Skip("at-scale state test: runs without -race (make test runs it so)")
	}
}

// seed writes records straight into n's state, as a long history of other
// accounts' transactions would have, so tests can start at scale.
func (n *testNet) seed(fn func(o *overlay, g *Globals)) {
	n.t.Helper()
	o := newOverlay(n.st)
	g := n.st.Globals()
	fn(o, &g)
	o.put(keyGlobals, g)
	n.st.mu.Lock()
	err := n.st.installLocked(o.changes(), nil, nil)
	n.st.mu.Unlock()
	if err != nil {
		n.t.Fatal(err)
	}
}

func seedAddress(i int) wallet.Address {
	var a wallet.Address
	h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("seed"), uint64(i)))
	copy(a[:], h[:])
	return a
}

// Attack: 65,537 accounts bond 1 unit each. With one stakes array, every
// block carrying the next Bond failed to build and the chain stalled.
func TestBondsFromMoreAccountsThanTheDecoderLimitDoNotStallTheChain(t *testing.T) {
	skipAtScaleUnderRace(t)
	g := testGenesis(6, 4)
	g.Params.MaxValidators = 4
	n := newTestNetFrom(t, g, 4)
	n.block()
	n.seed(func(o *overlay, g *Globals) {
		for i := 0; i < decoderLimit; i++ {
			putStake(o, Stake{}, Stake{Address: seedAddress(i), Amount: 1})
			g.Supply++
			g.Bonded++
		}
	})
	valsBefore, err := n.st.ValidatorsAt(n.st.Height() + 2)
	if err != nil {
		t.Fatal(err)
	}
	newVal := n.keys[5]
	_, res := n.block(n.tx(5, 1, func(tx *Tx) { tx.Bond = &Bond{Amount: 1} }))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("bond %d refused: %s", decoderLimit+1, res.TxResults[0].Log)
	}
	stakes, err := n.st.Stakes()
	if err != nil {
		t.Fatal(err)
	}
	if len(stakes) != decoderLimit+4+1 {
		t.Fatalf("%d stakes, want %d", len(stakes), decoderLimit+5)
	}
	vals, err := n.st.ValidatorsAt(n.st.Height() + 2)
	if err != nil {
		t.Fatal(err)
	}
	if ValidatorsHash(vals) != ValidatorsHash(valsBefore) {
		t.Fatal("a 1-unit bond changed the active set")
	}
	// A large bond still enters the set two heights later, past 65k others.
	_, res = n.block(n.tx(5, 1, func(tx *Tx) { tx.Bond = &Bond{Amount: 50_000} }))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("bond refused: %s", res.TxResults[0].Log)
	}
	vals, err = n.st.ValidatorsAt(res.Height + 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 4 || !strings.Contains(func() string {
		var s []string
		for _, v := range vals {
			s = append(s, v.Address.String())
		}
		return strings.Join(s, " ")
	}(), newVal.Address().String()) {
		t.Fatalf("active set %+v lacks the new validator", vals)
	}
}

// Attack: clients aim matches from many blocks at one deadline second.
// With one bucket per second, once it passed the decoder's limit every
// node failed beginBlock at that second, for good; each Match also
// re-encoded the whole bucket. Now a match is one index key, the chain
// keeps going and a block settles at most MaxTimeoutsPerBlock timeouts.
func TestMatchesAimedAtOneDeadlineSecondDoNotHaltTheChain(t *testing.T) {
	skipAtScaleUnderRace(t)
	n := newTestNet(t, 6, 4)
	const prov, client = 4, 5
	_, res := n.block(n.tx(prov, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 100_000} }))
	if res.TxResults[0].Code != 0 {
		t.Fatal(res.TxResults[0].Log)
	}
	offer := n.offer(prov, 1)
	bid := n.bid(client, 1, 1000, 10_000)
	n.block(n.matchTx(offer, bid))
	real, ok, err := n.st.Match(bid.ID())
	if err != nil || !ok {
		t.Fatalf("real match not committed: %v", err)
	}
	provAddr := n.keys[prov].Address()
	const seeded = decoderLimit + 1
	n.seed(func(o *overlay, g *Globals) {
		var p Provider
		if _, err := getRecord(o, addrKey(pfxProvider, provAddr), &p); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < seeded; i++ {
			b := market.Bid{Executor: market.ExecWASM, Nonce: uint64(i) + 1000, Resources: market.Resources{CPU: 1}, MaxPrice: 1, TimeoutMs: 1}
			b.Client = n.keys[client].Public()
			m := Match{Match: market.Match{Offer: *offer, Bid: b, Price: 1}, Height: 1, MatchedAt: real.MatchedAt,
				Deadline: real.Deadline - int64(i%1000), Status: MatchOpen, Escrow: 1}
			id := b.ID()
			o.put(pfxMatch+string(id[:]), m)
			o.put(pfxBid+string(id[:]), BidState{Matched: true})
			o.put(deadlineKey(m.Deadline, id), true)
			p.Reserved.CPU++
			p.Open++
			g.Escrow++
			g.Supply++
		}
		o.put(addrKey(pfxProvider, provAddr), p)
	})
	if err := CheckInvariants(n.st); err != nil {
		t.Fatalf("seeded state: %v", err)
	}
	// Blocks run up to and past the deadline; each settles at most
	// MaxTimeoutsPerBlock, earliest first, until all are settled.
	n.checkEvery = 1 << 62 // a full scan at this size costs more than the blocks: before and after
	timedOut := 0
	for blocks := 0; timedOut < seeded+1; blocks++ {
		if blocks > 200 {
			t.Fatalf("after %d blocks only %d of %d matches timed out", blocks, timedOut, seeded+1)
		}
		if n.time < real.Deadline {
			n.step = real.Deadline - n.time
		} else {
			n.step = 100
		}
		_, res := n.block()
		got := 0
		for _, e := range res.Events {
			if e.Type == EvTimedOut {
				got++
			}
		}
		if got > MaxTimeoutsPerBlock {
			t.Fatalf("block %d settled %d timeouts, bound %d", res.Height, got, MaxTimeoutsPerBlock)
		}
		if remaining := seeded + 1 - timedOut; n.time >= real.Deadline && got != min(remaining, MaxTimeoutsPerBlock) {
			t.Fatalf("block %d settled %d timeouts with %d due, want %d", res.Height, got, remaining, min(remaining, MaxTimeoutsPerBlock))
		}
		timedOut += got
	}
	if err := CheckInvariants(n.st); err != nil {
		t.Fatal(err)
	}
	m, _, _ := n.st.Match(bid.ID())
	if m.Status != MatchTimedOut {
		t.Fatalf("real match %s", m.Status)
	}
	if g := n.st.Globals(); g.Escrow != 0 {
		t.Fatalf("escrow %d left after every match settled", g.Escrow)
	}
}

// Attack: a validator unbonds everything, signs at the last height it is
// in the set and double-signs there. Its stake stays slashable until the
// evidence window for that height closes.
func TestUnbondedValidatorDoubleSigningAtItsLastHeightIsSlashed(t *testing.T) {
	n := newTestNet(t, 6, 4)
	n.block()
	const off = 3
	key := n.keys[off]
	_, res := n.block(n.tx(off, 1, func(tx *Tx) { tx.Unbond = &Unbond{Amount: 10_000} }))
	if res.TxResults[0].Code != 0 {
		t.Fatal(res.TxResults[0].Log)
	}
	unbondAt := res.Height
	last := unbondAt + 1 // the last height whose set holds it
	vals, err := n.st.ValidatorsAt(last)
	if err != nil {
		t.Fatal(err)
	}
	if !containsValidator(vals, key.Address()) {
		t.Fatalf("validator left before height %d", last)
	}
	ev := doubleVote(t, key, last)
	ub := n.gen.Params.UnbondingBlocks
	// Evidence for height last is accepted in blocks up to last+ub.
	for n.st.Height()+1 < last+ub {
		n.block()
	}
	burnedBefore := n.st.Globals().Burned
	_, res = n.block(n.tx(5, 1, func(tx *Tx) { tx.Evidence = &EvidenceTx{Data: ev} }))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("evidence at height %d for votes at %d refused: %s", res.Height, last, res.TxResults[0].Log)
	}
	want := uint64(10_000) * uint64(n.gen.Params.SlashBps) / 10_000
	if got := n.st.Globals().Burned - burnedBefore; got != want {
		t.Fatalf("burned %d, want %d", got, want)
	}
	// The rest comes back one block later, and evidence is too old then.
	balBefore := n.balance(off)
	_, res = n.block(n.tx(5, 1, func(tx *Tx) { tx.Evidence = &EvidenceTx{Data: doubleVote(t, key, last-1)} }))
	if got := n.balance(off) - balBefore; got != 10_000-want {
		t.Fatalf("returned %d after the window, want %d", got, 10_000-want)
	}
	if res.TxResults[0].Code == 0 || !strings.Contains(res.TxResults[0].Log, "older than") {
		t.Fatalf("evidence past the window: %+v", res.TxResults[0])
	}
}

// Stake that left the set before an infraction gave it no power then and
// is not slashed for it (Cosmos' rule for unbonding delegations).
func TestSlashSparesStakeUnbondedBeforeTheInfraction(t *testing.T) {
	n := newTestNet(t, 6, 4)
	n.block()
	const off = 3
	key := n.keys[off]
	_, res := n.block(n.tx(off, 1, func(tx *Tx) { tx.Unbond = &Unbond{Amount: 4_000} }))
	if res.TxResults[0].Code != 0 {
		t.Fatal(res.TxResults[0].Log)
	}
	n.block()
	n.block()
	infraction := n.st.Height() // unbonded at infraction-3: no power left at infraction
	burnedBefore := n.st.Globals().Burned
	_, res = n.block(n.tx(5, 1, func(tx *Tx) { tx.Evidence = &EvidenceTx{Data: doubleVote(t, key, infraction)} }))
	if res.TxResults[0].Code != 0 {
		t.Fatal(res.TxResults[0].Log)
	}
	want := uint64(6_000) * uint64(n.gen.Params.SlashBps) / 10_000
	if got := n.st.Globals().Burned - burnedBefore; got != want {
		t.Fatalf("burned %d, want %d (bonded stake only)", got, want)
	}
	if g := n.st.Globals(); g.Unbonding != 4_000 {
		t.Fatalf("unbonding %d, want 4000 untouched", g.Unbonding)
	}
}

func containsValidator(vals []Validator, a wallet.Address) bool {
	for _, v := range vals {
		if v.Address == a {
			return true
		}
	}
	return false
}

// doubleVote is encoded evidence of key precommitting two blocks at h.
func doubleVote(t *testing.T, key wallet.PrivateKey, h uint64) []byte {
	t.Helper()
	vote := func(id byte) consensus.Vote {
		v := consensus.Vote{Type: consensus.Precommit, Height: h, Round: 0, Timestamp: 1, Validator: key.Address()}
		v.BlockID[0] = id
		v.Signature = key.Sign(testChainID, consensus.MsgTypePrecommit, v.SignBytes())
		return v
	}
	ev := consensus.NewDuplicateVoteEvidence(vote(1), vote(2))
	data, err := consensus.EncodeEvidence(&ev)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
