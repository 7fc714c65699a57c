package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
	"github.com/bourse-net/bourse/wallet"
)

const testToken = "cli-test-token"

// daemon starts the real API server over a fake node and returns the
// environment that points the CLI at it.
func daemon(t *testing.T, b *apitest.Backend) map[string]string {
	t.Helper()
	srv, err := httpapi.New(b, testToken, httpapi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxUpload: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		ts.Close()
	})
	return map[string]string{"BOURSE_API": ts.URL, "BOURSE_API_TOKEN": testToken, "HOME": t.TempDir()}
}

func testAddr(i byte) string {
	seed := make([]byte, 32)
	seed[0] = i
	k, err := wallet.KeyFromSeed(seed)
	if err != nil {
		panic(err)
	}
	return k.Address().String()
}

var tBlock = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func richBackend() *apitest.Backend {
	provider := testAddr(2)
	return &apitest.Backend{
		StatusFn: func(context.Context) (api.Status, error) {
			return api.Status{ChainID: "test-1", Height: 12, Address: testAddr(1), Roles: []string{"client"}, Peers: 2}, nil
		},
		BlockFn: func(_ context.Context, h uint64) (api.Block, error) {
			if h > 12 {
				return api.Block{}, fmt.Errorf("block %d: %w", h, api.ErrNotFound)
			}
			return api.Block{Height: h, Hash: fmt.Sprintf("%064x", h), Time: tBlock, TxCount: 1,
				Txs: []api.TxSummary{{Hash: "t1", Type: "transfer", From: testAddr(1)}}}, nil
		},
		LatestBlockFn: func(context.Context) (api.Block, error) {
			return api.Block{Height: 12, Hash: fmt.Sprintf("%064x", 12), Time: tBlock}, nil
		},
		TxFn: func(_ context.Context, h string) (api.Tx, error) {
			return api.Tx{Hash: h, Type: "transfer", Height: 3, Status: api.TxOK}, nil
		},
		ValidatorsFn: func(context.Context) ([]api.Validator, error) {
			return []api.Validator{{Address: testAddr(3), Stake: 100, Power: 100}}, nil
		},
		AccountFn: func(_ context.Context, a wallet.Address) (api.Account, error) {
			return api.Account{Address: a.String(), Balance: 1000, Nonce: 4}, nil
		},
		OffersFn: func(context.Context) ([]api.Offer, error) {
			return []api.Offer{{ID: "o1", Provider: provider, Free: api.Resources{CPU: 2000, Memory: 1024}, Load: 0.25, Executors: []string{"wasm"}}}, nil
		},
		BidsFn: func(context.Context) ([]api.Bid, error) { return nil, nil },
		MatchesFn: func(context.Context, api.MatchFilter) ([]api.Match, error) {
			return []api.Match{{ID: "m1", Height: 5, Price: 7, State: "paid"}}, nil
		},
		MarketStatsFn: func(_ context.Context, from, to uint64) (api.MarketStats, error) {
			return api.MarketStats{FromHeight: from, ToHeight: to, Matches: 1, Fairness: 1,
				Providers: []api.ProviderStats{{Address: provider, Matches: 1, Share: 1}}}, nil
		},
		JobsFn: func(context.Context, api.JobFilter) ([]api.Job, error) {
			return []api.Job{{ID: "j1", Name: "hello", State: api.StatePaid, Provider: provider}}, nil
		},
		JobFn: func(_ context.Context, id string) (api.Job, error) {
			if id != "j1" {
				return api.Job{}, fmt.Errorf("job %s: %w", id, api.ErrNotFound)
			}
			return api.Job{ID: "j1", State: api.StateRunning, Provider: provider}, nil
		},
		CancelJobFn: func(_ context.Context, id string) (api.Job, error) {
			return api.Job{}, fmt.Errorf("job %s is matched: %w", id, api.ErrConflict)
		},
		VerifyJobFn: func(_ context.Context, id string) (api.Verification, error) {
			switch id {
			case "j1":
				return api.Verification{ID: id, Match: true, ChainHash: "aa", LocalHash: "aa", LocalState: "succeeded", Provider: provider}, nil
			case "j2":
				return api.Verification{ID: id, Match: false, ChainHash: "aa", LocalHash: "bb", LocalState: "succeeded", Provider: provider}, nil
			}
			return api.Verification{}, fmt.Errorf("job %s: %w", id, api.ErrNotFound)
		},
		JobLogsFn: func(_ context.Context, id string) (api.JobLogs, error) {
			return api.JobLogs{ID: id, Stdout: "hello world\n"}, nil
		},
		SendFn: func(_ context.Context, to wallet.Address, n uint64) (api.TxResult, error) {
			return api.TxResult{Hash: "th", Height: 13, Status: "committed"}, nil
		},
		BondFn: func(context.Context, uint64) (api.TxResult, error) {
			return api.TxResult{Hash: "bh", Status: "pending"}, nil
		},
	}
}

