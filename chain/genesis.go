package chain

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// MaxSupply bounds the total minted at genesis: it is the consensus core's
// bound on a validator set's total power (consensus.MaxTotalPower,
// math.MaxInt64/8 = 2^60-1), so that a chain whose whole supply is bonded
// still has a valid validator set. Stake only comes from the supply, so
// no later set can exceed it either.
const MaxSupply = consensus.MaxTotalPower

// MaxTimeoutMs bounds every consensus timeout and per-round delta of the
// genesis (one hour). The core grows a timeout as base + round·delta for
// rounds up to 2^16; within this bound that stays far below what a
// time.Duration holds, so no timeout can overflow into a negative one.
const MaxTimeoutMs = 60 * 60 * 1000

// MaxIdleMs bounds Timeouts.IdleMs: a quiet chain makes a block at least
// once a minute.
const MaxIdleMs = 60 * 1000

// MaxProposalBytes bounds one proposal on the wire: the encoded consensus
// message with its block (header, last commit, every transaction). It is
// below the gossip publish limit (p2p max_message_size, 1 MiB by default),
// so a proposal always travels by gossip; the driver builds and accepts
// nothing larger.
const MaxProposalBytes = 1<<20 - 64<<10

// MaxValidatorsForProposals is the largest MaxValidators a genesis may
// set: the commit of that many validators (every proposal carries the
// last block's), in an otherwise empty block, takes at most half of
// MaxProposalBytes, so the active set, which sybil accounts can fill with
// one unit of stake each, can never make the next block unproposable and
// half of every proposal stays for transactions.
func MaxValidatorsForProposals() uint32 {
	room := uint64(MaxProposalBytes/2) - proposalEnvelopeBytes - blockEnvelopeBytes - commitEnvelopeBytes
	return uint32(min(room/commitVoteBytes, consensus.MaxCommitVotes))
}

// txFraming is the most CBOR framing one transaction adds in a block: the
// byte-string header of a transaction of up to MaxTxBytes.
const txFraming = 5

// worst-case encodings that ProposalBytes adds up, computed once.
var (
	// A Message holding a Proposal with an empty value, plus the largest
	// byte-string header its value can need.
	proposalEnvelopeBytes = uint64(len(codec.MustMarshal(consensus.Message{Proposal: &consensus.Proposal{
		Height: math.MaxUint64, Round: math.MinInt32, BlockID: fill32(), ValidRound: math.MinInt32,
		Proposer: wallet.Address(fill20()), Signature: make([]byte, wallet.SigLen)}}))) + 9
	// A Block with no transactions and no commit, its header as long as
	// Validate allows, plus the array and byte-string headers those two
	// fields can need.
	blockEnvelopeBytes = uint64(len(codec.MustMarshal(&Block{Header: Header{ChainID: strings.Repeat("x", 64),
		Height: math.MaxUint64, Time: math.MinInt64, PrevHash: fill32(), TxsRoot: fill32(), StateRoot: fill32(),
		ValidatorsHash: fill32(), Proposer: wallet.Address(fill20()), LastCommitHash: fill32()}}))) + 2*9
	// A commit certificate with no votes, plus its array header.
	commitEnvelopeBytes = uint64(len(codec.MustMarshal(&consensus.CommitCertificate{Height: math.MaxUint64,
		Round: math.MinInt32, BlockID: fill32()}))) + 9
	// One precommit of a commit, every field at its longest.
	commitVoteBytes = uint64(len(codec.MustMarshal(&consensus.Vote{Type: consensus.Precommit, Height: math.MaxUint64,
		Round: math.MinInt32, BlockID: fill32(), Timestamp: math.MinInt64, Validator: wallet.Address(fill20()),
		Signature: make([]byte, wallet.SigLen)})))
)

func fill32() (b [32]byte) {
	for i := range b {
		b[i] = 0xff
	}
	return b
}

