package chain

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// The settlement tests run a net of four validators (0-3, equal stake),
// a provider (4), a client (5) and a bystander (6), with no fee so that a
// balance moves only by what settlement pays: a 10 s challenge window, a
// committee of 3 (quorum 2) with 5 s to attest. Every block checks the
// invariants (supply, escrow, deposits, held pay, the due index).
const (
	sProv, sClient, sOther = 4, 5, 6
	sWindow, sAttest       = 10_000, 5_000
)

func newSettleNet(t *testing.T) *testNet {
	t.Helper()
	g := testGenesis(7, 4)
	g.Params.MinFee = 0
	g.Params.ChallengeWindowMs = sWindow
	g.Params.AttestWindowMs = sAttest
	g.Params.CommitteeSize = 3
	n := newTestNetFrom(t, g, 4)
	_, res := n.block(n.tx(sProv, 0, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 100_000} }))
	mustBody(t, res, "")
	return n
}

var rightHash = sha256.Sum256([]byte("the right result"))

// heldJob matches a job of the client on the provider and commits its
// result with hash h and size: the payment is held.
func heldJob(t *testing.T, n *testNet, nonce uint64, executor string, h [32]byte, size uint64) *market.Bid {
	t.Helper()
	b := n.bid(sClient, nonce, 1000, 10_000)
	if executor != market.ExecWASM {
		b.Executor = executor
		if err := b.Sign(testChainID, n.keys[sClient]); err != nil {
			t.Fatal(err)
		}
	}
	o := n.offer(sProv, nonce)
	if executor != market.ExecWASM {
		o.Executors = []string{executor}
		if err := o.Sign(testChainID, n.keys[sProv]); err != nil {
			t.Fatal(err)
		}
	}
	_, res := n.block(n.matchTx(o, b))
	mustBody(t, res, "")
	_, res = n.block(n.tx(sProv, 0, func(tx *Tx) {
		tx.Result = &ResultTx{JobID: b.ID(), ResultHash: h, Usage: market.Usage{CPUMs: 1000, MemMiBMs: 1000}, Size: size}
	}))
	mustBody(t, res, "")
	if ev := res.TxResults[0].Events; len(ev) != 1 || ev[0].Type != EvHeld {
		t.Fatalf("result events %+v, want one %s", ev, EvHeld)
	}
	m := n.match(b.ID())
	if m.Status != MatchHeld || m.ReleaseAt != n.time+sWindow {
		t.Fatalf("after the result: %s releasing at %d, want held until %d", m.Status, m.ReleaseAt, n.time+sWindow)
	}
	return b
}

func (n *testNet) match(id market.BidID) Match {
	n.t.Helper()
	m, ok, err := n.st.Match(id)
	if err != nil || !ok {
		n.t.Fatalf("match %s: %v %v", id, ok, err)
	}
	return m
}

func (n *testNet) provider(i int) Provider {
	n.t.Helper()
	p, _, err := n.st.Provider(n.keys[i].Address())
	if err != nil {
		n.t.Fatal(err)
	}
	return p
}

func (n *testNet) keyIndex(a wallet.Address) int {
	n.t.Helper()
	for i, k := range n.keys {
		if k.Address() == a {
			return i
		}
	}
	n.t.Fatalf("no key for %s", a)
	return -1
}

func (n *testNet) committeeOf(id market.BidID) []int {
	n.t.Helper()
	m := n.match(id)
	c := m.Pending()
	if c == nil {
		n.t.Fatalf("match %s has no pending challenge", id)
	}
	var out []int
	for _, a := range c.Committee {
		out = append(out, n.keyIndex(a))
	}
	return out
}

func challengeTx(n *testNet, from int, id market.BidID, k ChallengeKind, maxDeposit uint64) []byte {
	return n.tx(from, 0, func(tx *Tx) { tx.Challenge = &ChallengeTx{JobID: id, Kind: k, MaxDeposit: maxDeposit} })
}

func attestTx(n *testNet, from int, id market.BidID, h [32]byte) []byte {
	return n.tx(from, 0, func(tx *Tx) { tx.Attest = &AttestTx{JobID: id, ResultHash: h} })
}

func ackTx(n *testNet, from int, id market.BidID) []byte {
	return n.tx(from, 0, func(tx *Tx) { tx.Ack = &AckTx{JobID: id} })
}

