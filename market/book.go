package market

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/bourse-net/bourse/wallet"
)

// Sentinel errors of the Book for input that is not wrong, only unwanted:
// gossip validators map them to Ignore (see VerdictOf).
var (
	ErrDuplicate = errors.New("already in the book")
	ErrStale     = errors.New("superseded by a newer offer or already closed")
	ErrBookFull  = errors.New("order book limit reached")
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
)

// VerdictOf maps an error from Book.Add* to a gossip verdict. An expired
// message is ignored (it may just have travelled slowly); any other
// *InvalidError is rejected.
func VerdictOf(err error) Verdict {
	if err == nil {
		return Accept
	}
	var ie *InvalidError
	if errors.As(err, &ie) && ie.Code != CodeExpired {
		return Reject
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
	// MaxClosed bounds how many closed (matched or cancelled) bid ids the
	// book remembers so that re-gossiped copies are refused; each is
	// forgotten once its MatchBy passes. Default 200,000.
	MaxClosed int
}

// DefaultBookConfig returns the defaults for chainID.
func DefaultBookConfig(chainID string) BookConfig {
	return BookConfig{ChainID: chainID, MaxOffers: 10_000, MaxBids: 100_000, MaxBidsPerClient: 256, MaxClosed: 200_000}
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
	case c.MaxClosed <= 0:
		return fmt.Errorf("book config: MaxClosed must be positive, got %d", c.MaxClosed)
	}
	return nil
}

// Book is the order book: the latest offer of every provider and the open
// bids, all signature checked, deduplicated and bounded. It has no clock:
// callers pass now (unix ms) and call Prune to expire entries. It is safe
// for concurrent use; signature checks run outside its lock.
//
// The book takes ownership of the offers and bids added to it; they and
// the snapshots that share them must not be modified.
type Book struct {
	cfg BookConfig

	mu        sync.Mutex
	offers    map[wallet.Address]*Offer
	bids      map[BidID]*Bid
	perClient map[wallet.Address]int
	closed    map[BidID]int64 // id → time after which it can be forgotten
	counters  map[string]uint64
}

// NewBook returns an empty book.
func NewBook(cfg BookConfig) (*Book, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Book{
		cfg:       cfg,
		offers:    make(map[wallet.Address]*Offer),
		bids:      make(map[BidID]*Bid),
		perClient: make(map[wallet.Address]int),
		closed:    make(map[BidID]int64),
		counters:  make(map[string]uint64),
	}, nil
}

