package chain

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/bourse-net/bourse/chain/merkle"
	"github.com/bourse-net/bourse/wallet"
)

// Sentinel errors of block execution.
var (
	// ErrInvalidBlock wraps every reason a block is refused; a proposal
	// that fails with it gets a nil prevote, a synced block is rejected
	// and its sender penalised.
	ErrInvalidBlock = errors.New("invalid block")
	// ErrStateRootMismatch means the block executed but the header's state
	// root differs from the computed one. For a block that is already
	// committed the node must halt: its state diverges from the network.
	ErrStateRootMismatch = errors.New("state root mismatch")
	// ErrInvalidTx wraps every reason a transaction is refused.
	ErrInvalidTx = errors.New("invalid transaction")
)

// EvidenceVerifier checks duplicate-vote evidence (the consensus package's
// DuplicateVoteEvidence, encoded): both votes signed by the offender's key
// for chainID, same height, round and type, different blocks. It returns
// the offender's address and the height of the votes. It must be pure.
type EvidenceVerifier interface {
	VerifyDuplicateVote(chainID string, data []byte) (offender wallet.Address, height uint64, err error)
}

// ExecOptions are the node-specific inputs of Execute. None of them changes
// the outcome of a valid block; they make it cheaper or possible.
type ExecOptions struct {
	// SigCache lets Execute skip transactions the mempool already verified.
	SigCache *SigCache
	// Evidence verifies Evidence transactions; nil means the consensus
	// package's DuplicateVoteEvidence checked against the offender's
	// registered key, which is what every node must use. Tests may swap it.
	Evidence EvidenceVerifier
	// SkipStateRootCheck is for the proposer, which executes to learn the
	// root it puts in the header.
	SkipStateRootCheck bool
	// Held looks up, in one call, the transactions with these hashes
	// that this node holds decoded and verified (the mempool's queued
	// ones): nil where it holds none. A block's transactions are then
	// decoded and verified once per node, not at every step. What it
	// returns must have been decoded from the bytes of that hash, with the
	// signature checked, and is only read.
	Held func(hashes [][32]byte) []*Tx

	// pre are b.Txs already decoded, hashed and verified (BuildBlock's
	// trial runs).
	pre *decodedTxs
}

type decodedTxs struct {
	txs    []*Tx
	hashes [][32]byte
}

// held is Held's answer for hashes, or all nil without a Held.
func (o ExecOptions) held(hashes [][32]byte) []*Tx {
	if o.Held != nil {
		if h := o.Held(hashes); len(h) == len(hashes) {
			return h
		}
	}
	return make([]*Tx, len(hashes))
}

// Event is something a block did that the node and the API report.
type Event struct {
	Type    string         `json:"type"` // see the Ev* constants
	Address wallet.Address `json:"address"`
	JobID   [32]byte       `json:"job_id"`
	Amount  uint64         `json:"amount"`
}

// Event types.
const (
	EvUnbonded = "unbonded" // matured stake returned to Address
	EvSlashed  = "slashed"  // Amount of Address's stake burned for double signing
	EvMatched  = "matched"  // JobID matched; Amount escrowed
	// EvHeld: JobID's result committed; Amount is what it will pay the
	// provider, held until the client's Ack or the challenge window's end.
	EvHeld      = "result_held"
	EvCompleted = "completed" // JobID's held payment released; Amount paid to the provider
	EvFailed    = "failed"    // JobID failed, its held payment released; Amount paid for usage up to the failure
	EvTimedOut  = "timed_out" // JobID missed its deadline; Amount of collateral burned
	EvCancelled = "cancelled" // bid JobID cancelled
	// EvUnavailable: JobID's provider could not get its payload; Amount
	// of the client's escrow burned as the unavailability fee.
	EvUnavailable = "payload_unavailable"
	// EvLeaving: provider Address deregistered; it may withdraw from
	// Amount (unix ms) on, once its open matches have settled.
	EvLeaving = "provider_leaving"
	// EvWithdrawn: Amount of provider Address's collateral returned.
	EvWithdrawn = "collateral_withdrawn"
	// EvChallenged: client Address challenged JobID's result, locking
	// Amount as its deposit.
	EvChallenged = "challenged"
	// EvAttested: committee member Address attested JobID's challenge.
	EvAttested = "attested"
	// EvChallengeFailed: the provider won; challenger Address lost its
	// deposit Amount (to the committee, the rest to the provider).
	EvChallengeFailed = "challenge_failed"
	// EvWithheld: provider Address did not serve JobID's result to the
	// committee; Amount of its collateral cut, the client refunded.
	EvWithheld = "result_withheld"
	// EvWrongResult: the referees' majority hash is not provider
	// Address's; Amount of its collateral cut, the client refunded.
	EvWrongResult = "result_wrong"
	// EvRefereeSlashed: referee Address voted against the deciding hash
	// of JobID's challenge; Amount of its stake burned.
	EvRefereeSlashed = "referee_slashed"
	// EvMajority: replica JobID of provider Address is in its group's
	// decided result (or the group had none): its held pay Amount is
	// held from now for the challenge window, and the client may fetch,
	// check and ack it. A dissenting replica gets EvWrongResult.
	EvMajority = "replica_majority"
)