// JSON output has the stable field names scripts rely on.
func TestJSONShapes(t *testing.T) {
	env := daemon(t, richBackend())
	cases := []struct {
		args []string
		keys []string // each must be present (in the object, or the first list element)
	}{
		{[]string{"chain", "status", "--json"}, []string{"height", "chain_id", "roles"}},
		{[]string{"job", "verify", "j1", "--json"}, []string{"id", "match", "chain_hash", "local_hash", "provider"}},
		{[]string{"--json", "chain", "block", "3"}, []string{"hash", "height", "txs"}},
		{[]string{"chain", "block", "--json"}, []string{"hash", "height"}},
		{[]string{"chain", "tx", strings.Repeat("ab", 32), "--json"}, []string{"hash", "type", "height"}},
		{[]string{"chain", "validators", "--json"}, []string{"address", "stake"}},
		{[]string{"wallet", "balance", "--json"}, []string{"address", "balance"}},
		{[]string{"wallet", "balance", testAddr(5), "--json"}, []string{"address", "balance"}},
		{[]string{"wallet", "send", testAddr(5), "10", "--json"}, []string{"hash", "height", "status"}},
		{[]string{"stake", "bond", "10", "--json"}, []string{"hash", "status"}},
		{[]string{"market", "offers", "--json"}, []string{"id", "provider", "free"}},
		{[]string{"market", "matches", "--json", "--from", "1", "--to", "9"}, []string{"id", "height", "price"}},
		{[]string{"market", "stats", "--json"}, []string{"matches", "fairness", "providers"}},
		{[]string{"job", "list", "--json"}, []string{"id", "state"}},
		{[]string{"job", "status", "j1", "--json"}, []string{"id", "state"}},
		{[]string{"job", "logs", "j1", "--json"}, []string{"id", "stdout"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, errs, code := run(t, env, c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var v any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			if l, ok := v.([]any); ok {
				if len(l) == 0 {
					t.Fatalf("empty list: %s", out)
				}
				v = l[0]
			}
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("not an object: %s", out)
			}
			for _, k := range c.keys {
				if _, ok := m[k]; !ok {
					t.Errorf("no %q in %s", k, out)
				}
			}
		})
	}
	// Empty lists are [] , not null.
	out, _, code := run(t, env, "market", "bids", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("market bids --json = %q", out)
	}
}

func TestHumanOutput(t *testing.T) {
	env := daemon(t, richBackend())
	cases := []struct {
		args  []string
		needs []string
	}{
		{[]string{"chain", "status"}, []string{"height", "12 (in sync)", "test-1"}},
		{[]string{"chain", "block", "3"}, []string{"hash", fmt.Sprintf("%064x", 3), "HASH  TYPE"}},
		{[]string{"market", "offers"}, []string{"OFFER", "25%", "wasm"}},
		{[]string{"market", "bids"}, []string{"BID", "CLIENT"}},
		{[]string{"job", "list"}, []string{"ID", "STATE", "paid"}},
		{[]string{"job", "status", "j1"}, []string{"state", "running", "provider"}},
		{[]string{"job", "logs", "j1"}, []string{"hello world"}},
		{[]string{"stake", "bond", "10"}, []string{"transaction bh submitted", "hint: check it with 'bourse chain tx bh'"}},
	}
	for _, c := range cases {
		out, errs, code := run(t, env, c.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", c.args, code, errs)
		}
		for _, n := range c.needs {
			if !strings.Contains(out, n) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, n, out)
			}
		}
	}
}