// count records an outcome; the caller holds mu.
func (bk *Book) count(kind string, err error) {
	switch VerdictOf(err) {
	case Accept:
		bk.counters[kind+"/accept"]++
	case Reject:
		bk.counters[kind+"/reject/"+string(CodeOf(err))]++
	default:
		reason := "expired"
		switch {
		case errors.Is(err, ErrDuplicate):
			reason = "duplicate"
		case errors.Is(err, ErrStale):
			reason = "stale"
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

// Counters returns how many messages were accepted, rejected (by Code) and
// ignored (by reason), keyed "offer/accept", "bid/reject/signature",
// "offer/ignore/stale", ...; for metrics.
func (bk *Book) Counters() map[string]uint64 {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return maps.Clone(bk.counters)
}

// Add decodes a gossiped message of the given kind and adds it.
func (bk *Book) Add(kind Kind, data []byte, now int64) error {
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
		return bk.AddBid(b, now)
	}
	return fmt.Errorf("add: unknown message kind %d", kind)
}

// AddOffer adds o if it is valid at now, correctly signed and newer than
// the provider's offer in the book, which it then replaces. Errors:
// *InvalidError (bad input), ErrDuplicate, ErrStale, ErrBookFull.
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
	if err := bk.checkOffer(addr, o); err != nil {
		return err
	}
	if err := o.Verify(bk.cfg.ChainID); err != nil {
		return err
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if err := bk.checkOfferLocked(addr, o); err != nil { // again: raced with another add
		return err
	}
	bk.offers[addr] = o
	return nil
}

func (bk *Book) checkOffer(addr wallet.Address, o *Offer) error {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return bk.checkOfferLocked(addr, o)
}

func (bk *Book) checkOfferLocked(addr wallet.Address, o *Offer) error {
	held, ok := bk.offers[addr]
	switch {
	case !ok && len(bk.offers) >= bk.cfg.MaxOffers:
		return fmt.Errorf("%w: %d offers", ErrBookFull, len(bk.offers))
	case !ok:
		return nil
	case held.Seq == o.Seq && bytes.Equal(held.Sig, o.Sig):
		return ErrDuplicate
	case held.Seq >= o.Seq:
		return fmt.Errorf("%w: holding seq %d", ErrStale, held.Seq)
	}
	return nil
}

// AddBid adds b if it is valid at now, correctly signed, not already held
// or closed, and within the per-client and total bounds. Errors:
// *InvalidError (bad input), ErrDuplicate, ErrStale (closed), ErrBookFull.
func (bk *Book) AddBid(b *Bid, now int64) error {
	if b == nil {
		return bk.counted("bid", invalid(CodeDecode, "bid", "nil bid"))
	}
	id := b.ID()
	err := bk.addBid(b, id, now)
	if err != nil {
		err = fmt.Errorf("add bid %s: %w", id, err)
	}
	return bk.counted("bid", err)
}

func (bk *Book) addBid(b *Bid, id BidID, now int64) error {
	if err := b.Validate(now); err != nil {
		return err
	}
	client := b.ClientAddress()
	if err := bk.checkBid(id, client); err != nil {
		return err
	}
	if err := b.Verify(bk.cfg.ChainID); err != nil {
		return err
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if err := bk.checkBidLocked(id, client); err != nil {
		return err
	}
	bk.bids[id] = b
	bk.perClient[client]++
	return nil
}

func (bk *Book) checkBid(id BidID, client wallet.Address) error {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return bk.checkBidLocked(id, client)
}

func (bk *Book) checkBidLocked(id BidID, client wallet.Address) error {
	if _, ok := bk.bids[id]; ok {
		return ErrDuplicate
	}
	if _, ok := bk.closed[id]; ok {
		return fmt.Errorf("%w: bid is closed", ErrStale)
	}
	if n := bk.perClient[client]; n >= bk.cfg.MaxBidsPerClient {
		return fmt.Errorf("%w: client %s has %d open bids", ErrBookFull, client, n)
	}
	if len(bk.bids) >= bk.cfg.MaxBids {
		return fmt.Errorf("%w: %d bids", ErrBookFull, len(bk.bids))
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
		if b, ok := bk.bids[id]; ok {
			until = b.MatchBy
			bk.removeBidLocked(id, b)
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

func (bk *Book) removeBidLocked(id BidID, b *Bid) {
	delete(bk.bids, id)
	c := b.ClientAddress()
	if bk.perClient[c] <= 1 {
		delete(bk.perClient, c)
	} else {
		bk.perClient[c]--
	}
}

// Prune drops offers and bids expired at now (Expires ≤ now, MatchBy ≤
// now) and forgets closed ids past their time. It returns how many offers
// and bids it dropped.
func (bk *Book) Prune(now int64) (offers, bids int) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	for a, o := range bk.offers {
		if o.Expires <= now {
			delete(bk.offers, a)
			offers++
		}
	}
	for id, b := range bk.bids {
		if b.MatchBy <= now {
			bk.removeBidLocked(id, b)
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
	o, ok := bk.offers[provider]
	return o, ok
}

// Bid returns an open bid by id.
func (bk *Book) Bid(id BidID) (*Bid, bool) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	b, ok := bk.bids[id]
	return b, ok
}

// Len returns how many offers and bids the book holds.
func (bk *Book) Len() (offers, bids int) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return len(bk.offers), len(bk.bids)
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
		offers = append(offers, bk.offers[a])
	}
	bids := make([]*Bid, len(ids))
	for i, id := range ids {
		bids[i] = bk.bids[id]
	}
	bk.mu.Unlock()
	return Snapshot{Offers: offers, Bids: bids, bidIDs: ids}
}