func fill20() (b [20]byte) {
	for i := range b {
		b[i] = 0xff
	}
	return b
}

// ProposalBytes is an upper bound of the consensus message that proposes
// a block under p: the proposal's envelope, the block's header, MaxBlockTxs
// framed transactions summing to MaxBlockBytes, and the previous block's
// commit with a precommit from each of MaxValidators validators.
// Validate requires it to fit consensus.MaxMessageBytes, or a full block
// could never be proposed (nor a large validator set commit one).
func ProposalBytes(p Params) uint64 {
	return proposalEnvelopeBytes + blockEnvelopeBytes + satMulU(p.MaxBlockTxs, txFraming) +
		min(p.MaxBlockBytes, 1<<62) + commitEnvelopeBytes + satMulU(uint64(p.MaxValidators), commitVoteBytes)
}

func satMulU(a, b uint64) uint64 {
	if a != 0 && b > (1<<62)/a {
		return 1 << 62
	}
	return a * b
}

// Params are fixed at genesis and stored in the state.
type Params struct {
	ChainID string `cbor:"1,keyasint" json:"-"`
	// MinFee is the smallest fee a transaction may carry. Default 1.
	MinFee uint64 `cbor:"2,keyasint" json:"min_fee"`
	// UnbondingBlocks is the evidence window: evidence of a double vote at
	// height h is accepted up to height h+UnbondingBlocks, and unbonded
	// stake returns to the balance UnbondingBlocks+2 blocks after the
	// unbond, slashable until then. Default 1,000,000 (chain/RATIONALE.md
	// says why).
	UnbondingBlocks uint64 `cbor:"3,keyasint" json:"unbonding_blocks"`
	// SlashBps is the fraction of a double-signing validator's stake
	// (bonded and unbonding) burned, in basis points. Default 500 (5%).
	SlashBps uint32 `cbor:"4,keyasint" json:"slash_bps"`
	// MinProviderCollateral is the collateral a provider must hold before it
	// can be matched. Default 1000.
	MinProviderCollateral uint64 `cbor:"5,keyasint" json:"min_provider_collateral"`
	// TimeoutSlashBps is the fraction of a provider's collateral burned when
	// a match times out, in basis points. Default 1000 (10%).
	TimeoutSlashBps uint32 `cbor:"6,keyasint" json:"timeout_slash_bps"`
	// MaxBlockBytes bounds the summed size of a block's transactions. Default
	// 3 MiB. Validate requires a full block's proposal (ProposalBytes) to
	// fit consensus.MaxMessageBytes (4 MiB).
	MaxBlockBytes uint64 `cbor:"7,keyasint" json:"max_block_bytes"`
	// MaxBlockTxs bounds the number of transactions in a block. Default 20000.
	MaxBlockTxs uint64 `cbor:"8,keyasint" json:"max_block_txs"`
	// MaxValidators is the size of the active set (highest stake), at most
	// MaxValidatorsForProposals (3,209). Default 100.
	MaxValidators uint32 `cbor:"9,keyasint" json:"max_validators"`
	// ResultGraceMs is the result grace period: a match times out at the
	// first block at or after matchedAt + the bid's timeout + ResultGraceMs
	// (market.Match.ResultDeadline). In [MinResultGraceMs,
	// MaxResultGraceMs]. Default market.DefaultResultGraceMs (60000); a
	// genesis file that omits it gets the default.
	ResultGraceMs uint64 `cbor:"10,keyasint" json:"result_grace_ms"`
	// UnavailableFeeBps is the fraction of a job's escrow burned when its
	// provider declares the payload unavailable (PayloadUnavailable): what
	// withholding a payload costs the client. In [0, 10000]. Default 100
	// (1%); a genesis file that omits it gets the default.
	UnavailableFeeBps uint32 `cbor:"11,keyasint,omitempty" json:"unavailable_fee_bps"`
	// ProviderExitDelayMs is how long a deregistered provider waits
	// before it may withdraw its collateral, once its open matches have
	// settled: the window in which what it did for its last jobs can still
	// be held against it. In [0, MaxProviderExitDelayMs]. Default
	// DefaultProviderExitDelayMs (one hour); a genesis file that omits it
	// gets the default.
	ProviderExitDelayMs uint64 `cbor:"12,keyasint,omitempty" json:"provider_exit_delay_ms"`

	// Settlement (chain/settle.go, economics in chain/RATIONALE.md). A
	// genesis file that omits any of these gets its default.
	//
	// ChallengeWindowMs is how long a result's payment is held for a
	// challenge unless the client acknowledges it first. In
	// [MinChallengeWindowMs, MaxChallengeWindowMs]. Default
	// DefaultChallengeWindowMs (10 minutes); a testnet uses 5 s.
	ChallengeWindowMs uint64 `cbor:"21,keyasint,omitempty" json:"challenge_window_ms"`
	// CommitteeSize is how many validators (stake-weighted, never the
	// client or the provider) judge a challenge; fewer when fewer are
	// eligible. In [1, MaxCommitteeSize]. Default 5.
	CommitteeSize uint32 `cbor:"22,keyasint,omitempty" json:"committee_size"`
	// AttestWindowMs is how long a committee has to attest an
	// availability challenge; a wrong-result challenge's referees get the
	// job's timeout on top. In [MinChallengeWindowMs, MaxResultGraceMs].
	// Default 60000.
	AttestWindowMs uint64 `cbor:"23,keyasint,omitempty" json:"attest_window_ms"`
	// AvailDepositBase and AvailDepositPerMiB price an availability
	// challenge's deposit: base + per MiB (rounded up) of the result's
	// declared size, shared by the committee members who attest when the
	// challenge fails. Defaults 100 and 10; the base is at least 1.
	AvailDepositBase   uint64 `cbor:"24,keyasint,omitempty" json:"avail_deposit_base"`
	AvailDepositPerMiB uint64 `cbor:"25,keyasint,omitempty" json:"avail_deposit_per_mib"`
	// ChallengeSlashBps is the fraction of a provider's collateral cut
	// when it loses a challenge; the cut is at least the job's held pay plus
	// the committee's fees (capped by the collateral). In [0, 10000].
	// Default 2000 (20%).
	ChallengeSlashBps uint32 `cbor:"26,keyasint,omitempty" json:"challenge_slash_bps"`
	// RefereeSlashBps is the fraction of a referee's stake burned when it
	// votes a hash other than the deciding majority's. In [0, 10000].
	// Default 100 (1%).
	RefereeSlashBps uint32 `cbor:"27,keyasint,omitempty" json:"referee_slash_bps"`
}

