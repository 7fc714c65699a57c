package market

import (
	"bytes"
	"container/heap"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"sync"

	"github.com/bourse-net/bourse/wallet"
)

// Sentinel errors of the Book for input that is not wrong, only unwanted:
// gossip validators map them to Ignore or Refuse (see VerdictOf).
var (
	ErrDuplicate = errors.New("already in the book")
	ErrStale     = errors.New("superseded by a newer offer or already closed")
	ErrBookFull  = errors.New("order book limit reached")
	// ErrUnfunded: the client's spendable balance does not cover the
	// MaxPrice of this bid and of its bids already in the book.
	ErrUnfunded = errors.New("client balance does not cover its open bids")
	// ErrUnbacked: the offer's provider is not registered with the
	// chain's minimum collateral, or its collateral does not back the
	// capacity it advertises (see BookConfig.CapacityPerMinCollateral).
	ErrUnbacked = errors.New("provider collateral does not back the offer")
	// ErrPeerFull: the peer that delivered the bid already has its share
	// of the book (BookConfig.MaxBidsPerPeer). It wraps ErrBookFull.
	ErrPeerFull = fmt.Errorf("%w: the delivering peer's share is full", ErrBookFull)
)

// Kind says what a gossiped message holds (one topic per kind).
type Kind uint8

// Message kinds.
const (
	KindOffer Kind = iota + 1
	KindBid
)

// Verdict is what a gossip validator answers.
type Verdict int

// Verdicts, in the libp2p pubsub sense.
const (
	Accept Verdict = iota // valid and new: deliver and forward
	Ignore                // stale, duplicate, expired or no room: drop, no penalty
	Reject                // invalid: drop and penalise the sender
	// Refuse: well formed and signed, but not admissible against the
	// chain state (an unfunded bid, an offer its collateral does not
	// back). Drop it without forwarding; the sender earns a light,
	// decaying penalty rather than Reject's: two honest nodes may judge
	// such a message differently while their states are a block apart.
	Refuse
)

// VerdictOf maps an error from Book.Add* to a gossip verdict. An expired
// message is ignored (it may just have travelled slowly); any other
// *InvalidError is rejected; ErrUnfunded and ErrUnbacked are refused.
func VerdictOf(err error) Verdict {
	if err == nil {
		return Accept
	}
	var ie *InvalidError
	if errors.As(err, &ie) && ie.Code != CodeExpired {
		return Reject
	}
	if errors.Is(err, ErrUnfunded) || errors.Is(err, ErrUnbacked) {
		return Refuse
	}
	return Ignore
}

// BookConfig bounds an order book. Every field has a default in
// DefaultBookConfig; Validate names the bad field.
type BookConfig struct {
	// ChainID the book's offers and bids must be signed for. Required.
	ChainID string
	// MaxOffers bounds the offers held: one per provider (a newer offer
	// replaces the older), so this is the number of providers. Default 10,000.
	MaxOffers int
	// MaxBids bounds the open bids held in total. Default 100,000.
	MaxBids int
	// MaxBidsPerClient bounds the open bids of one client. Default 256.
	MaxBidsPerClient int
	// MaxBidsPerPeer bounds the open bids that one gossip peer delivered
	// first (AddFrom), whatever their clients: a peer relaying many Sybil
	// keys fills its share, not the book. Bids added locally (Add, AddBid:
	// the node's own API) count against no peer. 0 means MaxBids/4
	// (25,000 by default), so filling the book takes four peers.
	MaxBidsPerPeer int
	// MaxBidBytes bounds the encoded size of the open bids held, summed.
	// Default 128 MiB (a maximal bid is 48 KiB, a typical one under 1 KiB).
	MaxBidBytes int64
	// MaxClosed bounds how many closed (matched or cancelled) bid ids the
	// book remembers so that re-gossiped copies are refused; each is
	// forgotten once its MatchBy passes. Default 200,000.
	MaxClosed int
	// CapacityPerMinCollateral is how many capacity units (CapacityUnits)
	// the chain's MinCollateral backs: an offer is admitted only if
	// CapacityUnits(Total) × MinCollateral ≤ collateral × this. Default 64
	// (at the minimum collateral, e.g. 32 cores and 128 GiB).
	CapacityPerMinCollateral uint64
	// View returns the chain state admission reads: the node's current
	// state (in memory, no disk read). Nil turns the chain checks off, for
	// tools and tests that hold no chain; a node always sets it.
	View func() ChainView
}

// DefaultBookConfig returns the defaults for chainID (without a View).
func DefaultBookConfig(chainID string) BookConfig {
	return BookConfig{ChainID: chainID, MaxOffers: 10_000, MaxBids: 100_000, MaxBidsPerClient: 256,
		MaxBidBytes: 128 << 20, MaxClosed: 200_000, CapacityPerMinCollateral: 64}
}

