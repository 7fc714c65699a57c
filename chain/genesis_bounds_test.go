package chain

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// startsConsensus checks what a node does with a genesis before its first
// block: the state at height 0, the consensus validator sets of heights 1
// and 2 built from it, and the consensus configuration from its timeouts
// (converted as chain/driver does).
func startsConsensus(t *testing.T, g *Genesis) {
	t.Helper()
	st, err := g.State()
	if err != nil {
		t.Fatalf("genesis state: %v", err)
	}
	for h := uint64(1); h <= 2; h++ {
		vals, err := st.ValidatorsAt(h)
		if err != nil {
			t.Fatal(err)
		}
		cv := make([]consensus.Validator, len(vals))
		var sum uint64
		for i, v := range vals {
			cv[i] = consensus.Validator{Address: v.Address, PubKey: v.PubKey, Power: v.Power}
			sum += v.Power
		}
		vs, err := consensus.NewValidatorSet(cv)
		if err != nil {
			t.Fatalf("consensus validator set of height %d: %v", h, err)
		}
		if vs.TotalPower() != sum {
			t.Fatalf("total power %d, want %d", vs.TotalPower(), sum)
		}
	}
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	tm := g.Timeouts
	cfg := consensus.Config{TimeoutPropose: ms(tm.ProposeMs), TimeoutProposeDelta: ms(tm.ProposeDeltaMs),
		TimeoutPrevote: ms(tm.PrevoteMs), TimeoutPrevoteDelta: ms(tm.PrevoteDeltaMs),
		TimeoutPrecommit: ms(tm.PrecommitMs), TimeoutPrecommitDelta: ms(tm.PrecommitDeltaMs), TimeoutCommit: ms(tm.CommitMs)}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// The longest timeout the core can reach (2^16 rounds of delta) is
	// still a positive duration.
	for _, d := range [][2]time.Duration{{cfg.TimeoutPropose, cfg.TimeoutProposeDelta},
		{cfg.TimeoutPrevote, cfg.TimeoutPrevoteDelta}, {cfg.TimeoutPrecommit, cfg.TimeoutPrecommitDelta}} {
		if d[0]+(1<<16)*d[1] <= 0 {
			t.Fatalf("timeout %v + 2^16·%v overflows", d[0], d[1])
		}
	}
}

// maxBlockBytesFor is the largest MaxBlockBytes whose full proposal fits
// the consensus message limit under p's other parameters.
func maxBlockBytesFor(p Params) uint64 {
	p.MaxBlockBytes = 0
	return consensus.MaxMessageBytes - ProposalBytes(p)
}

// The attack: MaxSupply was 2^60, one more than consensus.MaxTotalPower,
// so a genesis that validated, with all its supply bonded, could not
// start (NewValidatorSet refused the set). Now each limit the consensus
// core imposes is a genesis bound: at the bound the genesis validates and
// starts, one past it is refused naming the field.
func TestGenesisAtEachConsensusBoundStartsAndOnePastIsRefused(t *testing.T) {
	if MaxSupply != consensus.MaxTotalPower {
		t.Fatalf("MaxSupply %d, consensus.MaxTotalPower %d", uint64(MaxSupply), uint64(consensus.MaxTotalPower))
	}
	bondAll := func(stakes ...uint64) func(g *Genesis) {
		return func(g *Genesis) {
			g.Accounts = nil
			for i := range g.Validators {
				g.Validators[i].Stake = stakes[i]
			}
		}
	}
	tests := []struct {
		name  string
		mut   func(g *Genesis)
		field string // "" = accepted and starts
	}{
		{"whole supply bonded by two validators", bondAll(MaxSupply-1, 1), ""},
		{"one past the supply, bonded", bondAll(MaxSupply-1, 2), "validators[1].stake"},
		{"whole supply bonded by one validator", func(g *Genesis) {
			g.Accounts, g.Validators = nil, g.Validators[:1]
			g.Validators[0].Stake = MaxSupply
		}, ""},
		{"one past the supply on one validator", func(g *Genesis) {
			g.Accounts, g.Validators = nil, g.Validators[:1]
			g.Validators[0].Stake = MaxSupply + 1
		}, "validators[0].stake"},
		{"supply at the bound, mostly unbonded", func(g *Genesis) {
			g.Accounts = g.Accounts[:1]
			g.Accounts[0].Balance = MaxSupply - 2*10_000
		}, ""},
		{"one past the supply, unbonded", func(g *Genesis) {
			g.Accounts = g.Accounts[:1]
			g.Accounts[0].Balance = MaxSupply + 1
		}, "accounts[0].balance"},
		{"max_validators at the proposal's commit bound", func(g *Genesis) {
			g.Params.MaxValidators = MaxValidatorsForProposals()
			g.Params.MaxBlockBytes = maxBlockBytesFor(g.Params)
		}, ""},
		{"max_validators one past the proposal's commit bound", func(g *Genesis) {
			g.Params.MaxValidators = MaxValidatorsForProposals() + 1
			g.Params.MaxBlockBytes = 1024
		}, "params.max_validators"},
		{"max_validators at the consensus commit limit", func(g *Genesis) {
			g.Params.MaxValidators = consensus.MaxCommitVotes
			g.Params.MaxBlockBytes = 1024
		}, "params.max_validators"},
		{"max_block_bytes at the proposal limit", func(g *Genesis) { g.Params.MaxBlockBytes = maxBlockBytesFor(g.Params) }, ""},
		{"max_block_bytes one past the proposal limit", func(g *Genesis) { g.Params.MaxBlockBytes = maxBlockBytesFor(g.Params) + 1 }, "params.max_block_bytes"},
		{"max_block_bytes of the old default (4 MiB)", func(g *Genesis) { g.Params.MaxBlockBytes = 4 << 20 }, "params.max_block_bytes"},
		{"max_block_txs at the block decoder's limit", func(g *Genesis) {
			g.Params.MaxBlockTxs = 1 << 16
			g.Params.MaxBlockBytes = maxBlockBytesFor(g.Params)
		}, ""},
		{"max_block_txs one past", func(g *Genesis) { g.Params.MaxBlockTxs = 1<<16 + 1 }, "params.max_block_txs"},
		{"timeouts at the bound", func(g *Genesis) {
			g.Timeouts = Timeouts{ProposeMs: MaxTimeoutMs, ProposeDeltaMs: MaxTimeoutMs, PrevoteMs: MaxTimeoutMs,
				PrevoteDeltaMs: MaxTimeoutMs, PrecommitMs: MaxTimeoutMs, PrecommitDeltaMs: MaxTimeoutMs, CommitMs: MaxTimeoutMs}
		}, ""},
		{"propose_ms one past", func(g *Genesis) { g.Timeouts.ProposeMs = MaxTimeoutMs + 1 }, "timeouts.propose_ms"},
		{"prevote_delta_ms one past", func(g *Genesis) { g.Timeouts.PrevoteDeltaMs = MaxTimeoutMs + 1 }, "timeouts.prevote_delta_ms"},
		{"commit_ms one past", func(g *Genesis) { g.Timeouts.CommitMs = MaxTimeoutMs + 1 }, "timeouts.commit_ms"},
		{"a timeout that overflows a time.Duration", func(g *Genesis) { g.Timeouts.PrecommitMs = math.MaxInt64 / 1000 }, "timeouts.precommit_ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := testGenesis(3, 2)
			tc.mut(g)
			err := g.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("genesis at the bound refused: %v", err)
				}
				startsConsensus(t, g)
				return
			}
			var ge *GenesisError
			if !errors.As(err, &ge) || ge.Field != tc.field || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want an error naming %s", err, tc.field)
			}
			if _, err := g.State(); err == nil {
				t.Fatal("State built from a refused genesis")
			}
		})
	}
	if err := testGenesis(3, 2).Validate(); err != nil {
		t.Fatalf("the default parameters do not validate: %v", err)
	}
}

