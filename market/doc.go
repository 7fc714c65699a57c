// Package market is the exchange: signed capacity offers and job bids, the
// order book that holds them, the deterministic matcher and placement
// policies, the explanation of why an offer does not fit a bid, the
// validity checks every validator runs on a Match, settlement arithmetic
// and market statistics.
//
// May import: wallet and codec.
//
// # Messages
//
// An Offer is a provider's heartbeat, signed with its wallet key
// (message type "offer"): peer id, Total capacity for sale and the
// advisory Free/Load it measured (HostCPU/HostMem: the machine's own
// utilisation), executors, PriceTerms in base units,
// region, labels, a sequence number (a newer offer replaces an older one:
// once the chain has committed a Match on offer seq n, offers below n are
// superseded and can no longer be matched) and an expiry at most
// MaxOfferTTL ahead. Its ID is (provider address, seq).
//
// A Bid is a client's job, signed by the client (message type "bid"):
// executor, payload reference (sha256+size+serving peer, or an image for
// docker), args, env, resources, MaxPrice, MatchBy, TimeoutMs,
// constraints (regions with optional weights, labels, minimum
// reputation), a placement Preference, a Near hint (regions), RTT (the
// client node's measured round trips to at most 8 providers, signed with
// the bid) and Replicas (1 for now). Its ID, the job id, is
// the sha256 of its canonical encoding without the signature.
//
// Both encode as canonical CBOR (codec). DecodeOffer, DecodeBid and
// DecodeMatch take untrusted bytes under tight limits and insist on the
// canonical form; then Verify(chainID) checks the signature (bound to the
// chain id by the wallet's domain separation) and Validate(now) everything
// static: bounded resources, prices that cannot overflow, expiry window,
// known executor and preference, string shapes. Every refusal is an
// *InvalidError whose Code is the metrics reason. Times are unix
// milliseconds; amounts are uint64 base units; all arithmetic on them is
// checked (ErrOverflow).
//
// # Order book
//
// A Book (NewBook(DefaultBookConfig(chainID))) holds the newest offer per
// provider and the open bids, signature checked, deduplicated, admitted
// against chain state (BookConfig.View: registered, collateral-backed
// providers; clients whose balance covers their open bids) and bounded in
// total, in bytes and per client; when full, the least valuable entry
// leaves for a more valuable one (see RATIONALE.md). It has no clock:
// pass now to AddOffer/AddBid/Add and call Prune(now) periodically; call
// Close(now, ids...) for bids the chain matched or cancelled and
// Recheck(budget) on every block. Gossip validators call Add(kind, data,
// now) and map the error with VerdictOf to Accept, Ignore (duplicate,
// stale, expired, full), Refuse (unfunded, unbacked: a light penalty) or
// Reject (invalid: penalise the peer). Counters gives the counts by
// reason for metrics. A bid gossiped by a peer (AddFrom) counts against
// that peer's share of the book (MaxBidsPerPeer). Snapshot returns a
// consistent copy; RoundSample(seed, Matcher.RoundBids()) the sample of
// bids a matching round considers (the matcher samples a large book: at
// most Matcher.MaxBids bids and MaxOffers providers per round).
//
// # Matching
//
// Matcher.Match(snapshot, view, blockTime, seed, maxMatches) is pure and
// deterministic: the same inputs give the same matches on every machine,
// whatever the order of the snapshot. ChainView is the chain state it
// reads (provider collateral, reputation, reservations and newest
// matched offer seq, client balances, closed bids, the minimum
// collateral). A bid is never placed on an offer of its own client. Bids are served by
// earliest MatchBy, then by a hash of (seed, bid id); each goes to the
// feasible offer with the lowest key for its preference (integer
// arithmetic only, see score.go):
//
//	cheapest      lowest PriceFor, then lowest load after placement
//	least-loaded  lowest load after placement: max(reported load,
//	              (reserved+need)/total per dimension)
//	nearest       smallest round trip in the bid's RTT list (the client's
//	              own measurement: latency is local knowledge and cannot
//	              be agreed on chain), then the earliest region in its
//	              Near list, then least-loaded
//	balanced      Weights.Price×price/MaxPrice + Weights.Load×load +
//	              Weights.Reputation×(1−reputation) + Weights.Distance×
//	              (distance + region cost) + Weights.Performance×Perf.Cost,
//	              all scaled to 1e6
//
// with ties broken by a hash of (seed, offer id, bid id), then offer id.
// Feasible means exactly what CheckMatch checks, with reservations
// including the round's earlier placements and the client's balance
// reduced by the round's earlier escrows, so every match the round returns
// is valid when the chain applies them in order. Matcher.Explain lists,
// for one bid, why each offer does or does not fit (codes resources,
// price, region, label, executor, reputation, collateral, expired,
// self-match, superseded, plus
// bid-level balance, bid-used and validation codes).
//
// # On chain
//
// A Match carries the signed offer and bid verbatim and Price, the quote
// PriceFor(offer, bid): the bid's resources for its whole timeout at the
// offer's terms, never above MaxPrice. The escrow taken from the client
// is the bid's MaxPrice (Match.Escrow). CheckMatch(chainID, m, view,
// blockTime) returns a *MatchError whose Code names the broken rule:
// validity at block time, expiry, both signatures, bid already closed,
// client not the provider (self-match), provider collateral, offer not
// superseded on chain (Seq ≥ ProviderState.NewestOfferSeq), executor, region, labels, reputation, capacity
// (Total minus the chain's reservations: never double booked), price at
// most MaxPrice, Price equal to the quote, client balance covering the
// escrow. Settle(m, usage) splits the escrow for a Result: usage is
// capped at the matched resources for the timeout, priced by Cost at the
// offer's terms, capped by the escrow; the rest is refunded.
// Match.ResultDeadline(matchedAt, graceMs) gives the block time after
// which the match times out: matchedAt + the bid's timeout + the chain's
// result grace (DefaultResultGraceMs unless the genesis sets another).
//
// # Learnt performance
//
// Perf is a provider's performance figures, which the chain keeps and
// every validator updates when one of its matches settles
// (Perf.Observe: value-weighted integer moving averages of run time over
// timeout, failure and timeout rates, price paid, and the round trip
// clients reported). Perf.Cost(blockTime) is what balanced weighs; see
// RATIONALE.md for what this learning is and is not.
//
// # Statistics
//
// ComputeStats turns the chain's MatchRecords over a height window into
// per-provider assignments, outcomes, earnings, busy CPU time and
// utilisation, and Jain's fairness index of utilisation across providers
// (Jain is exported for other uses).
package market
