package httpapi

import (
	"context"
	"io"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
)

// Backend is what the API serves: the node. Every method takes the
// request's context first and returns node/api types. Errors wrapping
// api.ErrNotFound, api.ErrBadRequest, api.ErrConflict and
// api.ErrUnavailable become 404, 400, 409 and 503 with the error's message;
// any other error is a 500. Arguments are validated before a method is
// called: ids and hashes are well formed, addresses parsed, specs complete
// (api.JobSpec.Validate passed) and payloads bounded by Options.MaxUpload.
type Backend interface {
	// Status reports height, peers, roles and versions.
	Status(ctx context.Context) (api.Status, error)
	// Block returns the committed block at height (ErrNotFound above the
	// tip); LatestBlock the tip.
	Block(ctx context.Context, height uint64) (api.Block, error)
	LatestBlock(ctx context.Context) (api.Block, error)
	// Tx returns a committed transaction by its hash (64 lowercase hex
	// digits).
	Tx(ctx context.Context, hash string) (api.Tx, error)
	Validators(ctx context.Context) ([]api.Validator, error)
	// Account returns an account; an address never seen is an empty
	// account, not ErrNotFound.
	Account(ctx context.Context, addr wallet.Address) (api.Account, error)

	Offers(ctx context.Context) ([]api.Offer, error)
	Bids(ctx context.Context) ([]api.Bid, error)
	Matches(ctx context.Context, f api.MatchFilter) ([]api.Match, error)
	// Match is one match by id, with the hashes of its transactions.
	Match(ctx context.Context, id string) (api.Match, error)
	// MarketStats covers heights from..to inclusive; 0 means unbounded.
	MarketStats(ctx context.Context, from, to uint64) (api.MarketStats, error)

	// SubmitJob stores the payload (nil for docker), signs and gossips the
	// bid and returns the new job. The payload slice is the backend's to
	// keep. A payload that does not compile is ErrBadRequest.
	SubmitJob(ctx context.Context, spec api.JobSpec, payload []byte) (api.Job, error)
	// DryRun says which offers fit spec now and why the others do not; it
	// changes nothing.
	DryRun(ctx context.Context, spec api.JobSpec) (api.DryRun, error)
	Jobs(ctx context.Context, f api.JobFilter) ([]api.Job, error)
	Job(ctx context.Context, id string) (api.Job, error)
	JobLogs(ctx context.Context, id string) (api.JobLogs, error)
	// JobResult opens a job's verified result; the caller closes it.
	// ErrConflict while the job has no result yet.
	JobResult(ctx context.Context, id string) (io.ReadCloser, api.ResultInfo, error)
	// CancelJob cancels a job that is not matched yet (ErrConflict after).
	CancelJob(ctx context.Context, id string) (api.Job, error)
	// VerifyJob re-runs a settled WASM job of this node's client and
	// compares its result hash with the chain's. ErrConflict before the
	// chain holds a result; ErrBadRequest for other executors.
	VerifyJob(ctx context.Context, id string) (api.Verification, error)
	// ChallengeJob challenges the held result of a job of this node's
	// client on chain (kind "unavailable" or "wrong") and waits for it to
	// commit.
	ChallengeJob(ctx context.Context, id, kind string) (api.Challenge, error)

	// Send transfers amount base units from the node's wallet.
	Send(ctx context.Context, to wallet.Address, amount uint64) (api.TxResult, error)
	// SubmitTxs checks transactions signed elsewhere (encoded chain
	// transactions; at most api.MaxSubmitTxs, none empty), admits those
	// that pass to the mempool and gossips them; with commit it waits for
	// their blocks. One result per transaction, in order (see
	// api.SubmitTxsResponse); a refused transaction is a result, not an
	// error.
	SubmitTxs(ctx context.Context, txs [][]byte, commit bool) ([]api.TxResult, error)
	// ProviderStatus is ErrUnavailable on a node that sells no capacity.
	ProviderStatus(ctx context.Context) (api.ProviderStatus, error)
	ProviderRegister(ctx context.Context, collateral uint64) (api.TxResult, error)
	ProviderDeregister(ctx context.Context) (api.TxResult, error)
	ProviderWithdraw(ctx context.Context) (api.TxResult, error)
	Bond(ctx context.Context, amount uint64) (api.TxResult, error)
	Unbond(ctx context.Context, amount uint64) (api.TxResult, error)

	// Subscribe returns a channel of new blocks and job state changes. The
	// backend closes it after ctx is done, and must never block on a slow
	// subscriber: it drops events (or closes the channel) instead.
	Subscribe(ctx context.Context) <-chan api.Event
}
