package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// Validator is one member of a validator set: an address, the key that signs
// its votes and its voting power (stake).
type Validator struct {
	Address wallet.Address   `cbor:"1,keyasint"`
	PubKey  wallet.PublicKey `cbor:"2,keyasint"`
	Power   uint64           `cbor:"3,keyasint"`
}

// MaxTotalPower bounds the sum of voting power of a set, so that priority
// arithmetic (which works in int64 with headroom) never overflows. Same bound
// as CometBFT.
const MaxTotalPower = math.MaxInt64 / 8

// ErrInvalidValidatorSet is wrapped by every NewValidatorSet error.
var ErrInvalidValidatorSet = errors.New("invalid validator set")

// ValidatorSet is an immutable validator set together with the proposer
// priorities of one height. Proposer(round) is deterministic from the set;
// Next() returns the set of the following height (priorities advanced once),
// the rotation of CometBFT: every validator gains its power in priority each
// step, the highest priority proposes and pays the total power.
type ValidatorSet struct {
	vals     []Validator // sorted by address
	prio     []int64     // proposer priority, parallel to vals
	proposer int         // index of the round-0 proposer of this height
	index    map[wallet.Address]int
	total    uint64
}

// NewValidatorSet validates vals (non-empty, no duplicate address, address
// matches key, power > 0, total ≤ MaxTotalPower) and returns the set with
// fresh priorities, ready for its first height.
func NewValidatorSet(vals []Validator) (*ValidatorSet, error) {
	if len(vals) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidValidatorSet)
	}
	vs := &ValidatorSet{
		vals:  slices.Clone(vals),
		prio:  make([]int64, len(vals)),
		index: make(map[wallet.Address]int, len(vals)),
	}
	slices.SortFunc(vs.vals, func(a, b Validator) int { return bytes.Compare(a.Address[:], b.Address[:]) })
	for i, v := range vs.vals {
		if v.Power == 0 {
			return nil, fmt.Errorf("%w: validator %s has zero power", ErrInvalidValidatorSet, v.Address)
		}
		if v.PubKey.Address() != v.Address {
			return nil, fmt.Errorf("%w: validator %s: address does not match public key", ErrInvalidValidatorSet, v.Address)
		}
		if _, dup := vs.index[v.Address]; dup {
			return nil, fmt.Errorf("%w: duplicate validator %s", ErrInvalidValidatorSet, v.Address)
		}
		if v.Power > MaxTotalPower || vs.total+v.Power > MaxTotalPower {
			return nil, fmt.Errorf("%w: total power exceeds %d", ErrInvalidValidatorSet, uint64(MaxTotalPower))
		}
		vs.index[v.Address] = i
		vs.total += v.Power
	}
	vs.increment(1)
	return vs, nil
}

// Size is the number of validators.
func (vs *ValidatorSet) Size() int { return len(vs.vals) }

// TotalPower is the sum of all voting power.
func (vs *ValidatorSet) TotalPower() uint64 { return vs.total }

// Validators returns a copy of the validators, sorted by address.
func (vs *ValidatorSet) Validators() []Validator { return slices.Clone(vs.vals) }

// Priorities returns a copy of the proposer priorities, parallel to
// Validators.
func (vs *ValidatorSet) Priorities() []int64 { return slices.Clone(vs.prio) }

// ByAddress looks a validator up.
func (vs *ValidatorSet) ByAddress(a wallet.Address) (Validator, bool) {
	i, ok := vs.index[a]
	if !ok {
		return Validator{}, false
	}
	return vs.vals[i], true
}

// Hash is the sha256 of the canonical CBOR of the validators (address, key,
// power; sorted by address). Priorities are not part of it.
func (vs *ValidatorSet) Hash() [32]byte {
	h, err := codec.Hash(vs.vals)
	if err != nil {
		panic(fmt.Sprintf("consensus: hash validator set: %v", err)) // plain struct: cannot fail
	}
	return h
}

// Proposer is the proposer of the given round at this set's height: round 0
// is the set's current proposer, round r advances a copy of the priorities
// r more times. Negative rounds are treated as 0.
func (vs *ValidatorSet) Proposer(round int32) Validator {
	if round <= 0 {
		return vs.vals[vs.proposer]
	}
	c := vs.copy()
	c.increment(int(round))
	return c.vals[c.proposer]
}

// Next returns the set for the next height: same validators, priorities
// advanced by one. Validator-set changes are made by the driver with
// NewValidatorSet; this core carries no update logic.
func (vs *ValidatorSet) Next() *ValidatorSet {
	c := vs.copy()
	c.increment(1)
	return c
}

// Advance returns the set n heights on: the same as n calls of Next,
// without a copy per height.
func (vs *ValidatorSet) Advance(n uint64) *ValidatorSet {
	c := vs.copy()
	for range n {
		c.increment(1)
	}
	return c
}

func (vs *ValidatorSet) copy() *ValidatorSet {
	c := *vs
	c.prio = slices.Clone(vs.prio)
	return &c // vals and index are never mutated after construction
}

// increment runs the CometBFT priority step n times: rescale the spread of
// priorities to at most 2·total, centre them on zero, then per step add each
// validator's power and charge the winner the total.
func (vs *ValidatorSet) increment(n int) {
	total := int64(vs.total)
	// rescale
	lo, hi := vs.prio[0], vs.prio[0]
	for _, p := range vs.prio {
		lo, hi = min(lo, p), max(hi, p)
	}
	if window := 2 * total; hi-lo > window {
		ratio := (hi - lo + window - 1) / window
		for i := range vs.prio {
			vs.prio[i] /= ratio
		}
	}
	// centre
	var sum int64
	for _, p := range vs.prio {
		sum += p // |p| ≤ 2·total after rescale, n ≤ 2^31 validators: no overflow
	}
	avg := sum / int64(len(vs.prio))
	for i := range vs.prio {
		vs.prio[i] -= avg
	}
	for range n {
		vs.stepOnce(total)
	}
}

// stepOnce is one priority step of increment.
func (vs *ValidatorSet) stepOnce(total int64) {
	best := 0
	for i, v := range vs.vals {
		vs.prio[i] += int64(v.Power)
		if vs.prio[i] > vs.prio[best] {
			best = i // ties go to the lowest address (vals are sorted)
		}
	}
	vs.prio[best] -= total
	vs.proposer = best
}

// ProposerWithin reports whether addr is Proposer(r) for some round r in
// [0, upto]: the test a re-proposed value's block proposer must pass (the
// value was first proposed in a round no later than its valid round).
func (vs *ValidatorSet) ProposerWithin(addr wallet.Address, upto int32) bool {
	if vs.vals[vs.proposer].Address == addr {
		return true
	}
	if upto <= 0 {
		return false
	}
	c := vs.copy()
	c.increment(1) // the same rescale and first step as Proposer(r) takes
	for r := int32(1); ; r++ {
		if c.vals[c.proposer].Address == addr {
			return true
		}
		if r == upto {
			return false
		}
		c.stepOnce(int64(c.total))
	}
}