// TxResult is the outcome of one transaction of a block. A transaction
// with a valid envelope (signature, chain id, nonce, fee) is always
// included: its fee is paid and its nonce used even when its body fails
// (Code 1, Log says why, and none of its body's effects remain). Match
// transactions are the exception: the proposer signs them, so a Match
// whose body fails makes the whole block invalid and a Match result always
// has Code 0.
type TxResult struct {
	Hash   [32]byte `json:"hash"`
	Kind   Kind     `json:"kind"`
	Code   uint32   `json:"code"` // 0 ok, 1 body failed
	Log    string   `json:"log,omitempty"`
	Events []Event  `json:"events,omitempty"`
}

// Result is what executing a block produces. Apply installs it.
type Result struct {
	Height    uint64
	Time      int64
	BlockHash [32]byte
	StateRoot [32]byte
	// Changes are the state writes, sorted by key; a nil Value deletes.
	// The store persists exactly these.
	Changes   []merkle.Change
	TxResults []TxResult
	// Events of the block itself (matured unbondings, timeouts).
	Events []Event
	// ValidatorUpdates is the set for Height+2 when it differs from the
	// set of Height+1, else nil.
	ValidatorUpdates []Validator
	// TxHashes are the hashes of Txs, in order.
	TxHashes [][32]byte

	base    *State
	pending *merkle.Pending
	txs     []*Tx // the block's, decoded (see DecodedTx)
}

// DecodedTx is the block's i-th transaction as Execute decoded it, or nil
// when the result holds none (one built otherwise). It is shared: read it,
// never change it.
func (r *Result) DecodedTx(i int) *Tx {
	if r == nil || i < 0 || i >= len(r.txs) {
		return nil
	}
	return r.txs[i]
}

type execCtx struct {
	o        *overlay
	p        Params
	g        Globals
	height   uint64
	time     int64
	proposer wallet.Address
	fees     uint64
	ev       EvidenceVerifier
	events   []Event
	// stakesChanged is set by anything that writes a stake (a failed body
	// may leave it set: that only costs a recomputation of the same set).
	stakesChanged bool
}

// Execute runs block b on st without modifying st and returns the result.
// It checks the header against the state (chain id, height, time after the
// previous block, validator set hash, proposer in the set), the size
// limits, every signature (skipping those in opts.SigCache), every
// transaction envelope and the body of every Match transaction
// (market.CheckMatch against the state as of its position in the block,
// then the escrow and the reservation); any failure is ErrInvalidBlock, and
// for a Match the error names its job id and, when CheckMatch refused it,
// carries the *market.MatchError (market.CodeOf works on it). Unless
// opts.SkipStateRootCheck, a header state root that differs from the
// computed one is ErrStateRootMismatch. PrevHash and LastCommit are the
// driver's and the store's to check: the state does not hold block hashes.
func Execute(st *State, b *Block, opts ExecOptions) (*Result, error) {
	res, err := execute(st, b, opts, nil)
	if err != nil {
		return nil, err
	}
	if !opts.SkipStateRootCheck && res.StateRoot != b.Header.StateRoot {
		return res, fmt.Errorf("execute block %d: %w: header %x, computed %x", b.Header.Height, ErrStateRootMismatch, b.Header.StateRoot, res.StateRoot)
	}
	return res, nil
}

func invalidBlock(h uint64, format string, args ...any) error {
	return fmt.Errorf("execute block %d: %w: %s", h, ErrInvalidBlock, fmt.Sprintf(format, args...))
}

// invalidTx is invalidBlock for transaction i, keeping err in the chain;
// a Match is named by its job id.
func invalidTx(h uint64, i int, hash [32]byte, tx *Tx, err error) error {
	if tx != nil && tx.Match != nil {
		return fmt.Errorf("execute block %d: %w: tx %d %x: match %s: %w", h, ErrInvalidBlock, i, hash[:8], tx.Match.ID(), err)
	}
	return fmt.Errorf("execute block %d: %w: tx %d %x: %w", h, ErrInvalidBlock, i, hash[:8], err)
}

// errMatchRefused marks a Match whose body failed: the block is invalid
// (Execute) or the Match is dropped (BuildBlock), never included.
var errMatchRefused = errors.New("match refused")

