// Package apitest holds a fake httpapi.Backend for tests of the API server
// and of its clients (the CLI). Each method calls the function field of the
// same name; a nil field answers api.ErrUnavailable, so a test states
// exactly what the node does for it. It records nothing on its own: tests
// capture arguments in their functions.
package apitest

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/wallet"
)

// Backend is a fake node. Set the fields a test needs.
type Backend struct {
	StatusFn             func(ctx context.Context) (api.Status, error)
	BlockFn              func(ctx context.Context, height uint64) (api.Block, error)
	LatestBlockFn        func(ctx context.Context) (api.Block, error)
	TxFn                 func(ctx context.Context, hash string) (api.Tx, error)
	ValidatorsFn         func(ctx context.Context) ([]api.Validator, error)
	AccountFn            func(ctx context.Context, addr wallet.Address) (api.Account, error)
	OffersFn             func(ctx context.Context) ([]api.Offer, error)
	BidsFn               func(ctx context.Context) ([]api.Bid, error)
	MatchesFn            func(ctx context.Context, f api.MatchFilter) ([]api.Match, error)
	MatchFn              func(ctx context.Context, id string) (api.Match, error)
	MarketStatsFn        func(ctx context.Context, from, to uint64) (api.MarketStats, error)
	SubmitJobFn          func(ctx context.Context, spec api.JobSpec, payload []byte) (api.Job, error)
	DryRunFn             func(ctx context.Context, spec api.JobSpec) (api.DryRun, error)
	JobsFn               func(ctx context.Context, f api.JobFilter) ([]api.Job, error)
	JobFn                func(ctx context.Context, id string) (api.Job, error)
	JobLogsFn            func(ctx context.Context, id string) (api.JobLogs, error)
	JobResultFn          func(ctx context.Context, id string) (io.ReadCloser, api.ResultInfo, error)
	CancelJobFn          func(ctx context.Context, id string) (api.Job, error)
	VerifyJobFn          func(ctx context.Context, id string) (api.Verification, error)
	ChallengeJobFn       func(ctx context.Context, id, kind string) (api.Challenge, error)
	SendFn               func(ctx context.Context, to wallet.Address, amount uint64) (api.TxResult, error)
	SubmitTxsFn          func(ctx context.Context, txs [][]byte, commit bool) ([]api.TxResult, error)
	ProviderStatusFn     func(ctx context.Context) (api.ProviderStatus, error)
	ProviderRegisterFn   func(ctx context.Context, collateral uint64) (api.TxResult, error)
	ProviderDeregisterFn func(ctx context.Context) (api.TxResult, error)
	ProviderWithdrawFn   func(ctx context.Context) (api.TxResult, error)
	BondFn               func(ctx context.Context, amount uint64) (api.TxResult, error)
	UnbondFn             func(ctx context.Context, amount uint64) (api.TxResult, error)

	// Events feeds Subscribe: every subscriber gets the events published
	// with Publish after it subscribed.
	mu   sync.Mutex
	subs map[chan api.Event]struct{}
}

var _ httpapi.Backend = (*Backend)(nil)

func unset(name string) error {
	return fmt.Errorf("fake backend: %s: %w", name, api.ErrUnavailable)
}

func call0[T any](f func(context.Context) (T, error), ctx context.Context, name string) (T, error) {
	if f == nil {
		var z T
		return z, unset(name)
	}
	return f(ctx)
}

func call1[A, T any](f func(context.Context, A) (T, error), ctx context.Context, a A, name string) (T, error) {
	if f == nil {
		var z T
		return z, unset(name)
	}
	return f(ctx, a)
}

