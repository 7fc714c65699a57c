package driver

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/chain/mempool"
	"github.com/bourse-net/bourse/wallet"
)

// app is the application half of the driver, named after ABCI++: it builds
// the blocks this node proposes (PrepareProposal), judges the blocks others
// propose (ProcessProposal), and executes and applies the decided ones
// (FinalizeBlock, Commit). It does no I/O — no network, no store, no
// clock, no logging: every refusal is an error for the driver to log or to
// halt on. It is owned by the driver's loop; only st and the mempool are
// shared (both safe for concurrent reads).
type app struct {
	chainID  string
	genesis  *chain.Genesis
	st       *chain.State
	mp       *mempool.Mempool
	sigCache *chain.SigCache

	key           wallet.PrivateKey // this node's: its address is the Proposer of the blocks it builds (zero on an observer, which never builds)
	maxBlockBytes int
	maxBlockTxs   int
	proposerTxs   ProposerTxs

	vs         *consensus.ValidatorSet // current height's set
	prevVS     *consensus.ValidatorSet // previous height's set (LastCommit)
	lastCommit []byte                  // encoded certificate of the last block
	lastHash   [32]byte                // hash of the last block (zero at genesis)
	pending    map[valueKey]*candidate // blocks built or judged at this height

	// worked is the number of transactions the last PrepareProposal or
	// ProcessProposal executed (0 when it answered from pending); the
	// driver times the call and sets timeTxs, the transactions this node
	// can build into a block within its time budget (0: no bound).
	worked  int
	timeTxs int
}

// valueKey names a proposed block by its claimed id and the hash of its
// bytes: a proposal that pairs a real block's id with other bytes gets its
// own entry and can never poison the verdict on the real block (or borrow
// it).
type valueKey struct {
	id consensus.BlockID
	h  [32]byte
}

func keyOf(id consensus.BlockID, raw []byte) valueKey { return valueKey{id, sha256.Sum256(raw)} }

// candidate is a block the app built or validated, kept until its height
// is decided so the decision does not execute it twice.
type candidate struct {
	block *chain.Block
	res   *chain.Result
	valid bool
}

// errJudged answers for bytes already found invalid at this height.
var errJudged = errors.New("already found invalid at this height")

// blockTime is the BFT time of a block at height h with the given
// LastCommit (see the package doc).
func (a *app) blockTime(h uint64, lastCommit []byte) (int64, error) {
	prev := a.st.Globals().Time
	if h == 1 {
		return a.genesis.GenesisTime + 1, nil
	}
	c, err := consensus.DecodeCommit(lastCommit)
	if err != nil {
		return 0, fmt.Errorf("last commit: %w", err)
	}
	t := c.Time(a.prevVS)
	if t <= prev {
		t = prev + 1
	}
	return t, nil
}

// PrepareProposal builds this node's block for height h, round r: the
// mempool's transactions, then the proposer's own (its Matches), all of it
// within maxBlockBytes and maxBlockTxs. The block is kept as a valid
// candidate so that its decision does not execute it again.
func (a *app) PrepareProposal(h uint64, r int32) (consensus.ValueReady, error) {
	t, err := a.blockTime(h, a.lastCommit)
	if err != nil {
		return consensus.ValueReady{}, err
	}
	// One bound for the whole block: what is left of MaxBlockBytes after
	// the header and the last commit, counting each transaction with its
	// CBOR header. A quarter is kept for the proposer's own transactions.
	budget := a.maxBlockBytes - blockOverhead - len(a.lastCommit)
	maxTxs := a.maxBlockTxs * 3 / 4
	if a.timeTxs > 0 {
		maxTxs = min(maxTxs, a.timeTxs)
	}
	cands, used := fit(a.mp.Reap(budget*3/4, maxTxs), budget)
	if a.proposerTxs != nil {
		// The proposer's Matches carry nonces in sequence: the first that
		// does not fit ends them (the ones after it would have a gap).
		own, _ := fit(a.proposerTxs(a.st, h, t, cands), budget-used)
		cands = append(cands, own...)
	}
	b, res, err := chain.BuildBlock(a.st, chain.BlockTemplate{
		Height: h, Time: t, PrevHash: a.lastHash, Proposer: a.key.Address(), LastCommit: a.lastCommit,
	}, cands, chain.ExecOptions{SigCache: a.sigCache, Held: a.mp.Held, SkipStateRootCheck: true})
	if err != nil {
		return consensus.ValueReady{}, err
	}
	raw, err := b.Encode()
	if err != nil {
		return consensus.ValueReady{}, err
	}
	if len(raw) > maxProposalValue {
		return consensus.ValueReady{}, fmt.Errorf("built a block of %d bytes, more than a proposal carries (%d)", len(raw), maxProposalValue)
	}
	id := consensus.BlockID(b.Hash())
	a.pending[keyOf(id, raw)] = &candidate{block: b, res: res, valid: true}
	a.worked = len(b.Txs)
	return consensus.ValueReady{Height: h, Round: r, BlockID: id, Value: raw}, nil
}