func hasEvent(evs []Event, typ string) bool {
	return slices.ContainsFunc(evs, func(e Event) bool { return e.Type == typ })
}

// The fast path: the client fetched and checked the result and acks it;
// the provider is paid in that block, the rest refunded.
func TestAckReleasesTheHeldPaymentAtOnce(t *testing.T) {
	n := newSettleNet(t)
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 1000)
	m := n.match(b.ID())
	provBefore, clientBefore := n.balance(sProv), n.balance(sClient)
	_, res := n.block(ackTx(n, sClient, b.ID()))
	mustBody(t, res, "")
	got := n.match(b.ID())
	if got.Status != MatchCompleted || got.Paid != m.HeldPay || got.Refunded != m.Escrow-m.HeldPay || got.Escrow != 0 {
		t.Fatalf("after ack: %+v", got)
	}
	if n.balance(sProv) != provBefore+m.HeldPay || n.balance(sClient) != clientBefore+m.Escrow-m.HeldPay {
		t.Fatalf("provider %d (+%d), client %d (+%d)", n.balance(sProv), n.balance(sProv)-provBefore, n.balance(sClient), n.balance(sClient)-clientBefore)
	}
	p := n.provider(sProv)
	if p.HeldJobs != 0 || p.HeldEarnings != 0 || p.Released != m.HeldPay || p.Completed != 1 {
		t.Fatalf("provider record %+v", p)
	}
	// Acking twice is refused.
	_, res = n.block(ackTx(n, sClient, b.ID()))
	mustBody(t, res, "not held")
}

// Without an ack or a challenge the payment is released when the window
// ends, by the block itself.
func TestHeldPaymentIsReleasedWhenTheWindowEnds(t *testing.T) {
	n := newSettleNet(t)
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 1000)
	m := n.match(b.ID())
	n.step = m.ReleaseAt - 1 - n.time
	n.block()
	if n.match(b.ID()).Status != MatchHeld {
		t.Fatal("released before the window ended")
	}
	provBefore := n.balance(sProv)
	n.step = 1
	_, res := n.block()
	if !hasEvent(res.Events, EvCompleted) || n.match(b.ID()).Status != MatchCompleted || n.balance(sProv) != provBefore+m.HeldPay {
		t.Fatalf("at the window's end: events %+v, match %s", res.Events, n.match(b.ID()).Status)
	}
}

// Attack: ack forgery. The provider (or anyone but the client) acks a
// held result to be paid without the client's check. Refused: only the
// bid's client may ack, and the payment stays held.
func TestAckForgeryByNonClientIsRefused(t *testing.T) {
	n := newSettleNet(t)
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 1000)
	for _, who := range []int{sProv, sOther, 0} {
		_, res := n.block(ackTx(n, who, b.ID()))
		mustBody(t, res, "is not the job's client")
	}
	if m := n.match(b.ID()); m.Status != MatchHeld || n.provider(sProv).Released != 0 {
		t.Fatalf("after forged acks: %s, released %d", m.Status, n.provider(sProv).Released)
	}
}

// Attack: withhold. The provider commits a hash and serves nothing. The
// client challenges availability; no committee member can fetch it, so
// none attests; at the deadline the provider loses max(20% of its
// collateral, held pay + committee fees), and the client gets its escrow
// and its deposit back. On the old code the provider was paid at its
// Result.
func TestWithholdingProviderIsSlashedAndClientRefunded(t *testing.T) {
	n := newSettleNet(t)
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 3<<20) // 3 MiB: deposit 100 + 3·10
	m := n.match(b.ID())
	clientBefore, collBefore := n.balance(sClient), n.provider(sProv).Collateral
	_, res := n.block(challengeTx(n, sClient, b.ID(), ChallengeUnavailable, 1000))
	mustBody(t, res, "")
	mc := n.match(b.ID())
	c := mc.Pending()
	if c.Deposit != 130 || len(c.Committee) != 3 || n.balance(sClient) != clientBefore-130 || n.st.Globals().Deposits != 130 {
		t.Fatalf("challenge %+v, client paid %d", c, clientBefore-n.balance(sClient))
	}
	for _, i := range n.committeeOf(b.ID()) {
		if i == sProv || i == sClient {
			t.Fatal("a party sits on its own committee")
		}
	}
	// The window would have ended here; the challenge holds the payment.
	n.step = c.Deadline - 1 - n.time
	n.block()
	if n.match(b.ID()).Status != MatchChallenged {
		t.Fatalf("challenge ended early: %s", n.match(b.ID()).Status)
	}
	n.step = 1
	_, res = n.block()
	got := n.match(b.ID())
	wantCut := min(collBefore, max(collBefore*2000/10000, m.HeldPay+3*c.Fee))
	if got.Status != MatchWithheld || got.Slashed != wantCut || got.Refunded != m.Escrow || !hasEvent(res.Events, EvWithheld) {
		t.Fatalf("at the deadline: %+v, events %+v", got, res.Events)
	}
	if n.balance(sClient) != clientBefore+m.Escrow {
		t.Fatalf("client has %d, want %d (escrow and deposit back)", n.balance(sClient), clientBefore+m.Escrow)
	}
	p := n.provider(sProv)
	if p.Collateral != collBefore-wantCut || p.ChallengesLost != 1 || p.SlashedTotal != wantCut || p.HeldJobs != 0 || p.Released != 0 {
		t.Fatalf("provider %+v", p)
	}
}

