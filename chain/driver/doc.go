// Package driver runs the chain: it feeds the pure consensus core
// (chain/consensus) with gossip messages and timer events, persists the
// signer state before any vote it protects is broadcast, builds and
// validates blocks with the pure state transition (chain), commits decided
// blocks to the store in one batch, and keeps a node that fell behind in
// step with its peers.
//
// One goroutine, the loop, owns the consensus state and the chain state's
// writes; everything else talks to it through channels. A second goroutine,
// the syncer, does the network I/O of catching up (block sync and fetching
// the current height's proposal and votes, which GossipSub's seen-cache would
// otherwise never deliver again) and hands what it fetched to the loop.
//
// The network is the Transport interface, so the same driver runs over
// libp2p in a node and over an in-memory network in tests.
//
// The loop's application half is app (app.go), named after ABCI++:
// PrepareProposal builds this node's block, ProcessProposal judges a
// proposed one, FinalizeBlock executes a decided block and Commit applies
// it. It does no I/O and returns its refusals as errors; driver.go is the
// I/O around it (gossip, timers, the store, subscribers) and sync.go the
// catching up. Time comes only from Config.Clock, so tests run clusters on
// a Manual clock (internal/clock).
//
// What a proposal must be. A validator prevotes a proposed block only if
// the proposal message fits MaxProposalBytes (below the gossip publish
// limit; the proposer keeps the whole block, its Matches included, under
// it), the bytes decode to a block whose hash is the claimed id, the block
// is valid at the height, and its header's Proposer is the validator that
// signed the proposal (for a value re-proposed with a valid round, the
// proposer of a round no later than that). Verdicts are cached per (id,
// hash of the bytes), never per id alone, so no proposal can poison the
// verdict on another. A block certified by a commit (sync) is executed as
// decided, without the proposal rules.
//
// Block time is BFT time: block 1 has genesis time + 1 ms; block h > 1 has
// the stake-weighted median of the precommit timestamps in its LastCommit
// (the certificate of block h-1), or the previous block's time + 1 ms if that
// is later. Every validator recomputes and checks it.
//
// Proposer rotation: the consensus validator set carries CometBFT-style
// priorities, advanced once per height. They reset whenever the validator
// set changes, so a node that restarts rebuilds them: fresh priorities at
// the first height of the current set (which the store records with every
// block, store.Store.ValidatorRun), advanced once per height since; a node
// that syncs advances them block by block as it executes.
//
// May import: chain, chain/consensus, wallet, codec.
package driver