// Validate checks the configuration.
func (c BookConfig) Validate() error {
	switch {
	case c.ChainID == "":
		return errors.New("book config: ChainID is required")
	case c.MaxOffers <= 0:
		return fmt.Errorf("book config: MaxOffers must be positive, got %d", c.MaxOffers)
	case c.MaxBids <= 0:
		return fmt.Errorf("book config: MaxBids must be positive, got %d", c.MaxBids)
	case c.MaxBidsPerClient <= 0 || c.MaxBidsPerClient > c.MaxBids:
		return fmt.Errorf("book config: MaxBidsPerClient must be in 1..MaxBids, got %d", c.MaxBidsPerClient)
	case c.MaxBidsPerPeer < 0 || c.MaxBidsPerPeer > c.MaxBids:
		return fmt.Errorf("book config: MaxBidsPerPeer must be in 0..MaxBids (0: MaxBids/4), got %d", c.MaxBidsPerPeer)
	case c.MaxBidBytes < 48<<10:
		return fmt.Errorf("book config: MaxBidBytes must hold at least one maximal bid (48 KiB), got %d", c.MaxBidBytes)
	case c.MaxClosed <= 0:
		return fmt.Errorf("book config: MaxClosed must be positive, got %d", c.MaxClosed)
	case c.CapacityPerMinCollateral == 0:
		return errors.New("book config: CapacityPerMinCollateral must be positive")
	}
	return nil
}

// CapacityUnits measures an offer's capacity for the collateral rule: one
// unit per core (1,000 millicores), one per 4 GiB of memory and 8 per GPU,
// each rounded up; disk is not counted.
func CapacityUnits(r Resources) uint64 {
	return (r.CPU+999)/1000 + (r.MemMiB+4095)/4096 + 8*uint64(r.GPUs)
}

// backs reports whether collateral backs units: units×minColl ≤ coll×per.
func backs(units, minColl, coll, per uint64) bool {
	h1, l1 := bits.Mul64(units, minColl)
	h2, l2 := bits.Mul64(coll, per)
	return h1 < h2 || h1 == h2 && l1 <= l2
}

// Book is the order book: the latest offer of every provider and the open
// bids, all signature checked, deduplicated, admitted against chain state
// and bounded. It has no clock: callers pass now (unix ms) and call Prune
// to expire entries and Recheck to drop entries the chain no longer backs.
// It is safe for concurrent use; signature checks and chain reads run
// outside its lock.
//
// When full, the book makes room by evicting its least valuable entry, if
// the newcomer is worth strictly more (see market/RATIONALE.md, "When the book is
// full"): offers by their provider's collateral, bids by MaxPrice per KiB.
//
// The book takes ownership of the offers and bids added to it; they and
// the snapshots that share them must not be modified.
type Book struct {
	cfg BookConfig

	mu       sync.Mutex
	offers   map[wallet.Address]*offerEntry
	offerMin offerHeap
	bids     map[BidID]*bidEntry
	bidMin   bidHeap
	// Dense copies of the entries, for a round's sample without walking
	// the maps: offerList, and bidList with bidIDs parallel to it (the
	// ids in one contiguous array, which the sample hashes). An entry's
	// li is its index; removal swaps the last entry in.
	offerList []*offerEntry
	bidList   []*bidEntry
	bidIDs    []BidID
	bidBytes  int64
	clients   map[wallet.Address]*clientEntry
	peers     map[string]int  // open bids per delivering peer
	closed    map[BidID]int64 // id → time after which it can be forgotten
	counters  map[string]uint64
}

type offerEntry struct {
	o    *Offer
	addr wallet.Address
	coll uint64 // collateral at admission: what backs the entry
	hi   int    // index in offerMin
	li   int    // index in offerList
}

type bidEntry struct {
	b      *Bid
	id     BidID
	client wallet.Address
	size   int64  // encoded bytes
	value  uint64 // MaxPrice per KiB of encoding: what backs the entry
	peer   string // the gossip peer that delivered it first; "" if local
	hi     int    // index in bidMin
	li     int    // index in bidList and bidIDs
}

type clientEntry struct {
	sum  uint64 // MaxPrice of its open bids, saturating
	bids map[BidID]*bidEntry
}

// bidValue is a bid's worth per book slot: MaxPrice per started KiB.
func bidValue(maxPrice uint64, size int64) uint64 {
	return maxPrice / uint64(max(1, (size+1023)/1024))
}

