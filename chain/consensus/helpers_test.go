package consensus

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/bourse-net/bourse/wallet"
)

const testChain = "bourse-test"

// testKey is the deterministic key number i.
func testKey(tb testing.TB, i int) wallet.PrivateKey {
	tb.Helper()
	seed := sha256.Sum256([]byte{byte(i), byte(i >> 8), 'k'})
	k, err := wallet.KeyFromSeed(seed[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// testValidators returns keys and a set with the given powers; keys[i] has powers[i].
func testValidators(tb testing.TB, powers ...uint64) ([]wallet.PrivateKey, *ValidatorSet) {
	tb.Helper()
	keys := make([]wallet.PrivateKey, len(powers))
	vals := make([]Validator, len(powers))
	for i, p := range powers {
		keys[i] = testKey(tb, i)
		vals[i] = Validator{Address: keys[i].Address(), PubKey: keys[i].Public(), Power: p}
	}
	vs, err := NewValidatorSet(vals)
	if err != nil {
		tb.Fatal(err)
	}
	return keys, vs
}

func idOf(value []byte) BlockID { return BlockID(sha256.Sum256(value)) }

func signVote(k wallet.PrivateKey, t VoteType, h uint64, r int32, id BlockID, ts int64) *Vote {
	v := &Vote{Type: t, Height: h, Round: r, BlockID: id, Timestamp: ts, Validator: k.Address()}
	v.Signature = k.Sign(testChain, v.msgType(), v.SignBytes())
	return v
}

func signProposal(k wallet.PrivateKey, h uint64, r int32, value []byte, vr int32) *Proposal {
	p := &Proposal{Height: h, Round: r, BlockID: idOf(value), Value: value, ValidRound: vr, Proposer: k.Address()}
	p.Signature = k.Sign(testChain, MsgTypeProposal, p.SignBytes())
	return p
}

// fastConfig is the simulation's timeouts.
func fastConfig() Config {
	return Config{
		TimeoutPropose: 40 * time.Millisecond, TimeoutProposeDelta: 10 * time.Millisecond,
		TimeoutPrevote: 20 * time.Millisecond, TimeoutPrevoteDelta: 10 * time.Millisecond,
		TimeoutPrecommit: 20 * time.Millisecond, TimeoutPrecommitDelta: 10 * time.Millisecond,
		TimeoutCommit: 10 * time.Millisecond,
	}
}
