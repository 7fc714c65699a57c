package consensus

import (
	"math/rand/v2"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

// The vote book agrees with a naive recount after every vote, with random
// stakes, rounds, ids and equivocations.
func TestVoteBookMatchesNaiveTally(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 2))
	powers := []uint64{5, 1, 1, 3, 2, 7}
	keys, vs := testValidators(t, powers...)
	ids := []BlockID{{}, idOf([]byte("A")), idOf([]byte("B"))}
	type slot struct {
		r int32
		t VoteType
	}
	for trial := range 30 {
		b := newVoteBook(1, vs)
		first := map[slot]map[wallet.Address]bool{}
		perID := map[slot]map[BlockID]map[wallet.Address]bool{}
		reported := map[evidenceKey]bool{}
		for range 60 {
			i := rng.IntN(len(keys))
			s := slot{int32(rng.IntN(3)), VoteType(1 + rng.IntN(2))}
			id := ids[rng.IntN(len(ids))]
			v := signVote(keys[i], s.t, 1, s.r, id, 0)
			a := keys[i].Address()
			_, ev := b.add(v, 5, func(BlockID) bool { return true })
			if first[s] == nil {
				first[s], perID[s] = map[wallet.Address]bool{}, map[BlockID]map[wallet.Address]bool{}
			}
			conflict := first[s][a] && !perID[s][id][a]
			k := evidenceKey{a, s.r, s.t}
			if wantEv := conflict && !reported[k]; wantEv != (ev != nil) {
				t.Fatalf("seed %d trial %d: evidence = %v, want %v", seed, trial, ev != nil, wantEv)
			}
			if conflict {
				reported[k] = true
			}
			first[s][a] = true
			if perID[s][id] == nil {
				perID[s][id] = map[wallet.Address]bool{}
			}
			perID[s][id][a] = true
			sum := func(m map[wallet.Address]bool) (p uint64) {
				for a := range m {
					val, _ := vs.ByAddress(a)
					p += val.Power
				}
				return p
			}
			for r := int32(0); r < 3; r++ {
				voters := map[wallet.Address]bool{}
				for _, typ := range []VoteType{Prevote, Precommit} {
					s := slot{r, typ}
					for a := range first[s] {
						voters[a] = true
					}
					if got, want := b.twoThirdsAny(r, typ), twoThirds(sum(first[s]), vs.TotalPower()); got != want {
						t.Fatalf("seed %d trial %d: twoThirdsAny(%d,%s) = %v, want %v", seed, trial, r, typ, got, want)
					}
					for _, id := range ids {
						if got, want := b.twoThirdsFor(r, typ, id), twoThirds(sum(perID[s][id]), vs.TotalPower()); got != want {
							t.Fatalf("seed %d trial %d: twoThirdsFor(%d,%s,%s) = %v, want %v", seed, trial, r, typ, id, got, want)
						}
					}
				}
				if got, want := b.oneThirdAny(r), oneThird(sum(voters), vs.TotalPower()); got != want {
					t.Fatalf("seed %d trial %d: oneThirdAny(%d) = %v, want %v", seed, trial, r, got, want)
				}
			}
		}
	}
}

// A validator may occupy one round beyond current+1; more are ignored until
// the state's round catches up.
func TestVoteBookFarRoundCap(t *testing.T) {
	keys, vs := testValidators(t, 1, 1, 1, 1)
	b := newVoteBook(1, vs)
	all := func(BlockID) bool { return true }
	for _, tc := range []struct {
		round, current int32
		want           addResult
	}{
		{1, 0, voteAdded},     // next round: always
		{7, 0, voteAdded},     // the one far round
		{7, 0, voteDuplicate}, // same vote again
		{9, 0, voteTooFar},    // a second far round
		{9, 8, voteAdded},     // no longer far once we are at round 8
	} {
		v := signVote(keys[0], Prevote, 1, tc.round, BlockID{}, 0)
		if got, _ := b.add(v, tc.current, all); got != tc.want {
			t.Fatalf("round %d at current %d: %v, want %v", tc.round, tc.current, got, tc.want)
		}
	}
}
