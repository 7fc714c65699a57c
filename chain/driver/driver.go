package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/chain/mempool"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/internal/clock"
	"github.com/bourse-net/bourse/internal/wire"
	"github.com/bourse-net/bourse/wallet"
)

// MaxProposalBytes bounds one proposal on the wire: the encoded consensus
// message, the block with every transaction (the mempool's and the
// proposer's Matches) and the proposal envelope. It is below the gossip
// publish limit (p2p max_message_size, 1 MiB by default), so a proposal
// always travels by gossip. A proposer stops adding transactions before a
// block would exceed it; a validator refuses a larger proposal (a block
// already certified is executed whatever its size: it is decided). The
// genesis bounds MaxValidators so that the last commit a proposal carries
// takes at most half of it (chain.MaxValidatorsForProposals).
const MaxProposalBytes = chain.MaxProposalBytes

// proposalEnvelope is an upper bound on what a proposal message adds to its
// block: the proposal's fields (height, round, ids, valid round, proposer,
// signature) and CBOR headers, about 200 bytes.
const proposalEnvelope = 512

// maxProposalValue is the largest block a proposal may carry.
const maxProposalValue = MaxProposalBytes - proposalEnvelope

// blockOverhead bounds what an encoded block adds to its transactions and
// last commit: the header and the CBOR headers of the block and its lists.
const blockOverhead = 1024

// txOverhead bounds the CBOR header of one transaction in a block.
const txOverhead = 5

// Transport is the network as the driver needs it. Peers are opaque strings
// (libp2p peer ids in a node).
type Transport interface {
	// Broadcast gossips data on a topic to every other node.
	Broadcast(ctx context.Context, topic string, data []byte) error
	// Peers lists the peers that may answer requests.
	Peers() []string
	// Request sends req to peer on protocol proto and returns its answer,
	// at most maxResp bytes.
	Request(ctx context.Context, peer, proto string, req []byte, maxResp int) ([]byte, error)
}

// ProposerTxs lets the node add its own transactions (the market matcher's
// Match transactions) to a block it proposes, after the mempool's (taken),
// so that its nonces follow those of its own transactions already in the
// block.
type ProposerTxs func(st *chain.State, height uint64, blockTime int64, taken [][]byte) [][]byte

// Committed is delivered to subscribers after a block is stored and applied.
type Committed struct {
	Block  *chain.Block
	Result *chain.Result
	Commit *consensus.CommitCertificate
}

// Config are the driver's inputs. Zero durations and sizes take defaults.
type Config struct {
	// GenesisJSON is the genesis document; the store is initialised from it
	// on first start and must match it afterwards.
	GenesisJSON []byte
	// Key signs votes and proposals. The zero key runs an observer that
	// follows the chain without voting.
	Key wallet.PrivateKey
	// Consensus timeouts; zero: taken from the genesis.
	Consensus *consensus.Config
	// MaxBlockBytes and MaxBlockTxs bound a block this node proposes, all
	// of it (header, last commit, every transaction). MaxBlockBytes is at
	// most, and by default, what fits one proposal message
	// (MaxProposalBytes with the envelope); MaxBlockTxs defaults to 10,000.
	MaxBlockBytes int
	MaxBlockTxs   int
	// CatchupInterval is how often the syncer checks whether the node is
	// behind or stuck. Default 300ms.
	CatchupInterval time.Duration
	// Mempool bounds the transaction pool the driver owns.
	Mempool mempool.Config
	// ProposerTxs, when set, is asked for transactions to propose first.
	ProposerTxs ProposerTxs
	// OnEvidence receives equivocations the core detects, to be submitted
	// as Evidence transactions.
	OnEvidence func(consensus.DuplicateVoteEvidence)
	// CheckInvariants re-checks chain.CheckInvariants (a full scan of the
	// state) after committed blocks and halts the driver on a violation,
	// so a bug in the state transition stops loudly at (or soon after) the
	// block that caused it. The scan grows with the state (every match is
	// kept for audit), so it may take at most a tenth of the commit
	// path's wall time (invariantsShare): after every block while the
	// state is small, less often once it is not. For testnets and tests;
	// off by default.
	CheckInvariants bool
	// Clock tells the time (stamped on votes, BFT block time) and runs the
	// consensus timeouts and the syncer's ticks; default clock.Real(). A
	// test passes a *clock.Manual to run heights in virtual time.
	Clock  clock.Clock
	Logger *slog.Logger
}

