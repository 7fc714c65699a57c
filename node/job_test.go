package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/bourse-net/bourse/internal/loadtest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/lifecycle"
)

var (
	examplesMu sync.Mutex
	examples   = map[string][]byte{}
)

// example builds examples/<name> for wasip1 once per test binary.
func example(t testing.TB, name string) []byte {
	t.Helper()
	examplesMu.Lock()
	defer examplesMu.Unlock()
	if b, ok := examples[name]; ok {
		return b
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command("go", "build", "-o", out, "./examples/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s.wasm: %v\n%s", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	examples[name] = b
	return b
}

func hello(t *testing.T) []byte { return example(t, "hello") }

func providerNet(t *testing.T) *testNet {
	return providerNetWith(t, nil)
}

func providerNetWith(t testing.TB, genesis func(*chain.Genesis)) *testNet {
	tn := newTestNetGenesis(t, 4, genesis, func(i int, c *Config) {
		c.Provider.Enabled = i > 0 // node 0 is only a client
		c.Provider.Executors = []string{"wasm"}
		c.Provider.OfferInterval = Duration{300 * time.Millisecond}
		c.Provider.CPU, c.Provider.MemoryMiB = 2000, 2048
		// Shared across runs: compiling under -race takes many seconds.
		c.Provider.WasmCache = filepath.Join(os.TempDir(), "bourse-node-test-wasm-cache")
	})
	tn.startAll()
	tn.waitHeight(2, 30*time.Second)
	ctx := context.Background()
	for i := 1; i < 4; i++ {
		res, err := tn.client(i).ProviderRegister(ctx, 5000)
		committed(t, tn.client(i), res, err)
	}
	// Wait until the client's book holds the three offers.
	deadline := time.Now().Add(15 * time.Second)
	for {
		offers, err := tn.client(0).Offers(ctx)
		if err == nil && len(offers) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("offers not gossiped: %d (%v)", len(offers), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return tn
}

func helloSpec() api.JobSpec {
	return api.JobSpec{
		Name: "hello", Executor: "wasm", Payload: "hello.wasm", Args: []string{"bourse"},
		Env:       map[string]string{"GREETING": "hi"},
		Resources: api.Resources{CPU: 250, Memory: 64, Disk: 16},
		// A generous timeout: the provider compiles the module inside it,
		// and wazero under -race compiles for many seconds.
		MaxPrice: 5_000_000, Timeout: api.Duration{Duration: 3 * time.Minute},
		Deadline: api.Duration{Duration: 10 * time.Second}, Placement: "cheapest", Replicas: 1,
	}.WithDefaults()
}

func waitJob(t *testing.T, c *api.Client, id string, within time.Duration) api.Job {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := c.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if api.Terminal(j.State) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s", id, j.State, within)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// TestJobLifecycle runs a client and three providers through a job's whole
// life: submit, match on chain, execute, result fetched and verified,
// provider paid, client refunded the rest; then the expired path.
func TestJobLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	payload := hello(t)
	// Node 0, the client, is no validator here: its balance then moves
	// only by what its jobs cost (no block fees collected as proposer).
	tn := providerNetWith(t, func(g *chain.Genesis) { g.Validators = g.Validators[1:] })
	ctx := context.Background()
	c := tn.client(0)
	before, err := c.Account(ctx, tn.nodes[0].Address().String())
	if err != nil {
		t.Fatal(err)
	}

	job, err := c.SubmitJob(ctx, helloSpec(), bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	if job.State != api.StateBidding || job.ID == "" {
		t.Fatalf("submitted job = %+v", job)
	}
	done := waitJob(t, c, job.ID, 5*time.Minute)
	if done.State != api.StatePaid {
		t.Fatalf("job ended %s: %s", done.State, done.Error)
	}
	if done.Provider == "" || done.Paid == 0 || done.Paid+done.Refunded != done.Escrowed || done.ExitCode == nil || *done.ExitCode != 0 {
		t.Fatalf("settlement = %+v", done)
	}
	// The result comes from the provider and matches the hash on chain.
	rc, info, err := c.JobResult(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != done.ResultHash || info.Hash != done.ResultHash || done.ResultSize != int64(len(data)) {
		t.Fatalf("result hash %x (%d bytes), on chain %s, job says %d bytes", sum, len(data), done.ResultHash, done.ResultSize)
	}
	// Paid once fetched and checked; the client's ack then releases the
	// held payment in a block of its own.
	var ms []api.Match
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ms, err = c.Matches(ctx, api.MatchFilter{})
		if err == nil && len(ms) == 1 && ms[0].State == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("matches = %+v, %v (want the ack to release it)", ms, err)
		}
	}
	if ms[0].Escrow != done.Escrowed || ms[0].Price == 0 || ms[0].Price > ms[0].Escrow {
		t.Fatalf("matches = %+v", ms)
	}
	// The match leads to its transactions, and their receipts say ok.
	if m, err := c.Match(ctx, ms[0].ID); err != nil || m != ms[0] || m.ResultHash != done.ResultHash {
		t.Fatalf("match %s = %+v, %v", ms[0].ID, m, err)
	}
	for _, h := range []string{ms[0].MatchTx, ms[0].SettleTx} {
		tx, err := c.Tx(ctx, h)
		if err != nil || tx.Status != api.TxOK || len(tx.Events) == 0 || tx.Events[0].JobID != ms[0].ID {
			t.Fatalf("tx %q = %+v, %v", h, tx, err)
		}
	}
	logs, err := c.JobLogs(ctx, job.ID)
	if err != nil || !strings.Contains(logs.Stdout, "hi, bourse!") {
		t.Fatalf("logs = %+v, %v", logs, err)
	}
	// The provider earned what the chain says; the client paid that plus
	// nothing else for the job (fees are separate transactions).
	var provIdx int
	for i := 1; i < 4; i++ {
		if tn.nodes[i].Address().String() == done.Provider {
			provIdx = i
		}
	}
	if provIdx == 0 {
		t.Fatalf("provider %s is not one of the nodes", done.Provider)
	}
	// The provider applies the settling block on its own schedule; once it
	// has, the job is in its totals and its record is gone, while its
	// result is still served by job id (the hash comes from the chain).
	pc := tn.client(provIdx)
	var ps api.ProviderStatus
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ps, err = pc.ProviderStatus(ctx); err == nil && ps.Earned == done.Paid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider status = %+v, %v (want earned %d)", ps, err, done.Paid)
		}
	}
	if ps.Jobs[api.StatePaid] != 1 || len(ps.Jobs) != 1 {
		t.Fatalf("provider jobs by state = %v, want one paid", ps.Jobs)
	}
	pm := tn.nodes[provIdx].market
	var kept int
	pm.withCore(func(c *lifecycle.Core) { kept = c.OpenProviderJobs() })
	if kept != 0 {
		t.Fatalf("provider keeps %d job records after settlement", kept)
	}
	rc, info, err = pc.JobResult(ctx, done.ID)
	if err != nil {
		t.Fatalf("provider's result by job id: %v", err)
	}
	rc.Close()
	if info.Hash != done.ResultHash {
		t.Fatalf("provider serves result %s, chain says %s", info.Hash, done.ResultHash)
	}
	after, err := c.Account(ctx, tn.nodes[0].Address().String())
	if err != nil {
		t.Fatal(err)
	}
	ackFee := tn.nodes[0].drv.State().Params().MinFee // the ack is the client's one transaction
	if before.Balance-after.Balance != done.Paid+ackFee {
		t.Fatalf("client balance fell by %d, paid %d and the ack's fee %d", before.Balance-after.Balance, done.Paid, ackFee)
	}

	// The client re-runs the job on its own node: the same result hash as
	// the provider's, as a deterministic WASM job must give.
	ver, err := c.VerifyJob(ctx, done.ID)
	if err != nil || !ver.Match || ver.LocalHash != done.ResultHash || ver.ChainHash != done.ResultHash || ver.LocalState != "succeeded" {
		t.Fatalf("verify = %+v, %v (result %s)", ver, err, done.ResultHash)
	}
	if m := metricsOf(t, tn, 0); !strings.Contains(m, `bourse_jobs_verified_total{match="true"} 1`) {
		t.Errorf("metrics lack the verification:\n%s", m)
	}
	if _, err := tn.client(provIdx).VerifyJob(ctx, done.ID); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("verify on a node that did not submit the job: %v, want not found", err)
	}

	// The same module again, named by hash: no upload, same outcome. A
	// hash the daemon does not hold is not found (the client then uploads).
	byHash := helloSpec()
	byHash.PayloadSHA256 = done.Spec.PayloadSHA256
	if byHash.PayloadSHA256 == "" {
		sum := sha256.Sum256(payload)
		byHash.PayloadSHA256 = hex.EncodeToString(sum[:])
	}
	again, err := c.SubmitJob(ctx, byHash, nil)
	if err != nil {
		t.Fatalf("submit by hash: %v", err)
	}
	if j := waitJob(t, c, again.ID, 5*time.Minute); j.State != api.StatePaid || j.ResultHash != done.ResultHash {
		t.Fatalf("job by hash ended %s (%s), result %s want %s", j.State, j.Error, j.ResultHash, done.ResultHash)
	}
	// Its escrow stays held until the client's ack commits: the next bid
	// needs it back.
	waitReleased(t, c, again.ID)
	unknown := helloSpec()
	unknown.PayloadSHA256 = strings.Repeat("ab", 32)
	if _, err := c.SubmitJob(ctx, unknown, nil); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown payload hash: %v, want not found", err)
	}
	if j, err := c.SubmitJobBytes(ctx, helloSpec(), payload); err != nil || j.State != api.StateBidding {
		t.Fatalf("SubmitJobBytes: %+v %v", j, err)
	}

	// A job no offer can take expires with the reasons.
	spec := helloSpec()
	spec.Resources.CPU = 64_000 // more than any provider sells
	spec.Deadline = api.Duration{Duration: 1500 * time.Millisecond}
	// The bid above still holds 5,000,000 of the client's ~10,000,000 in
	// the book: the book admits only bids the balance covers together.
	spec.MaxPrice = 4_000_000
	dry, err := c.DryRun(ctx, spec)
	if err != nil || dry.Chosen != "" || len(dry.Offers) == 0 {
		t.Fatalf("dry run = %+v, %v", dry, err)
	}
	job2, err := c.SubmitJob(ctx, spec, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	exp := waitJob(t, c, job2.ID, 20*time.Second)
	if exp.State != api.StateExpired || !strings.Contains(exp.Error, "resources") {
		t.Fatalf("expired job = %s: %s", exp.State, exp.Error)
	}
	if _, err := c.VerifyJob(ctx, job2.ID); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("verify a job without a result: %v, want conflict", err)
	}
}

