package consensus

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/bourse-net/bourse/codec"
)

// SignerState is what a validator must persist before any vote or proposal
// it signs leaves the process: the last height/round/step it signed, the
// message it signed there, every vote it signed at that height, and its
// lock (and valid value). Restored into New after a crash, it guarantees the
// validator never signs two different messages for one height/round/step,
// keeps the lock that safety depends on (the paper's lockedValue/lockedRound,
// lines 36-41), and lets the validator serve its own earlier votes again:
// the paper's liveness assumes a correct process's messages are eventually
// delivered, which a restarted validator can only honour if it still has
// them (the simulation deadlocks without this when crashes meet message loss).
type SignerState struct {
	Height       uint64    `cbor:"1,keyasint"`
	Round        int32     `cbor:"2,keyasint"`
	Step         RoundStep `cbor:"3,keyasint"` // 0: nothing signed yet
	LastProposal *Proposal `cbor:"4,keyasint,omitempty"`
	LastVote     *Vote     `cbor:"5,keyasint,omitempty"`

	LockedRound   int32   `cbor:"6,keyasint"` // -1: not locked
	LockedBlockID BlockID `cbor:"7,keyasint"`
	LockedValue   []byte  `cbor:"8,keyasint,omitempty"`
	ValidRound    int32   `cbor:"9,keyasint"` // -1: no valid value
	ValidBlockID  BlockID `cbor:"10,keyasint"`
	ValidValue    []byte  `cbor:"11,keyasint,omitempty"`

	// Votes signed at Height, in signing order: those of the last
	// SignerKeepRounds rounds signed and of the locked and valid rounds.
	// Older ones are dropped, so the state stays bounded however many rounds
	// a height takes; double-sign protection needs only Height/Round/Step and
	// the last message, the votes kept are for re-delivery after a restart.
	Votes []Vote `cbor:"12,keyasint,omitempty"`

	// Apart marks the values SplitValues took out, to be read back by
	// JoinValues: TakenProposal, TakenLocked, TakenValid. Set, it also
	// makes a binary from before the split refuse the state (an unknown
	// field) rather than restore a lock and a proposal without their values.
	Apart uint8 `cbor:"13,keyasint,omitempty"`
}

// The values SignerState.Apart marks as stored apart.
const (
	TakenProposal uint8 = 1 << iota
	TakenLocked
	TakenValid
)

// SignerKeepRounds is how many of the latest rounds of a height keep their
// votes in SignerState.Votes (besides the locked and valid rounds).
const SignerKeepRounds = 8

// maxSignerVotes bounds SignerState.Votes as written: two votes in each
// kept round, the locked round and the valid round.
const maxSignerVotes = 2 * (SignerKeepRounds + 2)

// prune drops the votes SignerState no longer keeps.
func (g *SignerState) prune() {
	keep := func(r int32) bool {
		return r > g.Round-SignerKeepRounds || (g.LockedRound >= 0 && r == g.LockedRound) || (g.ValidRound >= 0 && r == g.ValidRound)
	}
	g.Votes = slices.DeleteFunc(g.Votes, func(v Vote) bool { return v.Height != g.Height || !keep(v.Round) })
}

// EncodeSignerState is the canonical encoding the driver writes to disk.
func EncodeSignerState(s *SignerState) ([]byte, error) { return codec.Marshal(s) }

// DecodeSignerState reads what EncodeSignerState wrote. It also reads the
// unpruned state of earlier versions, which kept every vote of the height
// (two per round: more than 16 after nine rounds), and prunes it.
func DecodeSignerState(data []byte) (*SignerState, error) {
	var s SignerState
	if err := signerDecoder.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode signer state: %w", err)
	}
	s.prune()
	return &s, nil
}

// maxLegacySignerVotes is how many votes a signer state written before
// pruning may hold and still be read: ten thousand rounds at one height.
const maxLegacySignerVotes = 20000

var signerDecoder = codec.MustDecoder(codec.Limits{MaxSize: 3*MaxMessageBytes + maxLegacySignerVotes*MaxVoteBytes,
	MaxNesting: 8, MaxArrayElements: maxLegacySignerVotes, MaxMapPairs: 32})

// compareHRS orders (height, round, step) triples.
func compareHRS(h1 uint64, r1 int32, s1 RoundStep, h2 uint64, r2 int32, s2 RoundStep) int {
	switch {
	case h1 != h2:
		if h1 < h2 {
			return -1
		}
		return 1
	case r1 != r2:
		if r1 < r2 {
			return -1
		}
		return 1
	case s1 != s2:
		if s1 < s2 {
			return -1
		}
		return 1
	}
	return 0
}

