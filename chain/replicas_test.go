package chain

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/market"
)

// The replica tests run a net of four validators (0-3), four providers
// (4-7, 100,000 collateral each), a client (8) and a bystander (9), with
// no fee: a 10 s challenge window, a committee of 3 (quorum 2) with 5 s
// to attest. Every block checks the invariants, and checkGroupMoney
// checks the client's balance and the burn to the unit.
const rClient = 8

var (
	rProvs    = []int{4, 5, 6, 7}
	wrongHash = sha256.Sum256([]byte("a wrong result"))
	otherHash = sha256.Sum256([]byte("another wrong result"))
)

func newReplicaNet(t testing.TB) *testNet {
	t.Helper()
	g := testGenesis(10, 4)
	g.Params.MinFee = 0
	g.Params.ChallengeWindowMs = sWindow
	g.Params.AttestWindowMs = sAttest
	g.Params.CommitteeSize = 3
	n := newTestNetFrom(t, g, 4)
	var txs [][]byte
	for _, p := range rProvs {
		txs = append(txs, n.tx(p, 0, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 100_000} }))
	}
	_, res := n.block(txs...)
	for _, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatalf("register: %s", tr.Log)
		}
	}
	return n
}

// replicaBids are the k bids of one job of the client: the same bid but
// for Replica, each signed.
func replicaBids(t testing.TB, n *testNet, nonce uint64, k uint32, executor string, matchByMs int64) []*market.Bid {
	t.Helper()
	var out []*market.Bid
	for i := range k {
		b := n.bid(rClient, nonce, 1000, 10_000)
		b.Replicas, b.Replica = k, i
		if matchByMs > 0 {
			b.MatchBy = n.time + matchByMs
		}
		if executor != market.ExecWASM {
			b.Executor, b.AcceptMajority = executor, true
		}
		if err := b.Sign(testChainID, n.keys[rClient]); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if g := out[0].GroupID(); g != out[0].ID() || k > 1 && out[1].GroupID() != g {
		t.Fatalf("group ids: replica 0 %s, replica 1 %s", out[0].ID(), out[1].GroupID())
	}
	return out
}

func (n *testNet) execOffer(p int, seq uint64, executor string) *market.Offer {
	o := n.offer(p, seq)
	if executor != market.ExecWASM {
		o.Executors = []string{executor}
		if err := o.Sign(testChainID, n.keys[p]); err != nil {
			n.t.Fatal(err)
		}
	}
	return o
}

// matchReplicas matches bid i on provider provs[i], all in one block.
func matchReplicas(t testing.TB, n *testNet, bids []*market.Bid, provs []int, executor string) {
	t.Helper()
	var txs [][]byte
	for i, b := range bids[:len(provs)] {
		txs = append(txs, n.matchTx(n.execOffer(provs[i], 1, executor), b))
	}
	_, res := n.block(txs...)
	if len(res.TxResults) != len(txs) {
		t.Fatalf("%d of %d replica matches committed", len(res.TxResults), len(txs))
	}
}

func resultTx(n *testNet, p int, id market.BidID, h [32]byte) []byte {
	return n.tx(p, 0, func(tx *Tx) {
		tx.Result = &ResultTx{JobID: id, ResultHash: h, Usage: market.Usage{CPUMs: 1000, MemMiBMs: 1000}, Size: 100}
	})
}

func eventsOf(res *Result, typ string) []Event {
	var out []Event
	add := func(evs []Event) {
		for _, e := range evs {
			if e.Type == typ {
				out = append(out, e)
			}
		}
	}
	for _, tr := range res.TxResults {
		add(tr.Events)
	}
	add(res.Events)
	return out
}

func (n *testNet) group(id market.BidID) Group {
	n.t.Helper()
	g, ok, err := n.st.Group(id)
	if err != nil || !ok {
		n.t.Fatalf("group %s: %v %v", id, ok, err)
	}
	return g
}

// decideByReferees has the referees of group bids[0] vote h (two of
// three: a quorum) and returns the committee's key indexes.
func decideByReferees(t *testing.T, n *testNet, bids []*market.Bid, h [32]byte) []int {
	t.Helper()
	g := n.group(bids[0].ID())
	if g.Outcome != GroupReferees {
		t.Fatalf("group %s, want referees", g.Outcome)
	}
	com := n.committeeOf(g.Referee)
	for _, i := range com {
		if i >= 4 {
			t.Fatalf("committee %v holds a party (the client or a group provider)", com)
		}
	}
	_, res := n.block(n.tx(com[0], 0, func(tx *Tx) { tx.Attest = &AttestTx{JobID: g.Referee, ResultHash: h} }),
		n.tx(com[1], 0, func(tx *Tx) { tx.Attest = &AttestTx{JobID: g.Referee, ResultHash: h} }))
	for _, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatalf("attest: %s", tr.Log)
		}
	}
	return com
}