// TestProviderMissesDeadline: the provider holding a match goes away; at
// the deadline the chain refunds the client and slashes the provider.
func TestProviderMissesDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	payload := example(t, "primes")
	// A grace period long enough that the payload window (half of it)
	// does not run out before the provider is stopped on a loaded machine:
	// the provider must miss the deadline, not declare the payload
	// unavailable.
	tn := providerNetWith(t, func(g *chain.Genesis) { g.Params.ResultGraceMs = 10_000 })
	ctx := context.Background()
	c := tn.client(0)
	spec := helloSpec()
	spec.Name, spec.Args = "primes", []string{"500000000"} // runs far longer than its timeout
	spec.Timeout = api.Duration{Duration: 4 * time.Second}
	job, err := c.SubmitJob(ctx, spec, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	// Stop the provider as soon as the match commits.
	deadline := time.Now().Add(20 * time.Second)
	var j api.Job
	for {
		if j, err = c.Job(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		if j.State != api.StateBidding {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("job never matched")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if j.State != api.StateMatched {
		t.Fatalf("job is %s, want matched", j.State)
	}
	prov := -1
	for i := 1; i < 4; i++ {
		if tn.nodes[i].Address().String() == j.Provider {
			prov = i
		}
	}
	before, err := c.Account(ctx, j.Provider)
	if err != nil {
		t.Fatal(err)
	}
	tn.stop(prov)

	done := waitJob(t, c, job.ID, 60*time.Second)
	if done.State != api.StateTimedOut || done.Refunded != done.Escrowed || done.Slashed == 0 {
		t.Fatalf("job = %s refunded %d of %d, slashed %d: %s", done.State, done.Refunded, done.Escrowed, done.Slashed, done.Error)
	}
	after, err := c.Account(ctx, j.Provider)
	if err != nil {
		t.Fatal(err)
	}
	if after.Collateral != before.Collateral-done.Slashed {
		t.Fatalf("collateral %d -> %d, slashed %d", before.Collateral, after.Collateral, done.Slashed)
	}
}

// TestProviderRestartResumesJob: a provider that restarts while holding a
// match runs the job after the restart and is paid.
func TestProviderRestartResumesJob(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	payload := example(t, "primes")
	tn := providerNet(t)
	ctx := context.Background()
	c := tn.client(0)
	spec := helloSpec()
	// The stop comes right after the match, before the provider has even
	// fetched the module. Under -race on a loaded 2-core machine, primes
	// below 1.5M ran 43 s in the guest, too near the old 60 s timeout; a
	// smaller range and a generous timeout keep the test about resuming.
	spec.Name, spec.Args = "primes", []string{"300000"}
	spec.Timeout = api.Duration{Duration: 3 * time.Minute}
	job, err := c.SubmitJob(ctx, spec, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	j := waitState(t, c, job.ID, api.StateBidding, 20*time.Second)
	if j.State != api.StateMatched {
		t.Fatalf("job is %s, want matched", j.State)
	}
	prov := -1
	for i := 1; i < 4; i++ {
		if tn.nodes[i].Address().String() == j.Provider {
			prov = i
		}
	}
	tn.stop(prov)
	tn.start(prov)
	done := waitJob(t, c, job.ID, 4*time.Minute)
	if done.State != api.StatePaid {
		t.Fatalf("job ended %s: %s", done.State, done.Error)
	}
	logs, err := c.JobLogs(ctx, job.ID)
	if err != nil || !strings.Contains(logs.Stdout, "primes below 300000: 25997") {
		t.Fatalf("logs = %+v, %v", logs, err)
	}
}

// waitState waits until the job leaves state from.
func waitState(t *testing.T, c *api.Client, id, from string, within time.Duration) api.Job {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := c.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != from {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s", id, from, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkNodeJobs runs hello jobs through four in-process nodes (one
// client-only node, three providers) with 32 in flight: jobs/s and the
// submit→paid latency. The e2e benchmark measures the same over processes.
func BenchmarkNodeJobs(b *testing.B) {
	payload := example(b, "hello")
	tn := providerNetWith(b, nil)
	clients := []*api.Client{tn.client(0), tn.client(1), tn.client(2), tn.client(3)}
	loadtest.Jobs(b, clients, 32, 25*time.Millisecond, func(ctx context.Context, c *api.Client) (api.Job, error) {
		return c.SubmitJob(ctx, helloSpec(), bytes.NewReader(payload))
	})
}

// TestExamplesPassTheSubmitCheck: the example modules, built as users
// build them, are WASI commands the API accepts.
func TestExamplesPassTheSubmitCheck(t *testing.T) {
	for _, name := range []string{"hello", "primes", "wordcount"} {
		if err := api.CheckPayload(api.ExecutorWASM, example(t, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// waitReleased waits until job id's held payment is released on chain
// (the client's ack commits a block after the job is paid).
func waitReleased(t *testing.T, c *api.Client, id string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m, err := c.Match(context.Background(), id)
		if err == nil && m.State == "completed" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("match %s = %+v, %v: not released", id, m, err)
		}
	}
}
