package consensus

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestNewValidatorSetRejects(t *testing.T) {
	keys, _ := testValidators(t, 1, 1)
	v := func(i int, p uint64) Validator {
		return Validator{Address: keys[i].Address(), PubKey: keys[i].Public(), Power: p}
	}
	mismatch := v(0, 1)
	mismatch.PubKey = keys[1].Public()
	for _, tc := range []struct {
		name string
		vals []Validator
	}{
		{"empty", nil},
		{"zero power", []Validator{v(0, 1), v(1, 0)}},
		{"duplicate", []Validator{v(0, 1), v(0, 2)}},
		{"address does not match key", []Validator{mismatch}},
		{"one too large", []Validator{v(0, MaxTotalPower+1)}},
		{"sum too large", []Validator{v(0, MaxTotalPower), v(1, 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewValidatorSet(tc.vals); !errors.Is(err, ErrInvalidValidatorSet) {
				t.Fatalf("err = %v, want ErrInvalidValidatorSet", err)
			}
		})
	}
	if _, err := NewValidatorSet([]Validator{v(0, MaxTotalPower-1), v(1, 1)}); err != nil {
		t.Fatalf("total of exactly MaxTotalPower rejected: %v", err)
	}
}

// Proposer(r) is the round-0 proposer of the set advanced r times, so a
// height's rounds and the next heights rotate through one sequence.
func TestProposerRoundsMatchNext(t *testing.T) {
	_, vs := testValidators(t, 5, 1, 1, 1, 2)
	adv := vs
	for r := int32(0); r < 40; r++ {
		if got, want := vs.Proposer(r).Address, adv.Proposer(0).Address; got != want {
			t.Fatalf("round %d: Proposer = %s, advanced set says %s", r, got, want)
		}
		adv = adv.Next()
	}
}

// Over k·total consecutive turns each validator proposes about k·power
// times: rotation is weighted by stake.
func TestProposerFrequencyFollowsStake(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	for trial := range 20 {
		n := 1 + rng.IntN(7)
		powers := make([]uint64, n)
		for i := range powers {
			powers[i] = 1 + rng.Uint64N(20)
		}
		keys, vs := testValidators(t, powers...)
		const k = 20
		count := map[int]uint64{}
		idx := map[[20]byte]int{}
		for i, key := range keys {
			idx[key.Address()] = i
		}
		for range k * vs.TotalPower() {
			count[idx[vs.Proposer(0).Address]]++
			vs = vs.Next()
		}
		for i, p := range powers {
			want := k * p
			if d := int64(count[i]) - int64(want); d < -int64(n) || d > int64(n) {
				t.Fatalf("seed %d trial %d powers %v: validator %d proposed %d times, want %d±%d", seed, trial, powers, i, count[i], want, n)
			}
		}
	}
}

func TestValidatorSetDeterministic(t *testing.T) {
	keys, vs := testValidators(t, 3, 1, 4, 1, 5)
	vals := vs.Validators()
	rev := make([]Validator, len(vals))
	for i := range vals {
		rev[len(vals)-1-i] = vals[i]
	}
	vs2, err := NewValidatorSet(rev)
	if err != nil {
		t.Fatal(err)
	}
	if vs.Hash() != vs2.Hash() {
		t.Fatal("hash depends on input order")
	}
	for r := int32(0); r < 30; r++ {
		if vs.Proposer(r) != vs2.Proposer(r) {
			t.Fatalf("round %d: proposer depends on input order", r)
		}
	}
	vals[0].Power++
	vs3, _ := NewValidatorSet(vals)
	if vs3.Hash() == vs.Hash() {
		t.Fatal("hash ignores power")
	}
	if v, ok := vs.ByAddress(keys[2].Address()); !ok || v.Power != 4 {
		t.Fatalf("ByAddress = %+v %v", v, ok)
	}
	if vs.TotalPower() != 14 || vs.Size() != 5 {
		t.Fatalf("total %d size %d", vs.TotalPower(), vs.Size())
	}
}

// Advance(n) is n calls of Next: same priorities, same proposers.
func TestAdvanceIsRepeatedNext(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 2))
	for trial := range 20 {
		powers := make([]uint64, 1+rng.IntN(7))
		for i := range powers {
			powers[i] = 1 + rng.Uint64N(1000)
		}
		_, vs := testValidators(t, powers...)
		n := rng.Uint64N(300)
		step := vs
		for range n {
			step = step.Next()
		}
		adv := vs.Advance(n)
		if !slices.Equal(adv.prio, step.prio) || adv.proposer != step.proposer {
			t.Fatalf("seed %d trial %d: Advance(%d) gives %v (proposer %d), Next gives %v (%d)", seed, trial, n, adv.prio, adv.proposer, step.prio, step.proposer)
		}
	}
}

// BenchmarkAdvance: what a restart costs per height since the validator
// set last changed (the driver advances fresh priorities that far).
func BenchmarkAdvance(b *testing.B) {
	for _, n := range []int{4, 100} {
		b.Run(fmt.Sprintf("validators=%d", n), func(b *testing.B) {
			powers := make([]uint64, n)
			for i := range powers {
				powers[i] = uint64(10 + i)
			}
			_, vs := testValidators(b, powers...)
			b.ResetTimer()
			vs.Advance(uint64(b.N))
		})
	}
}

// TestProposerWithinMatchesProposer: ProposerWithin(a, n) is true exactly
// when a is Proposer(r) for some r in [0, n], with unequal stakes.
func TestProposerWithinMatchesProposer(t *testing.T) {
	keys, vs := testValidators(t, 5, 1, 1, 3, 2, 1)
	vs = vs.Advance(7)
	for upto := int32(0); upto < 30; upto++ {
		for _, k := range keys {
			want := false
			for r := int32(0); r <= upto; r++ {
				if vs.Proposer(r).Address == k.Address() {
					want = true
				}
			}
			if got := vs.ProposerWithin(k.Address(), upto); got != want {
				t.Fatalf("ProposerWithin(%s, %d) = %v, want %v", k.Address(), upto, got, want)
			}
		}
	}
}