func (b *Backend) Status(ctx context.Context) (api.Status, error) {
	return call0(b.StatusFn, ctx, "Status")
}
func (b *Backend) Block(ctx context.Context, h uint64) (api.Block, error) {
	return call1(b.BlockFn, ctx, h, "Block")
}
func (b *Backend) LatestBlock(ctx context.Context) (api.Block, error) {
	return call0(b.LatestBlockFn, ctx, "LatestBlock")
}
func (b *Backend) Tx(ctx context.Context, hash string) (api.Tx, error) {
	return call1(b.TxFn, ctx, hash, "Tx")
}
func (b *Backend) Validators(ctx context.Context) ([]api.Validator, error) {
	return call0(b.ValidatorsFn, ctx, "Validators")
}
func (b *Backend) Account(ctx context.Context, a wallet.Address) (api.Account, error) {
	return call1(b.AccountFn, ctx, a, "Account")
}
func (b *Backend) Offers(ctx context.Context) ([]api.Offer, error) {
	return call0(b.OffersFn, ctx, "Offers")
}
func (b *Backend) Bids(ctx context.Context) ([]api.Bid, error) { return call0(b.BidsFn, ctx, "Bids") }
func (b *Backend) Matches(ctx context.Context, f api.MatchFilter) ([]api.Match, error) {
	return call1(b.MatchesFn, ctx, f, "Matches")
}
func (b *Backend) Match(ctx context.Context, id string) (api.Match, error) {
	return call1(b.MatchFn, ctx, id, "Match")
}
func (b *Backend) MarketStats(ctx context.Context, from, to uint64) (api.MarketStats, error) {
	if b.MarketStatsFn == nil {
		return api.MarketStats{}, unset("MarketStats")
	}
	return b.MarketStatsFn(ctx, from, to)
}
func (b *Backend) SubmitJob(ctx context.Context, spec api.JobSpec, payload []byte) (api.Job, error) {
	if b.SubmitJobFn == nil {
		return api.Job{}, unset("SubmitJob")
	}
	return b.SubmitJobFn(ctx, spec, payload)
}
func (b *Backend) DryRun(ctx context.Context, spec api.JobSpec) (api.DryRun, error) {
	return call1(b.DryRunFn, ctx, spec, "DryRun")
}
func (b *Backend) Jobs(ctx context.Context, f api.JobFilter) ([]api.Job, error) {
	return call1(b.JobsFn, ctx, f, "Jobs")
}
func (b *Backend) Job(ctx context.Context, id string) (api.Job, error) {
	return call1(b.JobFn, ctx, id, "Job")
}
func (b *Backend) JobLogs(ctx context.Context, id string) (api.JobLogs, error) {
	return call1(b.JobLogsFn, ctx, id, "JobLogs")
}
func (b *Backend) JobResult(ctx context.Context, id string) (io.ReadCloser, api.ResultInfo, error) {
	if b.JobResultFn == nil {
		return nil, api.ResultInfo{}, unset("JobResult")
	}
	return b.JobResultFn(ctx, id)
}
func (b *Backend) CancelJob(ctx context.Context, id string) (api.Job, error) {
	return call1(b.CancelJobFn, ctx, id, "CancelJob")
}

func (b *Backend) VerifyJob(ctx context.Context, id string) (api.Verification, error) {
	return call1(b.VerifyJobFn, ctx, id, "VerifyJob")
}
func (b *Backend) ChallengeJob(ctx context.Context, id, kind string) (api.Challenge, error) {
	if b.ChallengeJobFn == nil {
		return api.Challenge{}, unset("ChallengeJob")
	}
	return b.ChallengeJobFn(ctx, id, kind)
}
func (b *Backend) Send(ctx context.Context, to wallet.Address, amount uint64) (api.TxResult, error) {
	if b.SendFn == nil {
		return api.TxResult{}, unset("Send")
	}
	return b.SendFn(ctx, to, amount)
}
func (b *Backend) SubmitTxs(ctx context.Context, txs [][]byte, commit bool) ([]api.TxResult, error) {
	if b.SubmitTxsFn == nil {
		return nil, unset("SubmitTxs")
	}
	return b.SubmitTxsFn(ctx, txs, commit)
}
func (b *Backend) ProviderStatus(ctx context.Context) (api.ProviderStatus, error) {
	return call0(b.ProviderStatusFn, ctx, "ProviderStatus")
}
func (b *Backend) ProviderDeregister(ctx context.Context) (api.TxResult, error) {
	return call0(b.ProviderDeregisterFn, ctx, "ProviderDeregister")
}

func (b *Backend) ProviderWithdraw(ctx context.Context) (api.TxResult, error) {
	return call0(b.ProviderWithdrawFn, ctx, "ProviderWithdraw")
}

func (b *Backend) ProviderRegister(ctx context.Context, c uint64) (api.TxResult, error) {
	return call1(b.ProviderRegisterFn, ctx, c, "ProviderRegister")
}
func (b *Backend) Bond(ctx context.Context, a uint64) (api.TxResult, error) {
	return call1(b.BondFn, ctx, a, "Bond")
}
func (b *Backend) Unbond(ctx context.Context, a uint64) (api.TxResult, error) {
	return call1(b.UnbondFn, ctx, a, "Unbond")
}

// Subscribe registers a subscriber until ctx ends; its channel is closed
// then. Publish never blocks on it: a full subscriber misses the event.
func (b *Backend) Subscribe(ctx context.Context) <-chan api.Event {
	ch := make(chan api.Event, 16)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan api.Event]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		close(ch)
		b.mu.Unlock()
	})
	return ch
}

// Subscribers is the number of open subscriptions.
func (b *Backend) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Publish sends ev to every current subscriber and returns how many got it.
func (b *Backend) Publish(ev api.Event) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for ch := range b.subs {
		select {
		case ch <- ev:
			n++
		default:
		}
	}
	return n
}

// WasmModule returns the smallest WASI command module CheckWasmModule
// accepts (one function, exported as _start, that returns), with extra in
// a custom section so tests can make distinct payloads.
func WasmModule(extra string) []byte {
	custom := append([]byte{1, 'x'}, extra...)
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	b = append(b, 0)
	b = appendLEB(b, uint64(len(custom)))
	b = append(b, custom...)
	return append(b,
		1, 4, 1, 0x60, 0, 0, // type section: func () -> ()
		3, 2, 1, 0, // function section: one function of type 0
		7, 10, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 0, // export _start
		10, 4, 1, 2, 0, 0x0b) // code: no locals, end
}

func appendLEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