// lessBid orders bids from least to most valuable: lower value, then the
// later MatchBy (less urgent), then the larger id.
func lessBid(a, b *bidEntry) bool {
	if a.value != b.value {
		return a.value < b.value
	}
	if a.b.MatchBy != b.b.MatchBy {
		return a.b.MatchBy > b.b.MatchBy
	}
	return bytes.Compare(a.id[:], b.id[:]) > 0
}

// lessOffer orders offers from least to most backed: lower collateral,
// then the larger address.
func lessOffer(a, b *offerEntry) bool {
	if a.coll != b.coll {
		return a.coll < b.coll
	}
	return bytes.Compare(a.addr[:], b.addr[:]) > 0
}

type bidHeap []*bidEntry

func (h bidHeap) Len() int           { return len(h) }
func (h bidHeap) Less(i, j int) bool { return lessBid(h[i], h[j]) }
func (h bidHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].hi = i; h[j].hi = j }
func (h *bidHeap) Push(x any)        { e := x.(*bidEntry); e.hi = len(*h); *h = append(*h, e) }
func (h *bidHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.hi = -1
	return e
}

type offerHeap []*offerEntry

func (h offerHeap) Len() int           { return len(h) }
func (h offerHeap) Less(i, j int) bool { return lessOffer(h[i], h[j]) }
func (h offerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].hi = i; h[j].hi = j }
func (h *offerHeap) Push(x any)        { e := x.(*offerEntry); e.hi = len(*h); *h = append(*h, e) }
func (h *offerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.hi = -1
	return e
}

// NewBook returns an empty book.
func NewBook(cfg BookConfig) (*Book, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Book{
		cfg:      cfg,
		offers:   make(map[wallet.Address]*offerEntry),
		bids:     make(map[BidID]*bidEntry),
		clients:  make(map[wallet.Address]*clientEntry),
		peers:    make(map[string]int),
		closed:   make(map[BidID]int64),
		counters: make(map[string]uint64),
	}, nil
}

// count records an outcome; the caller holds mu.
func (bk *Book) count(kind string, err error) {
	switch VerdictOf(err) {
	case Accept:
		bk.counters[kind+"/accept"]++
	case Reject:
		bk.counters[kind+"/reject/"+string(CodeOf(err))]++
	case Refuse:
		reason := "unbacked"
		if errors.Is(err, ErrUnfunded) {
			reason = "unfunded"
		}
		bk.counters[kind+"/refuse/"+reason]++
	default:
		reason := "expired"
		switch {
		case errors.Is(err, ErrDuplicate):
			reason = "duplicate"
		case errors.Is(err, ErrStale):
			reason = "stale"
		case errors.Is(err, ErrPeerFull):
			reason = "peer-full"
		case errors.Is(err, ErrBookFull):
			reason = "full"
		}
		bk.counters[kind+"/ignore/"+reason]++
	}
}

func (bk *Book) counted(kind string, err error) error {
	bk.mu.Lock()
	bk.count(kind, err)
	bk.mu.Unlock()
	return err
}

// Counters returns how many messages were accepted, rejected (by Code),
// refused and ignored (by reason), and how many entries were evicted or
// dropped by Recheck, keyed "offer/accept", "bid/reject/signature",
// "bid/refuse/unfunded", "offer/ignore/stale", "bid/evicted",
// "bid/recheck", ...; for metrics.
func (bk *Book) Counters() map[string]uint64 {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return maps.Clone(bk.counters)
}

// Add decodes a message of the given kind and adds it as the node's own
// (no peer share): AddFrom with from "".
func (bk *Book) Add(kind Kind, data []byte, now int64) error { return bk.AddFrom(kind, data, "", now) }

// AddFrom decodes a gossiped message of the given kind, delivered by
// peer from, and adds it; a bid counts against from's share of the book
// (BookConfig.MaxBidsPerPeer) while it is held.
func (bk *Book) AddFrom(kind Kind, data []byte, from string, now int64) error {
	switch kind {
	case KindOffer:
		o, err := DecodeOffer(data)
		if err != nil {
			return bk.counted("offer", fmt.Errorf("add offer: %w", err))
		}
		return bk.AddOffer(o, now)
	case KindBid:
		b, err := DecodeBid(data)
		if err != nil {
			return bk.counted("bid", fmt.Errorf("add bid: %w", err))
		}
		return bk.AddBidFrom(b, from, now)
	}
	return fmt.Errorf("add: unknown message kind %d", kind)
}

// AddOffer adds o if it is valid at now, correctly signed, newer than the
// provider's offer in the book (which it then replaces) and, with a View,
// backed by the provider's collateral. Errors: *InvalidError (bad input),
// ErrUnbacked, ErrDuplicate, ErrStale, ErrBookFull.
func (bk *Book) AddOffer(o *Offer, now int64) error {
	if o == nil {
		return bk.counted("offer", invalid(CodeDecode, "offer", "nil offer"))
	}
	err := bk.addOffer(o, now)
	if err != nil {
		err = fmt.Errorf("add offer %s: %w", o.ID(), err)
	}
	return bk.counted("offer", err)
}

