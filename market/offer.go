package market

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// Executors a job can run on. Offers list the ones they support; a bid names
// the one its job needs.
const (
	ExecWASM   = "wasm"
	ExecDocker = "docker"
	ExecExec   = "exec"
)

// executorBit maps a known executor to its bit; unknown executors map to 0.
func executorBit(e string) uint8 {
	switch e {
	case ExecWASM:
		return 1
	case ExecDocker:
		return 2
	case ExecExec:
		return 4
	}
	return 0
}

// Signature message types (wallet domain separation).
const (
	MsgOffer = "offer"
	MsgBid   = "bid"
)

// Time bounds, in milliseconds.
const (
	MaxOfferTTL  = 10 * 60 * 1000          // an offer expires at most 10 minutes ahead: it is a heartbeat
	MaxBidTTL    = 24 * 60 * 60 * 1000     // a bid must be matched within a day
	MaxTimeoutMs = 7 * 24 * 60 * 60 * 1000 // longest run a bid may ask for
	MaxLoad      = 1000                    // load is in per-mille of the provider's capacity
)

// PriceTerms are an offer's prices in base units. CPU is priced per core
// second (1000 millicores for 1 s), memory per GiB second, plus a fixed
// amount per job. See PriceFor and Cost for the exact rounding.
type PriceTerms struct {
	PerCPUSecond uint64 `cbor:"1,keyasint,omitempty" json:"per_cpu_second"`
	PerGiBSecond uint64 `cbor:"2,keyasint,omitempty" json:"per_gib_second"`
	PerJob       uint64 `cbor:"3,keyasint,omitempty" json:"per_job"`
}

// Offer is a provider's signed capacity offer. Offers are heartbeats: a
// provider re-signs one with a higher Seq before Expires, and the newer
// replaces the older everywhere.
//
// Total is the capacity the provider sells; the chain reserves resources
// against it for every open match, and a match must fit in Total minus
// those reservations. Free and Load are the provider's own measurement at
// signing time (Free ≤ Total); they are advisory, shown to users and used
// by load-aware placement, never for the capacity check.
type Offer struct {
	Provider  wallet.PublicKey `cbor:"1,keyasint" json:"provider_key"`
	PeerID    string           `cbor:"2,keyasint" json:"peer_id"`
	Seq       uint64           `cbor:"3,keyasint" json:"seq"`
	Expires   int64            `cbor:"4,keyasint" json:"expires"` // unix ms; live while t < Expires
	Total     Resources        `cbor:"5,keyasint" json:"total"`
	Free      Resources        `cbor:"6,keyasint" json:"free"`
	Load      uint32           `cbor:"7,keyasint,omitempty" json:"load_permille"`
	Executors []string         `cbor:"8,keyasint" json:"executors"` // sorted, unique
	Terms     PriceTerms       `cbor:"9,keyasint" json:"terms"`
	Region    string           `cbor:"10,keyasint,omitempty" json:"region,omitempty"`
	Labels    []string         `cbor:"11,keyasint,omitempty" json:"labels,omitempty"` // key=value, sorted, unique
	Sig       []byte           `cbor:"12,keyasint,omitempty" json:"sig,omitempty"`
	// HostCPU and HostMem are the host's measured CPU and memory
	// utilisation at signing time, per mille, whatever runs on it (the
	// provider's jobs or anything else). Advisory like Load; placement
	// uses ReportedLoad, the largest of the three.
	HostCPU uint32 `cbor:"41,keyasint,omitempty" json:"host_cpu_permille,omitempty"`
	HostMem uint32 `cbor:"42,keyasint,omitempty" json:"host_mem_permille,omitempty"`
}

// ReportedLoad is the load the provider reports, per mille: the largest of
// Load, HostCPU and HostMem. Placement takes the larger of it and the
// chain's reservations (see score.go), so a provider cannot look less
// loaded than its open matches make it, only more.
func (o *Offer) ReportedLoad() uint32 { return max(o.Load, o.HostCPU, o.HostMem) }

// OfferID identifies an offer: its provider and sequence number.
type OfferID struct {
	Provider wallet.Address
	Seq      uint64
}

// Bytes is the fixed 28-byte form: address then big-endian sequence.
func (id OfferID) Bytes() [28]byte {
	var b [28]byte
	copy(b[:20], id.Provider[:])
	binary.BigEndian.PutUint64(b[20:], id.Seq)
	return b
}

// String is "bo1...#seq".
func (id OfferID) String() string { return id.Provider.String() + "#" + strconv.FormatUint(id.Seq, 10) }