// ProposalBytes is a true upper bound: the largest proposal the
// parameters allow (MaxBlockTxs transactions summing to MaxBlockBytes, a
// commit from MaxValidators validators, every field at its longest)
// encodes within it, and the consensus and block decoders take it.
func TestProposalBytesBoundsTheLargestProposal(t *testing.T) {
	p := DefaultParams()
	p.MaxValidators = consensus.MaxCommitVotes
	p.MaxBlockBytes = maxBlockBytesFor(p)
	const round = math.MaxInt32
	commit := consensus.CommitCertificate{Height: math.MaxUint64, Round: round, BlockID: fill32()}
	for i := range p.MaxValidators {
		var a wallet.Address
		copy(a[:], bytes.Repeat([]byte{0xff}, len(a)))
		a[0], a[1] = byte(i>>8), byte(i)
		commit.Precommits = append(commit.Precommits, consensus.Vote{Type: consensus.Precommit, Height: math.MaxUint64,
			Round: round, BlockID: fill32(), Timestamp: math.MinInt64, Validator: a, Signature: bytes.Repeat([]byte{0xff}, wallet.SigLen)})
	}
	lastCommit := codec.MustMarshal(&commit)
	txs := make([][]byte, p.MaxBlockTxs)
	left := p.MaxBlockBytes
	for i := range txs {
		n := left / (uint64(len(txs)) - uint64(i))
		txs[i] = bytes.Repeat([]byte{0xee}, int(n))
		left -= n
	}
	b := Block{Header: Header{ChainID: strings.Repeat("x", 64), Height: math.MaxUint64, Time: math.MinInt64,
		PrevHash: fill32(), TxsRoot: fill32(), StateRoot: fill32(), ValidatorsHash: fill32(),
		Proposer: wallet.Address(fill20()), LastCommitHash: fill32()}, Txs: txs, LastCommit: lastCommit}
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := consensus.EncodeMessage(consensus.Message{Proposal: &consensus.Proposal{Height: math.MaxUint64, Round: round,
		BlockID: fill32(), Value: raw, ValidRound: round - 1, Proposer: wallet.Address(fill20()), Signature: bytes.Repeat([]byte{0xff}, wallet.SigLen)}})
	if err != nil {
		t.Fatal(err)
	}
	if bound := ProposalBytes(p); uint64(len(msg)) > bound || bound > consensus.MaxMessageBytes {
		t.Fatalf("largest proposal %d bytes, bound %d, consensus limit %d", len(msg), bound, consensus.MaxMessageBytes)
	}
	t.Logf("largest proposal %d bytes, bound %d, limit %d", len(msg), ProposalBytes(p), consensus.MaxMessageBytes)
	if _, err := consensus.DecodeMessage(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := consensus.DecodeCommit(lastCommit); err != nil {
		t.Fatal(err)
	}
}
