// Package audit replays a chain from genesis out of a local store and
// checks everything a node took on trust when it stored it: every block
// re-executed on a fresh genesis state (its state root, BFT time, hash
// chain and transaction root), every commit certificate verified against
// the validator set of its height, the state invariants, the stored
// receipts against the re-executed outcomes, every payment and refund
// traced to its match (and for a result, to its result hash), and at the
// end the stored state against the replayed one.
//
// May import: chain, chain/consensus, chain/store, codec, market, wallet.
package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/chain/store"
)

// Options tune a run.
type Options struct {
	// To is the last height audited; 0 means the store's height.
	To uint64
	// InvariantsEvery checks chain.CheckInvariants (a full state scan)
	// every that many heights and at the last one; 0 or 1 means at every
	// height.
	InvariantsEvery uint64
	// Progress, when set, is called after each block with the height
	// reached and the last height.
	Progress func(done, total uint64)
}

// Discrepancy is the first thing the audit found wrong.
type Discrepancy struct {
	Height uint64 `json:"height"`
	Check  string `json:"check"` // see the Check* constants
	Detail string `json:"detail"`
}

func (d *Discrepancy) Error() string {
	return fmt.Sprintf("height %d: %s: %s", d.Height, d.Check, d.Detail)
}

// Checks a Discrepancy names.
const (
	CheckBlock       = "block"      // missing, undecodable, wrong height, broken hash chain, wrong time
	CheckCommit      = "commit"     // certificate missing or not signed by >2/3 of the height's set
	CheckExecution   = "execution"  // the block does not execute (or its state root differs)
	CheckInvariants  = "invariants" // chain.CheckInvariants failed
	CheckReceipts    = "receipts"   // stored receipts differ from the re-executed outcomes
	CheckSettlement  = "settlement" // a payment or refund does not trace to its match
	CheckStoredState = "state"      // the stored state differs from the replayed one
	CheckGenesis     = "genesis"    // the stored genesis does not load
)

// Report is the outcome of a run. On failure, Discrepancy names the first
// problem and the counts cover the heights before it.
type Report struct {
	ChainID   string       `json:"chain_id"`
	Height    uint64       `json:"height"` // last height audited without fault
	Target    uint64       `json:"target"` // last height asked for
	Blocks    uint64       `json:"blocks"`
	Txs       uint64       `json:"txs"`
	FailedTxs uint64       `json:"failed_txs"`
	Commits   uint64       `json:"commits"`
	Invariant uint64       `json:"invariant_checks"`
	Matches   uint64       `json:"matches"`
	Settled   Settlements  `json:"settled"`
	Paid      uint64       `json:"paid"`     // to providers
	Refunded  uint64       `json:"refunded"` // to clients
	Burned    uint64       `json:"burned"`   // unavailability fees
	Slashed   uint64       `json:"slashed"`  // collateral burned for timeouts
	StateRoot string       `json:"state_root"`
	Elapsed   Duration     `json:"elapsed"`
	OK        bool         `json:"ok"`
	Failure   *Discrepancy `json:"discrepancy,omitempty"`
}

// Settlements counts settled matches by outcome.
type Settlements struct {
	Completed   uint64 `json:"completed"`
	Failed      uint64 `json:"failed"`
	TimedOut    uint64 `json:"timed_out"`
	Unavailable uint64 `json:"payload_unavailable"`
	// Challenged counts the results whose provider lost a challenge
	// (withheld or wrong): slashed, the client refunded.
	Challenged uint64 `json:"challenged,omitempty"`
}

// Duration marshals as a string like "1.5s".
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// open is what the audit knows of a match while it is open.
type open struct {
	escrow uint64
	height uint64
	// held is set by the match's Result: its payment is held with the
	// result's hash and exit code.
	held     bool
	hash     [32]byte
	exitCode int32
}

