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

// voteSet is the votes of one type in one round. Each validator's first
// vote counts toward "any" tallies; for a single block id, every validator
// that signed a vote for it counts, even one that also signed for another id
// (the paper counts ⟨PREVOTE, h, r, id(v)⟩ messages per value, lines 28 and
// 36). Without that, an equivocator's split votes could hide from correct
// processes the polka that justifies a correct process's lock, and the
// height would never end.
type voteSet struct {
	first map[wallet.Address]*Vote
	byID  map[BlockID]map[wallet.Address]*Vote
	power map[BlockID]uint64 // stake per block id (the nil id included)
	sum   uint64             // stake of all voters, each counted once
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

func newVoteSet() voteSet {
	return voteSet{first: map[wallet.Address]*Vote{}, byID: map[BlockID]map[wallet.Address]*Vote{}, power: map[BlockID]uint64{}}
}

func (b *voteBook) round(r int32) *roundVotes {
	rv := b.rounds[r]
	if rv == nil {
		rv = &roundVotes{prevotes: newVoteSet(), precommits: newVoteSet(), voters: map[wallet.Address]struct{}{}}
		b.rounds[r] = rv
	}
	return rv
}

// lookup returns the vote held from v's validator for v's round, type and
// block id, if any.
func (b *voteBook) lookup(v *Vote) *Vote {
	rv := b.rounds[v.Round]
	if rv == nil {
		return nil
	}
	return rv.set(v.Type).byID[v.BlockID][v.Validator]
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
// beyond, which bounds memory under a flood of future-round votes. A vote
// that conflicts with the validator's first one yields evidence (once per
// validator, round and type) and is counted for its block id only if admit
// says the id matters (nil, or the id of a known proposal), which bounds
// what an equivocator can make us store.
func (b *voteBook) add(v *Vote, current int32, admit func(BlockID) bool) (res addResult, ev *DuplicateVoteEvidence) {
	rv := b.rounds[v.Round]
	if rv != nil {
		s := rv.set(v.Type)
		if s.byID[v.BlockID][v.Validator] != nil {
			return voteDuplicate, nil // same statement (a re-signed timestamp is not a conflict)
		}
		if old := s.first[v.Validator]; old != nil {
			k := evidenceKey{v.Validator, v.Round, v.Type}
			if _, done := b.reported[k]; !done {
				b.reported[k] = struct{}{}
				e := NewDuplicateVoteEvidence(*old, *v)
				ev = &e
			}
			if admit(v.BlockID) {
				b.count(s, v)
			}
			return voteConflict, ev
		}
	}
	if int64(v.Round) > int64(current)+1 {
		if f, ok := b.far[v.Validator]; ok && f != v.Round && int64(f) > int64(current)+1 {
			return voteTooFar, nil
		}
		b.far[v.Validator] = v.Round
	}
	rv = b.round(v.Round)
	s := rv.set(v.Type)
	vc := b.count(s, v)
	s.first[v.Validator] = vc
	val, _ := b.vs.ByAddress(v.Validator)
	s.sum += val.Power
	if _, ok := rv.voters[v.Validator]; !ok {
		rv.voters[v.Validator] = struct{}{}
		rv.votersPower += val.Power
	}
	return voteAdded, nil
}

// inert reports whether adding v (signature still unchecked) could change
// nothing: it repeats a held vote, or it conflicts with one whose evidence
// is already out and is not for an admitted id, or it is too far ahead. The
// caller skips the signature check for such votes.
func (b *voteBook) inert(v *Vote, current int32, admit func(BlockID) bool) bool {
	if rv := b.rounds[v.Round]; rv != nil {
		s := rv.set(v.Type)
		if old := s.byID[v.BlockID][v.Validator]; old != nil {
			return old.sameContent(v)
		}
		if s.first[v.Validator] != nil {
			_, done := b.reported[evidenceKey{v.Validator, v.Round, v.Type}]
			return done && !admit(v.BlockID)
		}
	}
	if int64(v.Round) > int64(current)+1 {
		f, ok := b.far[v.Validator]
		return ok && f != v.Round && int64(f) > int64(current)+1
	}
	return false
}

// count adds v to the tally of its block id.
func (b *voteBook) count(s *voteSet, v *Vote) *Vote {
	val, _ := b.vs.ByAddress(v.Validator)
	vc := *v
	m := s.byID[v.BlockID]
	if m == nil {
		m = map[wallet.Address]*Vote{}
		s.byID[v.BlockID] = m
	}
	m[v.Validator] = &vc
	s.power[v.BlockID] += val.Power
	return &vc
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
	var best BlockID
	found := false
	for id, p := range rv.set(t).power {
		// With less than 1/3 faulty power at most one id passes; the
		// smallest wins so the answer never depends on map order.
		if twoThirds(p, b.vs.TotalPower()) && (!found || bytes.Compare(id[:], best[:]) < 0) {
			best, found = id, true
		}
	}
	return best, found
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
	for _, v := range rv.set(t).byID[id] {
		out = append(out, *v)
	}
	sortVotes(out)
	return out
}

// all returns every held vote, sorted by round, type and validator.
func (b *voteBook) all() []Vote {
	var out []Vote
	for _, rv := range b.rounds {
		for _, s := range []*voteSet{&rv.prevotes, &rv.precommits} {
			for _, m := range s.byID {
				for _, v := range m {
					out = append(out, *v)
				}
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
		if c := bytes.Compare(a.Validator[:], b.Validator[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.BlockID[:], b.BlockID[:])
	})
}