// execute runs b. With keep non-nil (the proposer's BuildBlock), envelope
// failures and Match body failures drop the transaction instead of failing
// the block, and keep receives the indices that stayed. A dropped
// transaction pays no fee and uses no nonce, so every later transaction of
// the same sender has a nonce that no longer fits and is dropped too (its
// envelope fails): after a refused Match, the proposer's later Matches
// leave the block. The node's matcher re-matches their bids at the next
// height.
func execute(st *State, b *Block, opts ExecOptions, keep *[]int) (*Result, error) {
	h := b.Header
	st.mu.RLock()
	p, g := st.params, st.globals
	st.mu.RUnlock()
	if err := b.ValidateBasic(); err != nil {
		return nil, invalidBlock(h.Height, "%v", err)
	}
	switch {
	case h.ChainID != p.ChainID:
		return nil, invalidBlock(h.Height, "chain id %q, want %q", h.ChainID, p.ChainID)
	case h.Height != g.Height+1:
		return nil, invalidBlock(h.Height, "state is at height %d", g.Height)
	case h.Time <= g.Time:
		return nil, invalidBlock(h.Height, "time %d is not after the previous block's %d", h.Time, g.Time)
	case uint64(len(b.Txs)) > p.MaxBlockTxs:
		return nil, invalidBlock(h.Height, "%d transactions exceed %d", len(b.Txs), p.MaxBlockTxs)
	}
	var size uint64
	for _, t := range b.Txs {
		size += uint64(len(t))
	}
	if size > p.MaxBlockBytes {
		return nil, invalidBlock(h.Height, "%d bytes of transactions exceed %d", size, p.MaxBlockBytes)
	}
	vals, err := st.ValidatorsAt(h.Height)
	if err != nil {
		return nil, fmt.Errorf("execute block %d: %w", h.Height, err)
	}
	if ValidatorsHash(vals) != h.ValidatorsHash {
		return nil, invalidBlock(h.Height, "validators hash %x, want %x", h.ValidatorsHash, ValidatorsHash(vals))
	}
	if !slices.ContainsFunc(vals, func(v Validator) bool { return v.Address == h.Proposer }) {
		return nil, invalidBlock(h.Height, "proposer %s is not a validator", h.Proposer)
	}

	var txs []*Tx
	var hashes [][32]byte
	if opts.pre != nil && len(opts.pre.txs) == len(b.Txs) {
		// BuildBlock's trial (the only caller with keep): verified there.
		txs, hashes = opts.pre.txs, opts.pre.hashes
	} else {
		hashes = make([][32]byte, len(b.Txs))
		for i, raw := range b.Txs {
			hashes[i] = TxHash(raw)
		}
		txs = opts.held(hashes)
		var fresh []*Tx
		var freshH [][32]byte
		var at []int
		for i, raw := range b.Txs {
			if txs[i] != nil {
				continue
			}
			tx, err := DecodeTx(raw)
			if err != nil {
				return nil, invalidBlock(h.Height, "tx %d: %v", i, err)
			}
			txs[i] = tx
			fresh, freshH, at = append(fresh, tx), append(freshH, hashes[i]), append(at, i)
		}
		if j, err := VerifyTxs(fresh, freshH, opts.SigCache); err != nil {
			return nil, invalidTx(h.Height, at[j], hashes[at[j]], txs[at[j]], err)
		}
	}

	x := &execCtx{o: newOverlay(st), p: p, g: g, height: h.Height, time: h.Time, proposer: h.Proposer, ev: opts.Evidence}
	if err := x.beginBlock(); err != nil {
		return nil, fmt.Errorf("execute block %d: begin: %w", h.Height, err)
	}
	res := &Result{Height: h.Height, Time: h.Time, BlockHash: b.Hash(), base: st, txs: txs}
	for i, tx := range txs {
		tr, err := x.deliverTx(tx, hashes[i])
		if err != nil {
			if keep != nil {
				continue
			}
			return nil, invalidTx(h.Height, i, hashes[i], tx, err)
		}
		if keep != nil {
			*keep = append(*keep, i)
		}
		res.TxResults = append(res.TxResults, tr)
		res.TxHashes = append(res.TxHashes, hashes[i])
	}
	upd, err := x.endBlock()
	if err != nil {
		return nil, fmt.Errorf("execute block %d: end: %w", h.Height, err)
	}
	res.ValidatorUpdates = upd
	res.Events = x.events
	res.Changes = x.o.changes()
	st.mu.RLock()
	res.pending = st.tree.Preview(res.Changes)
	st.mu.RUnlock()
	res.StateRoot = res.pending.Root()
	return res, nil
}

