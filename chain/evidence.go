package chain

import (
	"crypto/sha256"
	"fmt"

	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/wallet"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// consensusEvidence verifies consensus.DuplicateVoteEvidence against the
// key the offender bonded with (kept in the state after it unbonds, so
// stake still unbonding can be slashed).
type consensusEvidence struct{ r reader }

func (c consensusEvidence) VerifyDuplicateVote(chainID string, data []byte) (wallet.Address, uint64, error) {
	e, err := consensus.DecodeEvidence(data)
	if err != nil {
		return wallet.Address{}, 0, err
	}
	offender := e.A.Validator
	var pub wallet.PublicKey
	ok, err := getRecord(c.r, addrKey(pfxPubKey, offender), &pub)
	if err != nil {
		return wallet.Address{}, 0, err
	}
	if !ok {
		return wallet.Address{}, 0, fmt.Errorf("%s never bonded", offender)
	}
	vs, err := consensus.NewValidatorSet([]consensus.Validator{{Address: offender, PubKey: pub, Power: 1}})
	if err != nil {
		return wallet.Address{}, 0, err
	}
	if err := e.Verify(chainID, vs); err != nil {
		return wallet.Address{}, 0, err
	}
	return offender, e.A.Height, nil
}
