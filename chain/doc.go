// Package chain is Bourse's proof-of-stake ledger: transactions, blocks,
// votes, commit certificates and evidence; the pure state transition
// (accounts, stake, escrow, matches, reputation); the block and state store
// on go-datastore (Pebble by default); the driver that runs the consensus
// core (chain/consensus) over the network; and block sync.
//
// May import: wallet, codec, chain/consensus, market (types and checks only),
// and p2p through the driver's interfaces.
package chain
