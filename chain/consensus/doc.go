// Package consensus is the Tendermint BFT algorithm of "The latest gossip on
// BFT consensus" (Buchman, Kwon, Milosevic, arXiv 1807.04938) as a pure state
// machine: it takes proposals, votes, timeouts and the application's answers
// and returns messages to broadcast, timeouts to schedule, state to persist
// and decisions. No goroutines, clocks, network, disk or os inside.
//
// May import: the standard library, wallet and codec.
//
// # What it holds
//
//   - ValidatorSet: validators (address, ed25519 key, power), the stake-
//     weighted proposer rotation of CometBFT (Proposer(round), Next() for the
//     next height), Hash over canonical CBOR.
//   - Proposal, Vote and the wire envelope Message, signed with wallet under
//     the chain id and the message types "proposal", "prevote", "precommit";
//     Encode*/Decode* helpers that decode under size limits and accept only
//     canonical bytes.
//   - CommitCertificate: the precommits of more than 2/3 of the power that
//     justify a decision; Verify(chainID, vs) and Time(vs) (BFT time, the
//     power-weighted median of the precommit timestamps).
//   - DuplicateVoteEvidence: two conflicting signed votes of one validator.
//   - State: one process of the algorithm at one height, driven by Step.
//   - SignerState: what must be persisted for double-sign protection.
//
// # Contract of State
//
// The driver owns a State and feeds it one Input at a time, each carrying
// its clock (unix ms, stamped on votes). Step returns Outputs that must be
// carried out in order:
//
//   - Persist{SignerState}: write it durably before doing anything after
//     it. It always precedes the Broadcast of the vote or proposal it
//     protects, in the same slice.
//   - Broadcast{Message}: send to all validators (gossip).
//   - ScheduleTimeout{Height, Round, Step, Duration}: after Duration feed
//     Timeout{Height, Round, Step}. Stale timeouts are ignored, so timers
//     never need cancelling.
//   - RequestValue{Height, Round}: we propose; answer with ValueReady.
//   - ValidateValue{Height, Round, ValidRound, Proposer, BlockID, Value}:
//     answer with ValueValidity (Valid only if BlockID is the application's
//     id of Value and the block is valid). Rules that need valid(v) wait for
//     the answer. The verdict is kept per (BlockID, hash of Value), never per
//     id alone, so a forged pair cannot poison the honest one; the
//     application must key any cache of its own the same way.
//   - Decide{Height, BlockID, Value, Commit}: store the block with its
//     certificate, apply it, then feed NextHeight (with the next height's
//     validator set, or nil to keep the set and rotate the proposer).
//     Round 0 of the new height starts after Config.TimeoutCommit.
//   - Evidence: submit it in a transaction.
//   - ProposalEquivocation{First, Second}: the round's proposer signed two
//     different proposals; only the first counts (log it, penalise the peer).
//   - Rejected{Err}: the input was invalid (bad signature, unknown
//     validator, wrong proposer); penalise the peer that sent it.
//
// Thresholds are over stake: "2f+1" is more than 2/3 of the set's power,
// "f+1" more than 1/3. Messages of the next height are buffered (bounded)
// and replayed at NextHeight; much later ones are dropped, and votes of the
// height just decided are kept for evidence only (an equivocation that
// reaches a process after its decision is still reported). A
// validator may hold votes in the current round, the next, and one further
// round, which bounds memory under a flood of far-future votes.
//
// Catch-up: GossipSub drops re-published duplicates, so a node that missed
// messages (partition, restart) must ask a peer. Messages(h) lists the
// proposals and every vote a State holds for its current height; the peer
// feeds them as ReceiveProposal/ReceiveVote, and feeding a message twice is
// harmless (a known vote is not even re-verified). A peer that is already
// past the height sends its stored certificate and block instead:
// ReceiveCommit{Commit, Value} decides after Verify.
//
// # Crash recovery and double signing
//
// New(cfg, chainID, key, height, vs, restored) takes the last persisted
// SignerState. At the same height the process resumes in the round and step
// it last signed, with its lock and valid value, and broadcasts again the
// votes it signed at that height in its last SignerKeepRounds rounds and in
// its locked and valid rounds (a recovering validator must still deliver
// its earlier votes, or crashes combined with message loss can deadlock a
// height; the simulation found exactly that). Older votes are dropped, so
// the signer state stays bounded at any round. SplitValues and JoinValues
// let a driver store the block values the state holds apart from it,
// once each, instead of with every vote (Apart marks them). It never signs a different
// message at or below the last signed height/round/step; the same vote again
// is returned unchanged. A zero key, or a key outside the set, makes an
// observer that follows and decides without signing.
//
// # Usage
//
//	st, err := consensus.New(consensus.DefaultConfig(), chainID, key, height, vs, restored)
//	out := st.Start(nowMs)
//	for { execute(out); out = st.Step(consensus.Input{Now: nowMs, Event: next()}) }
//
// # How it is tested
//
// TestSim* run seeded simulations (4 and 7 validators and unequal stakes;
// delay, loss, duplication, reordering, partitions that heal, crashes in the
// middle of carrying out outputs with restart from what was persisted, one
// equivocating validator under 1/3 of the stake). After every step they
// check agreement, validity, no double signing, persist-before-broadcast,
// that every conflicting vote became evidence, and after the network heals,
// that every correct node decides two more heights within a bound. A failure
// prints its seed; replay with -seed=N. Seed counts: 50 per configuration,
// 6 under -race, 1000 with BOURSE_LONG=1, or BOURSE_SIM_SEEDS=N. Set
// BOURSE_SIM_TRACE=1 to log every step of a replay.
//
// testdata/*.txt are scenario scripts with golden output for the paper's
// tricky cases (locking, valid round, round skip, stake thresholds,
// equivocation, restart); -update rewrites them.
package consensus
