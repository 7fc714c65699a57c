package consensus

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// BlockID identifies a proposed value; the application computes it. The zero
// value means nil (a vote for no value).
type BlockID [32]byte

// IsNil reports whether id is the nil block id.
func (id BlockID) IsNil() bool { return id == BlockID{} }

func (id BlockID) String() string {
	if id.IsNil() {
		return "nil"
	}
	return hex.EncodeToString(id[:6])
}

// VoteType is Prevote or Precommit.
type VoteType uint8

// Vote types.
const (
	Prevote   VoteType = 1
	Precommit VoteType = 2
)

func (t VoteType) String() string {
	switch t {
	case Prevote:
		return "prevote"
	case Precommit:
		return "precommit"
	}
	return fmt.Sprintf("VoteType(%d)", uint8(t))
}

// step is the round step a vote of this type is signed in.
func (t VoteType) step() RoundStep {
	if t == Prevote {
		return StepPrevote
	}
	return StepPrecommit
}

// RoundStep is a step of a round. Its numeric order is the order of signing
// within a round (propose < prevote < precommit), which the double-sign guard
// relies on.
type RoundStep uint8

// Round steps. StepNewHeight is the wait of TimeoutCommit before round 0 of a
// new height; StepDecided is after the decision of the current height.
// StepIdle is never a State's step, only a timeout's: the end of the idle
// wait (Config.IdleWait), during which the State stays at StepNewHeight.
const (
	StepNewHeight RoundStep = 1
	StepPropose   RoundStep = 2
	StepPrevote   RoundStep = 3
	StepPrecommit RoundStep = 4
	StepDecided   RoundStep = 5
	StepIdle      RoundStep = 6
)

func (s RoundStep) String() string {
	switch s {
	case 0:
		return "none"
	case StepNewHeight:
		return "new-height"
	case StepPropose:
		return "propose"
	case StepPrevote:
		return "prevote"
	case StepPrecommit:
		return "precommit"
	case StepDecided:
		return "decided"
	case StepIdle:
		return "idle"
	}
	return fmt.Sprintf("RoundStep(%d)", uint8(s))
}

// Message types used for domain-separated signatures.
const (
	MsgTypeProposal  = "proposal"
	MsgTypePrevote   = "prevote"
	MsgTypePrecommit = "precommit"
)

// Proposal is the proposer's signed value for one height and round.
// ValidRound is -1 or the round in which the proposer saw the value polka'd
// (more than 2/3 prevotes), line 16 of the paper.
type Proposal struct {
	Height     uint64         `cbor:"1,keyasint"`
	Round      int32          `cbor:"2,keyasint"`
	BlockID    BlockID        `cbor:"3,keyasint"`
	Value      []byte         `cbor:"4,keyasint"`
	ValidRound int32          `cbor:"5,keyasint"`
	Proposer   wallet.Address `cbor:"6,keyasint"`
	Signature  []byte         `cbor:"7,keyasint,omitempty"`
}

// Vote is a signed prevote or precommit. Timestamp is the signer's clock in
// unix milliseconds; the BFT time of a block is the weighted median of its
// commit's timestamps.
type Vote struct {
	Type      VoteType       `cbor:"1,keyasint"`
	Height    uint64         `cbor:"2,keyasint"`
	Round     int32          `cbor:"3,keyasint"`
	BlockID   BlockID        `cbor:"4,keyasint"`
	Timestamp int64          `cbor:"5,keyasint"`
	Validator wallet.Address `cbor:"6,keyasint"`
	Signature []byte         `cbor:"7,keyasint,omitempty"`
}

// ErrInvalidMessage is wrapped by every structural check failure.
var ErrInvalidMessage = errors.New("invalid consensus message")

// ErrBadSignature is wrapped when a signature does not verify.
var ErrBadSignature = errors.New("bad signature")

// ErrUnknownValidator is wrapped when a signer is not in the validator set.
var ErrUnknownValidator = errors.New("unknown validator")

// SignBytes is what the proposer signs: the canonical CBOR of the proposal
// without its signature.
func (p *Proposal) SignBytes() []byte {
	c := *p
	c.Signature = nil
	return codec.MustMarshal(&c)
}

// ValidateBasic checks the fields that need no validator set.
func (p *Proposal) ValidateBasic() error {
	switch {
	case p.Height == 0:
		return fmt.Errorf("%w: proposal height 0", ErrInvalidMessage)
	case p.Round < 0:
		return fmt.Errorf("%w: proposal round %d", ErrInvalidMessage, p.Round)
	case p.ValidRound < -1 || p.ValidRound >= p.Round:
		return fmt.Errorf("%w: proposal valid round %d not in [-1, %d)", ErrInvalidMessage, p.ValidRound, p.Round)
	case p.BlockID.IsNil():
		return fmt.Errorf("%w: proposal for nil block id", ErrInvalidMessage)
	case len(p.Signature) != wallet.SigLen:
		return fmt.Errorf("%w: proposal signature is %d bytes", ErrInvalidMessage, len(p.Signature))
	}
	return nil
}

// Verify checks the proposal's fields and that its signature is by the
// validator it names. Whether that validator is the round's proposer is the
// caller's check (State does it).
func (p *Proposal) Verify(chainID string, vs *ValidatorSet) error {
	if err := p.ValidateBasic(); err != nil {
		return err
	}
	v, ok := vs.ByAddress(p.Proposer)
	if !ok {
		return fmt.Errorf("verify proposal %d/%d: %w %s", p.Height, p.Round, ErrUnknownValidator, p.Proposer)
	}
	if !wallet.Verify(v.PubKey, chainID, MsgTypeProposal, p.SignBytes(), p.Signature) {
		return fmt.Errorf("verify proposal %d/%d by %s: %w", p.Height, p.Round, p.Proposer, ErrBadSignature)
	}
	return nil
}