// Settlement parameter defaults and bounds.
const (
	DefaultChallengeWindowMs  = 10 * 60 * 1000
	MinChallengeWindowMs      = 1000
	MaxChallengeWindowMs      = 7 * 24 * 60 * 60 * 1000
	DefaultCommitteeSize      = 5
	MaxCommitteeSize          = 31
	DefaultAttestWindowMs     = 60 * 1000
	DefaultAvailDepositBase   = 100
	DefaultAvailDepositPerMiB = 10
	DefaultChallengeSlashBps  = 2000
	DefaultRefereeSlashBps    = 100
)

// DefaultSettlement sets the settlement parameters that are zero, where
// zero is not a valid value, to their defaults: a genesis file or a
// stored params record from before they existed.
func (p *Params) DefaultSettlement() {
	if p.ChallengeWindowMs == 0 {
		p.ChallengeWindowMs = DefaultChallengeWindowMs
	}
	if p.CommitteeSize == 0 {
		p.CommitteeSize = DefaultCommitteeSize
	}
	if p.AttestWindowMs == 0 {
		p.AttestWindowMs = DefaultAttestWindowMs
	}
	if p.AvailDepositBase == 0 {
		p.AvailDepositBase = DefaultAvailDepositBase
	}
}

// PresetOmitted sets every parameter a genesis file may omit to its
// default, before the file is decoded over p.
func (p *Params) PresetOmitted() {
	p.ResultGraceMs = market.DefaultResultGraceMs
	p.UnavailableFeeBps = DefaultUnavailableFeeBps
	p.ProviderExitDelayMs = DefaultProviderExitDelayMs
	p.DefaultSettlement()
	p.AvailDepositPerMiB = DefaultAvailDepositPerMiB
	p.ChallengeSlashBps = DefaultChallengeSlashBps
	p.RefereeSlashBps = DefaultRefereeSlashBps
}

