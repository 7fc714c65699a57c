package chain

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// Attack: the genesis allowed up to consensus.MaxCommitVotes (10,000)
// validators, but every proposal carries the last block's commit and must
// fit one gossip message (MaxProposalBytes, under 1 MiB). On a chain with
// a large MaxValidators, sybil accounts bonding one unit each fill the
// active set and all precommit; the commit of ~5,600 of them no longer
// fits a proposal, no proposer can propose the next block and the chain
// halts. Now MaxValidators is bounded so that the commit of a full set
// takes at most half of a proposal, leaving the rest for transactions: at
// the bound the genesis validates and the largest commit fits, one past it
// is refused naming the field.
func TestSybilsFillingTheValidatorSetCannotOutgrowAProposal(t *testing.T) {
	g := testGenesis(4, 4)
	g.Params.MaxValidators = consensus.MaxCommitVotes
	g.Params.MaxBlockBytes = 1024 // the full proposal fits consensus.MaxMessageBytes
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "params.max_validators") {
		t.Fatalf("max_validators %d: %v; want refused, a full set's commit cannot travel in a proposal", g.Params.MaxValidators, err)
	}
	bound := MaxValidatorsForProposals()
	if bound != 3209 {
		t.Fatalf("MaxValidatorsForProposals() = %d; chain/RATIONALE.md and Params.MaxValidators say 3,209", bound)
	}
	g.Params.MaxValidators = bound
	if err := g.Validate(); err != nil {
		t.Fatalf("max_validators at the bound %d: %v", bound, err)
	}
	g.Params.MaxValidators = bound + 1
	if err := g.Validate(); err == nil || !strings.Contains(err.Error(), "params.max_validators") {
		t.Fatalf("max_validators one past the bound %d: %v", bound+1, err)
	}
	// The largest commit of a full set, every field at its longest, in an
	// otherwise empty block and proposal: at most half a proposal.
	commit := consensus.CommitCertificate{Height: math.MaxUint64, Round: math.MaxInt32, BlockID: fill32()}
	for i := range bound {
		var a wallet.Address
		copy(a[:], bytes.Repeat([]byte{0xff}, len(a)))
		a[0], a[1] = byte(i>>8), byte(i)
		commit.Precommits = append(commit.Precommits, consensus.Vote{Type: consensus.Precommit, Height: math.MaxUint64,
			Round: math.MaxInt32, BlockID: fill32(), Timestamp: math.MinInt64, Validator: a, Signature: bytes.Repeat([]byte{0xff}, wallet.SigLen)})
	}
	b := Block{Header: Header{ChainID: strings.Repeat("x", 64), Height: math.MaxUint64, Time: math.MinInt64,
		PrevHash: fill32(), TxsRoot: fill32(), StateRoot: fill32(), ValidatorsHash: fill32(),
		Proposer: wallet.Address(fill20()), LastCommitHash: fill32()}, LastCommit: codec.MustMarshal(&commit)}
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := consensus.EncodeMessage(consensus.Message{Proposal: &consensus.Proposal{Height: math.MaxUint64, Round: math.MaxInt32,
		BlockID: fill32(), Value: raw, ValidRound: math.MaxInt32 - 1, Proposer: wallet.Address(fill20()), Signature: bytes.Repeat([]byte{0xff}, wallet.SigLen)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(msg) > MaxProposalBytes/2 {
		t.Fatalf("an empty block with the commit of %d validators is a %d-byte proposal, over half of %d", bound, len(msg), MaxProposalBytes)
	}
	t.Logf("max_validators bound %d: empty proposal with a full commit %d bytes of %d", bound, len(msg), MaxProposalBytes)
}
