package chain

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/bourse-net/bourse/market"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// MsgTypeTx is the signature domain (wallet.Sign message type) of transactions.
const MsgTypeTx = "bourse/tx/1"

// MaxTxBytes bounds one encoded transaction.
const MaxTxBytes = 64 << 10

// Kind names what a transaction does. Exactly one body field of Tx is set.
type Kind uint8

// Transaction kinds.
const (
	KindInvalid Kind = iota
	KindTransfer
	KindBond
	KindUnbond
	KindProviderRegister
	KindBidCancel
	KindMatch
	KindResult
	KindEvidence
	KindPayloadUnavailable
	KindProviderDeregister
	KindProviderWithdraw

	// Services (chain/service.go), explicit values 20–27.
	KindServiceOpen  Kind = 20
	KindServiceScale Kind = 21
	KindServiceClose Kind = 22
	KindServicePlace Kind = 23
	KindServiceClaim Kind = 24
	KindServiceDown  Kind = 25
	KindServiceLeave Kind = 26
)

// Settlement kinds (chain/settle.go). Their values are explicit: other
// kinds take other ranges.
const (
	KindAck       Kind = 12
	KindChallenge Kind = 13
	KindAttest    Kind = 14
)

var kindNames = [...]string{0: "invalid", 1: "transfer", 2: "bond", 3: "unbond", 4: "provider_register", 5: "bid_cancel",
	6: "match", 7: "result", 8: "evidence", 9: "payload_unavailable", 10: "provider_deregister", 11: "provider_withdraw",
	12: "ack", 13: "challenge", 14: "attest",
	20: "service_open", 21: "service_scale", 22: "service_close", 23: "service_place", 24: "service_claim", 25: "service_down", 26: "service_leave"}

// MarshalText writes the kind's name (JSON output of results).
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Transfer moves Amount from the sender to To.
type Transfer struct {
	To     wallet.Address `cbor:"1,keyasint"`
	Amount uint64         `cbor:"2,keyasint"`
}

// Bond moves Amount of the sender's balance into bonded stake. The sender's
// public key becomes its validator key; the validator set changes two
// heights after the block that includes the bond.
type Bond struct {
	Amount uint64 `cbor:"1,keyasint"`
}

// Unbond moves Amount of bonded stake into the unbonding queue; it returns
// to the balance Params.UnbondingBlocks+2 blocks later and can be slashed
// until then.
type Unbond struct {
	Amount uint64 `cbor:"1,keyasint"`
}

// ProviderDeregister stops the sender's provider registration: no Match
// may name it any more (it reads as unregistered to the market), its open
// matches still settle (and a timeout still slashes it), and its
// collateral can be withdrawn with ProviderWithdraw once they have and
// Params.ProviderExitDelayMs has passed. A ProviderRegister later joins
// again.
type ProviderDeregister struct{}

// ProviderWithdraw returns a deregistered provider's collateral to its
// balance: it needs no open match and the exit delay passed since the
// ProviderDeregister. The provider's record (its track record) stays.
type ProviderWithdraw struct{}

// ProviderRegister registers the sender as a compute provider (or tops up
// an existing registration) by bonding Collateral from its balance. Total
// collateral must reach Params.MinProviderCollateral.
type ProviderRegister struct {
	Collateral uint64 `cbor:"1,keyasint"`
}

// EvidenceTx reports a validator that signed two conflicting votes. Data is
// the canonical encoding of the consensus duplicate-vote evidence, checked
// by the EvidenceVerifier given to Execute. Anyone may submit it.
type EvidenceTx struct {
	Data []byte `cbor:"1,keyasint"`
}

