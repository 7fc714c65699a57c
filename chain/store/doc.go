// Package store is the chain's block and state store on go-datastore
// (Pebble by default): blocks, their commit certificates, the transaction
// index, the state records and the consensus signer state.
//
// Open(dir) opens or creates the Pebble store; NewMem is the in-memory
// one for tests. InitGenesis writes height 0; SaveBlock writes a block, its
// commit, its transactions' index, its receipts (each transaction's
// outcome: ok or failed with the reason, and its events; Receipts) and its
// state changes in one synced batch; LoadState rebuilds the state and checks its root against the
// recorded one. A damaged store (missing files, missing format marker,
// records that do not hash to the recorded root, a missing last block) is
// ErrCorruptStore with a message that says what to do — never a silent
// reset. SaveSignerState/LoadSignerState hold the consensus signer guard;
// the block values it names (its last proposal, lock and valid value) are
// stored apart, once each, in the same synced batch (LoadSignerValue).
//
// May import: chain, go-datastore and its Pebble backend.
package store
