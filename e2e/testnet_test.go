package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/testnet"
)

// TestTestnetEndToEnd is the user's first session, then node loss: one
// 4-node network, driven through the CLI, checked through the API.
func TestTestnetEndToEnd(t *testing.T) {
	needBinary(t)
	n := up(t, "--executors", "wasm,docker") // docker is offered only where a daemon answers

	t.Run("up: every node answers, sees its 3 peers and the first blocks", func(t *testing.T) {
		var sts []testnet.NodeStatus
		if err := json.Unmarshal([]byte(bourse(t, "testnet", "status", "--dir", n.dir, "--json")), &sts); err != nil {
			t.Fatal(err)
		}
		if len(sts) != 4 {
			t.Fatalf("%d nodes in status", len(sts))
		}
		for _, s := range sts {
			if !s.Up || !s.Running || s.Height < 2 {
				t.Fatalf("%s: %+v", s.Name, s)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for i := range 4 {
			for {
				st, err := n.cl[i].Status(n.ctx(5 * time.Second))
				if err == nil && st.Peers >= 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node%d: %d peers (%v), want 3", i, st.Peers, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})

	t.Run("hello job: paid, and the provider's balance moves by what the chain says", func(t *testing.T) {
		helloJob(t, n)
	})

	t.Run("docker job: the image travels as a blob, loaded by its ID, and is paid", func(t *testing.T) {
		dockerJob(t, n)
	})

	t.Run("docker service: the image travels as a blob, each replica a container, answering through every gateway", func(t *testing.T) {
		dockerService(t, n)
	})

	t.Run("kill -9 of one node: the chain keeps making blocks", func(t *testing.T) {
		bourse(t, "testnet", "down", "--dir", n.dir, "--node", "node3", "--kill")
		if _, ok := n.height(3); ok {
			t.Fatal("node3 still answers after kill -9")
		}
		h := n.maxHeight(0, 1, 2)
		n.waitHeight(h+5, 30*time.Second, 0, 1, 2)
	})

	t.Run("restart: the killed node catches up", func(t *testing.T) {
		bourse(t, "testnet", "start", "--dir", n.dir, "--node", "node3")
		target := n.maxHeight(0, 1, 2)
		n.waitHeight(target+2, 60*time.Second, 3)
		n.noFork(0, 1, 2, 3)
	})

	t.Run("two of four stopped: the chain halts without forking, then resumes", func(t *testing.T) {
		bourse(t, "testnet", "down", "--dir", n.dir, "--node", "node2", "--node", "node3", "--kill")
		halted := waitHalt(t, n, 0, 1)
		n.noFork(0, 1)
		bourse(t, "testnet", "start", "--dir", n.dir, "--node", "node2")
		n.waitHeight(halted+3, 60*time.Second, 0, 1, 2)
		n.noFork(0, 1, 2)
	})

	t.Run("down: every daemon stops, the data stays", func(t *testing.T) {
		var res []testnet.StopResult
		if err := json.Unmarshal([]byte(bourse(t, "testnet", "down", "--dir", n.dir, "--json")), &res); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Node == "node3" && r.Result != "not running" || r.Node != "node3" && r.Result == "not running" {
				t.Fatalf("down: %+v", res)
			}
		}
		for i, nd := range n.nw.Nodes {
			if _, ok := n.height(i); ok {
				t.Fatalf("%s answers after down", nd.Name)
			}
			if _, err := os.Stat(filepath.Join(nd.Home, "config.toml")); err != nil {
				t.Fatalf("%s: data gone: %v", nd.Name, err)
			}
		}
	})
}

// waitHalt waits until the heights of the nodes idx stop moving (no change
// for two seconds, within 30s) and returns the height they stopped at.
// With half the stake gone no block can commit; at most the height in
// flight when the nodes went away finishes.
func waitHalt(t *testing.T, n *net4, idx ...int) uint64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last, since := n.maxHeight(idx...), time.Now()
	for time.Since(since) < 2*time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("the chain did not halt with two of four validators down (height %d)", last)
		}
		time.Sleep(100 * time.Millisecond)
		if h := n.maxHeight(idx...); h != last {
			last, since = h, time.Now()
		}
	}
	return last
}

// stableAccount reads an account at a known height: status, account,
// status again, until no block landed in between.
func stableAccount(t *testing.T, cl *api.Client, addr string) (api.Account, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		s1, err1 := cl.Status(ctx)
		acc, err2 := cl.Account(ctx, addr)
		s2, err3 := cl.Status(ctx)
		if err1 == nil && err2 == nil && err3 == nil && s1.Height == s2.Height {
			return acc, s1.Height
		}
		if ctx.Err() != nil {
			t.Fatalf("read account %s at a stable height: %v %v %v", addr, err1, err2, err3)
		}
	}
}

func helloJob(t *testing.T, n *net4) {
	client := n.nw.Nodes[0]
	// Every node's account at one height: read all four until their
	// heights agree (blocks come every few tens of milliseconds).
	var before map[string]api.Account
	var h0 uint64
	for attempt := 0; ; attempt++ {
		before, h0 = map[string]api.Account{}, 0
		same := true
		for _, nd := range n.nw.Nodes {
			acc, h := stableAccount(t, n.cl[0], nd.Address)
			if h0 != 0 && h != h0 {
				same = false
			}
			before[nd.Address], h0 = acc, h
		}
		if same {
			break
		}
		if attempt == 100 {
			t.Fatal("could not read the four accounts at one height")
		}
	}
	out := bourse(t, "--home", client.Home, "job", "submit", filepath.Join(helloDir, "job.yaml"), "--wait", "--json")
	var job api.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("job submit --wait --json: %v\n%s", err, out)
	}
	if job.State != api.StatePaid || job.Paid == 0 || job.Paid+job.Refunded != job.Escrowed || job.ExitCode == nil || *job.ExitCode != 0 {
		t.Fatalf("job: %+v", job)
	}
	result := bourse(t, "--home", client.Home, "job", "result", job.ID)
	if !strings.Contains(result, "hello, world!") {
		t.Fatalf("result %q, want the greeting", result)
	}
	// The client re-runs it on its own node: the provider's hash again.
	var ver api.Verification
	out = bourse(t, "--home", client.Home, "job", "verify", job.ID, "--json")
	if err := json.Unmarshal([]byte(out), &ver); err != nil || !ver.Match || ver.LocalHash != job.ResultHash {
		t.Fatalf("job verify: %+v %v\n%s", ver, err, out)
	}
	// Paid once fetched and checked; the client's ack then releases the
	// held payment to the provider in a block of its own.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m, err := n.cl[0].Match(n.ctx(5*time.Second), job.ID)
		if err == nil && m.State == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("match %+v %v: the payment was not released", m, err)
		}
	}
	acc, h1 := stableAccount(t, n.cl[0], job.Provider)
	b0, ok := before[job.Provider]
	if !ok {
		t.Fatalf("provider %s is not a testnet node", job.Provider)
	}
	// Every change to the provider's balance between h0 and h1, from the
	// chain's own record: payment for the job, fees of the blocks it
	// proposed, fees of its own transactions (the result), and escrow
	// and refund when it was its own client.
	ctx := n.ctx(time.Minute)
	want := int64(b0.Balance) + int64(job.Paid)
	if job.Provider == client.Address {
		want += int64(job.Refunded) - int64(job.Escrowed)
	}
	var feesIn, feesOut uint64
	for h := h0 + 1; h <= h1; h++ {
		b, err := n.cl[0].Block(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Txs {
			tx, err := n.cl[0].Tx(ctx, s.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if b.Proposer == job.Provider {
				feesIn += tx.Fee
			}
			if tx.From == job.Provider {
				feesOut += tx.Fee
			}
		}
	}
	want += int64(feesIn) - int64(feesOut)
	if int64(acc.Balance) != want {
		t.Fatalf("provider balance %d -> %d between heights %d and %d; the chain accounts for %d (paid %d, fees in %d, fees out %d)",
			b0.Balance, acc.Balance, h0, h1, want, job.Paid, feesIn, feesOut)
	}
	stats, err := n.cl[0].MarketStats(ctx, job.MatchHeight, h1)
	if err != nil {
		t.Fatal(err)
	}
	var earned uint64
	for _, p := range stats.Providers {
		if p.Address == job.Provider {
			earned = p.Earned
		}
	}
	if earned != job.Paid {
		t.Fatalf("market stats say the provider earned %d over heights %d..%d, the job says it paid %d", earned, job.MatchHeight, h1, job.Paid)
	}
}

// TestLongFaultRandomCrashes kills and restarts random nodes (one at a
// time, so the chain must keep going) and checks for forks after each
// round. BOURSE_LONG=1 (make test-long) runs it.
func TestLongFaultRandomCrashes(t *testing.T) {
	needBinary(t)
	if os.Getenv("BOURSE_LONG") == "" {
		t.Skip("long fault run: set BOURSE_LONG=1 (make test-long)")
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 3))
	n := up(t)
	for round := range 10 {
		victim := r.IntN(4)
		name := fmt.Sprintf("node%d", victim)
		args := []string{"testnet", "down", "--dir", n.dir, "--node", name}
		if r.IntN(2) == 0 {
			args = append(args, "--kill")
		}
		bourse(t, args...)
		var live []int
		for i := range 4 {
			if i != victim {
				live = append(live, i)
			}
		}
		n.waitHeight(n.maxHeight(live...)+3, 30*time.Second, live...)
		bourse(t, "testnet", "start", "--dir", n.dir, "--node", name)
		n.waitHeight(n.maxHeight(live...)+1, 60*time.Second, 0, 1, 2, 3)
		n.noFork(0, 1, 2, 3)
		t.Logf("round %d: %s down and back, seed %d", round, name, seed)
	}
}