func (bk *Book) addOffer(o *Offer, now int64) error {
	if err := o.Validate(now); err != nil {
		return err
	}
	addr := o.ProviderAddress()
	// A copy of what the book holds is a duplicate whatever the chain
	// says now: gossip may bring it late, after the provider's collateral
	// changed, and an honest relay is not to be refused for that.
	bk.mu.Lock()
	err := bk.knownOfferLocked(addr, o)
	bk.mu.Unlock()
	if err != nil {
		return err
	}
	coll := uint64(1<<64 - 1) // without a view every offer is fully backed
	if bk.cfg.View != nil {
		ps, err := bk.offerBacked(bk.cfg.View(), o)
		if err != nil {
			return err
		}
		coll = ps.Collateral
	}
	bk.mu.Lock()
	err = bk.checkOfferLocked(addr, o, coll)
	bk.mu.Unlock()
	if err != nil {
		return err
	}
	if err := o.Verify(bk.cfg.ChainID); err != nil {
		return err
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if err := bk.checkOfferLocked(addr, o, coll); err != nil { // again: raced with another add
		return err
	}
	if e, ok := bk.offers[addr]; ok {
		e.o, e.coll = o, coll
		heap.Fix(&bk.offerMin, e.hi)
		return nil
	}
	if len(bk.offers) >= bk.cfg.MaxOffers {
		bk.removeOfferLocked(bk.offerMin[0])
		bk.counters["offer/evicted"]++
	}
	e := &offerEntry{o: o, addr: addr, coll: coll, li: len(bk.offerList)}
	bk.offers[addr] = e
	bk.offerList = append(bk.offerList, e)
	heap.Push(&bk.offerMin, e)
	return nil
}

// offerBacked checks o against the chain: a registered provider with at
// least MinCollateral, whose collateral backs CapacityUnits(o.Total), and
// whose newest matched offer is not newer than o.
func (bk *Book) offerBacked(view ChainView, o *Offer) (ProviderState, error) {
	addr := o.ProviderAddress()
	ps, ok := view.Provider(addr)
	minColl := view.MinCollateral()
	switch {
	case !ok:
		return ps, fmt.Errorf("%w: %s is not a registered provider", ErrUnbacked, addr)
	case ps.Collateral < minColl:
		return ps, fmt.Errorf("%w: collateral %d below the minimum %d", ErrUnbacked, ps.Collateral, minColl)
	case !backs(CapacityUnits(o.Total), max(minColl, 1), ps.Collateral, bk.cfg.CapacityPerMinCollateral):
		return ps, fmt.Errorf("%w: %d capacity units need collateral %d (%d units per %d), it has %d", ErrUnbacked,
			CapacityUnits(o.Total), collateralFor(CapacityUnits(o.Total), max(minColl, 1), bk.cfg.CapacityPerMinCollateral),
			bk.cfg.CapacityPerMinCollateral, minColl, ps.Collateral)
	case o.Seq < ps.NewestOfferSeq:
		return ps, fmt.Errorf("%w: the chain has matched seq %d", ErrStale, ps.NewestOfferSeq)
	}
	return ps, nil
}

// collateralFor is the collateral that backs units: ceil(units×minColl/per),
// saturating.
func collateralFor(units, minColl, per uint64) uint64 {
	hi, lo := bits.Mul64(units, minColl)
	if hi >= per {
		return 1<<64 - 1
	}
	q, r := bits.Div64(hi, lo, per)
	if r != 0 && q < 1<<64-1 {
		q++
	}
	return q
}

func (bk *Book) checkOfferLocked(addr wallet.Address, o *Offer, coll uint64) error {
	if _, ok := bk.offers[addr]; !ok && len(bk.offers) >= bk.cfg.MaxOffers && bk.offerMin[0].coll >= coll {
		return fmt.Errorf("%w: %d offers, each backed by at least as much collateral as %d", ErrBookFull, len(bk.offers), coll)
	}
	return bk.knownOfferLocked(addr, o)
}

// knownOfferLocked refuses a copy of the held offer (ErrDuplicate) or an
// older one (ErrStale).
func (bk *Book) knownOfferLocked(addr wallet.Address, o *Offer) error {
	e, ok := bk.offers[addr]
	switch {
	case !ok:
		return nil
	case e.o.Seq == o.Seq && bytes.Equal(e.o.Sig, o.Sig):
		return ErrDuplicate
	case e.o.Seq >= o.Seq:
		return fmt.Errorf("%w: holding seq %d", ErrStale, e.o.Seq)
	}
	return nil
}

// AddBid adds b if it is valid at now, correctly signed, not already held
// or closed, within the per-client bound and, with a View, funded: the
// client's spendable balance covers the MaxPrice of b and of all its bids
// already held. A full book evicts its least valuable bids to make room
// if b is worth more than each of them, and refuses b otherwise. Errors:
// *InvalidError (bad input), ErrUnfunded, ErrDuplicate, ErrStale
// (closed), ErrBookFull.
func (bk *Book) AddBid(b *Bid, now int64) error { return bk.AddBidFrom(b, "", now) }

// AddBidFrom is AddBid for a bid that gossip peer from delivered: it
// counts against from's share (ErrPeerFull when that is full; "" is the
// node itself and has no share).
func (bk *Book) AddBidFrom(b *Bid, from string, now int64) error {
	if b == nil {
		return bk.counted("bid", invalid(CodeDecode, "bid", "nil bid"))
	}
	msg, err := b.SigningBytes()
	if err != nil {
		return bk.counted("bid", &InvalidError{Code: CodeDecode, Field: "bid", Err: err})
	}
	e := &bidEntry{b: b, id: sha256.Sum256(msg), client: b.ClientAddress(), size: int64(len(msg) + len(b.Sig) + 3), peer: from}
	e.value = bidValue(b.MaxPrice, e.size)
	err = bk.addBid(e, now)
	if err != nil {
		err = fmt.Errorf("add bid %s: %w", e.id, err)
	}
	return bk.counted("bid", err)
}

func (bk *Book) addBid(e *bidEntry, now int64) error {
	b := e.b
	if err := b.Validate(now); err != nil {
		return err
	}
	// A copy of a bid held or closed is that, whatever the client can
	// spend now (its own match may have taken the escrow): gossip brings
	// copies late, and an honest relay is not to be refused for them.
	bk.mu.Lock()
	err := bk.knownBidLocked(e)
	bk.mu.Unlock()
	if err != nil {
		return err
	}
	var view ChainView
	if bk.cfg.View != nil {
		view = bk.cfg.View()
		// The book forgets closed ids (and a restarted node starts with
		// none); the chain does not. One read keeps a replayed bid the
		// chain matched or cancelled out of the book, where it would
		// never match and, closed, would not count against its client.
		if view.BidClosed(e.id) {
			return fmt.Errorf("%w: bid is closed on the chain", ErrStale)
		}
	}
	settled, verified, err := bk.fundBid(e, view)
	if err != nil {
		return err
	}
	if !verified {
		if err := b.Verify(bk.cfg.ChainID); err != nil {
			return err
		}
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	// The balance is read again under the book's lock. The node closes a
	// matched bid only after the block that took its escrow is applied,
	// so every bid already gone from the client's sum has its escrow gone
	// from this balance too; a balance read before the lock could predate
	// the block whose bids Close took out of the sum since.
	spendable := uint64(1<<64 - 1)
	if view != nil {
		spendable = view.Spendable(e.client)
	}
	if err := bk.checkBidLocked(e, spendable, settled); err != nil {
		return err
	}
	// Make room: the least valuable bids leave while the newcomer is
	// worth more than each; if that does not free enough, nothing leaves.
	n, size := len(bk.bids), bk.bidBytes
	var out []*bidEntry
	for n >= bk.cfg.MaxBids || size+e.size > bk.cfg.MaxBidBytes {
		ev := bk.bidMin[0] // checkBidLocked saw at least one
		if ev.value >= e.value {
			for _, x := range out {
				heap.Push(&bk.bidMin, x)
			}
			return fmt.Errorf("%w: %d bids of %d bytes, none worth less than %d per KiB", ErrBookFull, len(bk.bids), bk.bidBytes, e.value)
		}
		out = append(out, heap.Pop(&bk.bidMin).(*bidEntry))
		n, size = n-1, size-ev.size
	}
	for _, ev := range out {
		heap.Push(&bk.bidMin, ev) // removeBidLocked takes it out with the rest
		bk.removeBidLocked(ev)
		bk.counters["bid/evicted"]++
	}
	c := bk.clients[e.client]
	if c == nil {
		c = &clientEntry{bids: map[BidID]*bidEntry{}}
		bk.clients[e.client] = c
	}
	c.bids[e.id] = e
	c.sum = satAdd(c.sum, b.MaxPrice)
	bk.bids[e.id] = e
	e.li = len(bk.bidList)
	bk.bidList = append(bk.bidList, e)
	bk.bidIDs = append(bk.bidIDs, e.id)
	bk.bidBytes += e.size
	if e.peer != "" {
		bk.peers[e.peer]++
	}
	heap.Push(&bk.bidMin, e)
	return nil
}

// peerCap is the open bids one delivering peer may hold.
func (bk *Book) peerCap() int {
	if bk.cfg.MaxBidsPerPeer > 0 {
		return bk.cfg.MaxBidsPerPeer
	}
	return max(1, bk.cfg.MaxBids/4)
}

// fundBid checks e against what its client can spend and the client's
// open bids, before the signature is verified (so that most unwanted bids
// cost no verification). It returns the client's open bids that the
// committed state already closed (nil when there was no need to look),
// and whether it verified e's signature on the way; with closed bids
// found it leaves the verdict to addBid's check under the book's lock.
//
// Those closed bids matter because the chain takes a matched bid's escrow
// from the balance in the block that matches it, and the book drops the
// bid only when the node calls Close after that commit. In between, the
// bid would be counted twice, once in the balance and once in the open
// sum, and the client's next bid would be refused although the client
// can fund it. They are looked up only when the plain check finds the
// bid unfunded, and only for a bid whose signature holds, for at most
// MaxBidsPerClient of the client's bids: a forged bid naming a client with
// many open bids buys no reads (it is rejected), and a bid that fits costs
// none. A client at MaxBidsPerClient waits for Close instead, a block at
// most: that refusal is an Ignore, which costs a relay nothing, and
// looking would make each ignored bid cost a verification and the reads.
func (bk *Book) fundBid(e *bidEntry, view ChainView) (map[BidID]bool, bool, error) {
	spendable := uint64(1<<64 - 1)
	if view != nil {
		spendable = view.Spendable(e.client)
		if spendable < e.b.MaxPrice {
			return nil, false, fmt.Errorf("%w: client %s can spend %d, the bid's max price is %d", ErrUnfunded, e.client, spendable, e.b.MaxPrice)
		}
	}
	bk.mu.Lock()
	err := bk.checkBidLocked(e, spendable, nil)
	var open []BidID
	if c := bk.clients[e.client]; view != nil && c != nil && errors.Is(err, ErrUnfunded) {
		for id := range c.bids {
			if len(open) == bk.cfg.MaxBidsPerClient {
				break
			}
			open = append(open, id)
		}
	}
	bk.mu.Unlock()
	if len(open) == 0 {
		return nil, false, err
	}
	if err := e.b.Verify(bk.cfg.ChainID); err != nil {
		return nil, false, err
	}
	settled := map[BidID]bool{}
	for _, id := range open {
		if view.BidClosed(id) {
			settled[id] = true
		}
	}
	if len(settled) == 0 {
		return nil, true, err
	}
	return settled, true, nil // addBid checks again, settled left out
}

// knownBidLocked refuses a bid held (ErrDuplicate) or closed (ErrStale).
func (bk *Book) knownBidLocked(e *bidEntry) error {
	if _, ok := bk.bids[e.id]; ok {
		return ErrDuplicate
	}
	if _, ok := bk.closed[e.id]; ok {
		return fmt.Errorf("%w: bid is closed", ErrStale)
	}
	return nil
}

// checkBidLocked checks e against the book's bounds and the client's
// spendable balance. The client's bids in settled are closed on the chain
// and not yet in the book; they count neither against its balance nor
// against its bound.
func (bk *Book) checkBidLocked(e *bidEntry, spendable uint64, settled map[BidID]bool) error {
	if err := bk.knownBidLocked(e); err != nil {
		return err
	}
	var n int
	var sum uint64
	if c := bk.clients[e.client]; c != nil {
		n, sum = len(c.bids), c.sum
		if len(settled) > 0 {
			n, sum = 0, 0
			for id, x := range c.bids {
				if !settled[id] {
					n, sum = n+1, satAdd(sum, x.b.MaxPrice)
				}
			}
		}
	}
	if n >= bk.cfg.MaxBidsPerClient {
		return fmt.Errorf("%w: client %s has %d open bids", ErrBookFull, e.client, n)
	}
	if e.peer != "" {
		if np, limit := bk.peers[e.peer], bk.peerCap(); np >= limit {
			return fmt.Errorf("%w: peer %.60s delivered %d of the open bids (limit %d)", ErrPeerFull, e.peer, np, limit)
		}
	}
	if need := satAdd(sum, e.b.MaxPrice); need > spendable {
		return fmt.Errorf("%w: client %s can spend %d, its %d open bids and this one need %d", ErrUnfunded, e.client, spendable, n, need)
	}
	if (len(bk.bids) >= bk.cfg.MaxBids || bk.bidBytes+e.size > bk.cfg.MaxBidBytes) && bk.bidMin[0].value >= e.value {
		return fmt.Errorf("%w: %d bids of %d bytes, none worth less than %d per KiB", ErrBookFull, len(bk.bids), bk.bidBytes, e.value)
	}
	return nil
}

// Close removes bids that the chain matched or cancelled, and remembers
// their ids (until their MatchBy, or now+MaxBidTTL for bids the book did
// not hold) so that late gossip cannot add them back. When the memory is
// full the ids that can be forgotten soonest go first.
func (bk *Book) Close(now int64, ids ...BidID) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	for _, id := range ids {
		until := addMs(now, MaxBidTTL)
		if e, ok := bk.bids[id]; ok {
			until = e.b.MatchBy
			bk.removeBidLocked(e)
		}
		bk.closed[id] = until
	}
	if over := len(bk.closed) - bk.cfg.MaxClosed; over > 0 {
		type ent struct {
			id    BidID
			until int64
		}
		all := make([]ent, 0, len(bk.closed))
		for id, u := range bk.closed {
			all = append(all, ent{id, u})
		}
		slices.SortFunc(all, func(a, b ent) int {
			if a.until != b.until {
				return compareInt64(a.until, b.until)
			}
			return bytes.Compare(a.id[:], b.id[:])
		})
		for _, e := range all[:over] {
			delete(bk.closed, e.id)
		}
	}
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (bk *Book) removeBidLocked(e *bidEntry) {
	delete(bk.bids, e.id)
	heap.Remove(&bk.bidMin, e.hi)
	last := len(bk.bidList) - 1
	m := bk.bidList[last]
	bk.bidList[e.li], bk.bidIDs[e.li] = m, m.id
	m.li = e.li
	bk.bidList[last] = nil
	bk.bidList, bk.bidIDs = bk.bidList[:last], bk.bidIDs[:last]
	bk.bidBytes -= e.size
	if e.peer != "" {
		if bk.peers[e.peer]--; bk.peers[e.peer] <= 0 {
			delete(bk.peers, e.peer)
		}
	}
	c := bk.clients[e.client]
	delete(c.bids, e.id)
	c.sum -= min(c.sum, e.b.MaxPrice)
	if len(c.bids) == 0 {
		delete(bk.clients, e.client)
	}
}

func (bk *Book) removeOfferLocked(e *offerEntry) {
	delete(bk.offers, e.addr)
	heap.Remove(&bk.offerMin, e.hi)
	last := len(bk.offerList) - 1
	m := bk.offerList[last]
	bk.offerList[e.li] = m
	m.li = e.li
	bk.offerList[last] = nil
	bk.offerList = bk.offerList[:last]
}

// Prune drops offers and bids expired at now (Expires ≤ now, MatchBy ≤
// now) and forgets closed ids past their time. It returns how many offers
// and bids it dropped.
func (bk *Book) Prune(now int64) (offers, bids int) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	for _, e := range bk.offers {
		if e.o.Expires <= now {
			bk.removeOfferLocked(e)
			offers++
		}
	}
	for _, e := range bk.bids {
		if e.b.MatchBy <= now {
			bk.removeBidLocked(e)
			bids++
		}
	}
	for id, until := range bk.closed {
		if until <= now {
			delete(bk.closed, id)
		}
	}
	return offers, bids
}

// Offer returns the provider's current offer.
func (bk *Book) Offer(provider wallet.Address) (*Offer, bool) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if e, ok := bk.offers[provider]; ok {
		return e.o, true
	}
	return nil, false
}

