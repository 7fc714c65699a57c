package market

import "github.com/bourse-net/bourse/wallet"

// Snapshot is what the matcher reads from the order book: the offers and
// bids it holds at one moment. Book.Snapshot fills it; tests and tools can
// use NewSnapshot. The pointed-to offers and bids are shared and must not
// be modified. Entries must have had their signatures verified (the Book
// does this on Add); the matcher re-checks everything else.
type Snapshot struct {
	Offers []*Offer
	Bids   []*Bid
	bidIDs []BidID // parallel to Bids; filled by Book and NewSnapshot
	// offerAddrs is parallel to Offers: their providers' addresses.
	offerAddrs []wallet.Address
}

// NewSnapshot builds a snapshot from offers and bids, computing bid ids.
func NewSnapshot(offers []*Offer, bids []*Bid) Snapshot {
	ids := make([]BidID, len(bids))
	for i, b := range bids {
		ids[i] = b.ID()
	}
	addrs := make([]wallet.Address, len(offers))
	for i, o := range offers {
		if o != nil {
			addrs[i] = o.ProviderAddress()
		}
	}
	return Snapshot{Offers: offers, Bids: bids, bidIDs: ids, offerAddrs: addrs}
}

// offerAddr returns the provider address of Offers[i].
func (s *Snapshot) offerAddr(i int) wallet.Address {
	if len(s.offerAddrs) == len(s.Offers) {
		return s.offerAddrs[i]
	}
	return s.Offers[i].ProviderAddress()
}

// bidID returns the id of Bids[i], from the cache when it is consistent.
func (s *Snapshot) bidID(i int) BidID {
	if len(s.bidIDs) == len(s.Bids) {
		return s.bidIDs[i]
	}
	return s.Bids[i].ID()
}