// A WASM job of three replicas with one liar: the disagreement goes to
// referees, who re-execute; their hash decides: the two that agree with it
// are held for a fresh window and paid on the client's ack; the liar is
// slashed max(20% of its collateral, its held pay plus the referees'
// fees), the referees who voted the deciding hash are paid from the cut,
// and the client gets the liar's escrow back, to the unit.
func TestReplicaAttackOneLiarOfThreeIsSlashedByTheReferees(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 3, market.ExecWASM, 0)
	before, burned0 := n.balance(rClient), n.st.Globals().Burned
	matchReplicas(t, n, bids, rProvs[:3], market.ExecWASM)
	if got := n.balance(rClient); got != before-3*bids[0].MaxPrice {
		t.Fatalf("client after three matches: %d, want %d", got, before-3*bids[0].MaxPrice)
	}
	// The first two results are held, awaiting the third.
	_, res := n.block(resultTx(n, rProvs[0], bids[0].ID(), rightHash), resultTx(n, rProvs[2], bids[2].ID(), wrongHash))
	for _, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatalf("result: %s", tr.Log)
		}
	}
	if m := n.match(bids[0].ID()); !m.Awaiting || m.Status != MatchHeld {
		t.Fatalf("replica 0 is %s awaiting=%v, want held and awaiting", m.Status, m.Awaiting)
	}
	if g := n.group(bids[0].ID()); g.Outcome != GroupPending || len(g.Members) != 3 {
		t.Fatalf("group %+v, want pending with 3 members", g)
	}
	_, res = n.block(resultTx(n, rProvs[1], bids[1].ID(), rightHash))
	mustBody(t, res, "")
	com := decideByReferees(t, n, bids, rightHash)
	g := n.group(bids[0].ID())
	if g.Outcome != GroupRefereed || g.Hash != rightHash {
		t.Fatalf("group %s hash %x, want refereed on the right hash", g.Outcome, g.Hash[:4])
	}
	liar := n.match(bids[2].ID())
	fee := max(liar.Match.Price, 1)
	wantCut := max(uint64(100_000)*2000/10_000, liar.HeldPay+3*fee)
	if liar.Status != MatchWrong || liar.Slashed != wantCut || liar.Refunded != bids[2].MaxPrice {
		t.Fatalf("liar: %s slashed %d refunded %d, want wrong_result slashed %d refunded %d", liar.Status, liar.Slashed, liar.Refunded, wantCut, bids[2].MaxPrice)
	}
	if p := n.provider(rProvs[2]); p.Collateral != 100_000-wantCut || p.HeldJobs != 0 {
		t.Fatalf("liar's record: collateral %d held %d", p.Collateral, p.HeldJobs)
	}
	if got := n.st.Globals().Burned - burned0; got != wantCut-2*fee {
		t.Fatalf("burned %d, want the cut %d less the two voters' fees", got, wantCut)
	}
	if got := n.balance(com[0]); got != 1_000_000+fee {
		t.Fatalf("referee: %d, want its fee %d", got, fee)
	}
	// The client acks the majority: each is paid its held pay, the rest
	// of each escrow comes back.
	_, res = n.block(n.tx(rClient, 0, func(tx *Tx) { tx.Ack = &AckTx{JobID: bids[0].ID()} }),
		n.tx(rClient, 0, func(tx *Tx) { tx.Ack = &AckTx{JobID: bids[1].ID()} }))
	for _, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatalf("ack: %s", tr.Log)
		}
	}
	var paid uint64
	for _, b := range bids[:2] {
		m := n.match(b.ID())
		if m.Status != MatchCompleted {
			t.Fatalf("replica %d is %s after the ack", b.Replica, m.Status)
		}
		paid += m.Paid
	}
	if got := n.balance(rClient); got != before-paid {
		t.Fatalf("client: %d, want %d (start less the majority's pay %d)", got, before-paid, paid)
	}
}

