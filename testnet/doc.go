// Package testnet generates and runs local multi-node networks: node homes,
// a shared genesis, distinct ports, and the launcher behind
// `bourse testnet up|status|down`.
//
// May import: node, chain, wallet.
package testnet
