// Package chain is Bourse's proof-of-stake ledger: transactions, blocks,
// validator sets and evidence; and the pure state transition (accounts,
// stake, escrow, matches, reputation). Around it: chain/store (the block
// and state store on go-datastore, Pebble by default), chain/mempool (the
// transaction pool), chain/consensus (the pure consensus core) and
// chain/driver (the I/O loop that runs them over the network, with block
// sync).
//
// # Purity
//
// No disk, network, clock, logger or goroutine here: a block's effects are
// a Result computed from a State and the block, and the caller persists
// it (store.SaveBlock) before installing it (State.Apply). Two locks
// remain, both for readers on other goroutines, neither part of the
// transition: State's sync.RWMutex lets the mempool and the API read the
// committed state while the driver's loop installs a block with Apply
// (removing it needs an immutable, versioned state that Apply swaps in);
// SigCache's mutex lets the mempool (gossip goroutines) and block
// execution (the driver's loop) share the signatures already verified.
//
// # Transactions
//
// A Tx carries ChainID, Sender (public key; the account is its address),
// Nonce (must equal the account's next nonce), Fee (≥ Params.MinFee, paid
// to the block proposer) and exactly one body: Transfer, Bond, Unbond,
// ProviderRegister, BidCancel, Match (a market.Match, only from the block
// proposer), Result, Evidence (consensus.DuplicateVoteEvidence, encoded),
// PayloadUnavailable, ProviderDeregister, ProviderWithdraw, and the
// settlement kinds Ack, Challenge and Attest (settle.go: a Result holds
// its payment for Params.ChallengeWindowMs; the client's Ack releases it,
// a challenge sends it to a stake-weighted committee; the economics are
// in RATIONALE.md), and the service kinds of service.go: ServiceOpen,
// ServiceScale, ServiceClose (the owner), ServicePlace (the proposer, like
// a Match), ServiceClaim and ServiceLeave (a lease's provider), ServiceDown
// (the owner): a service's replicas are leases funded a period at a time
// from its escrowed budget and paid by the owner's signed cumulative
// receipts (see service.go and RATIONALE.md).
// Sign signs the canonical CBOR without Sig under the wallet domain
// (chain id, MsgTypeTx). DecodeTx takes canonical bytes only, so
// TxHash(raw) is a transaction's one identity. Signatures are verified
// with ZIP-215 rules on both the single and the batch path (curve25519-voi),
// so every node accepts the same set; a SigCache remembers hashes already
// verified so a transaction is verified once per node.
//
// # Blocks
//
// Header{ChainID, Height, Time (unix ms, BFT time), PrevHash, TxsRoot,
// StateRoot, ValidatorsHash, Proposer, LastCommitHash}; Block{Header, Txs
// (encoded transactions), LastCommit (the previous block's consensus
// certificate, opaque here)}. Block.Hash() is sha256 of the canonical
// header. StateRoot is the root AFTER executing this block, so a committed
// header certifies the state it produces.
//
// # State transition
//
//	st, _ := genesis.State()                      // height 0
//	res, err := chain.Execute(st, block, chain.ExecOptions{SigCache: mp.SigCache(), Held: mp.Held})
//	// Held: what the mempool holds is decoded and verified once, not again
//	// err wraps ErrInvalidBlock (refuse the proposal / penalise the peer) or
//	// ErrStateRootMismatch (for a committed block: halt, the node diverged)
//	bs.SaveBlock(ctx, block, commit, res)           // chain/store: one atomic batch
//	st.Apply(res)                                    // install
//	mp.Update(res.Height, res.TxHashes, st)          // chain/mempool
//
// Execute never modifies st; a proposer uses BuildBlock(st, template,
// candidates, opts), which drops candidates whose signature or envelope
// fails and Matches whose body fails, and fills in the roots. A
// transaction with a valid envelope is always included and pays its fee;
// if its body fails (TxResult.Code 1) none of the body's effects remain.
// Matches are the exception: the proposer signs them, so one that fails
// market.CheckMatch, its escrow or its reservation makes the block invalid
// (ErrInvalidBlock naming the job id) and validators refuse the proposal.
// A dropped transaction uses no nonce, so BuildBlock also drops the
// sender's later candidates (their nonces no longer fit): the proposer's
// Matches after a refused one wait for the next height.
//
// Per block, in order: matured unbondings are paid out, open matches whose
// deadline (matchedAt + the bid's timeout + Params.ResultGraceMs, the
// genesis's result grace) is ≤ the block time time out (client refunded,
// provider collateral slashed by TimeoutSlashBps), held results whose
// challenge window ended are paid and challenges past their committee's
// deadline expire (all three at most MaxTimeoutsPerBlock together,
// earliest first, the rest in the next blocks; a Result past its deadline
// is refused either way), the transactions run,
// fees go to the proposer, and the
// validator set for Height+2 is derived from stake (top MaxValidators,
// power = stake, sorted by address). ValidatorsAt(h) answers for h in
// [Height, Height+2] as []Validator{Address, PubKey, Power}, the shape of
// consensus.Validator.
//
// An account holds at most MaxUnbondingEntries pending unbondings (one
// per maturity height), so slashing it visits a bounded number of records.
//
// Money is uint64 with checked arithmetic. Supply is minted at genesis only.
// Slashed amounts (double signing: SlashBps of bonded and unbonding stake;
// timeouts: TimeoutSlashBps of collateral) are burned into Globals.Burned,
// which stays part of the conservation equation checked by CheckInvariants:
//
//	Σ balances + bonded + unbonding + escrow + collateral + burned = supply
//
// # State root
//
// The state is a map of canonical CBOR records; chain/merkle commits to it
// with a bucketed Merkle tree (65,536 buckets by key hash, binary tree on
// top), recomputing only the buckets a block touched.
//
// The records are held in memory, except a settled match's once the state
// has a ColdReader (State.SetCold; store.LoadState gives it the store): a
// settled match never changes again, so the state keeps its key and its
// Merkle leaf and reads its value from the store. A node's memory then
// does not grow by a match's value (about 750 bytes) with every job in
// the chain's history. Reads are pure as before: the value read is the
// one committed, because the driver stores a block before it applies it.
//
// May import: wallet, codec, chain/merkle, chain/consensus, market (types
// and checks only).
package chain