// fit returns the longest prefix of txs whose encoded size in a block
// (each with its CBOR header) is at most budget, and that size.
func fit(txs [][]byte, budget int) ([][]byte, int) {
	used := 0
	for i, t := range txs {
		if used+len(t)+txOverhead > budget {
			return txs[:i], used
		}
		used += len(t) + txOverhead
	}
	return txs, used
}

// ProcessProposal answers the core's ValidateValue: nil if the block fits
// a proposal, is valid at the height (validate), and names as its Proposer
// (who is paid the fees and alone may send Matches) the validator that
// signed the proposal, or, for a value re-proposed with a valid round, the
// proposer of a round no later than that one (where it was first
// proposed).
func (a *app) ProcessProposal(o consensus.ValidateValue) error {
	if len(o.Value) > maxProposalValue {
		return fmt.Errorf("oversized block: %d bytes, a proposal carries at most %d", len(o.Value), maxProposalValue)
	}
	c, err := a.validate(o.Height, o.BlockID, o.Value)
	if err != nil {
		return err
	}
	got := c.block.Header.Proposer
	ok := got == o.Proposer && o.ValidRound < 0
	if o.ValidRound >= 0 {
		ok = a.vs.ProposerWithin(got, o.ValidRound)
	}
	if !ok {
		return fmt.Errorf("block proposed by one validator names another as its proposer: header %s, valid round %d", got, o.ValidRound)
	}
	return nil
}

// validate returns the candidate for raw if it is a valid block at height
// h with id, and why not otherwise. Verdicts are cached by (id, hash of
// raw), and bytes that are not a block with that id are refused without a
// cache entry, so a forged pair never answers for the real block.
func (a *app) validate(h uint64, id consensus.BlockID, raw []byte) (*candidate, error) {
	k := keyOf(id, raw)
	a.worked = 0
	if c, ok := a.pending[k]; ok {
		if !c.valid {
			return nil, errJudged
		}
		return c, nil
	}
	b, err := chain.DecodeBlock(raw)
	if err != nil {
		return nil, fmt.Errorf("proposed bytes are not a block: %w", err)
	}
	a.worked = len(b.Txs)
	if consensus.BlockID(b.Hash()) != id {
		return nil, errors.New("proposed bytes are not the block they name")
	}
	c := &candidate{}
	a.pending[k] = c
	res, err := a.checkBlock(h, b)
	if err != nil {
		return nil, fmt.Errorf("invalid block: %w", err)
	}
	c.block, c.res, c.valid = b, res, true
	return c, nil
}

// check decodes and fully validates a block for height h.
func (a *app) check(h uint64, id consensus.BlockID, raw []byte) (*chain.Block, *chain.Result, error) {
	b, err := chain.DecodeBlock(raw)
	if err != nil {
		return nil, nil, err
	}
	if consensus.BlockID(b.Hash()) != id {
		return nil, nil, errors.New("block id is not the hash of its header")
	}
	res, err := a.checkBlock(h, b)
	if err != nil {
		return nil, nil, err
	}
	return b, res, nil
}