// Attack: false challenge (availability). The client got the result but
// challenges to delay or dodge payment. The committee fetches it and
// attests; at quorum the client's deposit pays the attesters (the rest
// the provider), and the payment is held for a new window, then paid.
func TestFalseAvailabilityChallengeLosesTheDeposit(t *testing.T) {
	n := newSettleNet(t)
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 0)
	m := n.match(b.ID())
	clientBefore := n.balance(sClient)
	n.block(challengeTx(n, sClient, b.ID(), ChallengeUnavailable, 1000))
	com := n.committeeOf(b.ID())
	mc := n.match(b.ID())
	c := *mc.Pending()
	before := []uint64{n.balance(com[0]), n.balance(com[1]), n.balance(com[2]), n.balance(sProv)}
	_, res := n.block(attestTx(n, com[0], b.ID(), rightHash))
	mustBody(t, res, "")
	_, res = n.block(attestTx(n, com[1], b.ID(), rightHash))
	mustBody(t, res, "")
	if !hasEvent(res.TxResults[0].Events, EvChallengeFailed) {
		t.Fatalf("quorum events %+v", res.TxResults[0].Events)
	}
	got := n.match(b.ID())
	if got.Status != MatchHeld || got.ReleaseAt != n.time+sWindow || got.Challenges[0].Outcome != ChallengeProviderWon {
		t.Fatalf("after quorum: %+v", got)
	}
	if n.balance(com[0]) != before[0]+c.Fee || n.balance(com[1]) != before[1]+c.Fee || n.balance(com[2]) != before[2] ||
		n.balance(sProv) != before[3]+c.Deposit-2*c.Fee {
		t.Fatalf("deposit %d, fee %d: members %d %d %d, provider +%d", c.Deposit, c.Fee, n.balance(com[0])-before[0],
			n.balance(com[1])-before[1], n.balance(com[2])-before[2], n.balance(sProv)-before[3])
	}
	// The late member's attest is refused; a second availability
	// challenge is refused.
	_, res = n.block(attestTx(n, com[2], b.ID(), rightHash), challengeTx(n, sClient, b.ID(), ChallengeUnavailable, 1000))
	mustBody(t, res, "no challenge is open")
	if !strings.Contains(res.TxResults[1].Log, "already challenged") {
		t.Fatalf("second challenge: %q", res.TxResults[1].Log)
	}
	n.step = sWindow
	n.block()
	if got := n.match(b.ID()); got.Status != MatchCompleted || n.balance(sClient) != clientBefore-c.Deposit+m.Escrow-m.HeldPay {
		t.Fatalf("end: %s, client %d", got.Status, n.balance(sClient))
	}
	if p := n.provider(sProv); p.ChallengesWon != 1 || p.Released != m.HeldPay {
		t.Fatalf("provider %+v", p)
	}
}