// deliverTx checks the envelope, charges the fee, bumps the nonce and runs
// the body in its own overlay. An error (bad envelope, a Match whose body
// fails, corrupt state) leaves x as it was and invalidates the block.
func (x *execCtx) deliverTx(tx *Tx, hash [32]byte) (TxResult, error) {
	if err := x.checkEnvelope(tx, x.o, true); err != nil {
		return TxResult{}, err
	}
	parent := x.o
	// env holds the fee and the nonce; it is discarded with a refused Match.
	env := newOverlay(parent)
	sender := tx.SenderAddress()
	acc, err := getAccount(env, sender)
	if err != nil {
		return TxResult{}, err
	}
	acc.Balance -= tx.Fee // checked by checkEnvelope
	acc.Nonce++
	putAccount(env, sender, acc)
	fees, err := add(x.fees, tx.Fee)
	if err != nil {
		return TxResult{}, err
	}
	tr := TxResult{Hash: hash, Kind: tx.Kind()}
	child := newOverlay(env)
	saved, savedEvents := x.g, len(x.events)
	x.o = child
	err = x.body(tx)
	x.o = parent
	if err != nil {
		x.g, x.events = saved, x.events[:savedEvents]
		if errors.Is(err, ErrCorruptState) {
			return TxResult{}, err
		}
		if proposerKind(tx.Kind()) {
			return TxResult{}, fmt.Errorf("%w: %w", errMatchRefused, err)
		}
		env.mergeInto(parent)
		x.fees = fees
		tr.Code, tr.Log = 1, err.Error()
		return tr, nil
	}
	child.mergeInto(env)
	env.mergeInto(parent)
	x.fees = fees
	tr.Events = slices.Clone(x.events[savedEvents:])
	x.events = x.events[:savedEvents]
	return tr, nil
}

// checkEnvelope checks what makes a transaction includable at all. With
// exactNonce the nonce must be the account's next; otherwise any nonce not
// already used passes (the mempool queues future nonces).
func (x *execCtx) checkEnvelope(tx *Tx, r reader, exactNonce bool) error {
	if tx.ChainID != x.p.ChainID {
		return fmt.Errorf("%w: chain id %q, want %q", ErrInvalidTx, tx.ChainID, x.p.ChainID)
	}
	if tx.Kind() == KindInvalid {
		return fmt.Errorf("%w: no single body", ErrInvalidTx)
	}
	// Matches are the proposer's own work for the network: the fee would
	// be paid to itself, so none is required (a validator may hold no
	// balance at all).
	if tx.Fee < x.p.MinFee && !proposerKind(tx.Kind()) {
		return fmt.Errorf("%w: fee %d below the minimum %d", ErrInvalidTx, tx.Fee, x.p.MinFee)
	}
	if proposerKind(tx.Kind()) && tx.SenderAddress() != x.proposer {
		return fmt.Errorf("%w: a %s must be sent by the block proposer", ErrInvalidTx, tx.Kind())
	}
	acc, err := getAccount(r, tx.SenderAddress())
	if err != nil {
		return err
	}
	switch {
	case tx.Nonce < acc.Nonce:
		return fmt.Errorf("%w: nonce %d already used (next is %d)", ErrInvalidTx, tx.Nonce, acc.Nonce)
	case exactNonce && tx.Nonce != acc.Nonce:
		return fmt.Errorf("%w: nonce %d, want %d", ErrInvalidTx, tx.Nonce, acc.Nonce)
	case acc.Balance < tx.Fee:
		return fmt.Errorf("%w: balance %d cannot pay fee %d", ErrInvalidTx, acc.Balance, tx.Fee)
	}
	return nil
}

func (x *execCtx) body(tx *Tx) error {
	switch tx.Kind() {
	case KindTransfer:
		return x.transfer(tx.SenderAddress(), tx.Transfer.To, tx.Transfer.Amount)
	case KindBond:
		return x.bond(tx.SenderAddress(), tx.Sender, tx.Bond.Amount)
	case KindUnbond:
		return x.unbond(tx.SenderAddress(), tx.Unbond.Amount)
	case KindEvidence:
		return x.evidence(tx.Evidence)
	case KindProviderRegister:
		return x.providerRegister(tx.SenderAddress(), tx.ProviderRegister.Collateral)
	case KindBidCancel:
		return x.bidCancel(tx.SenderAddress(), tx.BidCancel)
	case KindMatch:
		return x.match(tx.Match)
	case KindResult:
		return x.result(tx.SenderAddress(), tx.Result)
	case KindPayloadUnavailable:
		return x.payloadUnavailable(tx.SenderAddress(), tx.PayloadUnavailable)
	case KindProviderDeregister:
		return x.providerDeregister(tx.SenderAddress())
	case KindProviderWithdraw:
		return x.providerWithdraw(tx.SenderAddress())
	case KindAck:
		return x.ack(tx.SenderAddress(), tx.Ack)
	case KindChallenge:
		return x.challenge(tx.SenderAddress(), tx.Challenge)
	case KindAttest:
		return x.attest(tx.SenderAddress(), tx.Attest)
	case KindServiceOpen:
		return x.serviceOpen(tx)
	case KindServiceScale:
		return x.serviceScale(tx.SenderAddress(), tx.ServiceScale)
	case KindServiceClose:
		return x.serviceClose(tx.SenderAddress(), tx.ServiceClose)
	case KindServicePlace:
		return x.servicePlace(tx.ServicePlace)
	case KindServiceClaim:
		return x.serviceClaim(tx.SenderAddress(), tx.ServiceClaim)
	case KindServiceDown:
		return x.serviceEnd("service down", tx.SenderAddress(), tx.ServiceDown.Lease, true)
	case KindServiceLeave:
		return x.serviceEnd("service leave", tx.SenderAddress(), tx.ServiceLeave.Lease, false)
	}
	return fmt.Errorf("unknown kind %v", tx.Kind())
}