// checkBlock fully validates a decoded block for height h.
func (a *app) checkBlock(h uint64, b *chain.Block) (*chain.Result, error) {
	if b.Header.Height != h {
		return nil, fmt.Errorf("height %d, want %d", b.Header.Height, h)
	}
	if b.Header.PrevHash != a.lastHash {
		return nil, errors.New("previous block hash does not match")
	}
	if h > 1 {
		c, err := consensus.DecodeCommit(b.LastCommit)
		if err != nil {
			return nil, fmt.Errorf("last commit: %w", err)
		}
		if c.Height != h-1 || [32]byte(c.BlockID) != a.lastHash {
			return nil, errors.New("last commit is not for the previous block")
		}
		if err := c.Verify(a.chainID, a.prevVS); err != nil {
			return nil, fmt.Errorf("last commit: %w", err)
		}
	} else if len(b.LastCommit) != 0 {
		return nil, errors.New("block 1 carries a last commit")
	}
	t, err := a.blockTime(h, b.LastCommit)
	if err != nil {
		return nil, err
	}
	if b.Header.Time != t {
		return nil, fmt.Errorf("time %d, BFT time is %d", b.Header.Time, t)
	}
	return chain.Execute(a.st, b, chain.ExecOptions{SigCache: a.sigCache, Held: a.mp.Held})
}

// FinalizeBlock executes a decided block, or takes its execution from the
// candidate built or validated at this height. It changes nothing: the
// block is applied by Commit once it is stored. An error means more than
// 2/3 of stake certified a block this node cannot execute: its state has
// diverged, and it must never continue on it.
func (a *app) FinalizeBlock(dec consensus.Decide) (*candidate, error) {
	if c := a.pending[keyOf(dec.BlockID, dec.Value)]; c != nil && c.valid {
		return c, nil
	}
	b, res, err := a.check(dec.Height, dec.BlockID, dec.Value)
	if err != nil {
		return nil, fmt.Errorf("committed block %d (%s) does not execute here: %w", dec.Height, dec.BlockID, err)
	}
	return &candidate{block: b, res: res, valid: true}, nil
}

// Commit applies a finalized block, whose certificate is commit (encoded),
// to the state and the mempool, forgets the height's candidates and moves
// the validator sets on: it returns the next height's set.
func (a *app) Commit(c *candidate, commit []byte) (*consensus.ValidatorSet, error) {
	h := c.block.Header.Height
	if err := a.st.Apply(c.res); err != nil {
		return nil, fmt.Errorf("apply block %d: %w", h, err)
	}
	a.mp.Update(h, c.res.TxHashes, a.st)
	a.lastCommit = commit
	a.lastHash = c.block.Hash()
	clear(a.pending)
	next, err := a.nextSet(h + 1)
	if err != nil {
		return nil, err
	}
	a.prevVS, a.vs = a.vs, next
	return next, nil
}

// nextSet is the consensus set of height h: the current set advanced once
// if the validators are unchanged, else the new validators with fresh
// priorities.
func (a *app) nextSet(h uint64) (*consensus.ValidatorSet, error) {
	vals, err := a.st.ValidatorsAt(h)
	if err != nil {
		return nil, fmt.Errorf("validators at %d: %w", h, err)
	}
	cv := toConsensus(vals)
	if slices.Equal(sortedVals(cv), sortedVals(a.vs.Validators())) {
		return a.vs.Next(), nil
	}
	return consensus.NewValidatorSet(cv)
}

func toConsensus(vals []chain.Validator) []consensus.Validator {
	out := make([]consensus.Validator, len(vals))
	for i, v := range vals {
		out[i] = consensus.Validator{Address: v.Address, PubKey: v.PubKey, Power: v.Power}
	}
	return out
}

func sortedVals(v []consensus.Validator) []consensus.Validator {
	out := slices.Clone(v)
	slices.SortFunc(out, func(a, b consensus.Validator) int {
		for i := range a.Address {
			if a.Address[i] != b.Address[i] {
				return int(a.Address[i]) - int(b.Address[i])
			}
		}
		return 0
	})
	return out
}