// Attack: wrong hash. The provider of a WASM job commits a hash it did
// not compute. The client challenges; the referees re-execute and vote
// the right hash; at quorum the provider is slashed, the referees who
// voted it are paid their fee (the job's quote) from the cut, the rest is
// burned, and the client gets escrow and deposit back.
func TestWrongWasmHashIsSlashedByReferees(t *testing.T) {
	n := newSettleNet(t)
	lie := sha256.Sum256([]byte("made up"))
	b := heldJob(t, n, 1, market.ExecWASM, lie, 100)
	m := n.match(b.ID())
	clientBefore, collBefore, burnedBefore := n.balance(sClient), n.provider(sProv).Collateral, n.st.Globals().Burned
	_, res := n.block(challengeTx(n, sClient, b.ID(), ChallengeWrong, 1_000_000))
	mustBody(t, res, "")
	mc := n.match(b.ID())
	c := *mc.Pending()
	if c.Fee != m.Match.Price || c.Deposit != 3*m.Match.Price || c.Deadline != n.time+sAttest+b.TimeoutMs {
		t.Fatalf("wrong-result challenge %+v (price %d)", c, m.Match.Price)
	}
	com := n.committeeOf(b.ID())
	r0, r1 := n.balance(com[0]), n.balance(com[1])
	n.block(attestTx(n, com[0], b.ID(), rightHash))
	_, res = n.block(attestTx(n, com[1], b.ID(), rightHash))
	mustBody(t, res, "")
	got := n.match(b.ID())
	cut := min(collBefore, max(collBefore*2000/10000, m.HeldPay+3*c.Fee))
	if got.Status != MatchWrong || got.Slashed != cut || got.Burned != cut-2*c.Fee || got.Challenges[0].Hash != rightHash {
		t.Fatalf("after the referees: %+v", got)
	}
	if n.balance(com[0]) != r0+c.Fee || n.balance(com[1]) != r1+c.Fee {
		t.Fatal("referees not paid their fee")
	}
	if n.balance(sClient) != clientBefore+m.Escrow || n.st.Globals().Burned != burnedBefore+cut-2*c.Fee {
		t.Fatalf("client %d want %d; burned %d", n.balance(sClient), clientBefore+m.Escrow, n.st.Globals().Burned-burnedBefore)
	}
}

// Attack: false challenge (wrong result). The client challenges a right
// WASM result; the referees vote the provider's hash: the client's
// deposit pays them, and the payment is released at once.
func TestFalseWrongResultChallengeLosesTheDeposit(t *testing.T) {
	n := newSettleNet(t)
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 100)
	m := n.match(b.ID())
	clientBefore, provBefore := n.balance(sClient), n.balance(sProv)
	n.block(challengeTx(n, sClient, b.ID(), ChallengeWrong, 1_000_000))
	mc := n.match(b.ID())
	c := *mc.Pending()
	com := n.committeeOf(b.ID())
	n.block(attestTx(n, com[2], b.ID(), rightHash))
	_, res := n.block(attestTx(n, com[0], b.ID(), rightHash))
	mustBody(t, res, "")
	if got := n.match(b.ID()); got.Status != MatchCompleted || got.Paid != m.HeldPay {
		t.Fatalf("after the referees: %+v", got)
	}
	if n.balance(sClient) != clientBefore-c.Deposit+m.Escrow-m.HeldPay || n.balance(sProv) != provBefore+m.HeldPay+c.Deposit-2*c.Fee {
		t.Fatalf("client %d, provider +%d", n.balance(sClient), n.balance(sProv)-provBefore)
	}
}

// Attack: lazy referee. A referee does not re-execute and votes the
// provider's (wrong) hash, hoping to be on the majority for free. The
// other two re-execute: their hash decides, the lazy referee loses
// RefereeSlashBps (1%) of its stake and earns nothing. A referee that
// does not vote at all earns nothing either.
func TestLazyRefereeVotingTheLiarsHashIsSlashed(t *testing.T) {
	n := newSettleNet(t)
	lie := sha256.Sum256([]byte("made up"))
	b := heldJob(t, n, 1, market.ExecWASM, lie, 100)
	n.block(challengeTx(n, sClient, b.ID(), ChallengeWrong, 1_000_000))
	com := n.committeeOf(b.ID())
	lazy := n.keys[com[0]].Address()
	stakeBefore, _, _ := getStake(n.st, lazy)
	lazyBal := n.balance(com[0])
	_, res := n.block(attestTx(n, com[0], b.ID(), lie))
	mustBody(t, res, "")
	n.block(attestTx(n, com[1], b.ID(), rightHash))
	_, res = n.block(attestTx(n, com[2], b.ID(), rightHash))
	if !hasEvent(res.TxResults[0].Events, EvRefereeSlashed) || n.match(b.ID()).Status != MatchWrong {
		t.Fatalf("events %+v, match %s", res.TxResults[0].Events, n.match(b.ID()).Status)
	}
	st, _, _ := getStake(n.st, lazy)
	if st.Amount != stakeBefore.Amount-stakeBefore.Amount/100 || n.balance(com[0]) != lazyBal {
		t.Fatalf("lazy referee stake %d (was %d), balance +%d", st.Amount, stakeBefore.Amount, n.balance(com[0])-lazyBal)
	}
}

