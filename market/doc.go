// Package market is the exchange: signed capacity offers and job bids, the
// order book that holds them, the deterministic matcher and placement
// policies, the explanation of why an offer does not fit a bid, and the
// validity checks every validator runs on a Match.
//
// May import: wallet and codec.
package market