func TestAPIErrorsForPeople(t *testing.T) {
	env := daemon(t, richBackend())
	// A daemon that is not running.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	deadEnv := map[string]string{"BOURSE_API": dead, "BOURSE_API_TOKEN": "x", "BOURSE_HOME": "/nonexistent/home"}
	wrongTok := map[string]string{"BOURSE_API": env["BOURSE_API"], "BOURSE_API_TOKEN": "wrong"}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	write("notwasm.wasm", "#!/bin/sh\necho hi\n")
	badYAML := write("bad.yaml", "name: [x\n")
	badExec := write("exec.yaml", "executor: jvm\npayload: a.wasm\nmax_price: 1\n")
	negative := write("neg.yaml", "payload: a.wasm\nmax_price: 1\nresources: {cpu: -5, memory: 1}\n")
	noPayloadFile := write("missing.yaml", "payload: nothere.wasm\nmax_price: 1\n")
	notWasm := write("notwasm.yaml", "payload: notwasm.wasm\nmax_price: 1\n")
	noPayload := write("nopayload.yaml", "max_price: 1\n")
	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		code  int
		needs string
	}{
		{"daemon not running", deadEnv, []string{"chain", "status"}, 1, "cannot reach the daemon at " + dead + ": is `bourse daemon` running? (start it with `bourse daemon --home /nonexistent/home`)"},
		{"wrong token", wrongTok, []string{"chain", "status"}, 1, "refused the API token"},
		{"block above tip", env, []string{"chain", "block", "99"}, 1, "no block at height 99 yet"},
		{"block not a number", env, []string{"chain", "block", "abc"}, 2, `block height "abc"`},
		{"bad tx hash", env, []string{"chain", "tx", "zz"}, 1, "64 hex digits"},
		{"unknown job", env, []string{"job", "status", "nope"}, 1, "no job nope on this node"},
		{"cancel matched", env, []string{"job", "cancel", "j1"}, 1, "only jobs not yet matched"},
		{"verify unknown job", env, []string{"job", "verify", "nope"}, 1, "no job nope on this node"},
		{"verify without id", env, []string{"job", "verify"}, 2, "ID"},
		{"send bad address", env, []string{"wallet", "send", "bo1nope", "5"}, 2, `TO "bo1nope"`},
		{"send zero", env, []string{"wallet", "send", testAddr(4), "0"}, 2, "positive whole number"},
		{"send negative", env, []string{"wallet", "send", testAddr(4), "-3"}, 2, "positive whole number"},
		{"bond garbage", env, []string{"stake", "bond", "lots"}, 2, "positive whole number"},
		{"not a provider", env, []string{"provider", "status"}, 1, "this node sells no capacity"},
		{"register without collateral", env, []string{"provider", "register"}, 2, "collateral"},
		{"submit nothing", env, []string{"job", "submit"}, 2, "takes a SPEC file or --wasm FILE"},
		{"submit bad yaml", env, []string{"job", "submit", badYAML}, 1, "did not find expected"},
		{"submit unknown executor", env, []string{"job", "submit", badExec}, 1, `unknown executor "jvm"`},
		{"submit negative cpu", env, []string{"job", "submit", negative}, 1, "resources.cpu: -5 is negative"},
		{"submit missing payload field", env, []string{"job", "submit", noPayload}, 1, "job spec payload: missing"},
		{"submit missing payload file", env, []string{"job", "submit", noPayloadFile}, 1, "read payload"},
		{"submit not wasm", env, []string{"job", "submit", notWasm}, 1, "not a WebAssembly binary module"},
		{"wasm without price", env, []string{"job", "submit", "--wasm", filepath.Join(dir, "notwasm.wasm")}, 2, "--wasm needs --max-price"},
		{"wasm flag with spec", env, []string{"job", "submit", "--cpu", "5", notWasm}, 2, "--cpu only goes with --wasm"},
		{"wasm bad timeout", env, []string{"job", "submit", "--wasm", "x.wasm", "--max-price", "5", "--timeout", "soon"}, 2, `"soon" is not a duration`},
		{"wasm bad env", env, []string{"job", "submit", "--wasm", "x.wasm", "--max-price", "5", "--env", "NOEQUALS"}, 2, "want KEY=VALUE"},
		{"wasm region weight", env, []string{"job", "submit", "--wasm", "x.wasm", "--max-price", "5", "--region", "a=0"}, 2, "the weight must be 1..100"},
		{"wasm min reputation", env, []string{"job", "submit", "--wasm", "x.wasm", "--max-price", "5", "--min-reputation", "1001"}, 2, "at most 1000"},
		{"result json without dir", env, []string{"job", "result", "j1", "--json"}, 2, "--json needs -o DIR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := run(t, c.env, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errs)
			}
			if !strings.Contains(errs, c.needs) {
				t.Fatalf("stderr %q lacks %q", errs, c.needs)
			}
			if strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Fatalf("error is not one line: %q", errs)
			}
			if out != "" {
				t.Fatalf("stdout on error: %q", out)
			}
		})
	}
}