// Attack: challenge spam. Challenges cost a deposit and are the
// client's alone, one of each kind per job, within the window; non-WASM
// results cannot be sent to referees; committee members answer once,
// only their own committee, only the committed hash for availability.
func TestChallengeSpamIsRefused(t *testing.T) {
	n := newSettleNet(t)
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 100)
	d := heldJob(t, n, 2, market.ExecDocker, rightHash, 100)
	cases := []struct {
		name string
		tx   []byte
		want string
	}{
		{"a stranger challenges", challengeTx(n, sOther, b.ID(), ChallengeUnavailable, 1000), "is not the job's client"},
		{"the provider challenges", challengeTx(n, sProv, b.ID(), ChallengeUnavailable, 1000), "is not the job's client"},
		{"deposit above the offer", challengeTx(n, sClient, b.ID(), ChallengeUnavailable, 99), "the deposit is 110, above the 99 offered"},
		{"referees for docker", challengeTx(n, sClient, d.ID(), ChallengeWrong, 1_000_000), "not deterministic"},
		{"unknown job", challengeTx(n, sClient, market.BidID{1}, ChallengeUnavailable, 1000), "no such match"},
	}
	for _, c := range cases {
		_, res := n.block(c.tx)
		if res.TxResults[0].Code != 1 || !strings.Contains(res.TxResults[0].Log, c.want) {
			t.Fatalf("%s: %+v, want a refusal saying %q", c.name, res.TxResults[0], c.want)
		}
	}
	_, res := n.block(challengeTx(n, sClient, b.ID(), ChallengeUnavailable, 1000))
	mustBody(t, res, "")
	n.step = 1 // well within the committee's deadline
	com := n.committeeOf(b.ID())
	outsider := -1
	for i := range 4 {
		if !slices.Contains(com, i) {
			outsider = i
		}
	}
	for _, c := range []struct {
		name string
		tx   []byte
		want string
	}{
		{"challenged again", challengeTx(n, sClient, b.ID(), ChallengeWrong, 1_000_000), "not held"},
		{"an outsider attests", attestTx(n, outsider, b.ID(), rightHash), "not on the challenge's committee"},
		{"the provider attests", attestTx(n, sProv, b.ID(), rightHash), "not on the challenge's committee"},
		{"another hash", attestTx(n, com[0], b.ID(), [32]byte{9}), "is not the committed result"},
	} {
		_, res := n.block(c.tx)
		if res.TxResults[0].Code != 1 || !strings.Contains(res.TxResults[0].Log, c.want) {
			t.Fatalf("%s: %+v, want a refusal saying %q", c.name, res.TxResults[0], c.want)
		}
	}
	n.block(attestTx(n, com[0], b.ID(), rightHash))
	_, res = n.block(attestTx(n, com[0], b.ID(), rightHash))
	mustBody(t, res, "already attested")
	// Past the window: no challenge.
	n.step = 1000
	e := heldJob(t, n, 3, market.ExecWASM, rightHash, 100)
	n.step = sWindow - 1
	n.block()
	n.step = 1
	_, res = n.block(challengeTx(n, sClient, e.ID(), ChallengeUnavailable, 1000))
	mustBody(t, res, "not held") // released by this very block first
}

