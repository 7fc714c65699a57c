package market

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// Placement preferences a bid can state.
const (
	PreferCheapest    = "cheapest"     // lowest PriceFor
	PreferLeastLoaded = "least-loaded" // lowest provider load after placement
	PreferNearest     = "nearest"      // smallest RTT in Bid.RTT, then earliest region in Bid.Near, then least-loaded
	PreferBalanced    = "balanced"     // weighted price, load, reputation, distance and performance (see Weights)
)

func validPreference(p string) bool {
	switch p {
	case PreferCheapest, PreferLeastLoaded, PreferNearest, PreferBalanced:
		return true
	}
	return false
}

// MaxReputation is the top of the reputation scale (per mille).
const MaxReputation = 1000

// Payload says where the job's code comes from: either content addressed
// (SHA256 and Size, served by the client's node Peer over /blob/1), or an
// Image reference for the docker executor, or for docker both: an image
// tarball (content addressed) and the ID of the one image it holds.
//
// Manifest is the sha256 of the job's Manifest (its arguments and
// environment), served by Peer like the payload; empty when the job has
// neither. An image job with a manifest names the Peer serving it.
type Payload struct {
	SHA256   []byte `cbor:"1,keyasint,omitempty" json:"sha256,omitempty"` // 32 bytes
	Size     uint64 `cbor:"2,keyasint,omitempty" json:"size,omitempty"`
	Peer     string `cbor:"3,keyasint,omitempty" json:"peer,omitempty"`
	Image    string `cbor:"4,keyasint,omitempty" json:"image,omitempty"`
	Manifest []byte `cbor:"5,keyasint,omitempty" json:"manifest,omitempty"` // 32 bytes or none
}

// ManifestHash is the manifest's sha256 and whether the bid names one.
func (p *Payload) ManifestHash() ([32]byte, bool) {
	if len(p.Manifest) != sha256.Size {
		return [32]byte{}, false
	}
	return [32]byte(p.Manifest), true
}

// Constraints narrow which offers may take a bid. Empty means no
// constraint. The executor constraint is Bid.Executor itself.
type Constraints struct {
	Regions       []string `cbor:"1,keyasint,omitempty" json:"regions,omitempty"` // any of; sorted, unique
	Labels        []string `cbor:"2,keyasint,omitempty" json:"labels,omitempty"`  // all of; key=value, sorted, unique
	MinReputation uint32   `cbor:"3,keyasint,omitempty" json:"min_reputation,omitempty"`
	// RegionWeights, if set, has one weight in 1..MaxRegionWeight per
	// entry of Regions (same order): how much the client prefers each
	// region. The balanced preference adds a region cost of
	// (maxWeight − weight)/maxWeight (see score.go); other preferences
	// treat Regions as an unweighted "any of".
	RegionWeights []uint32 `cbor:"43,keyasint,omitempty" json:"region_weights,omitempty"`
}

// PeerRTT is one entry of a bid's distance list: a provider and the round
// trip the client's node measured to it, in milliseconds.
type PeerRTT struct {
	Provider wallet.Address `cbor:"1,keyasint" json:"provider"`
	Ms       uint32         `cbor:"2,keyasint" json:"ms"`
}

// Bounds of a bid's distance list and region weights.
const (
	MaxRTTEntries   = 8      // providers a bid's RTT list may name
	MaxRTTMs        = 10_000 // a larger round trip is written as this
	MaxRegionWeight = 100
)