// Offers returns the offers held, in no particular order (one per
// provider), with their providers' addresses.
func (bk *Book) Offers() ([]*Offer, []wallet.Address) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	offers := make([]*Offer, 0, len(bk.offers))
	addrs := make([]wallet.Address, 0, len(bk.offers))
	for a, e := range bk.offers {
		offers = append(offers, e.o)
		addrs = append(addrs, a)
	}
	return offers, addrs
}

// Bid returns an open bid by id.
func (bk *Book) Bid(id BidID) (*Bid, bool) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if e, ok := bk.bids[id]; ok {
		return e.b, true
	}
	return nil, false
}

// Len returns how many offers and bids the book holds.
func (bk *Book) Len() (offers, bids int) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return len(bk.offers), len(bk.bids)
}

// Recheck drops entries the chain no longer backs, reading the View: the
// bids of a client whose spendable balance fell below the MaxPrice of its
// open bids (its least valuable go first, until the rest are covered), and
// offers whose provider's collateral no longer backs them. It looks at
// most at budget clients and budget providers per call, a different
// sample each time (map order), so that a node can call it on every
// block at a bounded cost. It returns how many offers and bids it
// dropped. Without a View it does nothing.
func (bk *Book) Recheck(budget int) (offers, bids int) {
	if bk.cfg.View == nil || budget <= 0 {
		return 0, 0
	}
	view := bk.cfg.View()
	bk.mu.Lock()
	var clients []wallet.Address
	for a := range bk.clients {
		if len(clients) == budget {
			break
		}
		clients = append(clients, a)
	}
	var provs []*Offer
	for _, e := range bk.offers {
		if len(provs) == budget {
			break
		}
		provs = append(provs, e.o)
	}
	bk.mu.Unlock()
	spend := make([]uint64, len(clients))
	for i, a := range clients {
		spend[i] = view.Spendable(a)
	}
	var unbacked []*Offer
	for _, o := range provs {
		if _, err := bk.offerBacked(view, o); err != nil {
			unbacked = append(unbacked, o)
		}
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	for i, a := range clients {
		c := bk.clients[a]
		for c != nil && c.sum > spend[i] {
			var worst *bidEntry
			for _, e := range c.bids {
				if worst == nil || lessBid(e, worst) {
					worst = e
				}
			}
			bk.removeBidLocked(worst)
			bk.counters["bid/recheck"]++
			bids++
			c = bk.clients[a]
		}
	}
	for _, o := range unbacked {
		if e, ok := bk.offers[o.ProviderAddress()]; ok && e.o == o {
			bk.removeOfferLocked(e)
			bk.counters["offer/recheck"]++
			offers++
		}
	}
	return offers, bids
}

// Bytes returns the encoded size of the open bids held, summed: what
// BookConfig.MaxBidBytes bounds.
func (bk *Book) Bytes() int64 {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return bk.bidBytes
}

// RoundSnapshot is Snapshot without the sorting: the book's content in no
// particular order, for a matching round (the matcher's output does not
// depend on the order, and it samples a large book; see Matcher).
// RoundSample gives the same round at a fraction of the cost.
func (bk *Book) RoundSnapshot() Snapshot { return bk.RoundSample([32]byte{}, 0) }

// RoundSample is the snapshot a matching round seeded with seed needs:
// every offer, and the bids that Matcher.Match would sample from the
// whole book with at most maxBids bids per round (Matcher.RoundBids);
// maxBids ≤ 0 means all of them. Matcher.Match gives the same matches on
// it as on RoundSnapshot, but the book copies only the sample: the ids
// are hashed in one contiguous array under the book's lock (about a
// millisecond for 100,000 bids) instead of copying the whole book.
func (bk *Book) RoundSample(seed [32]byte, maxBids int) Snapshot {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	offers := make([]*Offer, len(bk.offerList))
	oaddrs := make([]wallet.Address, len(bk.offerList))
	for i, e := range bk.offerList {
		offers[i], oaddrs[i] = e.o, e.addr
	}
	if maxBids <= 0 || len(bk.bidList) <= maxBids {
		bids := make([]*Bid, len(bk.bidList))
		for i, e := range bk.bidList {
			bids[i] = e.b
		}
		return Snapshot{Offers: offers, Bids: bids, bidIDs: slices.Clone(bk.bidIDs), offerAddrs: oaddrs}
	}
	idx := sampleIdx(bk.bidIDs, seed, maxBids)
	bids := make([]*Bid, len(idx))
	ids := make([]BidID, len(idx))
	for j, i := range idx {
		bids[j], ids[j] = bk.bidList[i].b, bk.bidIDs[i]
	}
	return Snapshot{Offers: offers, Bids: bids, bidIDs: ids, offerAddrs: oaddrs}
}

// Snapshot returns the book's current content: offers sorted by provider
// address, bids sorted by id. It may include entries that expired since
// the last Prune; the matcher filters by block time.
func (bk *Book) Snapshot() Snapshot {
	bk.mu.Lock()
	offers := make([]*Offer, 0, len(bk.offers))
	addrs := make([]wallet.Address, 0, len(bk.offers))
	for a := range bk.offers {
		addrs = append(addrs, a)
	}
	ids := make([]BidID, 0, len(bk.bids))
	for id := range bk.bids {
		ids = append(ids, id)
	}
	slices.SortFunc(addrs, func(a, b wallet.Address) int { return bytes.Compare(a[:], b[:]) })
	slices.SortFunc(ids, func(a, b BidID) int { return bytes.Compare(a[:], b[:]) })
	for _, a := range addrs {
		offers = append(offers, bk.offers[a].o)
	}
	oaddrs := slices.Clone(addrs)
	bids := make([]*Bid, len(ids))
	for i, id := range ids {
		bids[i] = bk.bids[id].b
	}
	bk.mu.Unlock()
	return Snapshot{Offers: offers, Bids: bids, bidIDs: ids, offerAddrs: oaddrs}
}