// A verification that finds different hashes shows the comparison on
// stdout (as JSON with --json) and exits 1, as diff does.
func TestJobVerifyMismatch(t *testing.T) {
	env := daemon(t, richBackend())
	out, errs, code := run(t, env, "job", "verify", "j2")
	if code != 1 || !strings.Contains(out, "MISMATCH") || !strings.Contains(out, "bb") || !strings.Contains(errs, "result hashes differ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, _, code = run(t, env, "job", "verify", "j2", "--json")
	var v api.Verification
	if code != 1 || json.Unmarshal([]byte(out), &v) != nil || v.Match || v.LocalHash != "bb" {
		t.Fatalf("--json: exit %d, stdout %q", code, out)
	}
	out, _, code = run(t, env, "job", "verify", "j1")
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("match: exit %d, stdout %q", code, out)
	}
}

// The token and address come from the home when not in the environment.
func TestClientFromHome(t *testing.T) {
	b := &apitest.Backend{StatusFn: func(context.Context) (api.Status, error) { return api.Status{Height: 77}, nil }}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "h")
	if _, errs, code := run(t, map[string]string{"BOURSE_PASSPHRASE": "pw", "BOURSE_HOME": home}, "init", "--api-listen", ln.Addr().String()); code != 0 {
		t.Fatal(errs)
	}
	tok, _ := os.ReadFile(filepath.Join(home, "api.token"))
	srv, _ := httpapi.New(b, strings.TrimSpace(string(tok)), httpapi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ts := httptest.NewUnstartedServer(srv)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	defer ts.Close()
	for _, env := range []map[string]string{
		{"BOURSE_HOME": home},                       // address from the home
		{"BOURSE_HOME": home, "BOURSE_API": ts.URL}, // the home's own address, given
	} {
		out, errs, code := run(t, env, "chain", "status", "--json")
		if code != 0 || !strings.Contains(out, `"height": 77`) {
			t.Fatalf("%v: exit %d %s %s", env, code, out, errs)
		}
	}
}

func wasmBytes(s string) []byte { return apitest.WasmModule(s) }

// jobNode is a fake node that runs one job through its life on demand.
type jobNode struct {
	*apitest.Backend
	mu      sync.Mutex
	job     api.Job
	spec    api.JobSpec
	payload []byte
	result  []byte
}

func newJobNode(final api.Job, result []byte) *jobNode {
	n := &jobNode{Backend: &apitest.Backend{}, result: result}
	sum := sha256.Sum256(result)
	n.SubmitJobFn = func(_ context.Context, s api.JobSpec, p []byte) (api.Job, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.spec, n.payload = s, p
		n.job = api.Job{ID: "job1", Name: s.Name, State: api.StateBidding, Spec: s}
		return n.job, nil
	}
	n.JobLogsFn = func(_ context.Context, id string) (api.JobLogs, error) {
		return api.JobLogs{ID: id, Stdout: string(result)}, nil
	}
	n.JobFn = func(_ context.Context, id string) (api.Job, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if id != n.job.ID {
			return api.Job{}, api.ErrNotFound
		}
		j := n.job
		// The first time the client looks, the job moves on through
		// its states: one event each, then the final state.
		if j.State == api.StateBidding {
			steps := []api.Job{
				{ID: "job1", State: api.StateMatched, Provider: final.Provider, Escrowed: final.Escrowed},
				{ID: "job1", State: api.StateRunning, Provider: final.Provider},
				final,
			}
			for _, s := range steps {
				s := s
				n.Publish(api.Event{Type: api.EventJob, Job: &s})
			}
			n.job = final
			if n.Subscribers() == 0 {
				return final, nil
			}
		}
		return j, nil
	}
	n.JobResultFn = func(context.Context, string) (io.ReadCloser, api.ResultInfo, error) {
		return io.NopCloser(bytes.NewReader(n.result)), api.ResultInfo{Size: int64(len(n.result)), Hash: hex.EncodeToString(sum[:])}, nil
	}
	return n
}

