package market

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/bourse-net/bourse/codec"
)

// DefaultResultGraceMs is the default result grace period: the time added
// to a bid's run timeout to give the provider time to start the job and
// commit its result. The chain fixes the grace at genesis
// (chain.Params.ResultGraceMs); see Match.ResultDeadline.
const DefaultResultGraceMs = 60 * 1000

// Match places one bid on one offer. The proposer builds it (Matcher.Match)
// and carries the signed offer and bid verbatim; every validator runs
// CheckMatch on it.
//
// Price is the quote: PriceFor(Offer, Bid), the cost of the bid's
// resources for its full timeout at the offer's terms, never above
// Bid.MaxPrice. Escrow (what leaves the client's balance when the match
// is committed) is the bid's MaxPrice, as the design requires; settlement
// pays the provider at most Price (usage is capped at the matched
// resources for the timeout) and refunds the rest of the escrow.
type Match struct {
	Offer Offer  `cbor:"1,keyasint" json:"offer"`
	Bid   Bid    `cbor:"2,keyasint" json:"bid"`
	Price uint64 `cbor:"3,keyasint" json:"price"`
}

// ID is the match's id: the bid's id (a bid is matched at most once).
func (m *Match) ID() BidID { return m.Bid.ID() }

// Escrow is the amount moved from the client into escrow: Bid.MaxPrice.
func (m *Match) Escrow() uint64 { return m.Bid.MaxPrice }

// ResultDeadline is the block time by which the provider's Result must be
// committed for a match committed at matchedAt: matchedAt + the bid's
// timeout + graceMs (the chain's result grace period), saturating at the
// ends of int64. A match still open at a block with time ≥ the deadline
// is settled as timed out.
func (m *Match) ResultDeadline(matchedAt, graceMs int64) int64 {
	return addMs(addMs(matchedAt, m.Bid.TimeoutMs), graceMs)
}

// Encode is the canonical encoding of the match.
func (m *Match) Encode() ([]byte, error) { return codec.Marshal(m) }

var matchDecoder = codec.MustDecoder(codec.Limits{MaxSize: 64 << 10, MaxNesting: 5, MaxArrayElements: 64, MaxMapPairs: 32})

// DecodeMatch decodes a match (as carried in a transaction) under tight
// limits (64 KiB). The bytes must be canonical. Call CheckMatch next.
func DecodeMatch(data []byte) (*Match, error) {
	var m Match
	if err := matchDecoder.UnmarshalCanonical(data, &m); err != nil {
		return nil, &InvalidError{Code: CodeDecode, Field: "match", Err: err}
	}
	return &m, nil
}

// MatchError is CheckMatch's refusal: Code says which rule failed.
type MatchError struct {
	Code   Code
	Bid    BidID
	Offer  OfferID
	Detail string
	Err    error // optional cause
}