// DefaultUnavailableFeeBps is Params.UnavailableFeeBps' default: 1%.
const DefaultUnavailableFeeBps = 100

// Params.ProviderExitDelayMs' default (one hour) and bound (30 days).
const (
	DefaultProviderExitDelayMs = 60 * 60 * 1000
	MaxProviderExitDelayMs     = 30 * 24 * 60 * 60 * 1000
)

// Bounds of Params.ResultGraceMs: one second to one day.
const (
	MinResultGraceMs = 1000
	MaxResultGraceMs = 24 * 60 * 60 * 1000
)

// DefaultParams are the documented defaults.
func DefaultParams() Params {
	return Params{MinFee: 1, UnbondingBlocks: 1_000_000, SlashBps: 500, MinProviderCollateral: 1000,
		TimeoutSlashBps: 1000, MaxBlockBytes: 3 << 20, MaxBlockTxs: 20000, MaxValidators: 100,
		ResultGraceMs: market.DefaultResultGraceMs, UnavailableFeeBps: DefaultUnavailableFeeBps,
		ProviderExitDelayMs: DefaultProviderExitDelayMs, ChallengeWindowMs: DefaultChallengeWindowMs,
		CommitteeSize: DefaultCommitteeSize, AttestWindowMs: DefaultAttestWindowMs, AvailDepositBase: DefaultAvailDepositBase,
		AvailDepositPerMiB: DefaultAvailDepositPerMiB, ChallengeSlashBps: DefaultChallengeSlashBps, RefereeSlashBps: DefaultRefereeSlashBps}
}

// Timeouts are the consensus round timeouts, in milliseconds; each grows by
// its Delta per round. Defaults suit a local network.
type Timeouts struct {
	ProposeMs        int64 `json:"propose_ms"`
	ProposeDeltaMs   int64 `json:"propose_delta_ms"`
	PrevoteMs        int64 `json:"prevote_ms"`
	PrevoteDeltaMs   int64 `json:"prevote_delta_ms"`
	PrecommitMs      int64 `json:"precommit_ms"`
	PrecommitDeltaMs int64 `json:"precommit_delta_ms"`
	CommitMs         int64 `json:"commit_ms"` // pause after a commit before the next height
	// IdleMs lets a quiet chain rest: once no transaction has waited or
	// been committed for IdleMs, a height waits up to IdleMs for one before
	// its (empty) block. 0: a block every commit pause, busy or not.
	IdleMs int64 `json:"idle_ms,omitempty"`
}

// DefaultTimeouts suit a local network. An idle chain makes a block a
// second; a busy one, one per round trip and CommitMs.
func DefaultTimeouts() Timeouts {
	return Timeouts{ProposeMs: 300, ProposeDeltaMs: 100, PrevoteMs: 100, PrevoteDeltaMs: 50,
		PrecommitMs: 100, PrecommitDeltaMs: 50, CommitMs: 50, IdleMs: 1000}
}

// GenesisAccount is an initial balance.
type GenesisAccount struct {
	Address wallet.Address `json:"address"`
	Balance uint64         `json:"balance"`
}