func TestSubmitWaitPaid(t *testing.T) {
	result := []byte("hello, world\n")
	sum := sha256.Sum256(result)
	provider := testAddr(2)
	code0 := 0
	final := api.Job{ID: "job1", State: api.StatePaid, Provider: provider, Escrowed: 100, Paid: 60, Refunded: 40,
		ResultHash: hex.EncodeToString(sum[:]), ResultSize: int64(len(result)), ExitCode: &code0}
	n := newJobNode(final, result)
	env := daemon(t, n.Backend)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.wasm"), wasmBytes("code"), 0o644)
	spec := filepath.Join(dir, "hello.yaml")
	os.WriteFile(spec, []byte("name: hello\npayload: hello.wasm\nargs: [world]\nmax_price: 100\n"), 0o644)

	out, errs, code := run(t, env, "job", "submit", spec, "--wait")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	for _, want := range []string{
		"job job1: bidding, waiting for a match\n",
		"job job1: matched to " + provider + " at 100 (escrowed)\n",
		"job job1: running on " + provider + "\n",
		"job job1: paid 60 to " + provider + ", refunded 40\n",
		"exit code 0\nhello, world\nresult: 13 bytes, sha256 " + final.ResultHash + " (verified against the chain)\n",
		"paid 60 to " + provider + "; refunded 40 of the 100 escrowed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n.spec.Name != "hello" || n.spec.Payload != "hello.wasm" || !bytes.Equal(n.payload, wasmBytes("code")) || n.spec.Args[0] != "world" {
		t.Fatalf("node got spec %+v payload %q", n.spec, n.payload)
	}

	// --json: the final job on stdout, progress on stderr, result saved.
	n2 := newJobNode(final, result)
	env2 := daemon(t, n2.Backend)
	outDir := filepath.Join(t.TempDir(), "out")
	out, errs, code = run(t, env2, "job", "submit", "--wasm", filepath.Join(dir, "hello.wasm"), "--max-price", "100",
		"--arg", "a", "--arg", "b", "--env", "K=V", "--cpu", "250", "--wait", "--json", "-o", outDir,
		"--region", "eu-west=3", "--region", "us-east", "--min-reputation", "600", "--placement", "balanced")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var j api.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.ID != "job1" || j.State != api.StatePaid {
		t.Fatalf("--wait --json = %v %s", err, out)
	}
	if !strings.Contains(errs, "job job1: running") {
		t.Fatalf("progress not on stderr: %q", errs)
	}
	saved, err := os.ReadFile(filepath.Join(outDir, "job1.tar"))
	if err != nil || !bytes.Equal(saved, result) {
		t.Fatalf("saved result %q %v", saved, err)
	}
	if n2.spec.Resources.CPU != 250 || n2.spec.Env["K"] != "V" || len(n2.spec.Args) != 2 || n2.spec.Name != "hello" ||
		n2.spec.Constraints.Regions["eu-west"] != 3 || n2.spec.Constraints.Regions["us-east"] != 1 ||
		n2.spec.Constraints.MinReputation != 600 || n2.spec.Placement != api.PlaceBalanced {
		t.Fatalf("--wasm spec %+v", n2.spec)
	}
}