// A client with two Sybil providers among three replicas reports one
// made-up hash through both: a majority, but the disagreement goes to
// referees, so it is the Sybils that are slashed and the honest provider
// that is paid. (With a majority alone deciding, the client could slash
// any honest provider for free.)
func TestReplicaAttackSybilMajorityCannotSlashTheHonestReplica(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 3, market.ExecWASM, 0)
	matchReplicas(t, n, bids, rProvs[:3], market.ExecWASM)
	n.block(resultTx(n, rProvs[1], bids[1].ID(), wrongHash), resultTx(n, rProvs[2], bids[2].ID(), wrongHash))
	n.block(resultTx(n, rProvs[0], bids[0].ID(), rightHash))
	decideByReferees(t, n, bids, rightHash)
	if m := n.match(bids[0].ID()); m.Status != MatchHeld || m.Awaiting || m.Slashed != 0 {
		t.Fatalf("honest replica: %s awaiting=%v slashed %d", m.Status, m.Awaiting, m.Slashed)
	}
	if p := n.provider(rProvs[0]); p.Collateral != 100_000 {
		t.Fatalf("honest provider's collateral %d", p.Collateral)
	}
	for _, b := range bids[1:] {
		if m := n.match(b.ID()); m.Status != MatchWrong || m.Slashed == 0 {
			t.Fatalf("sybil replica %d: %s slashed %d", b.Replica, m.Status, m.Slashed)
		}
	}
}

// A replica that copies the first hash on chain instead of running the
// job gains nothing when that hash is a lie: the referees slash both.
func TestReplicaAttackCopyingAnotherReplicasHashIsSlashedWithIt(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 3, market.ExecWASM, 0)
	matchReplicas(t, n, bids, rProvs[:3], market.ExecWASM)
	n.block(resultTx(n, rProvs[0], bids[0].ID(), wrongHash))
	seen := n.match(bids[0].ID()).ResultHash // public while it awaits
	n.block(resultTx(n, rProvs[1], bids[1].ID(), seen), resultTx(n, rProvs[2], bids[2].ID(), rightHash))
	decideByReferees(t, n, bids, rightHash)
	for i, want := range []MatchStatus{MatchWrong, MatchWrong, MatchHeld} {
		if m := n.match(bids[i].ID()); m.Status != want {
			t.Fatalf("replica %d: %s, want %s", i, m.Status, want)
		}
	}
}

// The referees' committee is seeded by the height the group's first
// replica matched at: the replica whose result completes the group cannot
// pick its judges by choosing the block it reports in.
func TestReplicaRefereesCannotBeChosenByTheLastReportsTiming(t *testing.T) {
	committee := func(delay int) []int {
		n := newReplicaNet(t)
		bids := replicaBids(t, n, 1, 2, market.ExecWASM, 0)
		matchReplicas(t, n, bids, rProvs[:2], market.ExecWASM)
		n.block(resultTx(n, rProvs[0], bids[0].ID(), rightHash))
		for range delay {
			n.block()
		}
		n.block(resultTx(n, rProvs[1], bids[1].ID(), wrongHash))
		return n.committeeOf(n.group(bids[0].ID()).Referee)
	}
	first := committee(0)
	for d := 1; d <= 4; d++ {
		if got := committee(d); !slices.Equal(got, first) {
			t.Fatalf("reporting %d blocks later drew %v, not %v", d, got, first)
		}
	}
}

// A client's challenge of one replica is never judged by the provider of
// another replica of the same job (it already answered with its own run).
func TestReplicaChallengeCommitteeExcludesTheGroupsProviders(t *testing.T) {
	n := newReplicaNet(t)
	_, res := n.block(n.tx(0, 0, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 100_000} }))
	mustBody(t, res, "")
	bids := replicaBids(t, n, 1, 2, market.ExecWASM, 0)
	matchReplicas(t, n, bids, []int{0, rProvs[0]}, market.ExecWASM)
	n.block(resultTx(n, 0, bids[0].ID(), rightHash), resultTx(n, rProvs[0], bids[1].ID(), rightHash))
	_, res = n.block(challengeTx(n, rClient, bids[1].ID(), ChallengeWrong, 1<<40))
	mustBody(t, res, "")
	if com := n.committeeOf(bids[1].ID()); slices.Contains(com, 0) {
		t.Fatalf("committee %v holds validator 0, the provider of replica 0", com)
	}
}