// GenesisValidator is an initial validator: its stake is bonded at genesis
// (on top of any balance it holds).
type GenesisValidator struct {
	Address wallet.Address `json:"address"`
	PubKey  HexKey         `json:"pub_key"`
	Stake   uint64         `json:"stake"`
}

// HexKey is a public key written as 64 hex digits in JSON.
type HexKey wallet.PublicKey

// MarshalText writes hex.
func (k HexKey) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(k[:])), nil }

// UnmarshalText reads hex.
func (k *HexKey) UnmarshalText(b []byte) error {
	raw, err := hex.DecodeString(string(b))
	if err != nil || len(raw) != len(k) {
		return fmt.Errorf("public key must be %d hex digits", 2*len(k))
	}
	copy(k[:], raw)
	return nil
}

// Genesis is the content of genesis.json.
type Genesis struct {
	ChainID     string             `json:"chain_id"`
	GenesisTime int64              `json:"genesis_time"` // unix ms
	Accounts    []GenesisAccount   `json:"accounts"`
	Validators  []GenesisValidator `json:"validators"`
	Timeouts    Timeouts           `json:"timeouts"`
	Params      Params             `json:"params"`
}

// LoadGenesis reads and validates a genesis file. Unknown fields are errors.
func LoadGenesis(path string) (*Genesis, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load genesis: %w", err)
	}
	g, err := ParseGenesis(raw)
	if err != nil {
		return nil, fmt.Errorf("load genesis %s: %w", path, err)
	}
	return g, nil
}

// ParseGenesis decodes and validates genesis JSON. A params.result_grace_ms,
// params.unavailable_fee_bps or params.provider_exit_delay_ms the file
// omits (they came after the other parameters) gets its default; every
// other field must be given.
func ParseGenesis(raw []byte) (*Genesis, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var g Genesis
	g.Params.PresetOmitted() // kept when the file omits them
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("parse genesis: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse genesis: trailing data after the JSON object")
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// Save writes the genesis as indented JSON.
func (g *Genesis) Save(path string) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fmt.Errorf("save genesis: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save genesis: %w", err)
	}
	return nil
}

// GenesisError names the field that is wrong.
type GenesisError struct {
	Field  string
	Reason string
}

func (e *GenesisError) Error() string { return "genesis: " + e.Field + ": " + e.Reason }