func TestSubmitWaitExpired(t *testing.T) {
	final := api.Job{ID: "job1", State: api.StateExpired, Unmatched: []api.OfferFit{
		{OfferID: "o1", Provider: testAddr(2), Reasons: []string{"price 300 above max_price 100"}},
		{OfferID: "o2", Provider: testAddr(3), Reasons: []string{"region eu-west, want us-east"}},
	}}
	n := newJobNode(final, nil)
	env := daemon(t, n.Backend)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.wasm"), wasmBytes(""), 0o644)
	out, errs, code := run(t, env, "job", "submit", "--wasm", filepath.Join(dir, "hello.wasm"), "--max-price", "100", "--wait")
	if code != 1 || !strings.Contains(errs, "job job1 expired: no offer matched before its deadline (2 offers considered)") {
		t.Fatalf("exit %d %q", code, errs)
	}
	for _, want := range []string{"why no offer matched:", "price 300 above max_price 100", "region eu-west, want us-east", "hint: raise max_price"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSubmitDryRun(t *testing.T) {
	var submitted bool
	b := &apitest.Backend{
		DryRunFn: func(_ context.Context, s api.JobSpec) (api.DryRun, error) {
			return api.DryRun{Spec: s, Chosen: "o1", Price: 40, Summary: "1 of 2 offers fit", Offers: []api.OfferFit{
				{OfferID: "o1", Provider: testAddr(2), Fits: true, Price: 40},
				{OfferID: "o2", Provider: testAddr(3), Reasons: []string{"memory 64 MiB > free 32 MiB"}},
			}}, nil
		},
		SubmitJobFn: func(context.Context, api.JobSpec, []byte) (api.Job, error) { submitted = true; return api.Job{}, nil },
	}
	env := daemon(t, b)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.wasm"), wasmBytes(""), 0o644)
	out, errs, code := run(t, env, "job", "submit", "--wasm", filepath.Join(dir, "a.wasm"), "--max-price", "50", "--dry-run")
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{"yes (chosen)", "memory 64 MiB > free 32 MiB", "1 of 2 offers fit"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	out, _, code = run(t, env, "job", "submit", "--wasm", filepath.Join(dir, "a.wasm"), "--max-price", "50", "--dry-run", "--json")
	var dr api.DryRun
	if code != 0 || json.Unmarshal([]byte(out), &dr) != nil || dr.Chosen != "o1" || len(dr.Offers) != 2 {
		t.Fatalf("dry run --json: %s", out)
	}
	if submitted {
		t.Fatal("--dry-run submitted the job")
	}
}

func TestJobResultDownload(t *testing.T) {
	result := []byte{0, 1, 2, 3, 250}
	sum := sha256.Sum256(result)
	var tamper bool
	b := &apitest.Backend{
		JobResultFn: func(context.Context, string) (io.ReadCloser, api.ResultInfo, error) {
			body := result
			if tamper {
				body = []byte{9, 9, 9, 9, 9}
			}
			return io.NopCloser(bytes.NewReader(body)), api.ResultInfo{Size: 5, Hash: hex.EncodeToString(sum[:])}, nil
		},
		JobFn: func(_ context.Context, id string) (api.Job, error) {
			return api.Job{ID: id, State: api.StatePaid, ResultHash: hex.EncodeToString(sum[:])}, nil
		},
	}
	env := daemon(t, b)
	out, errs, code := run(t, env, "job", "result", "j1")
	if code != 0 || out != string(result) {
		t.Fatalf("to stdout: %d %q %s", code, out, errs)
	}
	dir := t.TempDir()
	out, errs, code = run(t, env, "job", "result", "j1", "-o", dir, "--json")
	var s savedResult
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.ID != "j1" || s.Size != 5 || s.Hash != hex.EncodeToString(sum[:]) {
		t.Fatalf("-o --json: %d %s %s", code, out, errs)
	}
	tamper = true
	dir2 := t.TempDir()
	_, errs, code = run(t, env, "job", "result", "j1", "-o", dir2)
	if code != 1 || !strings.Contains(errs, "does not match its on-chain hash; nothing was saved") {
		t.Fatalf("tampered: %d %q", code, errs)
	}
	if ents, _ := os.ReadDir(dir2); len(ents) != 0 {
		t.Fatalf("tampered result left files: %v", ents)
	}
}

// On a terminal --wait rewrites one live status line.
func TestSubmitWaitLiveLine(t *testing.T) {
	final := api.Job{ID: "job1", State: api.StateCancelled}
	n := newJobNode(final, nil)
	env := daemon(t, n.Backend)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.wasm"), wasmBytes(""), 0o644)
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"bourse", "job", "submit", "--wasm", filepath.Join(dir, "a.wasm"), "--max-price", "9", "--wait"}, Env{
		Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Getenv: func(k string) string { return env[k] }, IsTerminal: func() bool { return true },
	})
	if code != 1 || !strings.Contains(errb.String(), "job job1 ended cancelled") {
		t.Fatalf("exit %d %q", code, errb.String())
	}
	if !strings.Contains(out.String(), "\r\033[Kjob job1: running on") || strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("not a live line: %q", out.String())
	}
}