// signProposal signs p unless the guard forbids it. At the very step already
// signed it returns the earlier proposal if it proposes the same thing, and
// nil otherwise; below it, nil. A new signature emits Persist first.
func (s *State) signProposal(p *Proposal) *Proposal {
	g := &s.signer
	switch compareHRS(p.Height, p.Round, StepPropose, g.Height, g.Round, g.Step) {
	case -1:
		return nil
	case 0:
		if lp := g.LastProposal; lp != nil && lp.Height == p.Height && lp.Round == p.Round &&
			lp.BlockID == p.BlockID && lp.ValidRound == p.ValidRound {
			return lp
		}
		return nil
	}
	p.Signature = s.key.Sign(s.chainID, MsgTypeProposal, p.SignBytes())
	if g.Height != p.Height {
		g.Votes = nil
	}
	g.Height, g.Round, g.Step = p.Height, p.Round, StepPropose
	g.LastProposal = p
	s.persist()
	return p
}

// signVote is signProposal for votes: the same statement (type, block id) at
// the step already signed returns the earlier vote, timestamp included.
func (s *State) signVote(v *Vote) *Vote {
	g := &s.signer
	switch compareHRS(v.Height, v.Round, v.Type.step(), g.Height, g.Round, g.Step) {
	case -1:
		return nil
	case 0:
		if lv := g.LastVote; lv != nil && lv.Height == v.Height && lv.Round == v.Round &&
			lv.Type == v.Type && lv.BlockID == v.BlockID {
			return lv
		}
		return nil
	}
	v.Signature = s.key.Sign(s.chainID, v.msgType(), v.SignBytes())
	if g.Height != v.Height {
		g.Votes = nil
	}
	g.Height, g.Round, g.Step = v.Height, v.Round, v.Type.step()
	g.LastVote = v
	g.Votes = append(g.Votes, *v)
	s.persist()
	return v
}

// persist snapshots the lock into the signer state and emits it. Byte
// slices are shared with the state, which never mutates them.
func (s *State) persist() {
	g := &s.signer
	g.LockedRound, g.LockedBlockID, g.LockedValue = s.locked.round, s.locked.id, s.locked.value
	g.ValidRound, g.ValidBlockID, g.ValidValue = s.valid.round, s.valid.id, s.valid.value
	g.prune()
	s.emit(Persist{State: s.SignerState()})
}

// SignerState returns a copy of the signer state (to persist, or inspect).
func (s *State) SignerState() SignerState {
	c := s.signer
	if c.LastProposal != nil {
		p := *c.LastProposal
		c.LastProposal = &p
	}
	if c.LastVote != nil {
		v := *c.LastVote
		c.LastVote = &v
	}
	c.Votes = slices.Clone(c.Votes)
	return c
}

// SplitValues returns a copy of g without its block values (the last
// proposal's, the locked and the valid value) and those values by block
// id, so a driver can store each value once, under its id, instead of in
// every save of the signer state. Written whole, a proposer's state
// carried the block it proposed with each vote it signed until it
// proposed again, and every precommit carried the locked block twice.
// A value whose id already names different bytes stays in the copy.
func (g *SignerState) SplitValues() (SignerState, map[BlockID][]byte) {
	c := *g
	vals := make(map[BlockID][]byte, 1)
	take := func(id BlockID, v []byte) bool {
		if id.IsNil() || len(v) == 0 {
			return false
		}
		if have, ok := vals[id]; ok && !bytes.Equal(have, v) {
			return false
		}
		vals[id] = v
		return true
	}
	if p := c.LastProposal; p != nil && take(p.BlockID, p.Value) {
		cp := *p
		cp.Value = nil
		c.LastProposal = &cp
		c.Apart |= TakenProposal
	}
	if c.LockedRound >= 0 && take(c.LockedBlockID, c.LockedValue) {
		c.LockedValue = nil
		c.Apart |= TakenLocked
	}
	if c.ValidRound >= 0 && take(c.ValidBlockID, c.ValidValue) {
		c.ValidValue = nil
		c.Apart |= TakenValid
	}
	return c, vals
}

// JoinValues puts back the values SplitValues took out (those Apart
// marks), reading each by its id with get.
func (g *SignerState) JoinValues(get func(BlockID) ([]byte, error)) error {
	fill := func(bit uint8, id BlockID, v *[]byte) error {
		if g.Apart&bit == 0 {
			return nil
		}
		b, err := get(id)
		if err != nil {
			return fmt.Errorf("signer state value %s: %w", id, err)
		}
		*v = b
		return nil
	}
	if p := g.LastProposal; p != nil {
		cp := *p
		if err := fill(TakenProposal, cp.BlockID, &cp.Value); err != nil {
			return err
		}
		g.LastProposal = &cp
	} else if g.Apart&TakenProposal != 0 {
		return fmt.Errorf("signer state: a proposal value stored apart, but no proposal")
	}
	if err := fill(TakenLocked, g.LockedBlockID, &g.LockedValue); err != nil {
		return err
	}
	if err := fill(TakenValid, g.ValidBlockID, &g.ValidValue); err != nil {
		return err
	}
	g.Apart = 0
	return nil
}