// ErrHalted is returned once the driver stopped on an unrecoverable fault
// (a committed block that does not execute, a store that cannot be written).
var ErrHalted = errors.New("chain halted")

// Driver runs consensus for one node. Create it with New, run it with
// Start, stop it with Close.
type Driver struct {
	cfg     Config
	chainID string
	store   *store.Store
	tr      Transport
	log     *slog.Logger

	in    chan event // to the loop
	calls chan func()

	// Owned by the loop.
	cs  *consensus.State
	app *app // builds, judges and applies blocks
	// The invariant scan (CheckInvariants) runs on a snapshot in its own
	// goroutine, one at a time: invNext is when the next is due (unix
	// ns), invErr the violation one found, reported at the next commit.
	invBusy atomic.Bool
	invNext atomic.Int64
	invErr  atomic.Pointer[error]
	timers  map[consensus.Timeout]clock.Timer
	// txCost is the recent cost of one transaction of a block on this
	// node (see observeBlockCost); only the loop goroutine touches it.
	txCost time.Duration
	// idleMs is the core's idle wait; lastTxs is when the last block with
	// transactions was committed (unix ms). Loop only.
	idleMs, lastTxs int64
	// signerVals are the block values the stored signer state refers to,
	// by id, as stored (see persistSigner). Loop only.
	signerVals map[consensus.BlockID][]byte

	sets     atomic.Pointer[heightSets] // the height being decided and its sets, replaced whole
	ahead    atomic.Bool                // a peer gossiped a higher height
	progress atomic.Int64               // unix ms of the last commit

	badMu sync.Mutex
	bad   map[string]time.Time // peers that sent invalid blocks, until when ignored

	subMu    sync.Mutex
	subs     map[int]chan Committed
	lossless map[int]bool
	subN     int

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error
	dropped atomic.Uint64
	// busy counts the work taken but not finished: events posted to the
	// loop and not yet handled, and a syncer round under way. A handled
	// event's broadcasts reach in-memory peers before it counts as done,
	// so a test on a Manual clock knows a cluster is idle (every busy at
	// zero) and may move time on.
	busy atomic.Int64
}

type event struct {
	msg     *consensus.Message
	timeout *consensus.Timeout
	synced  *syncedBlock
}

type syncedBlock struct {
	block  *chain.Block
	raw    []byte
	commit *consensus.CommitCertificate
	peer   string // who sent it
	// handled, when set, is closed once the loop took the block (applied
	// or refused it), so the syncer waits for the loop, not for a time.
	handled chan struct{}
}