// Acks and challenges of a replica whose group is undecided are refused:
// the first result in is not the paid one.
func TestReplicaAttackAckOrChallengeBeforeTheGroupIsDecidedIsRefused(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 3, market.ExecWASM, 0)
	matchReplicas(t, n, bids, rProvs[:3], market.ExecWASM)
	_, res := n.block(resultTx(n, rProvs[0], bids[0].ID(), rightHash))
	mustBody(t, res, "")
	_, res = n.block(n.tx(rClient, 0, func(tx *Tx) { tx.Ack = &AckTx{JobID: bids[0].ID()} }))
	mustBody(t, res, "not decided yet")
	_, res = n.block(challengeTx(n, rClient, bids[0].ID(), ChallengeWrong, 1<<40))
	mustBody(t, res, "not decided yet")
	// Its window passing does not pay it either: it waits for the group.
	for range sWindow/1000 + 2 {
		n.block()
	}
	if m := n.match(bids[0].ID()); m.Status != MatchHeld || !m.Awaiting || m.Paid != 0 {
		t.Fatalf("replica 0 after its window: %s awaiting=%v paid %d", m.Status, m.Awaiting, m.Paid)
	}
}

// Two replicas of one job on one provider are refused by CheckMatch, so
// a proposer cannot put them in a block; the matcher never proposes it.
func TestReplicaAttackTwoReplicasOnOneProviderAreRefused(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 2, market.ExecWASM, 0)
	matchReplicas(t, n, bids[:1], rProvs[:1], market.ExecWASM)
	o := n.offer(rProvs[0], 2)
	price, _ := market.PriceFor(o, bids[1])
	err := market.CheckMatch(testChainID, &market.Match{Offer: *o, Bid: *bids[1], Price: price}, n.st.View(), n.time+n.step)
	var me *market.MatchError
	if !errors.As(err, &me) || me.Code != market.CodeReplica {
		t.Fatalf("second replica on the same provider: %v, want %s", err, market.CodeReplica)
	}
	_, res := n.block(n.matchTx(o, bids[1]))
	if len(res.TxResults) != 0 {
		t.Fatalf("the proposer kept a refused match: %+v", res.TxResults)
	}
	// The matcher, given both providers, puts it on the other one.
	snap := market.Snapshot{Offers: []*market.Offer{o, n.offer(rProvs[1], 1)}, Bids: []*market.Bid{bids[1]}}
	ms := market.Matcher{}.Match(snap, n.st.View(), n.time+n.step, [32]byte{}, 10)
	if len(ms) != 1 || ms[0].Offer.ProviderAddress() != n.keys[rProvs[1]].Address() {
		t.Fatalf("matcher placed %d matches, want replica 1 on provider %d", len(ms), rProvs[1])
	}
}

// The matcher places a group's replicas in one round on distinct
// providers, even when one provider is the best fit for all of them.
func TestReplicaMatcherSpreadsAGroupInOneRound(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 3, market.ExecWASM, 0)
	cheap := n.offer(rProvs[0], 1)
	cheap.Terms.PerCPUSecond = 1
	if err := cheap.Sign(testChainID, n.keys[rProvs[0]]); err != nil {
		t.Fatal(err)
	}
	snap := market.Snapshot{Offers: []*market.Offer{cheap, n.offer(rProvs[1], 1), n.offer(rProvs[2], 1)}, Bids: bids}
	ms := market.Matcher{}.Match(snap, n.st.View(), n.time+n.step, [32]byte{}, 10)
	seen := map[string]bool{}
	for _, m := range ms {
		seen[m.Offer.ProviderAddress().String()] = true
	}
	if len(ms) != 3 || len(seen) != 3 {
		t.Fatalf("%d matches on %d providers, want 3 on 3", len(ms), len(seen))
	}
	var txs [][]byte
	for i := range ms {
		txs = append(txs, n.matchTx(&ms[i].Offer, &ms[i].Bid))
	}
	if _, res := n.block(txs...); len(res.TxResults) != 3 {
		t.Fatalf("%d of 3 matches committed", len(res.TxResults))
	}
}

