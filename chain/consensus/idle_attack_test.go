package consensus

import (
	"testing"
	"time"

	"github.com/bourse-net/bourse/wallet"
)

func idleCfg() Config { c := fastConfig(); c.IdleWait = 500 * time.Millisecond; return c }

// restingAt2 returns validator `self` of a 4-validator set (powers as
// given) resting at height 2: height 1 decided by a certificate, the
// commit wait over, the idle timeout scheduled.
func restingAt2(t *testing.T, self int, cfg Config, powers ...uint64) (*State, []wallet.PrivateKey) {
	t.Helper()
	if len(powers) == 0 {
		powers = []uint64{1, 1, 1, 1}
	}
	keys, vs := testValidators(t, powers...)
	st, err := New(cfg, testChain, keys[self], 1, vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Start(0)
	value := []byte("block 1")
	id := idOf(value)
	var pcs []Vote
	for i := range keys { // every validator: power > 2/3 whatever the powers
		pcs = append(pcs, *signVote(keys[i], Precommit, 1, 0, id, 1))
	}
	sortVotes(pcs)
	st.Step(Input{Now: 1, Event: ReceiveCommit{Commit: &CommitCertificate{Height: 1, Round: 0, BlockID: id, Precommits: pcs}, Value: value}})
	if _, ok := st.Decision(); !ok {
		t.Fatal("height 1 not decided")
	}
	st.Step(Input{Now: 2, Event: NextHeight{}})
	out := st.Step(Input{Now: 20, Event: Timeout{Height: 2, Round: 0, Step: StepNewHeight}})
	if !st.idling || st.RoundStep() != StepNewHeight || !hasIdleTimeout(out) {
		t.Fatalf("not resting at height 2: step %s idling %v out %v", st.RoundStep(), st.idling, out)
	}
	return st, keys
}

func hasIdleTimeout(out []Output) bool {
	for _, o := range out {
		if s, ok := o.(ScheduleTimeout); ok && s.Step == StepIdle {
			return true
		}
	}
	return false
}

func mustRest(t *testing.T, st *State, what string) {
	t.Helper()
	if !st.idling || st.RoundStep() != StepNewHeight || st.Round() != 0 {
		t.Fatalf("%s ended the rest: step %s round %d idling %v", what, st.RoundStep(), st.Round(), st.idling)
	}
}

// A validator that is not round 0's or round 1's proposer signs a proposal:
// it is rejected and must not count as "heard".
func TestIdleAttackProposalFromNonProposerDoesNotWake(t *testing.T) {
	st, keys := restingAt2(t, 0, idleCfg())
	for i, k := range keys {
		a := k.Address()
		if i == 0 || a == st.vs.Proposer(0).Address || a == st.vs.Proposer(1).Address {
			continue
		}
		out := st.Step(Input{Now: 30, Event: ReceiveProposal{Proposal: signProposal(k, 2, 0, []byte("evil"), -1)}})
		if len(out) == 0 {
			t.Fatal("a proposal by a non-proposer was not rejected")
		}
		mustRest(t, st, "a non-proposer's proposal")
		return
	}
	t.Skip("no validator outside the first two proposers")
}

// A vote whose signature does not verify (a peer relabels v1's vote as v2's)
// and a duplicate of nothing must not wake the rest.
func TestIdleAttackForgedVoteDoesNotWake(t *testing.T) {
	st, keys := restingAt2(t, 0, idleCfg())
	v := signVote(keys[1], Prevote, 2, 0, BlockID{}, 30)
	v.Validator = keys[2].Address()
	st.Step(Input{Now: 30, Event: ReceiveVote{Vote: v}})
	mustRest(t, st, "a forged vote")
}

// Late precommits of the decided height (normal traffic right after a
// commit) go to the previous height's book and must not end the rest;
// neither must an equivocation of the last height (evidence only).
func TestIdleAttackLateVoteOfLastHeightDoesNotWake(t *testing.T) {
	st, keys := restingAt2(t, 0, idleCfg(), 1, 1, 1, 1)
	st.Step(Input{Now: 30, Event: ReceiveVote{Vote: signVote(keys[3], Precommit, 1, 0, BlockID{}, 30)}}) // conflicts with its certified precommit
	mustRest(t, st, "a late vote of the last height")
}

// The commit-wait timeout delivered again while resting (a duplicated timer,
// a restarted timer wheel) must neither re-arm the idle timeout nor start
// round 0; an idle timeout of another round must be ignored.
func TestIdleAttackStaleTimeoutsWhileResting(t *testing.T) {
	st, _ := restingAt2(t, 0, idleCfg())
	if out := st.Step(Input{Now: 30, Event: Timeout{Height: 2, Round: 0, Step: StepNewHeight}}); len(out) != 0 {
		t.Fatalf("second commit-wait timeout: %v", out)
	}
	if out := st.Step(Input{Now: 30, Event: Timeout{Height: 2, Round: 1, Step: StepIdle}}); len(out) != 0 {
		t.Fatalf("idle timeout of round 1: %v", out)
	}
	mustRest(t, st, "stale timeouts")
}

// Once round 0 started (Wake), a late idle timeout must not restart round 0
// (which would reset the step after a prevote and re-arm timers).
func TestIdleAttackLateIdleTimeoutAfterWakeIgnored(t *testing.T) {
	st, _ := restingAt2(t, 0, idleCfg())
	st.Step(Input{Now: 30, Event: Wake{Height: 2}})
	st.Step(Input{Now: 31, Event: Timeout{Height: 2, Round: 0, Step: StepPropose}}) // prevote nil
	step := st.RoundStep()
	if out := st.Step(Input{Now: 600, Event: Timeout{Height: 2, Round: 0, Step: StepIdle}}); len(out) != 0 || st.RoundStep() != step {
		t.Fatalf("late idle timeout acted: %v, step %s", out, st.RoundStep())
	}
}

// f+1 validators already in round 3 while we rest: we skip to round 3
// (lines 55-56), the rest ends, and the round-0 idle timeout is then inert.
func TestIdleRoundSkipWhileResting(t *testing.T) {
	st, keys := restingAt2(t, 0, idleCfg())
	for _, i := range []int{1, 2} {
		st.Step(Input{Now: 30, Event: ReceiveVote{Vote: signVote(keys[i], Prevote, 2, 3, BlockID{}, 30)}})
	}
	if st.Round() != 3 || st.RoundStep() != StepPropose || st.idling {
		t.Fatalf("after f+1 round-3 votes: round %d step %s idling %v", st.Round(), st.RoundStep(), st.idling)
	}
	if out := st.Step(Input{Now: 600, Event: Timeout{Height: 2, Round: 0, Step: StepIdle}}); len(out) != 0 || st.Round() != 3 {
		t.Fatalf("round-0 idle timeout after the skip: %v round %d", out, st.Round())
	}
}

// A restart while resting (signer state of the last height) starts round 0
// at once: safe (nothing signed at this height), but it ends the rest for
// everyone after TimeoutPropose. Pins the behaviour.
func TestIdleRestartWhileRestingStartsAtOnce(t *testing.T) {
	st, keys := restingAt2(t, 0, idleCfg())
	g := st.SignerState()
	re, err := New(idleCfg(), testChain, keys[0], 2, st.ValidatorSet(), &g)
	if err != nil {
		t.Fatal(err)
	}
	re.Start(40)
	if re.RoundStep() != StepPropose || re.Round() != 0 {
		t.Fatalf("restart while resting: %s round %d", re.RoundStep(), re.Round())
	}
}

// One validator, whatever its power, ends everyone's rest with a single
// valid vote of the height. Intended: it has begun the height, and the
// others must not leave it alone in round 0. All it can cost is the empty
// block the rest would have made at its end anyway, a little earlier.
func TestIdleAttackLowestPowerValidatorEndsRest(t *testing.T) {
	st, keys := restingAt2(t, 0, idleCfg(), 100, 1, 100, 100)
	st.Step(Input{Now: 30, Event: ReceiveVote{Vote: signVote(keys[1], Prevote, 2, 0, BlockID{}, 30)}})
	if st.RoundStep() != StepPropose {
		t.Fatalf("a 1/301-power validator's vote did not end the rest (step %s)", st.RoundStep())
	}
}

// TimeoutCommit 0: commitWaitOver runs inside NextHeight before the
// buffered next-height messages are replayed; a buffered proposal must
// still end the rest in the same step.
func TestIdleZeroCommitWaitBufferedProposalWakes(t *testing.T) {
	cfg := idleCfg()
	cfg.TimeoutCommit = 0
	keys, vs := testValidators(t, 1, 1, 1, 1)
	st, err := New(cfg, testChain, keys[0], 1, vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Start(0)
	vs2 := vs.Next()
	var pk wallet.PrivateKey
	for _, k := range keys {
		if k.Address() == vs2.Proposer(0).Address {
			pk = k
		}
	}
	st.Step(Input{Now: 1, Event: ReceiveProposal{Proposal: signProposal(pk, 2, 0, []byte("b2"), -1)}}) // buffered
	value := []byte("block 1")
	id := idOf(value)
	var pcs []Vote
	for i := range 3 {
		pcs = append(pcs, *signVote(keys[i], Precommit, 1, 0, id, 1))
	}
	sortVotes(pcs)
	st.Step(Input{Now: 2, Event: ReceiveCommit{Commit: &CommitCertificate{Height: 1, Round: 0, BlockID: id, Precommits: pcs}, Value: value}})
	st.Step(Input{Now: 3, Event: NextHeight{}})
	if st.RoundStep() == StepNewHeight || st.idling {
		t.Fatalf("a buffered proposal of height 2 did not end the rest: %s", st.RoundStep())
	}
}
