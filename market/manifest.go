package market

import (
	"crypto/sha256"

	"github.com/bourse-net/bourse/codec"
)

// Manifest is what a job needs to run but matching does not: its
// arguments and environment. It is not in the bid: the bid carries only
// its sha256 (Payload.Manifest), and the manifest travels like the
// payload, served by the client's node (Payload.Peer) to the matched
// provider, which fetches it with the payload and checks it against that
// hash. So a bid, and the order book holding 100,000 of them, stays small
// whatever the job's arguments (see RATIONALE.md, "Small bids").
//
// A job without arguments and environment has no manifest: its bid's
// Payload.Manifest is empty.
type Manifest struct {
	Args []string `cbor:"1,keyasint,omitempty" json:"args,omitempty"`
	Env  []string `cbor:"2,keyasint,omitempty" json:"env,omitempty"` // KEY=VALUE
}

// MaxManifestSize bounds a manifest's encoding: MaxArgs arguments and
// MaxArgs variables of MaxArgBytes each list, with their CBOR framing,
// fit well within it. A provider fetches no more.
const MaxManifestSize = 40 << 10

// Empty reports whether the manifest says nothing (then a bid names none).
func (m *Manifest) Empty() bool { return len(m.Args) == 0 && len(m.Env) == 0 }

// Validate checks the bounds of the arguments and environment: at most
// MaxArgs entries and MaxArgBytes bytes each, no NUL byte, and every
// variable KEY=VALUE with a non-empty key.
func (m *Manifest) Validate() error {
	if err := validStrings("manifest.args", m.Args, false); err != nil {
		return err
	}
	return validStrings("manifest.env", m.Env, true)
}

// Encode is the manifest's canonical encoding, the bytes its hash covers.
func (m *Manifest) Encode() ([]byte, error) { return codec.Marshal(m) }

// Hash is the sha256 of Encode, what a bid names in Payload.Manifest.
func (m *Manifest) Hash() ([32]byte, error) {
	raw, err := m.Encode()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(raw), nil
}

var manifestDecoder = codec.MustDecoder(codec.Limits{MaxSize: MaxManifestSize, MaxNesting: 4, MaxArrayElements: 2 * MaxArgs, MaxMapPairs: 16})

// DecodeManifest decodes a fetched manifest (at most MaxManifestSize
// bytes, canonical) and validates it. The caller has checked its hash
// against the bid's.
func DecodeManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := manifestDecoder.UnmarshalCanonical(data, &m); err != nil {
		return nil, &InvalidError{Code: CodeDecode, Field: "manifest", Err: err}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