// A tie of two WASM replicas goes to referees, who re-execute; their
// quorum's hash decides: the liar is slashed, each referee who voted the
// deciding hash is paid the job's quote from the cut, the rest is
// burned, and the honest replica is paid on the client's ack.
func TestReplicaAttackTieOfTwoGoesToRefereesWhoSlashTheLiar(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 2, market.ExecWASM, 0)
	matchReplicas(t, n, bids, rProvs[:2], market.ExecWASM)
	burned0 := n.st.Globals().Burned
	_, res := n.block(resultTx(n, rProvs[0], bids[0].ID(), wrongHash), resultTx(n, rProvs[1], bids[1].ID(), rightHash))
	if got := eventsOf(res, EvChallenged); len(got) != 1 || got[0].JobID != bids[0].ID() {
		t.Fatalf("challenge events %+v, want the referees on replica 0", got)
	}
	if g := n.group(bids[0].ID()); g.Outcome != GroupReferees || g.Referee != bids[0].ID() {
		t.Fatalf("group %s referee %s", g.Outcome, g.Referee)
	}
	com := n.committeeOf(bids[0].ID())
	for _, i := range com {
		if i >= 4 {
			t.Fatalf("committee %v holds a party (the client or a group provider)", com)
		}
	}
	refBal := n.balance(com[0])
	_, res = n.block(n.tx(com[0], 0, func(tx *Tx) { tx.Attest = &AttestTx{JobID: bids[0].ID(), ResultHash: rightHash} }),
		n.tx(com[1], 0, func(tx *Tx) { tx.Attest = &AttestTx{JobID: bids[0].ID(), ResultHash: rightHash} }))
	for _, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatalf("attest: %s", tr.Log)
		}
	}
	g := n.group(bids[0].ID())
	if g.Outcome != GroupRefereed || g.Hash != rightHash {
		t.Fatalf("group %s %x, want refereed on the right hash", g.Outcome, g.Hash[:4])
	}
	liar, honest := n.match(bids[0].ID()), n.match(bids[1].ID())
	if liar.Status != MatchWrong || honest.Status != MatchHeld || honest.Awaiting {
		t.Fatalf("liar %s, honest %s awaiting=%v", liar.Status, honest.Status, honest.Awaiting)
	}
	fee := max(liar.Match.Price, 1)
	if got := n.balance(com[0]); got != refBal+fee {
		t.Fatalf("referee: %d, want %d (+ the fee %d)", got, refBal+fee, fee)
	}
	if got := n.st.Globals().Burned - burned0; got != liar.Slashed-2*fee {
		t.Fatalf("burned %d, want the cut %d less two fees", got, liar.Slashed)
	}
	_, res = n.block(n.tx(rClient, 0, func(tx *Tx) { tx.Ack = &AckTx{JobID: bids[1].ID()} }))
	mustBody(t, res, "")
	if m := n.match(bids[1].ID()); m.Status != MatchCompleted || m.Paid == 0 {
		t.Fatalf("honest replica %s paid %d", m.Status, m.Paid)
	}
}

// A split the referees leave without a quorum (here 1–1, so no majority
// either) releases every result: no one is slashed on a guess.
func TestReplicaTieWithoutARefereeQuorumReleasesEveryResult(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 2, market.ExecWASM, 0)
	matchReplicas(t, n, bids, rProvs[:2], market.ExecWASM)
	n.block(resultTx(n, rProvs[0], bids[0].ID(), wrongHash), resultTx(n, rProvs[1], bids[1].ID(), rightHash))
	com := n.committeeOf(bids[0].ID())
	n.block(n.tx(com[0], 0, func(tx *Tx) { tx.Attest = &AttestTx{JobID: bids[0].ID(), ResultHash: otherHash} }))
	m0 := n.match(bids[0].ID())
	deadline := m0.Pending().Deadline
	for n.time <= deadline+sWindow+2*n.step {
		n.block()
	}
	for _, b := range bids {
		if m := n.match(b.ID()); m.Status != MatchCompleted || m.Slashed != 0 {
			t.Fatalf("replica %d: %s slashed %d, want completed unslashed", b.Replica, m.Status, m.Slashed)
		}
	}
	if g := n.group(bids[0].ID()); g.Outcome != GroupNoMajority {
		t.Fatalf("group %s, want no_majority", g.Outcome)
	}
	// The referee who voted a third hash is not slashed: there was no
	// deciding hash to dissent from.
	if p := n.provider(rProvs[0]); p.Collateral != 100_000 {
		t.Fatalf("provider collateral %d", p.Collateral)
	}
}

