package market

// Snapshot is what the matcher reads from the order book: the offers and
// bids it holds at one moment. Book.Snapshot fills it; tests and tools can
// use NewSnapshot. The pointed-to offers and bids are shared and must not
// be modified. Entries must have had their signatures verified (the Book
// does this on Add); the matcher re-checks everything else.
type Snapshot struct {
	Offers []*Offer
	Bids   []*Bid
	bidIDs []BidID // parallel to Bids; filled by Book and NewSnapshot
}

// NewSnapshot builds a snapshot from offers and bids, computing bid ids.
func NewSnapshot(offers []*Offer, bids []*Bid) Snapshot {
	ids := make([]BidID, len(bids))
	for i, b := range bids {
		ids[i] = b.ID()
	}
	return Snapshot{Offers: offers, Bids: bids, bidIDs: ids}
}

// bidID returns the id of Bids[i], from the cache when it is consistent.
func (s *Snapshot) bidID(i int) BidID {
	if len(s.bidIDs) == len(s.Bids) {
		return s.bidIDs[i]
	}
	return s.Bids[i].ID()
}