// Attack: flooding the committee. A client opens many challenges that
// expire at the same moment (and many results due for release at once),
// hoping to make one block settle them all. Each block settles at most
// MaxTimeoutsPerBlock due matches, earliest first; the rest settle in
// the following blocks, every unit accounted for (the invariants run
// after every block).
func TestChallengeFloodSettlesAtMostTheBoundPerBlock(t *testing.T) {
	old := MaxTimeoutsPerBlock
	MaxTimeoutsPerBlock = 2
	t.Cleanup(func() { MaxTimeoutsPerBlock = old })
	n := newSettleNet(t)
	o := n.offer(sProv, 1)
	var bids []*market.Bid
	var txs [][]byte
	for i := range 5 {
		b := n.bid(sClient, uint64(i+1), 100, 10_000)
		bids = append(bids, b)
		txs = append(txs, n.matchTx(o, b))
	}
	n.block(txs...)
	txs = nil
	for _, b := range bids {
		txs = append(txs, n.tx(sProv, 0, func(tx *Tx) { tx.Result = &ResultTx{JobID: b.ID(), ResultHash: rightHash} }))
	}
	n.block(txs...)
	txs = nil
	for _, b := range bids {
		txs = append(txs, challengeTx(n, sClient, b.ID(), ChallengeUnavailable, 1000))
	}
	n.block(txs...)
	n.step = sAttest
	settled := 0
	for blocks := 0; settled < len(bids); blocks++ {
		_, res := n.block()
		got := 0
		for _, e := range res.Events {
			if e.Type == EvWithheld {
				got++
			}
		}
		if got > MaxTimeoutsPerBlock {
			t.Fatalf("block settled %d challenges, bound %d", got, MaxTimeoutsPerBlock)
		}
		settled += got
		n.step = 1
		if blocks > 5 {
			t.Fatalf("only %d of %d settled", settled, len(bids))
		}
	}
}

// The committee is drawn from the validator set by stake, never a party,
// the same for the same job and height on every node; with no eligible
// validator the challenge is refused rather than judged by no one.
func TestCommitteeExcludesThePartiesAndIsDeterministic(t *testing.T) {
	n := newSettleNet(t)
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 100)
	x := &execCtx{o: newOverlay(n.st), p: n.st.Params(), height: n.st.Height()}
	a, err := x.committee(b.ID(), ChallengeWrong, 4, n.keys[0].Address(), n.keys[1].Address())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := x.committee(b.ID(), ChallengeWrong, 4, n.keys[0].Address(), n.keys[1].Address())
	if len(a) != 2 || !slices.Equal(a, again) || slices.Contains(a, n.keys[0].Address()) || slices.Contains(a, n.keys[1].Address()) {
		t.Fatalf("committee %v, again %v", a, again)
	}
	none, _ := x.committee(b.ID(), ChallengeWrong, 4, n.keys[0].Address(), n.keys[1].Address(), n.keys[2].Address(), n.keys[3].Address())
	if len(none) != 0 {
		t.Fatalf("committee of %d from no eligible validator", len(none))
	}
	// Stake-weighted: a validator with almost all the stake is drawn
	// first for (nearly) every job.
	x.o.put(heightKey(pfxValset, x.height), []Validator{{Address: n.keys[0].Address(), Power: 1}, {Address: n.keys[1].Address(), Power: 1 << 40}})
	first := 0
	for i := range 50 {
		c, _ := x.committee(market.BidID{byte(i)}, ChallengeWrong, 1)
		if c[0] == n.keys[1].Address() {
			first++
		}
	}
	if first != 50 {
		t.Fatalf("the heavy validator drawn first %d of 50 times", first)
	}
}

// The availability deposit grows with the declared result size, so a
// large result cannot make a committee download it for the base price.
func TestAvailabilityDepositGrowsWithResultSize(t *testing.T) {
	p := DefaultParams()
	for _, c := range []struct {
		size, want uint64
	}{{0, 100}, {1, 110}, {1 << 20, 110}, {1<<20 + 1, 120}, {1 << 30, 100 + 1024*10}} {
		m := &Match{ResultSize: c.size}
		if got := ChallengeDeposit(p, m, ChallengeUnavailable, 3); got != c.want {
			t.Fatalf("size %d: deposit %d, want %d", c.size, got, c.want)
		}
	}
}