func getAccount(r reader, a wallet.Address) (Account, error) {
	var acc Account
	_, err := getRecord(r, addrKey(pfxAccount, a), &acc)
	return acc, err
}

func putAccount(o *overlay, a wallet.Address, acc Account) {
	if acc == (Account{}) {
		o.del(addrKey(pfxAccount, a))
		return
	}
	o.put(addrKey(pfxAccount, a), acc)
}

func (x *execCtx) debit(a wallet.Address, amount uint64) error {
	acc, err := getAccount(x.o, a)
	if err != nil {
		return err
	}
	if acc.Balance, err = sub(acc.Balance, amount); err != nil {
		return fmt.Errorf("debit %s: %w", a, err)
	}
	putAccount(x.o, a, acc)
	return nil
}

func (x *execCtx) credit(a wallet.Address, amount uint64) error {
	if amount == 0 {
		return nil
	}
	acc, err := getAccount(x.o, a)
	if err != nil {
		return err
	}
	if acc.Balance, err = add(acc.Balance, amount); err != nil {
		return fmt.Errorf("credit %s: %w", a, err)
	}
	putAccount(x.o, a, acc)
	return nil
}

func (x *execCtx) transfer(from, to wallet.Address, amount uint64) error {
	if err := x.debit(from, amount); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	return x.credit(to, amount)
}

func stakeRankKey(st Stake) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ^st.Amount)
	return pfxStakeRank + string(b[:]) + string(st.Address[:])
}

func getStake(r reader, a wallet.Address) (Stake, bool, error) {
	var st Stake
	ok, err := getRecord(r, addrKey(pfxStake, a), &st)
	return st, ok, err
}

// putStake replaces the stake record old (zero Amount: none) by st, and
// its rank entry; an Amount of 0 removes the account from the index.
func putStake(o *overlay, old, st Stake) {
	if old.Amount > 0 {
		o.del(stakeRankKey(old))
	}
	if st.Amount == 0 {
		o.del(addrKey(pfxStake, st.Address))
		return
	}
	o.put(addrKey(pfxStake, st.Address), st)
	o.put(stakeRankKey(st), true)
}

func unbondKey(maturity uint64, a wallet.Address) string {
	return heightKey(pfxUnbonding, maturity) + string(a[:])
}

func unbondByKey(a wallet.Address, maturity uint64) string {
	return heightKey(addrKey(pfxUnbondBy, a), maturity)
}

func (x *execCtx) bond(a wallet.Address, pub wallet.PublicKey, amount uint64) error {
	if err := x.debit(a, amount); err != nil {
		return fmt.Errorf("bond: %w", err)
	}
	old, found, err := getStake(x.o, a)
	if err != nil {
		return err
	}
	st := Stake{Address: a, PubKey: pub, Amount: amount}
	if found {
		st.PubKey = old.PubKey
		if st.Amount, err = add(old.Amount, amount); err != nil {
			return fmt.Errorf("bond: %w", err)
		}
	}
	if x.g.Bonded, err = add(x.g.Bonded, amount); err != nil {
		return fmt.Errorf("bond: %w", err)
	}
	putStake(x.o, old, st)
	x.stakesChanged = true
	x.o.put(addrKey(pfxPubKey, a), pub)
	return nil
}

// MaxUnbondingEntries bounds the pending unbondings of one account (one
// entry per maturity height; unbonds in one block merge), as Cosmos bounds
// the unbonding entries of a delegation: slashing visits every entry of
// the offender, so an account that unbonds a little in every block must
// not make each Evidence against it cost the whole evidence window.
const MaxUnbondingEntries = 16