// New opens the chain on store: it initialises the store from the genesis
// on first use, loads the state and the signer state, and rebuilds the
// validator set priorities. It starts nothing.
func New(cfg Config, bs *store.Store, tr Transport) (*Driver, error) {
	g, err := chain.ParseGenesis(cfg.GenesisJSON)
	if err != nil {
		return nil, fmt.Errorf("driver: %w", err)
	}
	if cfg.MaxBlockBytes <= 0 || cfg.MaxBlockBytes > maxProposalValue {
		cfg.MaxBlockBytes = maxProposalValue
	}
	if cfg.MaxBlockTxs == 0 {
		cfg.MaxBlockTxs = 10000
	}
	if cfg.CatchupInterval == 0 {
		cfg.CatchupInterval = 300 * time.Millisecond
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ccfg := consensusConfig(g.Timeouts)
	if cfg.Consensus != nil {
		ccfg = *cfg.Consensus
	}
	if err := ccfg.Validate(); err != nil {
		return nil, fmt.Errorf("driver: consensus config: %w", err)
	}
	ctx := context.Background()
	if err := openStore(ctx, bs, g, cfg.GenesisJSON); err != nil {
		return nil, err
	}
	st, err := bs.LoadState(ctx)
	if err != nil {
		return nil, fmt.Errorf("driver: load state: %w", err)
	}
	if st.Height() != bs.Height() {
		return nil, fmt.Errorf("driver: %w: state at height %d, blocks up to %d", chain.ErrCorruptState, st.Height(), bs.Height())
	}
	// st keeps settled matches in bs only (store.LoadState): a node's
	// memory does not grow with the chain's history. commit saves each
	// block before it applies it, as that requires (chain.State.SetCold).
	mp := mempool.New(cfg.Mempool, st)
	a := &app{
		chainID: g.ChainID, genesis: g, st: st, mp: mp, sigCache: mp.SigCache(),
		key: cfg.Key, maxBlockBytes: cfg.MaxBlockBytes, maxBlockTxs: cfg.MaxBlockTxs,
		proposerTxs: cfg.ProposerTxs,
		lastHash:    bs.LastHash(), pending: map[valueKey]*candidate{},
	}
	d := &Driver{
		cfg: cfg, chainID: g.ChainID, store: bs, tr: tr, app: a,
		log:      cfg.Logger.With("component", "driver"),
		in:       make(chan event, 1024),
		calls:    make(chan func()),
		timers:   map[consensus.Timeout]clock.Timer{},
		subs:     map[int]chan Committed{},
		bad:      map[string]time.Time{},
		lossless: map[int]bool{},
		idleMs:   ccfg.IdleWait.Milliseconds(),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	h := bs.Height()
	if a.vs, err = d.rebuildSet(h + 1); err != nil {
		return nil, err
	}
	if h > 0 {
		if a.prevVS, err = d.rebuildSet(h); err != nil {
			return nil, err
		}
		if a.lastCommit, err = bs.Commit(ctx, h); err != nil {
			return nil, fmt.Errorf("driver: last commit: %w", err)
		}
	}
	var restored *consensus.SignerState
	d.signerVals = make(map[consensus.BlockID][]byte)
	if raw, err := bs.LoadSignerState(ctx); err == nil && len(raw) > 0 {
		if restored, err = consensus.DecodeSignerState(raw); err != nil {
			return nil, fmt.Errorf("driver: signer state: %w", err)
		}
		// The values of a state from before the last commit are of no use
		// (the core ignores such a state); they are only noted, so the
		// first save deletes them.
		err = restored.JoinValues(func(id consensus.BlockID) ([]byte, error) {
			if restored.Height <= h {
				d.signerVals[id] = nil
				return nil, nil
			}
			v, err := bs.LoadSignerValue(ctx, id)
			d.signerVals[id] = v
			return v, err
		})
		if err != nil {
			return nil, fmt.Errorf("driver: %w: %v (restore the chain directory from a backup, or move it away to resync from genesis)", store.ErrCorruptStore, err)
		}
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("driver: signer state: %w", err)
	}
	d.cs, err = consensus.New(ccfg, d.chainID, cfg.Key, h+1, a.vs, restored)
	if err != nil {
		return nil, fmt.Errorf("driver: consensus: %w", err)
	}
	d.sets.Store(&heightSets{height: h + 1, cur: a.vs})
	return d, nil
}

// openStore initialises the store from the genesis on first use, and
// otherwise checks that it holds the genesis' chain.
func openStore(ctx context.Context, bs *store.Store, g *chain.Genesis, genesisJSON []byte) error {
	if !bs.Initialized() {
		st0, err := g.State()
		if err != nil {
			return fmt.Errorf("driver: genesis state: %w", err)
		}
		if err := bs.InitGenesis(ctx, genesisJSON, st0); err != nil {
			return fmt.Errorf("driver: %w", err)
		}
	} else {
		stored, err := bs.Genesis(ctx)
		if err != nil {
			return fmt.Errorf("driver: stored genesis: %w", err)
		}
		sg, err := chain.ParseGenesis(stored)
		if err != nil {
			return fmt.Errorf("driver: stored genesis: %w", err)
		}
		if sg.ChainID != g.ChainID || sg.GenesisTime != g.GenesisTime {
			return fmt.Errorf("driver: the store holds chain %q, the genesis file is for %q: use the right home or genesis", sg.ChainID, g.ChainID)
		}
	}
	return nil
}

// Mempool is the node's transaction pool: transactions from the txs topic
// and the local API go here. Its signature cache is shared with block
// execution, so a transaction's signature is verified once per node.
func (d *Driver) Mempool() *mempool.Mempool { return d.app.mp }

func consensusConfig(t chain.Timeouts) consensus.Config {
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	return consensus.Config{
		TimeoutPropose: ms(t.ProposeMs), TimeoutProposeDelta: ms(t.ProposeDeltaMs),
		TimeoutPrevote: ms(t.PrevoteMs), TimeoutPrevoteDelta: ms(t.PrevoteDeltaMs),
		TimeoutPrecommit: ms(t.PrecommitMs), TimeoutPrecommitDelta: ms(t.PrecommitDeltaMs),
		TimeoutCommit: ms(t.CommitMs), IdleWait: ms(t.IdleMs),
	}
}

// rebuildSet reconstructs the consensus validator set of height h (the
// stored height or the next) with its proposer priorities: fresh at the
// first height of the current set, then advanced once per height (see the
// package doc). The store keeps where the run of blocks signed by the last
// block's set began, so this costs one step per height of that run, not a
// block read.
func (d *Driver) rebuildSet(h uint64) (*consensus.ValidatorSet, error) {
	vals, err := d.app.st.ValidatorsAt(h)
	if err != nil {
		return nil, fmt.Errorf("driver: validators at %d: %w", h, err)
	}
	vs, err := consensus.NewValidatorSet(toConsensus(vals))
	if err != nil {
		return nil, fmt.Errorf("driver: validator set at %d: %w", h, err)
	}
	start := h
	if lastHash, runStart := d.store.ValidatorRun(); runStart > 0 && lastHash == chain.ValidatorsHash(vals) && h <= d.store.Height()+1 {
		start = runStart
	}
	return vs.Advance(h - start), nil
}

// Start runs the loop and the syncer until Close or until ctx ends.
func (d *Driver) Start(ctx context.Context) {
	d.progress.Store(d.now())
	d.wg.Add(3)
	d.busy.Add(1) // the loop's start, until its first timeouts are scheduled
	go d.loop()
	go d.syncer()
	go func() {
		defer d.wg.Done()
		select {
		case <-ctx.Done():
			d.cancel()
		case <-d.ctx.Done():
		}
	}()
}

// Close stops the driver and waits for its goroutines. It returns the
// fault that halted the chain, if any.
func (d *Driver) Close() error {
	d.cancel()
	d.wg.Wait()
	d.subMu.Lock()
	for id, ch := range d.subs {
		close(ch)
		delete(d.subs, id)
	}
	d.subMu.Unlock()
	return d.Err()
}

// Err is the fault that halted the driver, or nil.
func (d *Driver) Err() error {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.err
}

// Height is the height being decided: the last committed height + 1.
func (d *Driver) Height() uint64 { return d.sets.Load().height }

// State is the committed chain state. Reads are safe concurrently.
func (d *Driver) State() *chain.State { return d.app.st }

// Store is the block store.
func (d *Driver) Store() *store.Store { return d.store }

// Validators is the current height's validator set.
func (d *Driver) Validators() *consensus.ValidatorSet { return d.sets.Load().cur }

// heightSets is the height being decided with its validator set and the
// last height's (for that height's late votes). Gossip validation reads
// the three at once: read apart, a commit between the reads paired a
// height with the next height's set, and an honest vote failed to verify.
type heightSets struct {
	height    uint64
	cur, last *consensus.ValidatorSet
}

// Dropped counts gossip messages dropped because the loop was busy.
func (d *Driver) Dropped() uint64 { return d.dropped.Load() }

// Subscribe delivers every committed block from now on. A subscriber that
// does not keep up misses blocks (the channel holds buf); cancel ends it.
func (d *Driver) Subscribe(buf int) (<-chan Committed, func()) { return d.subscribe(buf, false) }

// SubscribeAll is Subscribe for a consumer that must see every block (the
// node's market: a provider that missed its Match would be slashed). When
// its buffer is full the driver waits for it, so it must be quick and must
// never call back into the driver's loop.
func (d *Driver) SubscribeAll(buf int) (<-chan Committed, func()) { return d.subscribe(buf, true) }

func (d *Driver) subscribe(buf int, lossless bool) (<-chan Committed, func()) {
	d.subMu.Lock()
	defer d.subMu.Unlock()
	ch := make(chan Committed, buf)
	id := d.subN
	d.subN++
	d.subs[id] = ch
	d.lossless[id] = lossless
	return ch, func() {
		d.subMu.Lock()
		defer d.subMu.Unlock()
		if c, ok := d.subs[id]; ok {
			close(c)
			delete(d.subs, id)
			delete(d.lossless, id)
		}
	}
}

func (d *Driver) publish(c Committed) {
	d.subMu.Lock()
	defer d.subMu.Unlock()
	for id, ch := range d.subs {
		if d.lossless[id] {
			select {
			case ch <- c:
			case <-d.ctx.Done():
			}
			continue
		}
		select {
		case ch <- c:
		default:
		}
	}
}

// HandleGossip delivers a consensus message that the topic validator
// (ValidateGossip) accepted. It never blocks: when the loop is busy the
// message is dropped and counted, and catch-up fetches it again.
func (d *Driver) HandleGossip(m consensus.Message) {
	d.busy.Add(1)
	select {
	case d.in <- event{msg: &m}:
	default:
		d.busy.Add(-1)
		d.dropped.Add(1)
	}
}

// Verdict is the outcome of ValidateGossip.
type Verdict int

// Verdicts map to the p2p validator results.
const (
	Accept Verdict = iota
	Ignore         // stale or for a height this node is not at
	Reject         // malformed or badly signed: penalise the sender
)

// ValidateGossip decodes and checks a consensus gossip message: well
// formed, for the current height, signed by a member of the current set.
// Safe for concurrent use.
func (d *Driver) ValidateGossip(data []byte) (consensus.Message, Verdict, error) {
	if len(data) > MaxProposalBytes {
		return consensus.Message{}, Reject, fmt.Errorf("consensus message of %d bytes exceeds %d", len(data), MaxProposalBytes)
	}
	m, err := consensus.DecodeMessage(data)
	if err != nil {
		return m, Reject, err
	}
	if err := m.ValidateBasic(); err != nil {
		return m, Reject, err
	}
	var h uint64
	switch {
	case m.Proposal != nil:
		h = m.Proposal.Height
	case m.Vote != nil:
		h = m.Vote.Height
	}
	sets := d.sets.Load()
	cur, vs := sets.height, sets.cur
	if m.Vote != nil && h+1 == cur {
		// A vote of the last height can still prove an equivocation
		// (the core keeps that height's votes for evidence only).
		if vs = sets.last; vs == nil {
			return m, Ignore, nil
		}
	} else if h != cur {
		if h > cur {
			d.ahead.Store(true)
		}
		return m, Ignore, nil
	}
	if m.Proposal != nil {
		err = m.Proposal.Verify(d.chainID, vs)
	} else {
		err = m.Vote.Verify(d.chainID, vs)
	}
	if err != nil {
		if d.Height() != cur { // the height moved on while we checked
			return m, Ignore, nil
		}
		return m, Reject, err
	}
	return m, Accept, nil
}

func (d *Driver) halt(err error) {
	d.errMu.Lock()
	if d.err == nil {
		d.err = fmt.Errorf("%w: %v", ErrHalted, err)
	}
	d.errMu.Unlock()
	d.log.Error("CHAIN HALTED: this node stopped following the chain", "err", err)
	d.cancel()
}

func (d *Driver) now() int64 { return d.cfg.Clock.Now().UnixMilli() }

// loop owns the consensus state.
func (d *Driver) loop() {
	defer d.wg.Done()
	defer func() {
		for _, t := range d.timers {
			t.Stop()
		}
	}()
	err := d.run(d.cs.Start(d.now()))
	d.busy.Add(-1)
	if err != nil {
		d.halt(err)
		return
	}
	for {
		select {
		case <-d.ctx.Done():
			return
		case f := <-d.calls:
			f()
		case <-d.app.mp.Added():
			if err := d.wake(); err != nil {
				d.halt(err)
				return
			}
		case ev := <-d.in:
			var err error
			switch {
			case ev.msg != nil && ev.msg.Proposal != nil:
				err = d.step(consensus.ReceiveProposal{Proposal: ev.msg.Proposal})
			case ev.msg != nil && ev.msg.Vote != nil:
				err = d.step(consensus.ReceiveVote{Vote: ev.msg.Vote})
			case ev.timeout != nil:
				delete(d.timers, *ev.timeout)
				err = d.step(*ev.timeout)
			case ev.synced != nil:
				err = d.onSynced(ev.synced)
				if ev.synced.handled != nil {
					close(ev.synced.handled)
				}
			}
			d.busy.Add(-1)
			if err != nil {
				d.halt(err)
				return
			}
		}
	}
}

// persistSigner writes the signer state before anything signed leaves.
// The block values it holds go to the store once each, under their ids,
// with the save that first refers to them, and leave with the save that
// no longer does: each save used to rewrite up to three blocks (of up to
// MaxProposalBytes each), several saves a height.
func (d *Driver) persistSigner(g *consensus.SignerState) error {
	bare, vals := g.SplitValues()
	raw, err := consensus.EncodeSignerState(&bare)
	if err != nil {
		return fmt.Errorf("encode signer state: %w", err)
	}
	var put map[[32]byte][]byte
	var drop [][32]byte
	for id, v := range vals {
		if bytes.Equal(d.signerVals[id], v) { // v is never empty: a nil here is not stored
			continue
		}
		if put == nil {
			put = make(map[[32]byte][]byte, len(vals))
		}
		put[id] = v
	}
	for id := range d.signerVals {
		if _, ok := vals[id]; !ok {
			drop = append(drop, id)
		}
	}
	if err := d.store.SaveSignerState(d.ctx, raw, put, drop); err != nil {
		return fmt.Errorf("persist signer state: %w", err)
	}
	d.signerVals = vals
	return nil
}

func (d *Driver) step(e consensus.Event) error {
	return d.run(d.cs.Step(consensus.Input{Now: d.now(), Event: e}))
}

// run carries out the core's outputs in order; answers from the
// application are fed back immediately.
func (d *Driver) run(outs []consensus.Output) error {
	for len(outs) > 0 {
		o := outs[0]
		outs = outs[1:]
		var more []consensus.Output
		switch o := o.(type) {
		case consensus.Persist:
			if err := d.persistSigner(&o.State); err != nil {
				return err
			}
		case consensus.Broadcast:
			raw, err := consensus.EncodeMessage(o.Message)
			if err != nil {
				return fmt.Errorf("encode consensus message: %w", err)
			}
			if err := d.tr.Broadcast(d.ctx, wire.TopicConsensus, raw); err != nil && d.ctx.Err() == nil {
				d.log.Warn("broadcast", "err", err)
			}
		case consensus.ScheduleTimeout:
			d.schedule(o)
		case consensus.RequestValue:
			t0 := d.cfg.Clock.Now()
			ready, err := d.app.PrepareProposal(o.Height, o.Round)
			d.observeBlockCost(d.cfg.Clock.Now().Sub(t0))
			if err != nil {
				d.log.Warn("build block", "height", o.Height, "err", err)
				continue // the round times out and moves on
			}
			more = d.cs.Step(consensus.Input{Now: d.now(), Event: ready})
		case consensus.ValidateValue:
			t0 := d.cfg.Clock.Now()
			err := d.app.ProcessProposal(o)
			d.observeBlockCost(d.cfg.Clock.Now().Sub(t0))
			if err != nil {
				d.log.Info("proposal refused", "height", o.Height, "round", o.Round, "proposer", o.Proposer, "id", o.BlockID, "err", err)
			}
			valid := err == nil
			more = d.cs.Step(consensus.Input{Now: d.now(), Event: consensus.ValueValidity{
				Height: o.Height, BlockID: o.BlockID, Value: o.Value, Valid: valid}})
		case consensus.Decide:
			next, err := d.commit(o)
			if err != nil {
				return err
			}
			more = next
		case consensus.Evidence:
			if d.cfg.OnEvidence != nil {
				d.cfg.OnEvidence(o.Evidence)
			}
		case consensus.ProposalEquivocation:
			d.log.Warn("proposer equivocated: two proposals for one round", "height", o.First.Height, "round", o.First.Round,
				"proposer", o.First.Proposer, "first", o.First.BlockID, "second", o.Second.BlockID)
		case consensus.Rejected:
			d.log.Debug("consensus input rejected", "err", o.Err)
		}
		outs = append(more, outs...)
	}
	return nil
}

// Proposals are sized by time as well as bytes: a block this node builds
// must execute within blockTimeShare of the propose timeout (on this node,
// at the per-transaction cost it measured building and judging the recent
// blocks), or the other validators, which execute it too before they vote,
// would time the round out and a loaded mempool would never make it into
// a block. The bound adapts to the machine and its load.
const (
	blockTimeShare = 3   // a third of the propose timeout
	costSampleTxs  = 50  // blocks with fewer transactions say little of the cost
	minTimeTxs     = 100 // never bound a block below this
)

// observeBlockCost folds the time of the last PrepareProposal or
// ProcessProposal into the per-transaction cost and resets the app's
// time bound.
func (d *Driver) observeBlockCost(took time.Duration) {
	n := d.app.worked
	if n < costSampleTxs || took <= 0 {
		return
	}
	per := took / time.Duration(n)
	if d.txCost == 0 {
		d.txCost = per
	} else {
		d.txCost = (d.txCost*7 + per*3) / 10
	}
	budget := time.Duration(d.app.genesis.Timeouts.ProposeMs) * time.Millisecond / blockTimeShare
	d.app.timeTxs = max(minTimeTxs, int(budget/max(d.txCost, 1)))
}

func (d *Driver) schedule(o consensus.ScheduleTimeout) {
	key := consensus.Timeout{Height: o.Height, Round: o.Round, Step: o.Step}
	if t, ok := d.timers[key]; ok {
		t.Stop()
	}
	ctx := d.ctx
	d.timers[key] = d.cfg.Clock.AfterFunc(o.Duration, func() {
		d.busy.Add(1)
		select {
		case d.in <- event{timeout: &key}:
		case <-ctx.Done():
			d.busy.Add(-1)
		}
	})
}

// commit stores and applies a decided block and starts the next height.
func (d *Driver) commit(dec consensus.Decide) ([]consensus.Output, error) {
	c, err := d.app.FinalizeBlock(dec)
	if err != nil {
		return nil, err
	}
	raw, err := consensus.EncodeCommit(&dec.Commit)
	if err != nil {
		return nil, fmt.Errorf("encode commit: %w", err)
	}
	if err := d.store.SaveBlock(d.ctx, c.block, raw, c.res); err != nil {
		return nil, fmt.Errorf("save block %d: %w", dec.Height, err)
	}
	next, err := d.app.Commit(c, raw)
	if err != nil {
		return nil, err
	}
	if err := d.checkInvariants(dec.Height); err != nil {
		return nil, err
	}
	for k, t := range d.timers {
		if k.Height <= dec.Height {
			t.Stop()
			delete(d.timers, k)
		}
	}
	d.sets.Store(&heightSets{height: dec.Height + 1, cur: next, last: d.app.prevVS})
	d.progress.Store(d.now())
	d.ahead.Store(false)
	commit := dec.Commit
	d.publish(Committed{Block: c.block, Result: c.res, Commit: &commit})
	d.log.Debug("committed", "height", dec.Height, "txs", len(c.block.Txs), "hash", dec.BlockID)
	now := d.now()
	if len(c.block.Txs) > 0 {
		d.lastTxs = now
	}
	outs := d.cs.Step(consensus.Input{Now: now, Event: consensus.NextHeight{Validators: next}})
	// Work for the new height: transactions waiting, or a block with
	// transactions within the idle wait (their follow-ups, such as the
	// matches a proposer builds for new bids, come in the next blocks).
	if txs, _ := d.app.mp.Size(); txs > 0 || now-d.lastTxs < d.idleMs {
		outs = append(outs, d.cs.Step(consensus.Input{Now: now, Event: consensus.Wake{Height: dec.Height + 1}})...)
	}
	return outs, nil
}

// wake tells the core that transactions arrived (Mempool.Added). It is
// a no-op unless the core is resting between heights.
func (d *Driver) wake() error {
	if d.cs.RoundStep() != consensus.StepNewHeight {
		return nil
	}
	return d.step(consensus.Wake{Height: d.cs.Height()})
}

// invariantsShare bounds the scan's share of the wall time: one that took
// t waits (invariantsShare−1)·t before the next starts.
const invariantsShare = 10

// checkInvariants reports a violation an earlier scan found (halting the
// driver), and if CheckInvariants is set and a scan is due and none is
// running, starts one on a snapshot of the state after block h. The scan
// runs beside the loop (it grows with the state, which keeps every match
// for audit, and must not hold up consensus); the driver's Close waits
// for it.
func (d *Driver) checkInvariants(h uint64) error {
	if p := d.invErr.Load(); p != nil {
		return *p
	}
	if !d.cfg.CheckInvariants || d.invBusy.Load() || time.Now().UnixNano() < d.invNext.Load() {
		return nil
	}
	snap := d.app.st.Snapshot()
	d.invBusy.Store(true)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer d.invBusy.Store(false)
		start := time.Now()
		if err := chain.CheckInvariants(snap); err != nil {
			e := fmt.Errorf("state invariants broken by block %d (or one shortly before): %w", h, err)
			d.invErr.Store(&e)
			return
		}
		d.invNext.Store(time.Now().Add((invariantsShare - 1) * time.Since(start)).UnixNano())
	}()
	return nil
}

// onSynced takes a block with its commit fetched from a peer.
func (d *Driver) onSynced(s *syncedBlock) error {
	h := d.Height()
	if s.commit.Height != s.block.Header.Height {
		d.log.Warn("synced block and commit are for different heights", "peer", s.peer)
		d.penalise(s.peer)
		return nil
	}
	if s.block.Header.Height != h {
		return nil // stale: we moved on meanwhile
	}
	id := consensus.BlockID(s.block.Hash())
	if s.commit.BlockID != id {
		d.log.Warn("synced block does not match its commit", "height", h, "peer", s.peer)
		d.penalise(s.peer)
		return nil
	}
	if err := s.commit.Verify(d.chainID, d.app.vs); err != nil {
		d.log.Warn("synced commit does not verify", "height", h, "peer", s.peer, "err", err)
		d.penalise(s.peer)
		return nil
	}
	if _, err := d.app.validate(h, id, s.raw); err != nil {
		// A certified block that does not execute: divergence.
		return fmt.Errorf("certified block %d from sync does not execute here: %w", h, err)
	}
	return d.step(consensus.ReceiveCommit{Commit: s.commit, Value: s.raw})
}

// call runs f on the loop and waits for it.
func (d *Driver) call(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case d.calls <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.ctx.Done():
		return ErrHalted
	}
	select {
	case <-done:
		return nil
	case <-d.ctx.Done():
		return ErrHalted
	}
}