func (e *MatchError) Error() string {
	s := fmt.Sprintf("match of bid %s on offer %s: %s", e.Bid, e.Offer, e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *MatchError) Unwrap() error { return e.Err }

// CheckMatch runs every rule a committed Match must satisfy, in this order,
// and returns a *MatchError whose Code names the first rule broken:
//
//	CodeDecode/… (from Validate)  offer and bid are well formed at blockTime
//	CodeExpired                   neither offer nor bid expired at blockTime
//	CodeSignature                 both signatures are valid for chainID
//	CodeBidUsed                   the bid is not already matched or cancelled
//	CodeReplica                   no other replica of the bid's job is on the provider
//	CodeSelfMatch                 the bid's client is not the offer's provider
//	CodeCollateral                provider registered with ≥ MinCollateral
//	CodeSuperseded                offer.Seq ≥ the provider's NewestOfferSeq
//	CodeExecutor, CodeRegion,     the bid's constraints hold for the offer
//	CodeLabel, CodeReputation
//	CodeResources                 the bid fits Total minus the chain's reservations
//	CodePrice                     PriceFor(offer, bid) ≤ bid.MaxPrice
//	CodeMismatch                  m.Price == PriceFor(offer, bid)
//	CodeBalance                   client spendable ≥ bid.MaxPrice (the escrow)
//
// It reads view only; the chain applies the escrow and reservation after a
// nil result. An invalid match makes its block invalid.
func CheckMatch(chainID string, m *Match, view ChainView, blockTime int64) error {
	if m == nil {
		return &MatchError{Code: CodeDecode, Detail: "nil match"}
	}
	o, b := &m.Offer, &m.Bid
	fail := func(code Code, err error, format string, args ...any) error {
		return &MatchError{Code: code, Bid: b.ID(), Offer: o.ID(), Detail: fmt.Sprintf(format, args...), Err: err}
	}
	if err := o.Validate(blockTime); err != nil {
		return fail(CodeOf(err), err, "offer")
	}
	if err := b.Validate(blockTime); err != nil {
		return fail(CodeOf(err), err, "bid")
	}
	if err := o.Verify(chainID); err != nil {
		return fail(CodeSignature, err, "offer")
	}
	if err := b.Verify(chainID); err != nil {
		return fail(CodeSignature, err, "bid")
	}
	if view.BidClosed(b.ID()) {
		return fail(CodeBidUsed, nil, "bid already matched or cancelled")
	}
	if b.Replicas > 1 && slices.Contains(view.ReplicaProviders(b.GroupID()), o.ProviderAddress()) {
		return fail(CodeReplica, nil, "provider %s already runs a replica of job %s", o.ProviderAddress(), b.GroupID())
	}
	ps, ok := view.Provider(o.ProviderAddress())
	if f := checkPair(o, b, ps, ok, view.MinCollateral(), ps.Reserved); len(f) > 0 {
		return fail(f[0].Code, nil, "%s", f[0].Detail)
	}
	price, err := PriceFor(o, b)
	if err != nil { // unreachable after checkPair, kept as a guard
		return fail(CodePrice, err, "price")
	}
	if m.Price != price {
		return fail(CodeMismatch, nil, "price %d, terms give %d", m.Price, price)
	}
	if have := view.Spendable(b.ClientAddress()); have < b.MaxPrice {
		return fail(CodeBalance, nil, "client has %d, escrow needs %d", have, b.MaxPrice)
	}
	return nil
}

// Failure is one reason an offer cannot take a bid.
type Failure struct {
	Code   Code   `json:"code"`
	Detail string `json:"detail"`
}

// checkPair is the specification of "offer o can take bid b" given the
// provider's chain state and what is reserved on it (chain reservations
// plus, in the matcher, this round's earlier placements). Static validity,
// expiry, signatures and the client's balance are checked by callers. It
// returns every failing rule, in CheckMatch order.
func checkPair(o *Offer, b *Bid, ps ProviderState, registered bool, minCollateral uint64, reserved Resources) []Failure {
	var f []Failure
	add := func(c Code, format string, args ...any) {
		f = append(f, Failure{Code: c, Detail: fmt.Sprintf(format, args...)})
	}
	if b.ClientAddress() == o.ProviderAddress() {
		add(CodeSelfMatch, "client %s is the provider", b.ClientAddress())
	}
	switch {
	case !registered:
		add(CodeCollateral, "provider %s is not registered", o.ProviderAddress())
	case ps.Collateral < minCollateral:
		add(CodeCollateral, "collateral %d below minimum %d", ps.Collateral, minCollateral)
	}
	if o.Seq < ps.NewestOfferSeq {
		add(CodeSuperseded, "offer seq %d, the chain has matched seq %d", o.Seq, ps.NewestOfferSeq)
	}
	if !o.Supports(b.Executor) {
		add(CodeExecutor, "offer runs %v, bid needs %q", o.Executors, b.Executor)
	}
	if len(b.Constraints.Regions) > 0 && !contains(b.Constraints.Regions, o.Region) {
		add(CodeRegion, "offer region %q not in %v", o.Region, b.Constraints.Regions)
	}
	if ms := missing(o.Labels, b.Constraints.Labels); len(ms) > 0 {
		add(CodeLabel, "offer lacks labels %v", ms)
	}
	if ps.Reputation < b.Constraints.MinReputation {
		add(CodeReputation, "reputation %d below %d", ps.Reputation, b.Constraints.MinReputation)
	}
	if avail := Available(o.Total, reserved); !Fits(b.Resources, avail) {
		add(CodeResources, "needs %v, available %v", b.Resources, avail)
	}
	if p, err := PriceFor(o, b); err != nil {
		add(CodePrice, "%v", err)
	} else if p > b.MaxPrice {
		add(CodePrice, "price %d above max %d", p, b.MaxPrice)
	}
	return f
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Payout splits a match's escrow at settlement.
type Payout struct {
	Provider uint64 // paid to the provider
	Refund   uint64 // returned to the client; Provider+Refund == escrow
}

// Settle computes the payout for a Result reporting usage u: usage is
// capped at the matched resources for the full timeout, priced at the
// offer's terms with Cost, capped by the escrow; the rest is refunded.
// Fees (to the proposer) are the chain's business and come on top.
func Settle(m *Match, u Usage) (Payout, error) {
	escrow := m.Escrow()
	ms := uint64(max(m.Bid.TimeoutMs, 0))
	hi, milliMs := bits.Mul64(m.Bid.Resources.CPU, ms)
	if hi != 0 {
		return Payout{}, fmt.Errorf("settle %s: cpu cap: %w", m.ID(), ErrOverflow)
	}
	capCPU := milliMs / 1000 // rounded down, so the capped cost never exceeds Price
	hi, capMem := bits.Mul64(m.Bid.Resources.MemMiB, ms)
	if hi != 0 {
		return Payout{}, fmt.Errorf("settle %s: memory cap: %w", m.ID(), ErrOverflow)
	}
	u.CPUMs = min(u.CPUMs, capCPU)
	u.MemMiBMs = min(u.MemMiBMs, capMem)
	cost, err := Cost(m.Offer.Terms, u)
	if errors.Is(err, ErrOverflow) {
		cost = escrow // priced above anything escrow holds: capped below
	} else if err != nil {
		return Payout{}, fmt.Errorf("settle %s: %w", m.ID(), err)
	}
	pay := min(cost, escrow)
	return Payout{Provider: pay, Refund: escrow - pay}, nil
}
