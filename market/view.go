package market

import "github.com/bourse-net/bourse/wallet"

// ProviderState is what the chain knows about a registered provider.
type ProviderState struct {
	Collateral uint64    // bonded by ProviderRegister, after slashes
	Reputation uint32    // per mille, 0..MaxReputation
	Reserved   Resources // sum of the resources of its open matches
	// NewestOfferSeq is the highest offer Seq of any committed Match on
	// this provider (0 before the first). An offer with a lower Seq is
	// superseded: the provider has since re-signed its capacity and
	// prices, and a Match on the older offer is invalid.
	NewestOfferSeq uint64
	// Perf is its performance figures, learnt from its settled matches
	// (see Perf); the balanced preference weighs Perf.Cost.
	Perf Perf
}

// ChainView is the read-only slice of chain state that the matcher and
// CheckMatch need. The chain implements it over its state at the height
// being built or checked. Within one block the chain applies matches in
// order, so a view passed to CheckMatch for the n-th match must already
// include the reservations, escrows and closed bids of matches 1..n-1.
//
// Implementations must be deterministic and must not block; the matcher
// calls each method at most once per provider, client or bid per round.
type ChainView interface {
	// Provider returns the provider's state, or false if the address never
	// registered (or has fully unbonded).
	Provider(addr wallet.Address) (ProviderState, bool)
	// Spendable is the client's balance available for new escrow.
	Spendable(addr wallet.Address) uint64
	// BidClosed reports whether the bid (job) id is already matched or
	// cancelled on chain; such a bid can never be matched again.
	BidClosed(id BidID) bool
	// MinCollateral is the genesis parameter a provider must have bonded.
	MinCollateral() uint64
	// ReplicaProviders lists the providers already matched to a replica
	// of the job group (Bid.GroupID): a group's replicas run on distinct
	// providers. Nil for a group with no match yet.
	ReplicaProviders(group BidID) []wallet.Address
}
