package wallet

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// AddressPrefix is the bech32 human-readable part of every Bourse address.
const AddressPrefix = "bo"

// AddressLen is the length of an address in bytes.
const AddressLen = 20

// Address identifies an account: the first 20 bytes of sha256(public key).
// Its zero value is the empty address, which owns nothing.
type Address [AddressLen]byte

// AddressOf derives the address of a public key.
func AddressOf(pub PublicKey) Address {
	sum := sha256.Sum256(pub[:])
	var a Address
	copy(a[:], sum[:AddressLen])
	return a
}

// String is the bech32 form, bo1...
func (a Address) String() string {
	s, err := bech32Encode(AddressPrefix, a[:])
	if err != nil {
		panic(err) // 20 bytes always encode
	}
	return s
}

// IsZero reports whether a is the empty address.
func (a Address) IsZero() bool { return a == Address{} }

// ParseAddress parses a bo1... address.
func ParseAddress(s string) (Address, error) {
	hrp, data, err := bech32Decode(s)
	if err != nil {
		return Address{}, fmt.Errorf("parse address %q: %w", s, err)
	}
	if hrp != AddressPrefix {
		return Address{}, fmt.Errorf("parse address %q: prefix %q, want %q", s, hrp, AddressPrefix)
	}
	if len(data) != AddressLen {
		return Address{}, fmt.Errorf("parse address %q: %d bytes, want %d", s, len(data), AddressLen)
	}
	var a Address
	copy(a[:], data)
	return a, nil
}

// MarshalText encodes the address as bech32 (used by JSON and TOML).
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses a bech32 address.
func (a *Address) UnmarshalText(b []byte) error {
	p, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// PublicKey is an ed25519 public key.
type PublicKey [ed25519.PublicKeySize]byte

// Address is the account address of the key.
func (p PublicKey) Address() Address { return AddressOf(p) }

// PrivateKey is an ed25519 private key. It refuses to be printed or
// marshalled: String and GoString redact, MarshalJSON and MarshalText fail.
type PrivateKey struct {
	k ed25519.PrivateKey
}

// ErrSecret is returned by any attempt to serialize a private key in clear.
var ErrSecret = errors.New("wallet: refusing to serialize a private key")

// GenerateKey makes a new key from r (crypto/rand when r is nil).
func GenerateKey(r io.Reader) (PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	_, k, err := ed25519.GenerateKey(r)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generate key: %w", err)
	}
	return PrivateKey{k: k}, nil
}

// KeyFromSeed derives a key from a 32-byte seed. Tests and genesis tooling
// use it for reproducible keys.
func KeyFromSeed(seed []byte) (PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return PrivateKey{}, fmt.Errorf("key from seed: %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return PrivateKey{k: ed25519.NewKeyFromSeed(seed)}, nil
}

// Public returns the public half.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	copy(p[:], k.k[32:])
	return p
}

// Address is the account address of the key.
func (k PrivateKey) Address() Address { return AddressOf(k.Public()) }

// Valid reports whether k holds a key.
func (k PrivateKey) Valid() bool { return len(k.k) == ed25519.PrivateKeySize }

func (k PrivateKey) String() string   { return "PrivateKey(redacted)" }
func (k PrivateKey) GoString() string { return "wallet.PrivateKey(redacted)" }

// MarshalJSON always fails: private keys never appear in JSON output.
func (k PrivateKey) MarshalJSON() ([]byte, error) { return nil, ErrSecret }

// MarshalText always fails: private keys never appear in text output.
func (k PrivateKey) MarshalText() ([]byte, error) { return nil, ErrSecret }

// seed returns the 32-byte seed; only the keystore uses it, to encrypt it.
func (k PrivateKey) seed() []byte { return k.k.Seed() }

// SigLen is the length of a signature.
const SigLen = ed25519.SignatureSize

const sigDomain = "bourse-sig/v1"

// SignBytes is the exact message an ed25519 signature covers: a fixed
// domain tag, then the chain id, the message type and the payload, each
// prefixed with its length as a big-endian uint32. Two different (chain,
// type, payload) triples never produce the same bytes.
func SignBytes(chainID, msgType string, payload []byte) []byte {
	out := make([]byte, 0, len(sigDomain)+len(chainID)+len(msgType)+len(payload)+16)
	for _, part := range [][]byte{[]byte(sigDomain), []byte(chainID), []byte(msgType), payload} {
		out = binary.BigEndian.AppendUint32(out, uint32(len(part)))
		out = append(out, part...)
	}
	return out
}

// Sign signs payload for one chain and one message type.
func (k PrivateKey) Sign(chainID, msgType string, payload []byte) []byte {
	return ed25519.Sign(k.k, SignBytes(chainID, msgType, payload))
}

// Verify checks a signature made by Sign with the same chain id and type.
func Verify(pub PublicKey, chainID, msgType string, payload, sig []byte) bool {
	if len(sig) != SigLen {
		return false
	}
	return ed25519.Verify(pub[:], SignBytes(chainID, msgType, payload), sig)
}