// unbond moves amount of a's stake to the unbonding queue. It matures at
// height+UnbondingBlocks+2: the stake gave voting power up to height+1,
// and evidence of a vote at height h is accepted up to h+UnbondingBlocks,
// so the stake stays slashable for as long as any evidence against it can
// still be submitted. An account holding MaxUnbondingEntries pending
// unbondings cannot start another until the earliest matures.
func (x *execCtx) unbond(a wallet.Address, amount uint64) error {
	old, found, err := getStake(x.o, a)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("unbond: %s has no bonded stake", a)
	}
	maturity := x.height + x.p.UnbondingBlocks + 2
	key := unbondKey(maturity, a)
	var u Unbonding
	merge, err := getRecord(x.o, key, &u)
	if err != nil {
		return err
	}
	if !merge {
		pending, earliest := 0, uint64(0)
		x.o.scan(addrKey(pfxUnbondBy, a), "", func(k string, _ []byte) bool {
			if pending == 0 {
				earliest = binary.BigEndian.Uint64([]byte(k[len(k)-8:]))
			}
			pending++
			return pending < MaxUnbondingEntries
		})
		if pending >= MaxUnbondingEntries {
			return fmt.Errorf("unbond: %s has %d pending unbondings, the most an account may hold; the earliest matures at height %d", a, pending, earliest)
		}
	}
	st := old
	if st.Amount, err = sub(old.Amount, amount); err != nil {
		return fmt.Errorf("unbond: %w", err)
	}
	if x.g.Bonded == amount {
		return errors.New("unbond: the last bonded stake cannot leave: the chain would have no validator")
	}
	putStake(x.o, old, st)
	x.stakesChanged = true
	x.g.Bonded -= amount
	if x.g.Unbonding, err = add(x.g.Unbonding, amount); err != nil {
		return fmt.Errorf("unbond: %w", err)
	}
	// One record per account and maturity: every unbond it merges was
	// made at this height.
	x.o.put(key, Unbonding{Address: a, Amount: u.Amount + amount, Height: x.height})
	x.o.put(unbondByKey(a, maturity), true)
	return nil
}

func (x *execCtx) evidence(e *EvidenceTx) error {
	ev := x.ev
	if ev == nil {
		ev = consensusEvidence{r: x.o}
	}
	offender, h, err := ev.VerifyDuplicateVote(x.p.ChainID, e.Data)
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	if h == 0 || h > x.height {
		return fmt.Errorf("evidence: votes at height %d, chain at %d", h, x.height)
	}
	if x.p.UnbondingBlocks < x.height && h < x.height-x.p.UnbondingBlocks {
		return fmt.Errorf("evidence: height %d is older than the unbonding period", h)
	}
	seen := heightKey(addrKey(pfxEvidence, offender), h)
	if _, ok := x.o.get(seen); ok {
		return fmt.Errorf("evidence: %s already punished for height %d", offender, h)
	}
	x.o.put(seen, true)
	burned, err := x.slashStake(offender, x.p.SlashBps, h)
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	if burned == 0 {
		return fmt.Errorf("evidence: %s has no stake to slash", offender)
	}
	x.events = append(x.events, Event{Type: EvSlashed, Address: offender, Amount: burned})
	return nil
}

// slashStake burns bps of a's bonded stake and of its unbonding stake
// that still gave voting power at the infraction height (unbonded at
// infraction-1 or later), as Cosmos slashes unbonding delegations. It
// visits a's entries, at most MaxUnbondingEntries.
func (x *execCtx) slashStake(a wallet.Address, bps uint32, infraction uint64) (uint64, error) {
	var burned uint64
	old, found, err := getStake(x.o, a)
	if err != nil {
		return 0, err
	}
	if found {
		st := old
		cut := mulBps(st.Amount, bps)
		st.Amount -= cut
		x.g.Bonded -= cut
		burned += cut
		putStake(x.o, old, st)
		x.stakesChanged = true
	}
	var keys []string
	if err := scanRecords(x.o, addrKey(pfxUnbondBy, a), func(k string, _ *bool) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		return 0, err
	}
	for _, k := range keys {
		maturity := binary.BigEndian.Uint64([]byte(k[len(k)-8:]))
		key := unbondKey(maturity, a)
		var u Unbonding
		ok, err := getRecord(x.o, key, &u)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("%w: unbonding index lists %s at %d without a record", ErrCorruptState, a, maturity)
		}
		if u.Height+1 < infraction {
			continue // it had left the validator set before the infraction
		}
		cut := mulBps(u.Amount, bps)
		u.Amount -= cut
		x.g.Unbonding -= cut
		burned += cut
		if u.Amount == 0 {
			x.o.del(key)
			x.o.del(k)
		} else if cut > 0 {
			x.o.put(key, u)
		}
	}
	if x.g.Burned, err = add(x.g.Burned, burned); err != nil {
		return 0, err
	}
	return burned, nil
}