// Bid is a client's signed job bid. Its ID (the job id) is the sha256 of
// its canonical encoding without the signature, so two submissions of the
// same job differ only if their Nonce does.
//
// A bid carries what matching and settlement need: resources, price,
// deadlines, constraints and a payload reference. The job's arguments and
// environment are in its Manifest, named by hash in Payload.Manifest, so
// every node's order book holds small bids (keys 5 and 6 were Args and
// Env; they are not reused).
type Bid struct {
	Client      wallet.PublicKey `cbor:"1,keyasint" json:"client_key"`
	Nonce       uint64           `cbor:"2,keyasint,omitempty" json:"nonce"`
	Executor    string           `cbor:"3,keyasint" json:"executor"`
	Payload     Payload          `cbor:"4,keyasint" json:"payload"`
	Resources   Resources        `cbor:"7,keyasint" json:"resources"`
	MaxPrice    uint64           `cbor:"8,keyasint" json:"max_price"`
	MatchBy     int64            `cbor:"9,keyasint" json:"match_by"`    // unix ms; matchable while t < MatchBy
	TimeoutMs   int64            `cbor:"10,keyasint" json:"timeout_ms"` // run timeout
	Constraints Constraints      `cbor:"11,keyasint,omitempty" json:"constraints"`
	Preference  string           `cbor:"12,keyasint" json:"preference"`
	Near        []string         `cbor:"13,keyasint,omitempty" json:"near,omitempty"` // regions, nearest first (client's latency hint)
	Replicas    uint32           `cbor:"14,keyasint" json:"replicas"`
	Sig         []byte           `cbor:"15,keyasint,omitempty" json:"sig,omitempty"`
	// Public lets any peer fetch the job's payload, manifest and result by
	// hash; otherwise the client's node serves the payload and manifest
	// only to the matched provider, and the provider the result only to
	// the client.
	Public bool `cbor:"16,keyasint,omitempty" json:"public,omitempty"`
	// RTT is the client node's measured round trips to providers, nearest
	// first (ties by address), at most MaxRTTEntries, each at most
	// MaxRTTMs. It is signed with the bid: a client can only mislead the
	// placement of its own job. See PreferNearest.
	RTT []PeerRTT `cbor:"40,keyasint,omitempty" json:"rtt,omitempty"`
	// Replica is this copy's index (0..Replicas-1) of a job run on
	// Replicas distinct providers (k-of-n): the Replicas bids of one job
	// differ only in Replica, and share GroupID. Each is matched, run and
	// held like a job of its own, then settled with the others: agreeing
	// replicas are paid, a WASM disagreement goes to referees who slash
	// the wrong, another executor's is settled by majority
	// (chain/replicas.go).
	Replica uint32 `cbor:"41,keyasint,omitempty" json:"replica,omitempty"`
	// AcceptMajority is the client's statement that it accepts the
	// majority-by-hash of a non-deterministic job (docker, exec) with
	// Replicas > 1: honest replicas of such a job may disagree, and the
	// outvoted go unpaid all the same. Refused on a WASM job, whose
	// disagreements go to referees.
	AcceptMajority bool `cbor:"42,keyasint,omitempty" json:"accept_majority,omitempty"`
}

// MaxReplicas bounds Bid.Replicas.
const MaxReplicas = 16

// GroupID is the id shared by the Replicas bids of one job: the id of its
// replica 0. A bid with one replica is its own group.
func (b *Bid) GroupID() BidID {
	if b.Replicas <= 1 || b.Replica == 0 {
		return b.ID()
	}
	c := *b
	c.Replica = 0
	return c.ID()
}

// BidID is a bid's id, which is also its job id.
type BidID [32]byte

