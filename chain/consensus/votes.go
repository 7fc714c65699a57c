package consensus

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/bourse-net/bourse/wallet"
)

// Vote bookkeeping of one height: the first vote of each validator per
// round and type, tallied by stake, with threshold queries and equivocation
// detection. Signatures are checked by the caller before add.

// voteSet is the votes of one type in one round.
type voteSet struct {
	votes map[wallet.Address]*Vote
	power map[BlockID]uint64 // stake per block id (the nil id included)
	sum   uint64             // stake of all voters
}

// roundVotes is the votes of one round.
type roundVotes struct {
	prevotes, precommits voteSet
	voters               map[wallet.Address]struct{} // any type: for the f+1 rule
	votersPower          uint64
}

func (r *roundVotes) set(t VoteType) *voteSet {
	if t == Prevote {
		return &r.prevotes
	}
	return &r.precommits
}

type evidenceKey struct {
	val   wallet.Address
	round int32
	typ   VoteType
}

// voteBook holds every accepted vote of one height.
type voteBook struct {
	height   uint64
	vs       *ValidatorSet
	rounds   map[int32]*roundVotes
	far      map[wallet.Address]int32 // the one round beyond current+1 a validator may occupy
	reported map[evidenceKey]struct{}
}

func newVoteBook(height uint64, vs *ValidatorSet) *voteBook {
	return &voteBook{
		height:   height,
		vs:       vs,
		rounds:   make(map[int32]*roundVotes),
		far:      make(map[wallet.Address]int32),
		reported: make(map[evidenceKey]struct{}),
	}
}

func (b *voteBook) round(r int32) *roundVotes {
	rv := b.rounds[r]
	if rv == nil {
		rv = &roundVotes{
			prevotes:   voteSet{votes: map[wallet.Address]*Vote{}, power: map[BlockID]uint64{}},
			precommits: voteSet{votes: map[wallet.Address]*Vote{}, power: map[BlockID]uint64{}},
			voters:     map[wallet.Address]struct{}{},
		}
		b.rounds[r] = rv
	}
	return rv
}

// existing returns the vote already held for v's validator, round and type.
func (b *voteBook) existing(v *Vote) *Vote {
	rv := b.rounds[v.Round]
	if rv == nil {
		return nil
	}
	return rv.set(v.Type).votes[v.Validator]
}

type addResult int

const (
	voteAdded     addResult = iota
	voteDuplicate           // the same vote again
	voteConflict            // a different vote by the same validator: equivocation
	voteTooFar              // beyond the one far-future round the validator may hold
)

// add records a verified vote of this height. current is the state's round:
// a validator may hold votes in rounds up to current+1 and in one round
// beyond, which bounds memory under a flood of future-round votes. For a
// conflict, ev is evidence the first time this (validator, round, type)
// conflicts and nil afterwards.
func (b *voteBook) add(v *Vote, current int32) (res addResult, ev *DuplicateVoteEvidence) {
	if old := b.existing(v); old != nil {
		if old.BlockID == v.BlockID {
			return voteDuplicate, nil // same statement (a re-signed timestamp is not a conflict)
		}
		k := evidenceKey{v.Validator, v.Round, v.Type}
		if _, done := b.reported[k]; done {
			return voteConflict, nil
		}
		b.reported[k] = struct{}{}
		e := NewDuplicateVoteEvidence(*old, *v)
		return voteConflict, &e
	}
	if v.Round > current+1 {
		if f, ok := b.far[v.Validator]; ok && f != v.Round && f > current+1 {
			return voteTooFar, nil
		}
		b.far[v.Validator] = v.Round
	}
	val, _ := b.vs.ByAddress(v.Validator)
	rv := b.round(v.Round)
	s := rv.set(v.Type)
	vc := *v
	s.votes[v.Validator] = &vc
	s.power[v.BlockID] += val.Power
	s.sum += val.Power
	if _, ok := rv.voters[v.Validator]; !ok {
		rv.voters[v.Validator] = struct{}{}
		rv.votersPower += val.Power
	}
	return voteAdded, nil
}

// twoThirdsAny reports votes of type t in round r from more than 2/3 of the power.
func (b *voteBook) twoThirdsAny(r int32, t VoteType) bool {
	rv := b.rounds[r]
	return rv != nil && twoThirds(rv.set(t).sum, b.vs.TotalPower())
}

// twoThirdsFor reports votes of type t in round r for id (nil included) from
// more than 2/3 of the power.
func (b *voteBook) twoThirdsFor(r int32, t VoteType, id BlockID) bool {
	rv := b.rounds[r]
	return rv != nil && twoThirds(rv.set(t).power[id], b.vs.TotalPower())
}

// twoThirdsMajority returns the block id (possibly nil) that more than 2/3
// of the power voted for with type t in round r, if any.
func (b *voteBook) twoThirdsMajority(r int32, t VoteType) (BlockID, bool) {
	rv := b.rounds[r]
	if rv == nil {
		return BlockID{}, false
	}
	for id, p := range rv.set(t).power {
		if twoThirds(p, b.vs.TotalPower()) {
			return id, true // at most one id can pass 2/3
		}
	}
	return BlockID{}, false
}

// oneThirdAny reports messages in round r from validators holding more than
// 1/3 of the power (the paper's f+1).
func (b *voteBook) oneThirdAny(r int32) bool {
	rv := b.rounds[r]
	return rv != nil && oneThird(rv.votersPower, b.vs.TotalPower())
}

// sortedRounds lists the rounds holding votes, ascending.
func (b *voteBook) sortedRounds() []int32 {
	rs := make([]int32, 0, len(b.rounds))
	for r := range b.rounds {
		rs = append(rs, r)
	}
	slices.Sort(rs)
	return rs
}

// votesFor returns the votes of type t in round r for id, sorted by validator.
func (b *voteBook) votesFor(r int32, t VoteType, id BlockID) []Vote {
	rv := b.rounds[r]
	if rv == nil {
		return nil
	}
	var out []Vote
	for _, v := range rv.set(t).votes {
		if v.BlockID == id {
			out = append(out, *v)
		}
	}
	sortVotes(out)
	return out
}

// all returns every held vote, sorted by round, type and validator.
func (b *voteBook) all() []Vote {
	var out []Vote
	for _, rv := range b.rounds {
		for _, s := range []*voteSet{&rv.prevotes, &rv.precommits} {
			for _, v := range s.votes {
				out = append(out, *v)
			}
		}
	}
	sortVotes(out)
	return out
}

func sortVotes(vs []Vote) {
	slices.SortFunc(vs, func(a, b Vote) int {
		if c := cmp.Compare(a.Round, b.Round); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return bytes.Compare(a.Validator[:], b.Validator[:])
	})
}