// Tx is a signed transaction. Every transaction carries its chain id, the
// sender's public key (the account is its address), a per-account nonce
// that must equal the account's next nonce, and a fee paid to the block
// proposer. Sig signs SignBytes under the domain (chain id, MsgTypeTx).
type Tx struct {
	ChainID string           `cbor:"1,keyasint"`
	Sender  wallet.PublicKey `cbor:"2,keyasint"`
	Nonce   uint64           `cbor:"3,keyasint"`
	Fee     uint64           `cbor:"4,keyasint"`

	Transfer         *Transfer         `cbor:"10,keyasint,omitempty"`
	Bond             *Bond             `cbor:"11,keyasint,omitempty"`
	Unbond           *Unbond           `cbor:"12,keyasint,omitempty"`
	ProviderRegister *ProviderRegister `cbor:"13,keyasint,omitempty"`
	BidCancel        *BidCancel        `cbor:"14,keyasint,omitempty"`
	Match            *MatchTx          `cbor:"15,keyasint,omitempty"`
	Result           *ResultTx         `cbor:"16,keyasint,omitempty"`
	Evidence         *EvidenceTx       `cbor:"17,keyasint,omitempty"`
	// PayloadUnavailable is a provider's statement that it could not get
	// a matched job's payload from the client before its deadline.
	PayloadUnavailable *PayloadUnavailable `cbor:"18,keyasint,omitempty"`
	ProviderDeregister *ProviderDeregister `cbor:"19,keyasint,omitempty"`
	ProviderWithdraw   *ProviderWithdraw   `cbor:"20,keyasint,omitempty"`

	// Settlement (chain/settle.go): the client's acknowledgement of a
	// held result, its challenge, and a committee member's attestation.
	Ack       *AckTx       `cbor:"21,keyasint,omitempty"`
	Challenge *ChallengeTx `cbor:"22,keyasint,omitempty"`
	Attest    *AttestTx    `cbor:"23,keyasint,omitempty"`

	Sig []byte `cbor:"30,keyasint,omitempty"`

	// Services (chain/service.go), cbor keys 31–39.
	ServiceOpen  *ServiceOpen  `cbor:"31,keyasint,omitempty"`
	ServiceScale *ServiceScale `cbor:"32,keyasint,omitempty"`
	ServiceClose *ServiceClose `cbor:"33,keyasint,omitempty"`
	ServicePlace *ServicePlace `cbor:"34,keyasint,omitempty"`
	ServiceClaim *ServiceClaim `cbor:"35,keyasint,omitempty"`
	ServiceDown  *ServiceDown  `cbor:"36,keyasint,omitempty"`
	ServiceLeave *ServiceLeave `cbor:"37,keyasint,omitempty"`
}

// Kind reports which body is set, or KindInvalid unless exactly one is.
func (tx *Tx) Kind() Kind {
	k, n := KindInvalid, 0
	set := func(b bool, kind Kind) {
		if b {
			k = kind
			n++
		}
	}
	set(tx.Transfer != nil, KindTransfer)
	set(tx.Bond != nil, KindBond)
	set(tx.Unbond != nil, KindUnbond)
	set(tx.ProviderRegister != nil, KindProviderRegister)
	set(tx.BidCancel != nil, KindBidCancel)
	set(tx.Match != nil, KindMatch)
	set(tx.Result != nil, KindResult)
	set(tx.Evidence != nil, KindEvidence)
	set(tx.PayloadUnavailable != nil, KindPayloadUnavailable)
	set(tx.ProviderDeregister != nil, KindProviderDeregister)
	set(tx.ProviderWithdraw != nil, KindProviderWithdraw)
	set(tx.Ack != nil, KindAck)
	set(tx.Challenge != nil, KindChallenge)
	set(tx.Attest != nil, KindAttest)
	set(tx.ServiceOpen != nil, KindServiceOpen)
	set(tx.ServiceScale != nil, KindServiceScale)
	set(tx.ServiceClose != nil, KindServiceClose)
	set(tx.ServicePlace != nil, KindServicePlace)
	set(tx.ServiceClaim != nil, KindServiceClaim)
	set(tx.ServiceDown != nil, KindServiceDown)
	set(tx.ServiceLeave != nil, KindServiceLeave)
	if n != 1 {
		return KindInvalid
	}
	return k
}

// SenderAddress is the account that signs, pays the fee and owns the nonce.
func (tx *Tx) SenderAddress() wallet.Address { return tx.Sender.Address() }

// SignBytes is the canonical encoding of tx without its signature.
func (tx *Tx) SignBytes() ([]byte, error) {
	c := *tx
	c.Sig = nil
	return codec.Marshal(&c)
}