// dockerJob builds the docker-hello image (FROM scratch and one static
// binary, nothing pulled), saves it as a tarball and removes it from the
// Docker daemon, so the provider (on this machine, with the same daemon)
// must take it from the client as a content-addressed blob and load it by
// its ID. The job is submitted through the binary and must be paid with
// the container's greeting as its result. Skips without Docker.
func dockerJob(t *testing.T, n *net4) {
	dir := t.TempDir()
	id := exampleImage(t, "docker-hello", dir)
	docker := dockerCLI(t)
	spec := fmt.Sprintf(`name: docker-hello
executor: docker
image: %s
payload: hello.tar
args: ["world"]
resources: {cpu: 500, memory: 64, disk: 16}
max_price: 3000000
timeout: 60s
deadline: 60s
constraints: {executors: [docker]}
`, id)
	if err := os.WriteFile(filepath.Join(dir, "job.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	client := n.nw.Nodes[0]
	out := bourse(t, "--home", client.Home, "job", "submit", filepath.Join(dir, "job.yaml"), "--wait", "--json")
	var job api.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("job submit --wait --json: %v\n%s", err, out)
	}
	if job.State != api.StatePaid || job.Paid == 0 || job.Paid+job.Refunded != job.Escrowed || job.ExitCode == nil || *job.ExitCode != 0 {
		t.Fatalf("docker job: %+v", job)
	}
	if result := bourse(t, "--home", client.Home, "job", "result", job.ID); !strings.Contains(result, "hello from a container, world!") {
		t.Fatalf("result %q, want the container's greeting", result)
	}
	// Loaded by ID, with no tag: nothing the job sent can name an image.
	if tags := docker("image", "inspect", "--format", "{{len .RepoTags}}", id); tags != "0" {
		t.Fatalf("the loaded image has %s tags, want none", tags)
	}
}

// dockerCLI returns a function that runs the docker command and returns
// its trimmed output, failing the test on error.
func dockerCLI(t *testing.T) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, err := exec.Command("docker", args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
}

// exampleImage builds examples/NAME (a static binary and its FROM scratch
// Dockerfile, nothing pulled) into an image of its own, saves it as
// dir/hello.tar and removes it from the daemon, so a provider (on this
// machine, with the same daemon) must take it as a content-addressed blob
// and load it by its ID, which it returns. Skips without Docker.
func exampleImage(t *testing.T, name, dir string) string {
	t.Helper()
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon: %v %s", err, out)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./examples/"+name)
	build.Dir = repoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	df, err := os.ReadFile(filepath.Join(repoRoot(), "examples", name, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	// A label of its own makes the image's ID this run's only.
	nonce := time.Now().UnixNano()
	tag := fmt.Sprintf("bourse-e2e-%s:%d", name, nonce)
	docker := dockerCLI(t)
	docker("build", "-q", "--label", fmt.Sprintf("net.bourse.e2e=%d", nonce), "-t", tag, dir)
	id := docker("image", "inspect", "--format", "{{.Id}}", tag)
	docker("save", "-o", filepath.Join(dir, "hello.tar"), tag)
	docker("rmi", tag) // gone from the daemon: the provider must load the blob
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", id).Run() })
	if err := exec.Command("docker", "image", "inspect", id).Run(); err == nil {
		t.Fatalf("image %s still present after rmi", id)
	}
	return id
}

// dockerService deploys examples/svc-docker-hello as a 2-replica docker
// service from node0 (its image sent as a tarball, loaded by ID on the
// providers), calls it through every live node's gateway, and closes it.
func dockerService(t *testing.T, n *net4) {
	dir := t.TempDir()
	id := exampleImage(t, "svc-docker-hello", dir)
	spec := fmt.Sprintf(`kind: service
name: dhello
executor: docker
image: %s
payload: hello.tar
port: 8081
env: {GREETING: howdy}
replicas: {min: 1, max: 2, initial: 2}
resources: {cpu: 500, memory: 64}
price_per_period: 5000
period: 2s
duration: 2m
elastic: false
`, id)
	path := filepath.Join(dir, "service.yaml")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	owner := n.nw.Nodes[0]
	bourse(t, "--home", owner.Home, "service", "deploy", path, "--json")
	n.waitService(t, "dhello", 60*time.Second, "two active leases", func(s api.Service) bool { return s.Active == 2 })
	for i, nd := range n.nw.Nodes[:3] {
		deadline := time.Now().Add(60 * time.Second)
		for {
			body, err := call(nd.Gateway, "dhello", fmt.Sprintf("node%d", i))
			if err == nil {
				if want := fmt.Sprintf("howdy, node%d!\n", i); body != want {
					t.Fatalf("node%d's gateway answered %q, want %q", i, body, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node%d's gateway: %v", i, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	var closed api.Service
	if err := json.Unmarshal([]byte(bourse(t, "--home", owner.Home, "service", "close", "dhello", "--json")), &closed); err != nil {
		t.Fatal(err)
	}
	if closed.Status != "closed" || closed.Active != 0 {
		t.Fatalf("closed: %+v", closed)
	}
}

// TestTestnetDemoShowsThePaymentOnChain: `make testnet` (bourse testnet
// demo) runs the hello job end to end and reports the provider's payment
// as the chain shows it. The client's "paid" comes a block before the
// payment (its ack pays), so the demo once printed a balance that had not
// moved and "earned 0".
func TestTestnetDemoShowsThePaymentOnChain(t *testing.T) {
	needBinary(t)
	dir := filepath.Join(t.TempDir(), "demo")
	t.Cleanup(func() { run("testnet", "down", "--dir", dir, "--kill") })
	out := bourse(t, "testnet", "demo", "-n", "4", "--dir", dir, "--base-port", strconv.Itoa(freeBase(t)),
		"--spec", filepath.Join(helloDir, "job.yaml"), "--json")
	var rep struct {
		Job           api.Job `json:"job"`
		Output        string  `json:"output"`
		BalanceBefore uint64  `json:"balance_before"`
		BalanceAfter  uint64  `json:"balance_after"`
		EarnedOnChain uint64  `json:"earned_on_chain"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("demo --json: %v\n%s", err, out)
	}
	if rep.Job.State != api.StatePaid || rep.Job.Paid == 0 || rep.Output != "hello, world!\n" {
		t.Fatalf("demo job: state %s, paid %d, output %q", rep.Job.State, rep.Job.Paid, rep.Output)
	}
	if rep.EarnedOnChain != rep.Job.Paid {
		t.Fatalf("the chain shows the provider earned %d for a job paid %d", rep.EarnedOnChain, rep.Job.Paid)
	}
	// The provider's balance moved by the payment, less at most the few
	// fees it paid and plus what it collected as a validator meanwhile.
	if rep.BalanceAfter+rep.Job.Paid/2 < rep.BalanceBefore+rep.Job.Paid {
		t.Fatalf("provider balance %d -> %d for a payment of %d", rep.BalanceBefore, rep.BalanceAfter, rep.Job.Paid)
	}
}
