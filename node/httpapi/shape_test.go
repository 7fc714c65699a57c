package httpapi_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
	"github.com/bourse-net/bourse/wallet"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func exitCode(c int) *int { return &c }

// Fixtures with every field set, so a lost or renamed field shows.
var (
	fxStatus = api.Status{ChainID: "c1", Moniker: "m", Height: 42, LatestBlockHash: "ab", LatestBlockTime: t0,
		Syncing: true, PeerID: "12D3", Peers: 3, Address: "bo1x", Roles: []string{"client", "validator"},
		Versions: api.Versions{Node: "dev", API: "v1", Protocol: "1"}}
	fxBlock = api.Block{Height: 3, Hash: "h3", PrevHash: "h2", Time: t0, Proposer: "bo1p", StateRoot: "sr", Round: 1,
		TxCount: 1, Txs: []api.TxSummary{{Hash: "t", Type: "transfer", From: "bo1f"}}}
	fxTx = api.Tx{Hash: strings.Repeat("ab", 32), Type: "transfer", Height: 3, Index: 0, From: "bo1f", Nonce: 2, Fee: 1,
		Status: "failed", Log: "insufficient funds", Events: []api.TxEvent{{Type: "matched", Address: "bo1p", JobID: "j1", Amount: 5}}, Body: json.RawMessage(`{"to":"bo1t","amount":5}`)}
	fxValidators = []api.Validator{{Address: "bo1v", PubKey: "pk", Stake: 10, Power: 10}}
	fxOffers     = []api.Offer{{ID: "o1", Provider: "bo1p", PeerID: "12D3", Capacity: api.Resources{CPU: 1000, Memory: 512, Disk: 10, GPUs: 1},
		Free: api.Resources{CPU: 500}, Load: 0.5, Prices: api.Prices{PerCPUSecond: 1, PerGiBSecond: 2, PerJob: 3},
		Region: "eu", Labels: map[string]string{"a": "b"}, Executors: []string{"wasm"}, Expires: t0}}
	fxBids = []api.Bid{{ID: "b1", Client: "bo1c", Executor: "wasm", Resources: api.Resources{CPU: 1}, MaxPrice: 9, Deadline: t0,
		Placement: "cheapest", Constraints: api.Constraints{Region: "eu", Labels: map[string]string{"x": "y"}, Executors: []string{"wasm"}}, PayloadHash: "ph"}}
	fxMatches = []api.Match{{ID: "m1", BidID: "b1", OfferID: "o1", Client: "bo1c", Provider: "bo1p", Price: 9, Escrow: 90, Height: 4, Deadline: t0, State: "completed",
		MatchTx: "mt", SettleTx: "st", ResultHash: "rh"}}
	fxStats = api.MarketStats{FromHeight: 1, ToHeight: 9, Matches: 2, Volume: 18, AvgPrice: 9, Fairness: 1,
		Providers: []api.ProviderStats{{Address: "bo1p", Matches: 2, Completed: 1, Failed: 1, TimedOut: 0, Earned: 9, Slashed: 1, Utilization: 0.25, Share: 1}}}
	fxSpec = api.JobSpec{Name: "hello", Payload: "hello.wasm", MaxPrice: 100, Args: []string{"w"}, Env: map[string]string{"A": "b"}}.WithDefaults()
	fxJob  = api.Job{ID: "j1", Name: "hello", State: api.StatePaid, Spec: fxSpec, SubmittedAt: t0, UpdatedAt: t0, PayloadHash: "ph",
		BidID: "b1", MatchID: "m1", MatchHeight: 4, Provider: "bo1p", Escrowed: 100, ResultHash: "rh", ResultSize: 5,
		ExitCode: exitCode(0), Paid: 60, Refunded: 40, Slashed: 0, Error: "",
		Unmatched: []api.OfferFit{{OfferID: "o2", Provider: "bo1q", Fits: false, Price: 7, Reasons: []string{"region"}}}}
	fxLogs = api.JobLogs{ID: "j1", Stdout: "hi\n", Stderr: "warn\n", Truncated: true}
	fxVer  = api.Verification{ID: "j1", Match: true, ChainHash: "rh", LocalHash: "rh", ChainExitCode: 1, LocalExitCode: 1,
		LocalState: "failed", Provider: "bo1p", WallMs: 12}
	fxDry  = api.DryRun{Spec: fxSpec, Offers: []api.OfferFit{{OfferID: "o1", Provider: "bo1p", Fits: true, Price: 7}}, Chosen: "o1", Price: 7, Summary: "1 of 1 offers fit"}
	fxTx2  = api.TxResult{Hash: "th", Height: 5, Status: "committed"}
	fxProv = api.ProviderStatus{Address: "bo1p", Registered: true, Collateral: 100, Capacity: api.Resources{CPU: 1000}, Free: api.Resources{CPU: 10}, Executors: []string{"wasm"}, Offer: &fxOffers[0], Running: 1, Jobs: map[string]int{"running": 1}, Earned: 5, Slashed: 1}
	fxAcct = api.Account{Address: "bo1a", Balance: 1, Nonce: 2, Bonded: 3, Unbonding: 4, Collateral: 6, Provider: true}
)