func (x *execCtx) beginBlock() error {
	var mature []Unbonding
	if err := scanRecords(x.o, heightKey(pfxUnbonding, x.height), func(_ string, u *Unbonding) error {
		mature = append(mature, *u)
		return nil
	}); err != nil {
		return err
	}
	for _, u := range mature {
		if err := x.credit(u.Address, u.Amount); err != nil {
			return err
		}
		x.g.Unbonding -= u.Amount
		x.o.del(unbondKey(x.height, u.Address))
		x.o.del(unbondByKey(u.Address, x.height))
		x.events = append(x.events, Event{Type: EvUnbonded, Address: u.Address, Amount: u.Amount})
	}
	if err := x.settleDue(); err != nil {
		return err
	}
	return x.settleServices()
}

func (x *execCtx) endBlock() ([]Validator, error) {
	if err := x.credit(x.proposer, x.fees); err != nil {
		return nil, err
	}
	var prev []Validator
	if _, err := getRecord(x.o, heightKey(pfxValset, x.height+1), &prev); err != nil {
		return nil, err
	}
	// Unchanged stakes give the set the previous block computed.
	next := prev
	if x.stakesChanged {
		var err error
		if next, err = activeSet(x.o, x.p.MaxValidators); err != nil {
			return nil, err
		}
		if len(next) == 0 {
			next = prev // never an empty set: keep the last one
		}
	}
	var upd []Validator
	if ValidatorsHash(next) != ValidatorsHash(prev) {
		upd = next
	}
	x.o.put(heightKey(pfxValset, x.height+2), next)
	if x.height >= 2 {
		x.o.del(heightKey(pfxValset, x.height-1))
	}
	x.g.Height, x.g.Time = x.height, x.time
	x.o.put(keyGlobals, x.g)
	return upd, nil
}

// activeSet is the first max entries of the stake rank (largest stake
// first, ties by address), sorted by address, with power = stake. It
// reads max records whatever the number of bonded accounts.
func activeSet(r reader, max uint32) ([]Validator, error) {
	var addrs []wallet.Address
	var err error
	r.scan(pfxStakeRank, "", func(k string, _ []byte) bool {
		if len(k) != len(pfxStakeRank)+8+len(wallet.Address{}) {
			err = fmt.Errorf("%w: stake rank key %q", ErrCorruptState, printableKey(k))
			return false
		}
		var a wallet.Address
		copy(a[:], k[len(pfxStakeRank)+8:])
		addrs = append(addrs, a)
		return len(addrs) < int(max)
	})
	if err != nil {
		return nil, err
	}
	vals := make([]Validator, 0, len(addrs))
	for _, a := range addrs {
		st, ok, err := getStake(r, a)
		if err != nil {
			return nil, err
		}
		if !ok || st.Amount == 0 {
			return nil, fmt.Errorf("%w: stake rank lists %s without a stake", ErrCorruptState, a)
		}
		vals = append(vals, Validator{Address: st.Address, PubKey: st.PubKey, Power: st.Amount})
	}
	slices.SortFunc(vals, func(a, b Validator) int { return bytes.Compare(a.Address[:], b.Address[:]) })
	return vals, nil
}

// CheckTx reports whether tx could be included in the next block on st:
// signature, envelope (nonce must be the account's next) and body, run on
// a scratch overlay. The mempool uses it for the sender's next nonce.
func CheckTx(st *State, tx *Tx) error {
	if err := tx.ValidateBasic(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidTx, err)
	}
	if err := VerifyTx(tx); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidTx, err)
	}
	return checkTxState(st, tx, true)
}

// CheckTxState is CheckTx without the signature and basic checks (the
// caller did them): the envelope and the body on a scratch overlay. With
// exactNonce false (a transaction queued behind others of its sender in a
// mempool) only the envelope is checked, allowing a later nonce; the body
// depends on the transactions before it.
func CheckTxState(st *State, tx *Tx, exactNonce bool) error { return checkTxState(st, tx, exactNonce) }

func checkTxState(st *State, tx *Tx, exactNonce bool) error {
	st.mu.RLock()
	p, g := st.params, st.globals
	st.mu.RUnlock()
	if proposerKind(tx.Kind()) {
		return fmt.Errorf("%w: %s transactions are made by the block proposer, not submitted", ErrInvalidTx, tx.Kind())
	}
	x := &execCtx{o: newOverlay(st), p: p, g: g, height: g.Height + 1, time: g.Time}
	if err := x.checkEnvelope(tx, st, exactNonce); err != nil {
		return err
	}
	if !exactNonce {
		return nil
	}
	if _, err := x.deliverTxChecked(tx); err != nil {
		return err
	}
	return nil
}

