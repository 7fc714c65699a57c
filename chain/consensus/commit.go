package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// ErrInsufficientPower is wrapped when a certificate does not carry more
// than 2/3 of the voting power.
var ErrInsufficientPower = errors.New("insufficient voting power")

// CommitCertificate is the proof of a decision: precommits for BlockID at
// Height and Round from validators holding more than 2/3 of the power.
// Anyone holding the height's validator set can check it with Verify.
type CommitCertificate struct {
	Height     uint64  `cbor:"1,keyasint"`
	Round      int32   `cbor:"2,keyasint"`
	BlockID    BlockID `cbor:"3,keyasint"`
	Precommits []Vote  `cbor:"4,keyasint"`
}

// twoThirds reports power > 2/3 of total. total ≤ MaxTotalPower keeps 3·x in range.
func twoThirds(power, total uint64) bool { return power*3 > total*2 }

// oneThird reports power > 1/3 of total (f+1 in the paper's terms).
func oneThird(power, total uint64) bool { return power*3 > total }

// Verify checks the certificate against the height's validator set: a
// non-nil block id, every precommit of the certificate's height, round and
// block id, signed by a distinct member of vs, and more than 2/3 of vs's
// power in total.
func (c *CommitCertificate) Verify(chainID string, vs *ValidatorSet) error {
	if c.BlockID.IsNil() {
		return fmt.Errorf("verify commit %d/%d: %w: nil block id", c.Height, c.Round, ErrInvalidMessage)
	}
	if len(c.Precommits) > vs.Size() {
		return fmt.Errorf("verify commit %d/%d: %w: %d precommits for %d validators", c.Height, c.Round, ErrInvalidMessage, len(c.Precommits), vs.Size())
	}
	seen := make(map[wallet.Address]struct{}, len(c.Precommits))
	var power uint64
	for i := range c.Precommits {
		v := &c.Precommits[i]
		if v.Type != Precommit || v.Height != c.Height || v.Round != c.Round || v.BlockID != c.BlockID {
			return fmt.Errorf("verify commit %d/%d: %w: vote %d is %s", c.Height, c.Round, ErrInvalidMessage, i, v)
		}
		if _, dup := seen[v.Validator]; dup {
			return fmt.Errorf("verify commit %d/%d: %w: two votes by %s", c.Height, c.Round, ErrInvalidMessage, v.Validator)
		}
		seen[v.Validator] = struct{}{}
		if err := v.Verify(chainID, vs); err != nil {
			return fmt.Errorf("verify commit %d/%d: %w", c.Height, c.Round, err)
		}
		val, _ := vs.ByAddress(v.Validator)
		power += val.Power
	}
	if !twoThirds(power, vs.TotalPower()) {
		return fmt.Errorf("verify commit %d/%d: %w: %d of %d", c.Height, c.Round, ErrInsufficientPower, power, vs.TotalPower())
	}
	return nil
}

// Time is the BFT time of the commit: the power-weighted median of the
// precommit timestamps (the timestamp at which the cumulative power of
// earlier-or-equal timestamps first exceeds half of the certificate's
// power). Fewer than 1/3 faulty power cannot move it outside the range of
// correct timestamps. Votes by validators outside vs weigh nothing.
func (c *CommitCertificate) Time(vs *ValidatorSet) int64 {
	type tw struct {
		t int64
		w uint64
	}
	ts := make([]tw, 0, len(c.Precommits))
	var total uint64
	for _, v := range c.Precommits {
		if val, ok := vs.ByAddress(v.Validator); ok {
			ts = append(ts, tw{v.Timestamp, val.Power})
			total += val.Power
		}
	}
	if total == 0 {
		return 0
	}
	slices.SortFunc(ts, func(a, b tw) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return 0
	})
	var acc uint64
	for _, x := range ts {
		acc += x.w
		if acc*2 > total {
			return x.t
		}
	}
	return ts[len(ts)-1].t
}

// EncodeCommit is the canonical encoding of a certificate.
func EncodeCommit(c *CommitCertificate) ([]byte, error) { return codec.Marshal(c) }

// DecodeCommit decodes a certificate under limits and checks each vote's
// structure; signatures are checked by Verify.
func DecodeCommit(data []byte) (*CommitCertificate, error) {
	var c CommitCertificate
	if err := bigDecoder.UnmarshalCanonical(data, &c); err != nil {
		return nil, fmt.Errorf("decode commit: %w", err)
	}
	for i := range c.Precommits {
		if err := c.Precommits[i].ValidateBasic(); err != nil {
			return nil, fmt.Errorf("decode commit: vote %d: %w", i, err)
		}
	}
	return &c, nil
}

// DuplicateVoteEvidence is proof that a validator signed two different votes
// of one type at one height and round. A and B are ordered by block id (A's
// is smaller), so one equivocation has one encoding.
type DuplicateVoteEvidence struct {
	A Vote `cbor:"1,keyasint"`
	B Vote `cbor:"2,keyasint"`
}

// NewDuplicateVoteEvidence orders two conflicting votes into evidence. It
// does not verify them.
func NewDuplicateVoteEvidence(a, b Vote) DuplicateVoteEvidence {
	if bytes.Compare(a.BlockID[:], b.BlockID[:]) > 0 {
		a, b = b, a
	}
	return DuplicateVoteEvidence{A: a, B: b}
}

// Verify checks that A and B are validly signed by the same member of vs, for
// the same height, round and type, for different block ids, in canonical
// order.
func (e *DuplicateVoteEvidence) Verify(chainID string, vs *ValidatorSet) error {
	a, b := &e.A, &e.B
	if a.Validator != b.Validator || a.Height != b.Height || a.Round != b.Round || a.Type != b.Type {
		return fmt.Errorf("verify evidence: %w: votes %s and %s do not conflict", ErrInvalidMessage, a, b)
	}
	if bytes.Compare(a.BlockID[:], b.BlockID[:]) >= 0 {
		return fmt.Errorf("verify evidence: %w: block ids equal or out of order", ErrInvalidMessage)
	}
	if err := a.Verify(chainID, vs); err != nil {
		return fmt.Errorf("verify evidence: %w", err)
	}
	if err := b.Verify(chainID, vs); err != nil {
		return fmt.Errorf("verify evidence: %w", err)
	}
	return nil
}

// EncodeEvidence is the canonical encoding of evidence.
func EncodeEvidence(e *DuplicateVoteEvidence) ([]byte, error) { return codec.Marshal(e) }

// DecodeEvidence decodes evidence under limits and checks both votes'
// structure; signatures are checked by Verify.
func DecodeEvidence(data []byte) (*DuplicateVoteEvidence, error) {
	var e DuplicateVoteEvidence
	if err := voteDecoderX2.UnmarshalCanonical(data, &e); err != nil {
		return nil, fmt.Errorf("decode evidence: %w", err)
	}
	if err := e.A.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("decode evidence: %w", err)
	}
	if err := e.B.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("decode evidence: %w", err)
	}
	return &e, nil
}

var voteDecoderX2 = codec.MustDecoder(codec.Limits{MaxSize: 2 * MaxVoteBytes, MaxNesting: 4, MaxArrayElements: 16, MaxMapPairs: 16})