// A replica that times out counts as absent: the two that agree are the
// majority; the absent one is slashed for its timeout as any job is.
func TestReplicaTimedOutIsAbsentAndTheOthersDecide(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 3, market.ExecWASM, 0)
	matchReplicas(t, n, bids, rProvs[:3], market.ExecWASM)
	n.block(resultTx(n, rProvs[0], bids[0].ID(), rightHash), resultTx(n, rProvs[1], bids[1].ID(), rightHash))
	deadline := n.match(bids[2].ID()).Deadline
	for n.time < deadline {
		n.block()
	}
	n.block()
	if m := n.match(bids[2].ID()); m.Status != MatchTimedOut {
		t.Fatalf("replica 2 is %s, want timed out", m.Status)
	}
	g := n.group(bids[0].ID())
	if g.Outcome != GroupMajority || g.Hash != rightHash {
		t.Fatalf("group %s, want majority", g.Outcome)
	}
	for _, b := range bids[:2] {
		if m := n.match(b.ID()); m.Awaiting || m.Status != MatchHeld && m.Status != MatchCompleted {
			t.Fatalf("replica %d: %s awaiting=%v", b.Replica, m.Status, m.Awaiting)
		}
	}
}

// A group whose other replicas are never matched is decided once the
// bids' match-by time passes, on the replicas it has.
func TestReplicaGroupWithUnmatchedReplicasDecidesAtMatchBy(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 3, market.ExecWASM, 20_000)
	matchReplicas(t, n, bids, rProvs[:2], market.ExecWASM)
	n.block(resultTx(n, rProvs[0], bids[0].ID(), rightHash), resultTx(n, rProvs[1], bids[1].ID(), rightHash))
	if g := n.group(bids[0].ID()); g.Outcome != GroupPending {
		t.Fatalf("group %s before match-by, want pending", g.Outcome)
	}
	for n.time <= bids[0].MatchBy+n.step {
		n.block()
	}
	if g := n.group(bids[0].ID()); g.Outcome != GroupMajority || len(g.Members) != 2 {
		t.Fatalf("group %s with %d members after match-by, want majority of 2", g.Outcome, len(g.Members))
	}
	o := n.offer(rProvs[2], 1)
	price, _ := market.PriceFor(o, bids[2])
	if err := market.CheckMatch(testChainID, &market.Match{Offer: *o, Bid: *bids[2], Price: price}, n.st.View(), n.time+n.step); err == nil {
		t.Fatal("a replica matched after its group was decided")
	}
}

// A split of a non-deterministic job (the client accepted majority by
// hash) cannot go to referees: every result is released as it stands.
func TestReplicaTieOfADockerJobReleasesEveryResult(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 2, market.ExecDocker, 0)
	matchReplicas(t, n, bids, rProvs[:2], market.ExecDocker)
	_, res := n.block(resultTx(n, rProvs[0], bids[0].ID(), wrongHash), resultTx(n, rProvs[1], bids[1].ID(), rightHash))
	if got := eventsOf(res, EvMajority); len(got) != 2 {
		t.Fatalf("release events %+v, want both", got)
	}
	if g := n.group(bids[0].ID()); g.Outcome != GroupNoMajority {
		t.Fatalf("group %s, want no_majority", g.Outcome)
	}
}

// Of three docker replicas, the one that disagrees with the other two is
// outvoted: unpaid, its escrow refunded, its run counted failed, but its
// collateral untouched (honest runs of such a job may differ, and without
// referees a made-up majority must not be able to slash).
func TestReplicaOutvotedDockerReplicaIsUnpaidNotSlashed(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 3, market.ExecDocker, 0)
	matchReplicas(t, n, bids, rProvs[:3], market.ExecDocker)
	burned0 := n.st.Globals().Burned
	_, res := n.block(resultTx(n, rProvs[0], bids[0].ID(), rightHash), resultTx(n, rProvs[1], bids[1].ID(), rightHash),
		resultTx(n, rProvs[2], bids[2].ID(), wrongHash))
	if got := eventsOf(res, EvMajority); len(got) != 2 {
		t.Fatalf("majority events %+v", got)
	}
	m := n.match(bids[2].ID())
	if m.Status != MatchWrong || m.Slashed != 0 || m.Refunded != bids[2].MaxPrice || m.Paid != 0 {
		t.Fatalf("outvoted: %s slashed %d refunded %d paid %d", m.Status, m.Slashed, m.Refunded, m.Paid)
	}
	if p := n.provider(rProvs[2]); p.Collateral != 100_000 || p.Failed != 1 || p.HeldJobs != 0 {
		t.Fatalf("outvoted provider: collateral %d failed %d held %d", p.Collateral, p.Failed, p.HeldJobs)
	}
	if n.st.Globals().Burned != burned0 {
		t.Fatal("an outvote burned something")
	}
}

