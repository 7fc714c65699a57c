// Package consensus is the Tendermint BFT algorithm of "The latest gossip on
// BFT consensus" (Buchman, Kwon, Milosevic, arXiv 1807.04938) as a pure state
// machine: it takes proposals, votes, timeouts and the application's answers
// and returns messages to broadcast, timeouts to schedule, state to persist
// and decisions. No goroutines, clocks, network, disk or os inside.
//
// May import: the standard library, wallet and codec.
package consensus
