package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestSignerStateRestartAfter50RoundsNoDoubleSign: a validator that signed
// at 50 rounds of one height (locking on a value at round 45 on the way)
// persists a signer state that decodes, restarts from it, re-broadcasts
// only votes it signed before, keeps its lock, and never signs a second
// vote for a (round, type) it already voted in. Before the signer state was
// pruned it held two votes per round and failed to decode past 8 rounds
// (a 16-element array limit), so such a validator could not restart.
func TestSignerStateRestartAfter50RoundsNoDoubleSign(t *testing.T) {
	keys, vs := testValidators(t, 1, 1, 1, 1)
	const lockRound = 45
	value := []byte("the value locked at round 45")
	id := idOf(value)

	st, err := New(fastConfig(), testChain, keys[0], 1, vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	type slot struct {
		r   int32
		typ VoteType
	}
	signed := map[slot]*Vote{}
	var persisted *SignerState
	now := int64(1000)
	// take records what st signed and checks it never signs two votes for
	// one (round, type).
	take := func(out []Output) []Output {
		t.Helper()
		var more []Output
		for _, o := range out {
			switch o := o.(type) {
			case Persist:
				s := o.State
				persisted = &s
			case Broadcast:
				v := o.Message.Vote
				if v == nil {
					continue
				}
				k := slot{v.Round, v.Type}
				if old, ok := signed[k]; ok && !old.sameContent(v) {
					t.Fatalf("double sign at %d/%d %s: %s then %s", v.Height, v.Round, v.Type, old, v)
				}
				signed[k] = v
			case ValidateValue:
				more = append(more, o)
			}
		}
		return more
	}
	step := func(st *State, e Event) []Output {
		now++
		return take(st.Step(Input{Now: now, Event: e}))
	}
	take(st.Start(now))
	for r := int32(0); r < 50; r++ {
		if r == lockRound {
			p := keys[0]
			for _, k := range keys {
				if k.Address() == vs.Proposer(r).Address {
					p = k
				}
			}
			if p.Address() == keys[0].Address() {
				step(st, ValueReady{Height: 1, Round: r, BlockID: id, Value: value})
			} else {
				for _, o := range step(st, ReceiveProposal{Proposal: signProposal(p, 1, r, value, -1)}) {
					vv := o.(ValidateValue)
					step(st, ValueValidity{Height: 1, BlockID: vv.BlockID, Value: vv.Value, Valid: true})
				}
			}
			for _, k := range keys[1:3] {
				step(st, ReceiveVote{Vote: signVote(k, Prevote, 1, r, id, now)})
			}
			if lr, lid := st.Locked(); lr != lockRound || lid != id {
				t.Fatalf("not locked at round %d: locked %d/%s", lockRound, lr, lid)
			}
		}
		step(st, Timeout{Height: 1, Round: r, Step: StepPropose})
		step(st, Timeout{Height: 1, Round: r, Step: StepPrevote})
		step(st, Timeout{Height: 1, Round: r, Step: StepPrecommit})
	}
	if st.Round() != 50 || len(signed) < 100 {
		t.Fatalf("at round %d with %d votes signed, want round 50 and at least 100 votes", st.Round(), len(signed))
	}
	if persisted == nil {
		t.Fatal("nothing persisted")
	}
	raw, err := EncodeSignerState(persisted)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := DecodeSignerState(raw)
	if err != nil {
		t.Fatalf("the signer state of 50 rounds does not decode: %v", err)
	}
	if len(restored.Votes) > maxSignerVotes {
		t.Fatalf("signer state keeps %d votes, bound %d", len(restored.Votes), maxSignerVotes)
	}
	var lockVotes int
	for _, v := range restored.Votes {
		if v.Round == lockRound {
			lockVotes++
		}
	}
	if lockVotes != 2 {
		t.Fatalf("the locked round keeps %d votes, want 2", lockVotes)
	}

	re, err := New(fastConfig(), testChain, keys[0], 1, vs, restored)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	take(re.Start(now))
	if lr, lid := re.Locked(); lr != lockRound || lid != id {
		t.Fatalf("the restarted validator lost its lock: %d/%s", lr, lid)
	}
	// Try to make it sign again at the rounds it already signed: a
	// proposal for another value at round 49, all timeouts again, then
	// on into round 51.
	other := []byte("another value")
	for _, k := range keys {
		if k.Address() == vs.Proposer(49).Address && k.Address() != keys[0].Address() {
			for _, o := range step(re, ReceiveProposal{Proposal: signProposal(k, 1, 49, other, -1)}) {
				vv := o.(ValidateValue)
				step(re, ValueValidity{Height: 1, BlockID: vv.BlockID, Value: vv.Value, Valid: true})
			}
		}
	}
	for r := int32(40); r < 52; r++ {
		step(re, Timeout{Height: 1, Round: r, Step: StepPropose})
		step(re, Timeout{Height: 1, Round: r, Step: StepPrevote})
		step(re, Timeout{Height: 1, Round: r, Step: StepPrecommit})
	}
	if re.Round() != 52 {
		t.Fatalf("the restarted validator is at round %d, want 52", re.Round())
	}
}

// TestEquivocationAfterDecisionIsReported: a double precommit of the last
// height that arrives after this process decided it still yields evidence
// (the second precommit often completes a certificate elsewhere and
// reaches the others only once they moved on); a late vote that repeats a
// held one, or a badly signed one, does not.
func TestEquivocationAfterDecisionIsReported(t *testing.T) {
	keys, vs := testValidators(t, 1, 1, 1, 1)
	n := newNet(t, instantConfig(), keys, vs)
	n.runUntil(1)
	st := n.states[0]
	if st.Height() == 1 {
		st.Step(Input{Now: 1, Event: NextHeight{}})
	}
	if st.Height() != 2 {
		t.Fatalf("at height %d, want 2", st.Height())
	}
	d := n.decided[0]
	var held *Vote
	var offender int
	for i := range d.Commit.Precommits {
		for j, k := range keys[1:] {
			if held == nil && d.Commit.Precommits[i].Validator == k.Address() {
				held, offender = &d.Commit.Precommits[i], j+1
			}
		}
	}
	if held == nil {
		t.Fatal("only node 0 in the certificate")
	}
	evidence := func(v *Vote) int {
		c := 0
		for _, o := range st.Step(Input{Now: 1, Event: ReceiveVote{Vote: v}}) {
			if _, ok := o.(Evidence); ok {
				c++
			}
		}
		return c
	}
	if got := evidence(held); got != 0 {
		t.Fatalf("a held vote again gave %d evidence", got)
	}
	other := signVote(keys[offender], Precommit, 1, held.Round, idOf([]byte("other")), 5)
	if got := evidence(other); got != 1 {
		t.Fatalf("a late double precommit gave %d evidence, want 1", got)
	}
	if got := evidence(signVote(keys[offender], Precommit, 1, held.Round, idOf([]byte("third")), 5)); got != 0 {
		t.Fatalf("a third vote gave %d evidence, want 0 (already reported)", got)
	}
}

// TestSignerStateSplitAndJoinValues: SplitValues takes each block value
// out once, by id, and JoinValues puts back exactly what was taken. A
// value whose id already names other bytes (a forged pair) stays in the
// state, so a join can never give it the other value's bytes.
func TestSignerStateSplitAndJoinValues(t *testing.T) {
	a, forged, b := []byte("block a"), []byte("other bytes claiming a's id"), []byte("block b")
	ida, idb := idOf(a), idOf(b)
	cases := []struct {
		name    string
		state   SignerState
		taken   int // values split out
		inlined int // values left in the state
	}{
		{"nothing held", SignerState{Height: 3, LockedRound: -1, ValidRound: -1}, 0, 0},
		{"one value held three times", SignerState{Height: 3, Round: 1,
			LastProposal: &Proposal{Height: 3, Round: 1, BlockID: ida, Value: a},
			LockedRound:  1, LockedBlockID: ida, LockedValue: a, ValidRound: 1, ValidBlockID: ida, ValidValue: a}, 1, 0},
		{"an old proposal and a new lock", SignerState{Height: 4,
			LastProposal: &Proposal{Height: 2, BlockID: idb, Value: b},
			LockedRound:  0, LockedBlockID: ida, LockedValue: a, ValidRound: 0, ValidBlockID: ida, ValidValue: a}, 2, 0},
		{"forged pair under a's id", SignerState{Height: 3,
			LastProposal: &Proposal{Height: 3, BlockID: ida, Value: a},
			LockedRound:  0, LockedBlockID: ida, LockedValue: forged, ValidRound: -1}, 1, 1},
		{"a locked slot without a value stays without", SignerState{Height: 3,
			LastProposal: &Proposal{Height: 3, BlockID: ida, Value: a},
			LockedRound:  0, LockedBlockID: ida, ValidRound: -1}, 1, 0},
		{"not locked: stale bytes are not taken", SignerState{Height: 3, LockedRound: -1, LockedBlockID: ida, LockedValue: a, ValidRound: -1}, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := tc.state
			origProposal := orig.LastProposal
			bare, vals := tc.state.SplitValues()
			if len(vals) != tc.taken {
				t.Fatalf("took %d values, want %d", len(vals), tc.taken)
			}
			inlined := 0
			if bare.LastProposal != nil && len(bare.LastProposal.Value) > 0 {
				inlined++
			}
			inlined += min(len(bare.LockedValue), 1) + min(len(bare.ValidValue), 1)
			if inlined != tc.inlined {
				t.Fatalf("%d values left in the state, want %d", inlined, tc.inlined)
			}
			if origProposal != nil && len(origProposal.Value) == 0 {
				t.Fatal("SplitValues changed the state it was given")
			}
			raw, err := EncodeSignerState(&bare)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeSignerState(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.JoinValues(func(id BlockID) ([]byte, error) {
				v, ok := vals[id]
				if !ok {
					return nil, fmt.Errorf("no value %s", id)
				}
				return v, nil
			}); err != nil {
				t.Fatal(err)
			}
			if got.Apart != 0 {
				t.Fatalf("joined state still marks values apart: %b", got.Apart)
			}
			if (got.LastProposal == nil) != (orig.LastProposal == nil) ||
				got.LastProposal != nil && !bytes.Equal(got.LastProposal.Value, orig.LastProposal.Value) ||
				orig.LockedRound >= 0 && !bytes.Equal(got.LockedValue, orig.LockedValue) ||
				orig.ValidRound >= 0 && !bytes.Equal(got.ValidValue, orig.ValidValue) {
				t.Fatalf("joined state differs: %+v, want %+v", got, orig)
			}
		})
	}
	// A value the store lost is an error, not an empty lock.
	g := SignerState{Height: 3, LockedRound: 0, LockedBlockID: ida, ValidRound: -1, Apart: TakenLocked}
	err := g.JoinValues(func(BlockID) ([]byte, error) { return nil, errors.New("not found") })
	if err == nil {
		t.Fatal("a missing locked value was not reported")
	}
}