// Each settlement parameter is accepted at its bounds and refused one
// past them, naming the field; a genesis that omits them gets defaults.
func TestSettlementParamsAtTheirBounds(t *testing.T) {
	for _, c := range []struct {
		field  string
		ok, no func(*Params)
	}{
		{"params.challenge_window_ms", func(p *Params) { p.ChallengeWindowMs = MinChallengeWindowMs }, func(p *Params) { p.ChallengeWindowMs = MinChallengeWindowMs - 1 }},
		{"params.challenge_window_ms", func(p *Params) { p.ChallengeWindowMs = MaxChallengeWindowMs }, func(p *Params) { p.ChallengeWindowMs = MaxChallengeWindowMs + 1 }},
		{"params.committee_size", func(p *Params) { p.CommitteeSize = 1 }, func(p *Params) { p.CommitteeSize = 0 }},
		{"params.committee_size", func(p *Params) { p.CommitteeSize = MaxCommitteeSize }, func(p *Params) { p.CommitteeSize = MaxCommitteeSize + 1 }},
		{"params.attest_window_ms", func(p *Params) { p.AttestWindowMs = MaxResultGraceMs }, func(p *Params) { p.AttestWindowMs = MaxResultGraceMs + 1 }},
		{"params.avail_deposit_base", func(p *Params) { p.AvailDepositBase = 1 }, func(p *Params) { p.AvailDepositBase = 0 }},
		{"params.challenge_slash_bps", func(p *Params) { p.ChallengeSlashBps = 10000 }, func(p *Params) { p.ChallengeSlashBps = 10001 }},
		{"params.referee_slash_bps", func(p *Params) { p.RefereeSlashBps = 10000 }, func(p *Params) { p.RefereeSlashBps = 10001 }},
	} {
		g := testGenesis(2, 1)
		c.ok(&g.Params)
		if err := g.Validate(); err != nil {
			t.Fatalf("%s at its bound: %v", c.field, err)
		}
		c.no(&g.Params)
		var ge *GenesisError
		if err := g.Validate(); !errors.As(err, &ge) || ge.Field != c.field {
			t.Fatalf("%s past its bound: %v", c.field, err)
		}
	}
	raw := []byte(`{"chain_id":"x","genesis_time":1,"accounts":[],"validators":[],"timeouts":{"propose_ms":1,"prevote_ms":1,"precommit_ms":1},"params":{"unbonding_blocks":1,"min_provider_collateral":1,"max_block_bytes":1024,"max_block_txs":1,"max_validators":1}}`)
	var g Genesis
	g.Params.PresetOmitted()
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if p := g.Params; p.ChallengeWindowMs != DefaultChallengeWindowMs || p.CommitteeSize != DefaultCommitteeSize || p.ChallengeSlashBps != DefaultChallengeSlashBps || p.RefereeSlashBps != DefaultRefereeSlashBps {
		t.Fatalf("omitted settlement params: %+v", p)
	}
}

// BenchmarkAckPerJob is what settlement adds to a job on chain: one Ack
// transaction (its bytes reported as ack-bytes) verified and executed in
// a block, on top of the Result's few more bytes (ResultTx.Size) and the
// Match record's held fields.
func BenchmarkAckPerJob(b *testing.B) {
	n := newTestNetFrom(b, func() *Genesis {
		g := testGenesis(7, 4)
		g.Params.ChallengeWindowMs = MaxChallengeWindowMs
		return g
	}(), 4)
	n.block(n.tx(sProv, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 100_000} }))
	var ids []market.BidID
	const batch = 200
	o := n.offer(sProv, 1)
	for i := range batch {
		bid := n.bid(sClient, uint64(i+1), 1, 10_000)
		bid.MaxPrice = 1000
		if err := bid.Sign(testChainID, n.keys[sClient]); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, bid.ID())
		n.block(n.matchTx(o, bid))
	}
	var rs [][]byte
	for _, id := range ids {
		rs = append(rs, n.tx(sProv, 1, func(tx *Tx) { tx.Result = &ResultTx{JobID: id, ResultHash: rightHash, Size: 1 << 20} }))
	}
	n.block(rs...)
	var acks [][]byte
	for _, id := range ids {
		acks = append(acks, n.tx(sClient, 1, func(tx *Tx) { tx.Ack = &AckTx{JobID: id} }))
	}
	blk := &Block{Header: Header{ChainID: testChainID, Height: n.st.Height() + 1, Time: n.time + 1000}, Txs: acks}
	tmpl := BlockTemplate{Height: blk.Header.Height, Time: blk.Header.Time, PrevHash: n.prevHash, Proposer: n.proposer().Address()}
	built, _, err := BuildBlock(n.st, tmpl, acks, ExecOptions{})
	if err != nil || len(built.Txs) != batch {
		b.Fatalf("build: %v, %d txs", err, len(built.Txs))
	}
	b.ResetTimer()
	for range b.N {
		if _, err := Execute(n.st, built, ExecOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/ack")
	b.ReportMetric(float64(len(acks[0])), "ack-bytes")
}