// SignBytes is what the validator signs: the canonical CBOR of the vote
// without its signature.
func (v *Vote) SignBytes() []byte {
	c := *v
	c.Signature = nil
	return codec.MustMarshal(&c)
}

func (v *Vote) msgType() string {
	if v.Type == Prevote {
		return MsgTypePrevote
	}
	return MsgTypePrecommit
}

// ValidateBasic checks the fields that need no validator set.
func (v *Vote) ValidateBasic() error {
	switch {
	case v.Type != Prevote && v.Type != Precommit:
		return fmt.Errorf("%w: vote type %d", ErrInvalidMessage, v.Type)
	case v.Height == 0:
		return fmt.Errorf("%w: vote height 0", ErrInvalidMessage)
	case v.Round < 0:
		return fmt.Errorf("%w: vote round %d", ErrInvalidMessage, v.Round)
	case len(v.Signature) != wallet.SigLen:
		return fmt.Errorf("%w: vote signature is %d bytes", ErrInvalidMessage, len(v.Signature))
	}
	return nil
}

// Verify checks the vote's fields, that its validator is in vs and that the
// signature is that validator's.
func (v *Vote) Verify(chainID string, vs *ValidatorSet) error {
	if err := v.ValidateBasic(); err != nil {
		return err
	}
	val, ok := vs.ByAddress(v.Validator)
	if !ok {
		return fmt.Errorf("verify %s %d/%d: %w %s", v.Type, v.Height, v.Round, ErrUnknownValidator, v.Validator)
	}
	if !wallet.Verify(val.PubKey, chainID, v.msgType(), v.SignBytes(), v.Signature) {
		return fmt.Errorf("verify %s %d/%d by %s: %w", v.Type, v.Height, v.Round, v.Validator, ErrBadSignature)
	}
	return nil
}

func (v *Vote) String() string {
	return fmt.Sprintf("%s{%d/%d %s by %s}", v.Type, v.Height, v.Round, v.BlockID, v.Validator)
}

// sameContent reports whether two votes are the same signed statement.
func (v *Vote) sameContent(o *Vote) bool {
	return v.Type == o.Type && v.Height == o.Height && v.Round == o.Round && v.BlockID == o.BlockID &&
		v.Timestamp == o.Timestamp && v.Validator == o.Validator && string(v.Signature) == string(o.Signature)
}

// Message is the wire envelope of the consensus topic: exactly one of
// Proposal and Vote is set.
type Message struct {
	Proposal *Proposal `cbor:"1,keyasint,omitempty"`
	Vote     *Vote     `cbor:"2,keyasint,omitempty"`
}

// ValidateBasic checks that exactly one field is set and that it is well formed.
func (m *Message) ValidateBasic() error {
	switch {
	case (m.Proposal == nil) == (m.Vote == nil):
		return fmt.Errorf("%w: message must hold exactly one of proposal, vote", ErrInvalidMessage)
	case m.Proposal != nil:
		return m.Proposal.ValidateBasic()
	default:
		return m.Vote.ValidateBasic()
	}
}

// Wire limits. A vote encodes to about 170 bytes; a proposal is bounded by
// its value; a commit holds at most MaxCommitVotes precommits.
const (
	MaxVoteBytes    = 512
	MaxMessageBytes = 4 << 20
	MaxCommitVotes  = 10000
)

var (
	voteDecoder = codec.MustDecoder(codec.Limits{MaxSize: MaxVoteBytes, MaxNesting: 4, MaxArrayElements: 16, MaxMapPairs: 16})
	msgDecoder  = codec.MustDecoder(codec.Limits{MaxSize: MaxMessageBytes, MaxNesting: 4, MaxArrayElements: 16, MaxMapPairs: 16})
	bigDecoder  = codec.MustDecoder(codec.Limits{MaxSize: MaxMessageBytes, MaxNesting: 8, MaxArrayElements: MaxCommitVotes, MaxMapPairs: 16})
)

// EncodeMessage is the canonical wire encoding of m.
func EncodeMessage(m Message) ([]byte, error) {
	if err := m.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("encode consensus message: %w", err)
	}
	return codec.Marshal(&m)
}

// DecodeMessage decodes a consensus-topic message under limits and checks
// its structure (not its signature: that needs the validator set).
func DecodeMessage(data []byte) (Message, error) {
	var m Message
	if err := msgDecoder.UnmarshalCanonical(data, &m); err != nil {
		return Message{}, fmt.Errorf("decode consensus message: %w", err)
	}
	if err := m.ValidateBasic(); err != nil {
		return Message{}, fmt.Errorf("decode consensus message: %w", err)
	}
	return m, nil
}

// EncodeVote is the canonical encoding of one vote.
func EncodeVote(v *Vote) ([]byte, error) { return codec.Marshal(v) }

// DecodeVote decodes one vote (at most MaxVoteBytes) and checks its structure.
func DecodeVote(data []byte) (*Vote, error) {
	var v Vote
	if err := voteDecoder.UnmarshalCanonical(data, &v); err != nil {
		return nil, fmt.Errorf("decode vote: %w", err)
	}
	if err := v.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("decode vote: %w", err)
	}
	return &v, nil
}

// EncodeProposal is the canonical encoding of one proposal.
func EncodeProposal(p *Proposal) ([]byte, error) { return codec.Marshal(p) }

// DecodeProposal decodes one proposal and checks its structure.
func DecodeProposal(data []byte) (*Proposal, error) {
	var p Proposal
	if err := msgDecoder.UnmarshalCanonical(data, &p); err != nil {
		return nil, fmt.Errorf("decode proposal: %w", err)
	}
	if err := p.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("decode proposal: %w", err)
	}
	return &p, nil
}