// Results with one hash are one result whatever exit codes the providers
// claim (the archive holds the exit code): no referees are called.
func TestReplicaSameHashDifferentExitCodeIsAgreement(t *testing.T) {
	n := newReplicaNet(t)
	bids := replicaBids(t, n, 1, 2, market.ExecWASM, 0)
	matchReplicas(t, n, bids, rProvs[:2], market.ExecWASM)
	n.block(resultTx(n, rProvs[0], bids[0].ID(), rightHash), n.tx(rProvs[1], 0, func(tx *Tx) {
		tx.Result = &ResultTx{JobID: bids[1].ID(), ResultHash: rightHash, ExitCode: 1, Usage: market.Usage{CPUMs: 1000, MemMiBMs: 1000}, Size: 100}
	}))
	if g := n.group(bids[0].ID()); g.Outcome != GroupMajority {
		t.Fatalf("group %s, want agreement", g.Outcome)
	}
}

// Bids with replicas: the bounds, and the statement a non-WASM job needs.
func TestReplicaBidBounds(t *testing.T) {
	n := newReplicaNet(t)
	now := n.time
	for _, c := range []struct {
		name              string
		replicas, replica uint32
		executor          string
		accept            bool
		want              string
	}{
		{"one", 1, 0, market.ExecWASM, false, ""},
		{"sixteen, the bound", market.MaxReplicas, market.MaxReplicas - 1, market.ExecWASM, false, ""},
		{"seventeen", market.MaxReplicas + 1, 0, market.ExecWASM, false, "must be in 1..16"},
		{"zero", 0, 0, market.ExecWASM, false, "must be in 1..16"},
		{"index at the count", 3, 3, market.ExecWASM, false, "must be below replicas"},
		{"docker without the statement", 3, 0, market.ExecDocker, false, "set accept_majority"},
		{"docker with it", 3, 0, market.ExecDocker, true, ""},
		{"statement on one replica", 1, 0, market.ExecDocker, true, "only with replicas > 1"},
		{"statement on a wasm job", 3, 0, market.ExecWASM, true, "accept_majority is for docker and exec"},
	} {
		b := n.bid(rClient, 1, 1000, 10_000)
		b.Replicas, b.Replica, b.Executor, b.AcceptMajority = c.replicas, c.replica, c.executor, c.accept
		err := b.Validate(now)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// BenchmarkReplicaGroup is what a job of three replicas adds to the chain
// beyond three jobs: its group record (group-bytes, decided, in the
// state) and deciding it, the block that carries the last result
// (ns/op: building and executing that block, on the test net's fresh
// overlay).
//
//	go test -run '^$' -bench ReplicaGroup -benchtime 200x ./chain
func BenchmarkReplicaGroup(b *testing.B) {
	var groupBytes int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		n := newReplicaNet(b)
		bids := replicaBids(b, n, uint64(i+1), 3, market.ExecWASM, 0)
		matchReplicas(b, n, bids, rProvs[:3], market.ExecWASM)
		n.block(resultTx(n, rProvs[0], bids[0].ID(), rightHash), resultTx(n, rProvs[1], bids[1].ID(), rightHash))
		last := resultTx(n, rProvs[2], bids[2].ID(), rightHash)
		b.StartTimer()
		n.block(last)
		b.StopTimer()
		id := bids[0].ID()
		raw, ok := n.st.get(pfxGroup + string(id[:]))
		if !ok {
			b.Fatal("no group record")
		}
		groupBytes = len(raw)
		b.StartTimer()
	}
	b.ReportMetric(float64(groupBytes), "group-bytes")
}