// Sign sets Sig: key (which must be the sender's) signs SignBytes under
// the domain (ChainID, MsgTypeTx).
func (tx *Tx) Sign(key wallet.PrivateKey) error {
	if key.Public() != tx.Sender {
		return errors.New("sign tx: key is not the sender's")
	}
	b, err := tx.SignBytes()
	if err != nil {
		return fmt.Errorf("sign tx: %w", err)
	}
	tx.Sig = key.Sign(tx.ChainID, MsgTypeTx, b)
	return nil
}

// Encode returns the canonical encoding of the signed transaction.
func (tx *Tx) Encode() ([]byte, error) { return codec.Marshal(tx) }

// Hash is sha256 of the canonical encoding, signature included. Ed25519
// signatures are not malleable under the verification rules used here, so
// one signed transaction has one hash.
func (tx *Tx) Hash() ([32]byte, error) {
	b, err := tx.Encode()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// TxHash is the hash of an encoded transaction.
func TxHash(raw []byte) [32]byte { return sha256.Sum256(raw) }

var txDecoder = codec.MustDecoder(codec.Limits{MaxSize: MaxTxBytes, MaxNesting: 12, MaxArrayElements: 4096, MaxMapPairs: 64})

// DecodeTx decodes a transaction from the network under tight limits. The
// bytes must be canonical, so TxHash(raw) is the transaction's identity. It
// checks structure only (one body, signature length); signatures and
// account state are checked by VerifyTx and CheckTx.
func DecodeTx(raw []byte) (*Tx, error) {
	var tx Tx
	if err := txDecoder.UnmarshalCanonical(raw, &tx); err != nil {
		return nil, fmt.Errorf("decode tx: %w", err)
	}
	if err := tx.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("decode tx: %w", err)
	}
	return &tx, nil
}

// ValidateBasic checks what needs no state: one body, a signature of the
// right length, non-empty chain id, non-zero amounts.
func (tx *Tx) ValidateBasic() error {
	if tx.ChainID == "" {
		return errors.New("empty chain id")
	}
	if len(tx.Sig) != wallet.SigLen {
		return fmt.Errorf("signature is %d bytes, want %d", len(tx.Sig), wallet.SigLen)
	}
	switch tx.Kind() {
	case KindInvalid:
		return errors.New("a transaction must have exactly one body")
	case KindTransfer:
		if tx.Transfer.Amount == 0 {
			return errors.New("transfer of zero")
		}
		if tx.Transfer.To.IsZero() {
			return errors.New("transfer to the empty address")
		}
	case KindBond:
		if tx.Bond.Amount == 0 {
			return errors.New("bond of zero")
		}
	case KindUnbond:
		if tx.Unbond.Amount == 0 {
			return errors.New("unbond of zero")
		}
	case KindProviderRegister:
		if tx.ProviderRegister.Collateral == 0 {
			return errors.New("provider register with zero collateral")
		}
	case KindEvidence:
		if len(tx.Evidence.Data) == 0 {
			return errors.New("empty evidence")
		}
	case KindMatch:
		if tx.Match.Price == 0 {
			return errors.New("match with zero price")
		}
	case KindResult:
		if err := tx.Result.validateBasic(); err != nil {
			return err
		}
	case KindPayloadUnavailable:
		if tx.PayloadUnavailable.JobID == (market.BidID{}) {
			return errors.New("payload unavailable: empty job id")
		}
	case KindAck:
		if tx.Ack.JobID == (market.BidID{}) {
			return errors.New("ack: empty job id")
		}
	case KindChallenge:
		return tx.Challenge.validateBasic()
	case KindAttest:
		if tx.Attest.JobID == (market.BidID{}) {
			return errors.New("attest: empty job id")
		}
	case KindServiceOpen:
		if tx.ServiceOpen.Budget == 0 {
			return errors.New("service open with zero budget")
		}
	case KindServicePlace:
		if tx.ServicePlace.Price == 0 {
			return errors.New("service place at zero price")
		}
	case KindServiceClaim:
		if len(tx.ServiceClaim.Receipt.Sig) != wallet.SigLen {
			return fmt.Errorf("service claim: receipt signature is %d bytes, want %d", len(tx.ServiceClaim.Receipt.Sig), wallet.SigLen)
		}
	}
	return nil
}