func fullBackend(t *testing.T, seen map[string]any) *apitest.Backend {
	return &apitest.Backend{
		StatusFn:      func(context.Context) (api.Status, error) { return fxStatus, nil },
		BlockFn:       func(_ context.Context, h uint64) (api.Block, error) { seen["block"] = h; return fxBlock, nil },
		LatestBlockFn: func(context.Context) (api.Block, error) { return fxBlock, nil },
		TxFn:          func(_ context.Context, h string) (api.Tx, error) { seen["tx"] = h; return fxTx, nil },
		ValidatorsFn:  func(context.Context) ([]api.Validator, error) { return fxValidators, nil },
		AccountFn: func(_ context.Context, a wallet.Address) (api.Account, error) {
			seen["account"] = a
			return fxAcct, nil
		},
		OffersFn: func(context.Context) ([]api.Offer, error) { return fxOffers, nil },
		BidsFn:   func(context.Context) ([]api.Bid, error) { return fxBids, nil },
		MatchesFn: func(_ context.Context, f api.MatchFilter) ([]api.Match, error) {
			seen["matches"] = f
			return fxMatches, nil
		},
		MatchFn: func(_ context.Context, id string) (api.Match, error) {
			seen["match"] = id
			return fxMatches[0], nil
		},
		MarketStatsFn: func(_ context.Context, from, to uint64) (api.MarketStats, error) {
			seen["stats"] = [2]uint64{from, to}
			return fxStats, nil
		},
		DryRunFn: func(_ context.Context, s api.JobSpec) (api.DryRun, error) { seen["dry"] = s; return fxDry, nil },
		JobsFn: func(_ context.Context, f api.JobFilter) ([]api.Job, error) {
			seen["jobs"] = f
			return []api.Job{fxJob}, nil
		},
		JobFn: func(_ context.Context, id string) (api.Job, error) { seen["job"] = id; return fxJob, nil },
		JobLogsFn: func(_ context.Context, id string) (api.JobLogs, error) {
			seen["logs"] = id
			return fxLogs, nil
		},
		CancelJobFn: func(_ context.Context, id string) (api.Job, error) { seen["cancel"] = id; return fxJob, nil },
		VerifyJobFn: func(_ context.Context, id string) (api.Verification, error) { seen["verify"] = id; return fxVer, nil },
		SendFn: func(_ context.Context, to wallet.Address, n uint64) (api.TxResult, error) {
			seen["send"] = [2]any{to, n}
			return fxTx2, nil
		},
		SubmitTxsFn: func(_ context.Context, txs [][]byte, commit bool) ([]api.TxResult, error) {
			seen["submit"] = [2]any{txs, commit}
			out := make([]api.TxResult, len(txs))
			for i := range out {
				out[i] = fxTx2
			}
			return out, nil
		},
		ProviderStatusFn:   func(context.Context) (api.ProviderStatus, error) { return fxProv, nil },
		ProviderRegisterFn: func(_ context.Context, c uint64) (api.TxResult, error) { seen["register"] = c; return fxTx2, nil },
		BondFn:             func(_ context.Context, a uint64) (api.TxResult, error) { seen["bond"] = a; return fxTx2, nil },
		UnbondFn:           func(_ context.Context, a uint64) (api.TxResult, error) { seen["unbond"] = a; return fxTx2, nil },
	}
}

