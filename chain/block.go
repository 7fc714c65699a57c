package chain

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// MaxBlockBytes bounds an encoded block on the wire and in the store; the
// genesis Params.MaxBlockBytes is the (smaller) consensus limit.
const MaxBlockBytes = 8 << 20

// Header is what a block hash commits to.
//
// StateRoot is the root of the state AFTER executing this block's
// transactions (and its automatic settlements), so a committed header
// certifies the state it produces. ValidatorsHash is the hash of the
// validator set that signs this height (ValidatorsAt(Height)).
// LastCommitHash is sha256 of Block.LastCommit, the opaque consensus
// certificate of the previous block.
type Header struct {
	ChainID        string         `cbor:"1,keyasint"`
	Height         uint64         `cbor:"2,keyasint"`
	Time           int64          `cbor:"3,keyasint"` // unix ms, BFT time
	PrevHash       [32]byte       `cbor:"4,keyasint"`
	TxsRoot        [32]byte       `cbor:"5,keyasint"`
	StateRoot      [32]byte       `cbor:"6,keyasint"`
	ValidatorsHash [32]byte       `cbor:"7,keyasint"`
	Proposer       wallet.Address `cbor:"8,keyasint"`
	LastCommitHash [32]byte       `cbor:"9,keyasint"`
}

// Hash is sha256 of the canonical header: the block's identity.
func (h *Header) Hash() [32]byte {
	return sha256.Sum256(codec.MustMarshal(h))
}

// Block is a header, the encoded transactions (each the canonical bytes
// that DecodeTx accepts, so TxHash(Txs[i]) is the transaction's id) and
// the consensus certificate of the previous block, opaque to this package.
type Block struct {
	Header     Header   `cbor:"1,keyasint"`
	Txs        [][]byte `cbor:"2,keyasint"`
	LastCommit []byte   `cbor:"3,keyasint"`
}

// Hash is the header hash.
func (b *Block) Hash() [32]byte { return b.Header.Hash() }

// Encode is the canonical encoding of the block.
func (b *Block) Encode() ([]byte, error) { return codec.Marshal(b) }

var blockDecoder = codec.MustDecoder(codec.Limits{MaxSize: MaxBlockBytes, MaxNesting: 8, MaxArrayElements: 1 << 16, MaxMapPairs: 32})

// DecodeBlock decodes a block from a peer or the store and checks its
// structure: canonical bytes, chain id present, the txs root and the last
// commit hash match the body. It does not execute or verify signatures.
func DecodeBlock(raw []byte) (*Block, error) {
	var b Block
	if err := blockDecoder.UnmarshalCanonical(raw, &b); err != nil {
		return nil, fmt.Errorf("decode block: %w", err)
	}
	if err := b.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("decode block %d: %w", b.Header.Height, err)
	}
	return &b, nil
}

// ValidateBasic checks the block's self-consistency.
func (b *Block) ValidateBasic() error {
	if b.Header.ChainID == "" {
		return errors.New("empty chain id")
	}
	if b.Header.Height == 0 {
		return errors.New("height 0 is genesis, not a block")
	}
	for i, t := range b.Txs {
		if len(t) == 0 || len(t) > MaxTxBytes {
			return fmt.Errorf("tx %d: %d bytes", i, len(t))
		}
	}
	if got := TxsRoot(b.Txs); got != b.Header.TxsRoot {
		return fmt.Errorf("txs root %x does not match header %x", got, b.Header.TxsRoot)
	}
	if got := sha256.Sum256(b.LastCommit); got != b.Header.LastCommitHash {
		return fmt.Errorf("last commit hash %x does not match header %x", got, b.Header.LastCommitHash)
	}
	return nil
}

// TxsRoot is the binary Merkle root of the transaction hashes (leaves
// sha256(0x00‖txhash), nodes sha256(0x01‖l‖r), an odd node promoted); the
// root of no transactions is sha256 of nothing.
func TxsRoot(txs [][]byte) [32]byte {
	if len(txs) == 0 {
		return sha256.Sum256(nil)
	}
	level := make([][32]byte, len(txs))
	for i, t := range txs {
		h := TxHash(t)
		level[i] = sha256.Sum256(append([]byte{0}, h[:]...))
	}
	var buf [65]byte
	buf[0] = 1
	for len(level) > 1 {
		next := level[:0:0]
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
				continue
			}
			copy(buf[1:], level[i][:])
			copy(buf[33:], level[i+1][:])
			next = append(next, sha256.Sum256(buf[:]))
		}
		level = next
	}
	return level[0]
}

// Validator is one member of a height's validator set, the shape the driver
// turns into a consensus.Validator.
type Validator struct {
	Address wallet.Address   `cbor:"1,keyasint"`
	PubKey  wallet.PublicKey `cbor:"2,keyasint"`
	Power   uint64           `cbor:"3,keyasint"`
}

// ValidatorsHash is sha256 of the canonical encoding of the set, in the
// order given (the state keeps sets sorted by power descending, then address).
func ValidatorsHash(vals []Validator) [32]byte {
	if vals == nil {
		vals = []Validator{}
	}
	return sha256.Sum256(codec.MustMarshal(vals))
}