// Run audits s from genesis to opts.To. The error is a *Discrepancy when
// the chain is at fault (also in Report.Failure), another error when the
// audit could not run (a cancelled ctx, an uninitialised store).
func Run(ctx context.Context, s *store.Store, opts Options) (*Report, error) {
	start := time.Now()
	rep := &Report{}
	fail := func(h uint64, check, format string, args ...any) (*Report, error) {
		d := &Discrepancy{Height: h, Check: check, Detail: fmt.Sprintf(format, args...)}
		rep.Failure, rep.Elapsed = d, Duration(time.Since(start))
		return rep, d
	}
	if !s.Initialized() {
		return nil, store.ErrNotInitialized
	}
	gj, err := s.Genesis(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	g, err := chain.ParseGenesis(gj)
	if err != nil {
		return fail(0, CheckGenesis, "%v", err)
	}
	st, err := g.State()
	if err != nil {
		return fail(0, CheckGenesis, "%v", err)
	}
	rep.ChainID = g.ChainID
	top := s.Height()
	if opts.To != 0 && opts.To < top {
		top = opts.To
	}
	rep.Target = top
	every := max(opts.InvariantsEvery, 1)
	if err := chain.CheckInvariants(st); err != nil {
		return fail(0, CheckInvariants, "genesis: %v", err)
	}

	var (
		prevHash [32]byte
		prevTime = g.GenesisTime
		prevVS   *consensus.ValidatorSet
		prevCert []byte // the stored commit of the previous height
		matches  = map[[32]byte]open{}
	)
	for h := uint64(1); h <= top; h++ {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("audit interrupted at height %d: %w", h, err)
		}
		b, err := s.Block(ctx, h)
		if err != nil {
			return fail(h, CheckBlock, "%v", err)
		}
		hdr := &b.Header
		switch {
		case hdr.Height != h:
			return fail(h, CheckBlock, "stored under height %d but says %d", h, hdr.Height)
		case hdr.PrevHash != prevHash:
			return fail(h, CheckBlock, "previous hash %x, block %d's hash is %x", hdr.PrevHash[:8], h-1, prevHash[:8])
		}
		vals, err := st.ValidatorsAt(h)
		if err != nil {
			return fail(h, CheckExecution, "validators: %v", err)
		}
		vs, err := consensus.NewValidatorSet(toConsensus(vals))
		if err != nil {
			return fail(h, CheckExecution, "validator set: %v", err)
		}
		// The block's LastCommit certifies the previous block; its median
		// timestamp is this block's time.
		want := g.GenesisTime + 1
		if h > 1 {
			lc, err := consensus.DecodeCommit(b.LastCommit)
			if err != nil {
				return fail(h, CheckCommit, "last commit: %v", err)
			}
			if lc.Height != h-1 || [32]byte(lc.BlockID) != prevHash {
				return fail(h, CheckCommit, "last commit is for %d/%x, not the previous block", lc.Height, lc.BlockID[:])
			}
			if !bytes.Equal(b.LastCommit, prevCert) {
				if err := lc.Verify(g.ChainID, prevVS); err != nil {
					return fail(h, CheckCommit, "last commit: %v", err)
				}
			}
			want = max(lc.Time(prevVS), prevTime+1)
		} else if len(b.LastCommit) != 0 {
			return fail(h, CheckBlock, "block 1 carries a last commit")
		}
		if hdr.Time != want {
			return fail(h, CheckBlock, "time %d, BFT time of its last commit is %d", hdr.Time, want)
		}
		raw, err := s.Commit(ctx, h)
		if err != nil {
			return fail(h, CheckCommit, "%v", err)
		}
		c, err := consensus.DecodeCommit(raw)
		if err != nil {
			return fail(h, CheckCommit, "%v", err)
		}
		hash := b.Hash()
		if c.Height != h || [32]byte(c.BlockID) != hash {
			return fail(h, CheckCommit, "certificate is for %d/%x, block hash is %x", c.Height, c.BlockID[:], hash[:8])
		}
		if err := c.Verify(g.ChainID, vs); err != nil {
			return fail(h, CheckCommit, "%v", err)
		}
		rep.Commits++

		res, err := chain.Execute(st, b, chain.ExecOptions{})
		if err != nil {
			return fail(h, CheckExecution, "%v", err)
		}
		if err := st.Apply(res); err != nil {
			return fail(h, CheckExecution, "apply: %v", err)
		}
		if h%every == 0 || h == top {
			if err := chain.CheckInvariants(st); err != nil {
				return fail(h, CheckInvariants, "%v", err)
			}
			rep.Invariant++
		}
		if err := checkReceipts(ctx, s, h, res); err != nil {
			return fail(h, CheckReceipts, "%v", err)
		}
		if err := trace(st, b, res, matches, rep); err != nil {
			return fail(h, CheckSettlement, "%v", err)
		}
		rep.Blocks++
		rep.Txs += uint64(len(b.Txs))
		for _, t := range res.TxResults {
			if t.Code != 0 {
				rep.FailedTxs++
			}
		}
		rep.Height = h
		prevHash, prevTime, prevVS, prevCert = hash, hdr.Time, vs, raw
		if opts.Progress != nil {
			opts.Progress(h, top)
		}
	}
	root := st.Root()
	rep.StateRoot = fmt.Sprintf("%x", root)
	if top == s.Height() {
		stored, err := s.LoadState(ctx)
		if err != nil {
			return fail(top, CheckStoredState, "%v", err)
		}
		if got := stored.Root(); got != root {
			return fail(top, CheckStoredState, "stored state root %x, replayed %x", got[:8], root[:8])
		}
	}
	rep.OK, rep.Elapsed = true, Duration(time.Since(start))
	return rep, nil
}

func toConsensus(vals []chain.Validator) []consensus.Validator {
	out := make([]consensus.Validator, len(vals))
	for i, v := range vals {
		out[i] = consensus.Validator{Address: v.Address, PubKey: v.PubKey, Power: v.Power}
	}
	return out
}

// checkReceipts compares the stored receipts of block h with the
// re-executed outcomes. A block stored before receipts were kept has none.
func checkReceipts(ctx context.Context, s *store.Store, h uint64, res *chain.Result) error {
	got, err := s.Receipts(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	want := store.ReceiptsOf(res)
	if !reflect.DeepEqual(got, want) {
		for i := range min(len(got.Txs), len(want.Txs)) {
			if !reflect.DeepEqual(got.Txs[i], want.Txs[i]) {
				return fmt.Errorf("tx %d %x: stored receipt %+v, re-executed %+v", i, res.TxHashes[i][:8], got.Txs[i], want.Txs[i])
			}
		}
		return fmt.Errorf("stored %d tx receipts and %d block events, re-executed %d and %d", len(got.Txs), len(got.Events), len(want.Txs), len(want.Events))
	}
	return nil
}