// MarshalText encodes the id as its String form.
func (id OfferID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the String form.
func (id *OfferID) UnmarshalText(b []byte) error {
	a, s, ok := strings.Cut(string(b), "#")
	if !ok {
		return fmt.Errorf("parse offer id %q: want ADDRESS#SEQ", b)
	}
	addr, err := wallet.ParseAddress(a)
	if err != nil {
		return fmt.Errorf("parse offer id: %w", err)
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("parse offer id %q: %w", b, err)
	}
	*id = OfferID{Provider: addr, Seq: seq}
	return nil
}

// ProviderAddress is the provider's account address.
func (o *Offer) ProviderAddress() wallet.Address { return wallet.AddressOf(o.Provider) }

// ID is (provider address, seq).
func (o *Offer) ID() OfferID { return OfferID{Provider: o.ProviderAddress(), Seq: o.Seq} }

// Supports reports whether the offer lists executor e.
func (o *Offer) Supports(e string) bool {
	for _, x := range o.Executors {
		if x == e {
			return true
		}
	}
	return false
}

// SigningBytes is the canonical encoding of the offer without its
// signature: what Sign signs.
func (o *Offer) SigningBytes() ([]byte, error) {
	c := *o
	c.Sig = nil
	return codec.Marshal(&c)
}

// Encode is the canonical encoding of the signed offer, as gossiped.
func (o *Offer) Encode() ([]byte, error) { return codec.Marshal(o) }

// Sign sets Provider to key's public key (it must be zero or already equal)
// and signs the offer for chainID.
func (o *Offer) Sign(chainID string, key wallet.PrivateKey) error {
	if !key.Valid() {
		return fmt.Errorf("sign offer: no key")
	}
	pub := key.Public()
	if o.Provider != (wallet.PublicKey{}) && o.Provider != pub {
		return fmt.Errorf("sign offer: key %s is not the provider %s", pub.Address(), o.ProviderAddress())
	}
	o.Provider = pub
	msg, err := o.SigningBytes()
	if err != nil {
		return fmt.Errorf("sign offer: %w", err)
	}
	o.Sig = key.Sign(chainID, MsgOffer, msg)
	return nil
}

// Verify checks the provider's signature for chainID. A signature made for
// another chain fails.
func (o *Offer) Verify(chainID string) error {
	msg, err := o.SigningBytes()
	if err != nil {
		return &InvalidError{Code: CodeDecode, Field: "offer", Err: err}
	}
	if !wallet.Verify(o.Provider, chainID, MsgOffer, msg, o.Sig) {
		return invalid(CodeSignature, "offer.sig", "bad signature from %s for chain %q", o.ProviderAddress(), chainID)
	}
	return nil
}

// Validate checks everything about the offer that needs no chain state and
// no signature check: shapes, bounds, and that the expiry lies in
// (now, now+MaxOfferTTL]. now is unix milliseconds.
func (o *Offer) Validate(now int64) error {
	switch {
	case o.Provider == wallet.PublicKey{}:
		return invalid(CodeField, "offer.provider", "empty provider key")
	case len(o.PeerID) > MaxPeerIDLen || !isPrintable(o.PeerID):
		return invalid(CodeField, "offer.peer_id", "peer id must be 1..%d printable bytes", MaxPeerIDLen)
	case o.Seq == 0:
		return invalid(CodeField, "offer.seq", "sequence starts at 1")
	case o.Expires <= now:
		return invalid(CodeExpired, "offer.expires", "expired at %d, now %d", o.Expires, now)
	case o.Expires > addMs(now, MaxOfferTTL):
		return invalid(CodeExpiry, "offer.expires", "%d ms ahead exceeds %d", o.Expires-now, MaxOfferTTL)
	case o.Load > MaxLoad:
		return invalid(CodeField, "offer.load", "load %d exceeds %d per mille", o.Load, MaxLoad)
	case o.HostCPU > MaxLoad:
		return invalid(CodeField, "offer.host_cpu", "%d exceeds %d per mille", o.HostCPU, MaxLoad)
	case o.HostMem > MaxLoad:
		return invalid(CodeField, "offer.host_mem", "%d exceeds %d per mille", o.HostMem, MaxLoad)
	case len(o.Sig) > wallet.SigLen:
		return invalid(CodeSignature, "offer.sig", "%d bytes", len(o.Sig))
	}
	if err := o.Total.validate("offer.total", true); err != nil {
		return err
	}
	if err := o.Free.validate("offer.free", false); err != nil {
		return err
	}
	if !o.Free.within(o.Total) {
		return invalid(CodeResources, "offer.free", "free %v exceeds total %v", o.Free, o.Total)
	}
	if o.Free.GPUs > 0 && o.Free.GPUModel != o.Total.GPUModel {
		return invalid(CodeResources, "offer.free.gpu_model", "%q differs from total's %q", o.Free.GPUModel, o.Total.GPUModel)
	}
	if len(o.Executors) == 0 {
		return invalid(CodeExecutor, "offer.executors", "no executor")
	}
	for _, e := range o.Executors {
		if executorBit(e) == 0 {
			return invalid(CodeExecutor, "offer.executors", "unknown executor %.20q", e)
		}
	}
	if !sortedUnique(o.Executors) {
		return invalid(CodeField, "offer.executors", "must be sorted and unique")
	}
	if o.Region != "" {
		if err := validRegion("offer.region", o.Region); err != nil {
			return err
		}
	}
	if err := validLabels("offer.labels", o.Labels); err != nil {
		return err
	}
	// Every bid that can fit must be priceable: the most expensive one is
	// the whole capacity for the longest timeout.
	if _, err := priceOf(o.Terms, o.Total, MaxTimeoutMs); err != nil {
		return &InvalidError{Code: CodePrice, Field: "offer.terms", Detail: "terms overflow for the full capacity", Err: err}
	}
	return nil
}

var offerDecoder = codec.MustDecoder(codec.Limits{MaxSize: 8 << 10, MaxNesting: 4, MaxArrayElements: 64, MaxMapPairs: 32})

// DecodeOffer decodes a gossiped offer under tight limits (8 KiB). The
// bytes must be the canonical encoding. It checks neither the signature
// nor Validate: call Verify and Validate (or hand it to a Book).
func DecodeOffer(data []byte) (*Offer, error) {
	var o Offer
	if err := offerDecoder.UnmarshalCanonical(data, &o); err != nil {
		return nil, &InvalidError{Code: CodeDecode, Field: "offer", Err: err}
	}
	return &o, nil
}