// String is lowercase hex.
func (id BidID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the id as hex.
func (id BidID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses hex.
func (id *BidID) UnmarshalText(b []byte) error {
	p, err := ParseBidID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseBidID parses the hex form of a bid (job) id.
func ParseBidID(s string) (BidID, error) {
	var id BidID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("parse job id %.80q: want %d hex characters", s, 2*len(id))
	}
	copy(id[:], b)
	return id, nil
}

// ClientAddress is the client's account address.
func (b *Bid) ClientAddress() wallet.Address { return wallet.AddressOf(b.Client) }

// SigningBytes is the canonical encoding of the bid without its signature.
func (b *Bid) SigningBytes() ([]byte, error) {
	c := *b
	c.Sig = nil
	return codec.Marshal(&c)
}

// ID is the job id: sha256 of SigningBytes. It returns the zero id only if
// the bid cannot be encoded, which no decoded or constructed bid can hit.
func (b *Bid) ID() BidID {
	msg, err := b.SigningBytes()
	if err != nil {
		return BidID{}
	}
	return sha256.Sum256(msg)
}

// Encode is the canonical encoding of the signed bid, as gossiped.
func (b *Bid) Encode() ([]byte, error) { return codec.Marshal(b) }

// Sign sets Client to key's public key (it must be zero or already equal)
// and signs the bid for chainID.
func (b *Bid) Sign(chainID string, key wallet.PrivateKey) error {
	if !key.Valid() {
		return fmt.Errorf("sign bid: no key")
	}
	pub := key.Public()
	if b.Client != (wallet.PublicKey{}) && b.Client != pub {
		return fmt.Errorf("sign bid: key %s is not the client %s", pub.Address(), b.ClientAddress())
	}
	b.Client = pub
	msg, err := b.SigningBytes()
	if err != nil {
		return fmt.Errorf("sign bid: %w", err)
	}
	b.Sig = key.Sign(chainID, MsgBid, msg)
	return nil
}

// Verify checks the client's signature for chainID.
func (b *Bid) Verify(chainID string) error {
	msg, err := b.SigningBytes()
	if err != nil {
		return &InvalidError{Code: CodeDecode, Field: "bid", Err: err}
	}
	if !wallet.Verify(b.Client, chainID, MsgBid, msg, b.Sig) {
		return invalid(CodeSignature, "bid.sig", "bad signature from %s for chain %q", b.ClientAddress(), chainID)
	}
	return nil
}

// Validate checks everything about the bid that needs no chain state and no
// signature check: shapes, bounds, a known executor and preference,
// 1..MaxReplicas replicas (non-WASM ones only with AcceptMajority), a
// positive max price, and MatchBy in (now, now+MaxBidTTL].
func (b *Bid) Validate(now int64) error {
	switch {
	case b.Client == wallet.PublicKey{}:
		return invalid(CodeField, "bid.client", "empty client key")
	case executorBit(b.Executor) == 0:
		return invalid(CodeExecutor, "bid.executor", "unknown executor %.20q", b.Executor)
	case b.MaxPrice == 0:
		return invalid(CodePrice, "bid.max_price", "must be positive")
	case b.MatchBy <= now:
		return invalid(CodeExpired, "bid.match_by", "expired at %d, now %d", b.MatchBy, now)
	case b.MatchBy > addMs(now, MaxBidTTL):
		return invalid(CodeExpiry, "bid.match_by", "%d ms ahead exceeds %d", b.MatchBy-now, MaxBidTTL)
	case b.TimeoutMs <= 0 || b.TimeoutMs > MaxTimeoutMs:
		return invalid(CodeField, "bid.timeout_ms", "%d not in 1..%d", b.TimeoutMs, MaxTimeoutMs)
	case !validPreference(b.Preference):
		return invalid(CodeField, "bid.preference", "unknown preference %.20q", b.Preference)
	case b.Replicas < 1 || b.Replicas > MaxReplicas:
		return invalid(CodeField, "bid.replicas", "%d replicas: must be in 1..%d", b.Replicas, MaxReplicas)
	case b.Replica >= b.Replicas:
		return invalid(CodeField, "bid.replica", "replica %d of %d: must be below replicas", b.Replica, b.Replicas)
	case b.AcceptMajority && b.Replicas == 1:
		return invalid(CodeField, "bid.accept_majority", "means something only with replicas > 1")
	case b.AcceptMajority && b.Executor == ExecWASM:
		return invalid(CodeField, "bid.accept_majority", "wasm runs are deterministic and their disagreements go to referees; accept_majority is for docker and exec")
	case b.Replicas > 1 && b.Executor != ExecWASM && !b.AcceptMajority:
		return invalid(CodeField, "bid.replicas", "%d replicas of a %s job: its runs are not deterministic, so honest replicas may disagree and the outvoted go unpaid; set accept_majority to accept majority-by-hash anyway", b.Replicas, b.Executor)
	case b.Constraints.MinReputation > MaxReputation:
		return invalid(CodeField, "bid.constraints.min_reputation", "%d exceeds %d", b.Constraints.MinReputation, MaxReputation)
	case len(b.Sig) > wallet.SigLen:
		return invalid(CodeSignature, "bid.sig", "%d bytes", len(b.Sig))
	}
	if err := b.Resources.validate("bid.resources", true); err != nil {
		return err
	}
	if err := b.validatePayload(); err != nil {
		return err
	}
	if len(b.Constraints.Regions) > MaxRegions {
		return invalid(CodeField, "bid.constraints.regions", "%d regions exceed %d", len(b.Constraints.Regions), MaxRegions)
	}
	for _, r := range b.Constraints.Regions {
		if err := validRegion("bid.constraints.regions", r); err != nil {
			return err
		}
	}
	if !sortedUnique(b.Constraints.Regions) {
		return invalid(CodeField, "bid.constraints.regions", "must be sorted and unique")
	}
	if err := validLabels("bid.constraints.labels", b.Constraints.Labels); err != nil {
		return err
	}
	if err := b.validateDistance(); err != nil {
		return err
	}
	if len(b.Near) > MaxRegions {
		return invalid(CodeField, "bid.near", "%d regions exceed %d", len(b.Near), MaxRegions)
	}
	for i, r := range b.Near {
		if err := validRegion("bid.near", r); err != nil {
			return err
		}
		for _, q := range b.Near[:i] {
			if q == r {
				return invalid(CodeField, "bid.near", "region %q listed twice", r)
			}
		}
	}
	return nil
}

func (b *Bid) validateDistance() error {
	c := b.Constraints
	if len(c.RegionWeights) > 0 {
		if len(c.RegionWeights) != len(c.Regions) {
			return invalid(CodeField, "bid.constraints.region_weights", "%d weights for %d regions", len(c.RegionWeights), len(c.Regions))
		}
		for _, w := range c.RegionWeights {
			if w == 0 || w > MaxRegionWeight {
				return invalid(CodeField, "bid.constraints.region_weights", "weight %d not in 1..%d", w, MaxRegionWeight)
			}
		}
	}
	if len(b.RTT) > MaxRTTEntries {
		return invalid(CodeField, "bid.rtt", "%d entries exceed %d", len(b.RTT), MaxRTTEntries)
	}
	for i, e := range b.RTT {
		switch {
		case e.Provider.IsZero():
			return invalid(CodeField, "bid.rtt", "entry %d: empty provider", i)
		case e.Ms > MaxRTTMs:
			return invalid(CodeField, "bid.rtt", "entry %d: %d ms exceeds %d", i, e.Ms, MaxRTTMs)
		}
		if i > 0 {
			p := b.RTT[i-1]
			if p.Ms > e.Ms || p.Ms == e.Ms && bytes.Compare(p.Provider[:], e.Provider[:]) >= 0 {
				return invalid(CodeField, "bid.rtt", "entries must be sorted by (ms, provider), without repeats")
			}
		}
	}
	for i, e := range b.RTT { // a provider once: sorting by ms does not make that adjacent
		for _, q := range b.RTT[:i] {
			if q.Provider == e.Provider {
				return invalid(CodeField, "bid.rtt", "provider %s listed twice", e.Provider)
			}
		}
	}
	return nil
}

// RTTTo returns the round trip the bid's client reported to provider a,
// if its RTT list names a.
func (b *Bid) RTTTo(a wallet.Address) (uint32, bool) { return b.rttOf(a) }

// rttOf returns the round trip the bid lists for provider a.
func (b *Bid) rttOf(a wallet.Address) (uint32, bool) {
	for _, e := range b.RTT {
		if e.Provider == a {
			return e.Ms, true
		}
	}
	return 0, false
}

func (b *Bid) validatePayload() error {
	p := b.Payload
	switch {
	case len(p.Manifest) != 0 && len(p.Manifest) != sha256.Size:
		return invalid(CodePayload, "bid.payload.manifest", "%d bytes, want %d or none", len(p.Manifest), sha256.Size)
	case len(p.Manifest) != 0 && p.Peer == "":
		return invalid(CodePayload, "bid.payload.peer", "a manifest needs the peer that serves it")
	}
	if p.Image != "" && len(p.SHA256) == 0 && p.Size == 0 {
		switch {
		case b.Executor != ExecDocker:
			return invalid(CodePayload, "bid.payload.image", "an image needs the docker executor, not %q", b.Executor)
		case p.Peer != "" && len(p.Manifest) == 0:
			return invalid(CodePayload, "bid.payload.peer", "an image job names a peer only to serve its manifest")
		case len(p.Image) > MaxImageLen || !isPrintable(p.Image):
			return invalid(CodePayload, "bid.payload.image", "must be 1..%d printable bytes", MaxImageLen)
		case len(p.Peer) > MaxPeerIDLen || p.Peer != "" && !isPrintable(p.Peer):
			return invalid(CodePayload, "bid.payload.peer", "peer id must be 1..%d printable bytes", MaxPeerIDLen)
		}
		return nil
	}
	if p.Image != "" {
		// An image tarball, content addressed, with the ID of the one
		// image it holds.
		switch {
		case b.Executor != ExecDocker:
			return invalid(CodePayload, "bid.payload.image", "an image needs the docker executor, not %q", b.Executor)
		case !isImageID(p.Image):
			return invalid(CodePayload, "bid.payload.image", "an image tarball comes with its image ID (sha256:<64 hex digits>), not %.80q", p.Image)
		}
	}
	switch {
	case len(p.SHA256) != sha256.Size:
		return invalid(CodePayload, "bid.payload.sha256", "%d bytes, want %d", len(p.SHA256), sha256.Size)
	case p.Size == 0 || p.Size > MaxPayloadSize:
		return invalid(CodePayload, "bid.payload.size", "%d not in 1..%d", p.Size, MaxPayloadSize)
	case len(p.Peer) > MaxPeerIDLen || !isPrintable(p.Peer):
		return invalid(CodePayload, "bid.payload.peer", "peer id must be 1..%d printable bytes", MaxPeerIDLen)
	}
	return nil
}

// isImageID reports whether ref is a docker image ID: "sha256:" and 64
// lowercase hex digits.
func isImageID(ref string) bool {
	h, ok := strings.CutPrefix(ref, "sha256:")
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func validStrings(field string, xs []string, env bool) error {
	if len(xs) > MaxArgs {
		return invalid(CodeField, field, "%d entries exceed %d", len(xs), MaxArgs)
	}
	n := 0
	for _, x := range xs {
		n += len(x)
		if strings.IndexByte(x, 0) >= 0 {
			return invalid(CodeField, field, "NUL byte in %.40q", x)
		}
		if env {
			k, _, ok := strings.Cut(x, "=")
			if !ok || k == "" {
				return invalid(CodeField, field, "%.40q is not KEY=VALUE", x)
			}
		}
	}
	if n > MaxArgBytes {
		return invalid(CodeField, field, "%d bytes exceed %d", n, MaxArgBytes)
	}
	return nil
}

var bidDecoder = codec.MustDecoder(codec.Limits{MaxSize: MaxBidSize, MaxNesting: 4, MaxArrayElements: 64, MaxMapPairs: 32})

// MaxBidSize bounds a bid's encoding. The largest valid bid (every list
// and string at its bound: 16 regions, 16 nearness hints, 32 labels, an
// image name, a peer id) takes about 6.4 KiB.
const MaxBidSize = 8 << 10

// DecodeBid decodes a gossiped bid under tight limits (MaxBidSize). The bytes
// must be the canonical encoding. It checks neither the signature nor
// Validate.
func DecodeBid(data []byte) (*Bid, error) {
	var b Bid
	if err := bidDecoder.UnmarshalCanonical(data, &b); err != nil {
		return nil, &InvalidError{Code: CodeDecode, Field: "bid", Err: err}
	}
	return &b, nil
}