func (x *execCtx) deliverTxChecked(tx *Tx) (TxResult, error) {
	tr, err := x.deliverTx(tx, [32]byte{})
	if err != nil {
		return tr, err
	}
	if tr.Code != 0 {
		return tr, fmt.Errorf("%w: %s", ErrInvalidTx, tr.Log)
	}
	return tr, nil
}

// BlockTemplate is what the proposer knows before it builds a block.
type BlockTemplate struct {
	Height     uint64
	Time       int64 // BFT time, unix ms, after the previous block's
	PrevHash   [32]byte
	Proposer   wallet.Address
	LastCommit []byte
}

// BuildBlock is the proposer's helper: it executes candidates (in order,
// typically Mempool.Reap plus the proposer's own Match transactions) on
// st, drops those whose signature or envelope fails and every Match whose
// body fails (it would make the block invalid), and returns the block with
// its txs root, validators hash and state root filled in, and the result
// to Apply once the block commits.
//
// A dropped transaction uses no nonce, and signed transactions cannot be
// renumbered: every later candidate of the same sender then has a nonce
// gap and is dropped too. For the proposer's Matches (signed with
// consecutive nonces after its own mempool transactions) that means the
// Matches after a refused one wait for the next height, when the matcher
// places their bids again against the updated state; Matches before it
// and other senders' transactions stay.
func BuildBlock(st *State, t BlockTemplate, candidates [][]byte, opts ExecOptions) (*Block, *Result, error) {
	vals, err := st.ValidatorsAt(t.Height)
	if err != nil {
		return nil, nil, fmt.Errorf("build block %d: %w", t.Height, err)
	}
	p := st.Params()
	// What the mempool holds is decoded and verified already; the rest is
	// decoded here and verified below in a batch, so the filtering pass
	// need not verify. An undecodable candidate or a bad signature leaves
	// the block.
	all := make([][32]byte, len(candidates))
	for i, raw := range candidates {
		all[i] = TxHash(raw)
	}
	heldAll := opts.held(all)
	var txs [][]byte
	var hashes [][32]byte
	var decoded []*Tx
	var ok []bool
	var fresh []*Tx
	var freshH [][32]byte
	var size uint64
	for i, raw := range candidates {
		if uint64(len(txs)) >= p.MaxBlockTxs {
			break
		}
		if size+uint64(len(raw)) > p.MaxBlockBytes {
			continue
		}
		tx, held := heldAll[i], heldAll[i] != nil
		if !held {
			var err error
			if tx, err = DecodeTx(raw); err != nil {
				continue
			}
			fresh, freshH = append(fresh, tx), append(freshH, all[i])
		}
		size += uint64(len(raw))
		txs, hashes, decoded, ok = append(txs, raw), append(hashes, all[i]), append(decoded, tx), append(ok, held)
	}
	mk := func(txs [][]byte) *Block {
		b := &Block{Header: Header{ChainID: p.ChainID, Height: t.Height, Time: t.Time, PrevHash: t.PrevHash,
			ValidatorsHash: ValidatorsHash(vals), Proposer: t.Proposer}, Txs: txs, LastCommit: t.LastCommit}
		b.Header.TxsRoot = TxsRoot(txs)
		b.Header.LastCommitHash = sha256Sum(t.LastCommit)
		return b
	}
	if _, err := VerifyTxs(fresh, freshH, opts.SigCache); err == nil {
		for i := range ok {
			ok[i] = true
		}
	} else {
		for i, tx := range decoded {
			ok[i] = ok[i] || opts.SigCache.Has(hashes[i]) || opts.SigCache.Verify(tx, hashes[i]) == nil
		}
	}
	good := &decodedTxs{}
	var goodRaw [][]byte
	for i := range txs {
		if ok[i] {
			good.txs, good.hashes, goodRaw = append(good.txs, decoded[i]), append(good.hashes, hashes[i]), append(goodRaw, txs[i])
		}
	}
	var keep []int
	trial := opts
	trial.SkipStateRootCheck = true
	trial.pre = good
	b := mk(goodRaw)
	res, err := execute(st, b, trial, &keep)
	if err != nil {
		return nil, nil, fmt.Errorf("build block %d: %w", t.Height, err)
	}
	if len(keep) != len(goodRaw) {
		final := make([][]byte, len(keep))
		trial.pre = &decodedTxs{txs: make([]*Tx, len(keep)), hashes: make([][32]byte, len(keep))}
		for i, k := range keep {
			final[i] = goodRaw[k]
			trial.pre.txs[i], trial.pre.hashes[i] = good.txs[k], good.hashes[k]
		}
		b = mk(final)
		if res, err = Execute(st, b, trial); err != nil {
			return nil, nil, fmt.Errorf("build block %d: %w", t.Height, err)
		}
	}
	b.Header.StateRoot = res.StateRoot
	res.BlockHash = b.Hash()
	return b, res, nil
}