func gerr(field, format string, args ...any) error {
	return &GenesisError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks the genesis, naming the first bad field.
func (g *Genesis) Validate() error {
	if g.ChainID == "" || len(g.ChainID) > 64 || strings.ContainsAny(g.ChainID, "/ \t\n") {
		return gerr("chain_id", "must be 1..64 characters without '/' or spaces, got %q", g.ChainID)
	}
	if g.GenesisTime <= 0 {
		return gerr("genesis_time", "must be a positive unix time in milliseconds")
	}
	t := g.Timeouts
	for _, f := range []struct {
		name string
		v    int64
	}{{"propose_ms", t.ProposeMs}, {"prevote_ms", t.PrevoteMs}, {"precommit_ms", t.PrecommitMs}} {
		if f.v <= 0 || f.v > MaxTimeoutMs {
			return gerr("timeouts."+f.name, "must be in [1, %d], got %d", MaxTimeoutMs, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"propose_delta_ms", t.ProposeDeltaMs}, {"prevote_delta_ms", t.PrevoteDeltaMs}, {"precommit_delta_ms", t.PrecommitDeltaMs}, {"commit_ms", t.CommitMs}, {"idle_ms", t.IdleMs}} {
		if f.v < 0 || f.v > MaxTimeoutMs {
			return gerr("timeouts."+f.name, "must be in [0, %d], got %d", MaxTimeoutMs, f.v)
		}
	}
	p := g.Params
	switch {
	case p.UnbondingBlocks == 0 || p.UnbondingBlocks > 1_000_000:
		return gerr("params.unbonding_blocks", "must be in [1, 1000000], got %d", p.UnbondingBlocks)
	case p.SlashBps > 10000:
		return gerr("params.slash_bps", "%d exceeds 10000 (100%%)", p.SlashBps)
	case p.TimeoutSlashBps > 10000:
		return gerr("params.timeout_slash_bps", "%d exceeds 10000 (100%%)", p.TimeoutSlashBps)
	case p.UnavailableFeeBps > 10000:
		return gerr("params.unavailable_fee_bps", "%d exceeds 10000 (100%%)", p.UnavailableFeeBps)
	case p.ProviderExitDelayMs > MaxProviderExitDelayMs:
		return gerr("params.provider_exit_delay_ms", "%d exceeds %d (30 days)", p.ProviderExitDelayMs, uint64(MaxProviderExitDelayMs))
	case p.MaxBlockBytes < 1024 || p.MaxBlockBytes > MaxBlockBytes/2:
		return gerr("params.max_block_bytes", "must be in [1024, %d], got %d", MaxBlockBytes/2, p.MaxBlockBytes)
	case p.MaxBlockTxs == 0 || p.MaxBlockTxs > 1<<16:
		return gerr("params.max_block_txs", "must be in [1, 65536], got %d", p.MaxBlockTxs)
	case p.MaxValidators == 0 || p.MaxValidators > MaxValidatorsForProposals():
		return gerr("params.max_validators", "must be in [1, %d] (a commit of that many validators takes half of a %d-byte proposal, which carries the last commit), got %d",
			MaxValidatorsForProposals(), MaxProposalBytes, p.MaxValidators)
	case p.MinProviderCollateral == 0:
		return gerr("params.min_provider_collateral", "must be at least 1")
	case p.ResultGraceMs < MinResultGraceMs || p.ResultGraceMs > MaxResultGraceMs:
		return gerr("params.result_grace_ms", "must be in [%d, %d], got %d", MinResultGraceMs, MaxResultGraceMs, p.ResultGraceMs)
	case p.ChallengeWindowMs < MinChallengeWindowMs || p.ChallengeWindowMs > MaxChallengeWindowMs:
		return gerr("params.challenge_window_ms", "must be in [%d, %d], got %d", MinChallengeWindowMs, uint64(MaxChallengeWindowMs), p.ChallengeWindowMs)
	case p.CommitteeSize == 0 || p.CommitteeSize > MaxCommitteeSize:
		return gerr("params.committee_size", "must be in [1, %d], got %d", MaxCommitteeSize, p.CommitteeSize)
	case p.AttestWindowMs < MinChallengeWindowMs || p.AttestWindowMs > MaxResultGraceMs:
		return gerr("params.attest_window_ms", "must be in [%d, %d], got %d", MinChallengeWindowMs, MaxResultGraceMs, p.AttestWindowMs)
	case p.AvailDepositBase == 0 || p.AvailDepositBase > MaxSupply || p.AvailDepositPerMiB > MaxSupply:
		return gerr("params.avail_deposit_base", "base must be in [1, %d] and per MiB at most that, got %d and %d", uint64(MaxSupply), p.AvailDepositBase, p.AvailDepositPerMiB)
	case p.ChallengeSlashBps > 10000:
		return gerr("params.challenge_slash_bps", "%d exceeds 10000 (100%%)", p.ChallengeSlashBps)
	case p.RefereeSlashBps > 10000:
		return gerr("params.referee_slash_bps", "%d exceeds 10000 (100%%)", p.RefereeSlashBps)
	}
	if n := ProposalBytes(p); n > consensus.MaxMessageBytes {
		// With max_block_txs and max_validators within their bounds, the
		// rest of a proposal takes under 2 MiB: lowering max_block_bytes
		// always fixes it.
		return gerr("params.max_block_bytes", "a full block's proposal (%d bytes in %d transactions, a commit of %d validators) takes up to %d bytes, over the consensus message limit %d; lower max_block_bytes to at most %d",
			p.MaxBlockBytes, p.MaxBlockTxs, p.MaxValidators, n, consensus.MaxMessageBytes, p.MaxBlockBytes-min(p.MaxBlockBytes, n-consensus.MaxMessageBytes))
	}
	if p.ChainID != "" && p.ChainID != g.ChainID {
		return gerr("params", "chain id %q differs from chain_id %q", p.ChainID, g.ChainID)
	}
	// A resting chain's next block (and its time) comes up to idle_ms
	// late: a deadline settles late, and a match in that block is stamped
	// with the previous block's time, so its provider loses up to idle_ms
	// of its grace. Keep that small against the grace.
	if maxIdle := min(MaxIdleMs, int64(p.ResultGraceMs)); t.IdleMs > maxIdle {
		return gerr("timeouts.idle_ms", "must be at most %d (and at most params.result_grace_ms), got %d", maxIdle, t.IdleMs)
	}
	var supply, bonded uint64
	addSupply := func(field string, v uint64) error {
		s, err := add(supply, v)
		if err != nil || s > MaxSupply {
			return gerr(field, "total supply exceeds %d (the consensus bound on total voting power)", uint64(MaxSupply))
		}
		supply = s
		return nil
	}
	seen := map[wallet.Address]bool{}
	for i, a := range g.Accounts {
		f := fmt.Sprintf("accounts[%d]", i)
		if a.Address.IsZero() {
			return gerr(f+".address", "missing")
		}
		if seen[a.Address] {
			return gerr(f+".address", "%s listed twice", a.Address)
		}
		seen[a.Address] = true
		if err := addSupply(f+".balance", a.Balance); err != nil {
			return err
		}
	}
	if len(g.Validators) == 0 {
		return gerr("validators", "at least one validator is required")
	}
	seenVal := map[wallet.Address]bool{}
	for i, v := range g.Validators {
		f := fmt.Sprintf("validators[%d]", i)
		if v.Stake == 0 {
			return gerr(f+".stake", "must be positive")
		}
		if wallet.PublicKey(v.PubKey).Address() != v.Address {
			return gerr(f+".pub_key", "key's address %s is not %s", wallet.PublicKey(v.PubKey).Address(), v.Address)
		}
		if seenVal[v.Address] {
			return gerr(f+".address", "%s listed twice", v.Address)
		}
		seenVal[v.Address] = true
		if err := addSupply(f+".stake", v.Stake); err != nil {
			return err
		}
		if bonded += v.Stake; bonded > consensus.MaxTotalPower { // implied by the supply bound; kept explicit
			return gerr(f+".stake", "total bonded stake exceeds the consensus bound %d", uint64(consensus.MaxTotalPower))
		}
	}
	return nil
}

// State builds the state at height 0: balances, bonded stake, the
// validator sets of heights 1 and 2, parameters and counters.
func (g *Genesis) State() (*State, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	o := newOverlay(NewState())
	p := g.Params
	p.ChainID = g.ChainID
	o.put(keyParams, p)
	gl := Globals{Time: g.GenesisTime}
	for _, a := range g.Accounts {
		o.put(addrKey(pfxAccount, a.Address), Account{Balance: a.Balance})
		gl.Supply += a.Balance
	}
	for _, v := range g.Validators {
		putStake(o, Stake{}, Stake{Address: v.Address, PubKey: wallet.PublicKey(v.PubKey), Amount: v.Stake})
		o.put(addrKey(pfxPubKey, v.Address), wallet.PublicKey(v.PubKey))
		gl.Supply += v.Stake
		gl.Bonded += v.Stake
	}
	vals, err := activeSet(o, p.MaxValidators)
	if err != nil {
		return nil, err
	}
	o.put(heightKey(pfxValset, 1), vals)
	o.put(heightKey(pfxValset, 2), vals)
	o.put(keyGlobals, gl)
	return StateFromRecords(o.writes)
}