// Every route returns what the backend gave, through JSON and the client,
// and hands the backend the parsed arguments.
func TestRouteShapes(t *testing.T) {
	seen := map[string]any{}
	h := start(t, fullBackend(t, seen), httpapi.Options{})
	ctx := context.Background()
	to := addr(9)
	check := func(name string, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got  %+v\n want %+v", name, got, want)
		}
	}
	st, err := h.c.Status(ctx)
	check("status", st, fxStatus, err)
	b, err := h.c.Block(ctx, 3)
	check("block", b, fxBlock, err)
	check("block height", seen["block"], uint64(3), nil)
	b, err = h.c.LatestBlock(ctx)
	check("latest", b, fxBlock, err)
	tx, err := h.c.Tx(ctx, strings.Repeat("AB", 32))
	check("tx", tx, fxTx, err)
	check("tx hash lowercased", seen["tx"], strings.Repeat("ab", 32), nil)
	vs, err := h.c.Validators(ctx)
	check("validators", vs, fxValidators, err)
	a, err := h.c.Account(ctx, to.String())
	check("account", a, fxAcct, err)
	check("account addr", seen["account"], to, nil)
	of, err := h.c.Offers(ctx)
	check("offers", of, fxOffers, err)
	bi, err := h.c.Bids(ctx)
	check("bids", bi, fxBids, err)
	ms, err := h.c.Matches(ctx, api.MatchFilter{FromHeight: 2, ToHeight: 8, Limit: 5})
	check("matches", ms, fxMatches, err)
	check("match filter", seen["matches"], api.MatchFilter{FromHeight: 2, ToHeight: 8, Limit: 5}, nil)
	m1, err := h.c.Match(ctx, strings.Repeat("CD", 32))
	check("match", m1, fxMatches[0], err)
	check("match id lowercased", seen["match"], strings.Repeat("cd", 32), nil)
	sts, err := h.c.MarketStats(ctx, 1, 9)
	check("stats", sts, fxStats, err)
	check("stats range", seen["stats"], [2]uint64{1, 9}, nil)
	dr, err := h.c.DryRun(ctx, fxSpec)
	check("dry run", dr, fxDry, err)
	check("dry run spec", seen["dry"], fxSpec, nil)
	js, err := h.c.Jobs(ctx, api.JobFilter{State: api.StatePaid, Limit: 3})
	check("jobs", js, []api.Job{fxJob}, err)
	check("job filter", seen["jobs"], api.JobFilter{State: api.StatePaid, Limit: 3}, nil)
	j, err := h.c.Job(ctx, "j1")
	check("job", j, fxJob, err)
	lg, err := h.c.JobLogs(ctx, "j1")
	check("logs", lg, fxLogs, err)
	j, err = h.c.CancelJob(ctx, "j1")
	check("cancel", j, fxJob, err)
	check("cancel id", seen["cancel"], "j1", nil)
	ver, err := h.c.VerifyJob(ctx, "j1")
	check("verify", ver, fxVer, err)
	check("verify id", seen["verify"], "j1", nil)
	r, err := h.c.Send(ctx, to.String(), 77)
	check("send", r, fxTx2, err)
	check("send args", seen["send"], [2]any{to, uint64(77)}, nil)
	ps, err := h.c.ProviderStatus(ctx)
	check("provider", ps, fxProv, err)
	r, err = h.c.ProviderRegister(ctx, 500)
	check("register", r, fxTx2, err)
	check("register collateral", seen["register"], uint64(500), nil)
	r, err = h.c.Bond(ctx, 6)
	check("bond", r, fxTx2, err)
	check("bond amount", seen["bond"], uint64(6), nil)
	r, err = h.c.Unbond(ctx, 7)
	check("unbond", r, fxTx2, err)
	check("unbond amount", seen["unbond"], uint64(7), nil)
	doc, err := h.c.OpenAPI(ctx)
	check("openapi", string(doc), string(api.OpenAPI), err)
}

// The field names other tools rely on.
func TestStableFieldNames(t *testing.T) {
	h := start(t, fullBackend(t, map[string]any{}), httpapi.Options{})
	cases := []struct {
		path string
		keys []string
	}{
		{"/v1/status", []string{"height", "chain_id", "peers", "roles", "versions", "address"}},
		{"/v1/chain/blocks/3", []string{"hash", "height", "time", "proposer", "txs"}},
		{"/v1/chain/blocks/latest", []string{"hash", "height"}},
		{"/v1/jobs/j1", []string{"id", "state", "spec", "provider", "paid", "refunded", "result_hash", "unmatched"}},
		{"/v1/accounts/" + addr(1).String(), []string{"address", "balance", "nonce"}},
		{"/v1/market/stats", []string{"matches", "fairness", "providers"}},
	}
	for _, c := range cases {
		code, body, hdr := h.raw(t, "GET", c.path, "Bearer "+token, "", nil)
		if code != 200 || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", c.path, code, hdr.Get("Content-Type"))
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		for _, k := range c.keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %q in %s", c.path, k, body)
			}
		}
	}
	// Lists are JSON arrays, empty ones included.
	b := &apitest.Backend{OffersFn: func(context.Context) ([]api.Offer, error) { return nil, nil }}
	h2 := start(t, b, httpapi.Options{})
	if code, body, _ := h2.raw(t, "GET", "/v1/market/offers", "Bearer "+token, "", nil); code != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("empty list: %d %s", code, body)
	}
}
