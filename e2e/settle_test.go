package e2e

import (
	"context"
	"encoding/json"
	"fmt"
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

// TestSettlementEndToEnd runs settlement (chain/settle.go) on a 4-node
// testnet through the binary, with two lying providers. The daemons are a
// build with -tags bourse_testhooks, the only build in which
// BOURSE_TESTHOOK_LIE does anything: node1 withholds its results, node2
// commits and serves results that are not its runs'. node3 is honest.
// node0 is the client and holds its acks (hold_ack), so its results stay
// challengeable for the window (20 s here); node1 acks as every default
// node does. Jobs are placed with the testnet's node=NAME labels. node4
// asks more than any job pays, so it is never matched: it is the
// validator left to referee a replica job run on node0, node2 and node3.
func TestSettlementEndToEnd(t *testing.T) {
	needBinary(t)
	hooks := filepath.Join(filepath.Dir(binary), "bourse-testhooks")
	if _, err := os.Stat(hooks); err != nil {
		cmd := exec.Command("go", "build", "-tags", "bourse_testhooks", "-o", hooks, "./cmd/bourse")
		cmd.Dir = repoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build with test hooks: %v\n%s", err, out)
		}
	}
	dir := filepath.Join(t.TempDir(), "tn")
	bourse(t, "testnet", "gen", "-n", "5", "--dir", dir, "--base-port", strconv.Itoa(freeBase(t)))
	nw, err := testnet.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A 20 s window: long enough for node0 to verify and challenge.
	homes := []string{dir}
	for _, nd := range nw.Nodes {
		homes = append(homes, nd.Home)
	}
	for _, home := range homes {
		p := filepath.Join(home, "genesis.json")
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw = []byte(strings.Replace(string(raw), `"challenge_window_ms": 5000`, `"challenge_window_ms": 20000`, 1))
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(nw.Nodes[0].Home, "config.toml")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append([]byte("hold_ack = true\n"), raw...), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg4 := filepath.Join(nw.Nodes[4].Home, "config.toml")
	raw, err = os.ReadFile(cfg4)
	if err != nil {
		t.Fatal(err)
	}
	dear := strings.Replace(string(raw), "price_per_job = 10\n", "price_per_job = 1000000000\n", 1)
	if dear == string(raw) {
		t.Fatalf("node4's config has no price_per_job = 10 to raise:\n%s", raw)
	}
	if err := os.WriteFile(cfg4, []byte(dear), 0o600); err != nil {
		t.Fatal(err)
	}
	start := exec.Command(binary, "testnet", "start", "--dir", dir, "--binary", hooks)
	start.Env = append(os.Environ(), "BOURSE_HOME=", "BOURSE_API=", "BOURSE_PASSPHRASE=",
		"BOURSE_TESTHOOK_LIE=node1=withhold,node2=wrong")
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("testnet start: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range nw.Nodes {
				t.Logf("--- %s log tail ---\n%s", nd.Name, testnet.LogTail(nd.Home, 40))
			}
		}
		if _, errOut, err := run("testnet", "down", "--dir", dir, "--grace", "5s"); err != nil {
			t.Errorf("testnet down: %v\n%s", err, errOut)
		}
	})
	// 'testnet up' registers the providers; 'testnet start' of a fresh
	// network does not.
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	if err := testnet.RegisterProviders(rctx, nw, func(string) {}); err != nil {
		t.Fatalf("register providers: %v", err)
	}
	var cl []*api.Client
	for _, nd := range nw.Nodes {
		c, err := testnet.Client(nd)
		if err != nil {
			t.Fatal(err)
		}
		cl = append(cl, c)
	}
	spec := func(target string) string {
		raw, err := os.ReadFile(filepath.Join(helloDir, "job.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(raw), `labels: {}`, `labels: {node: `+target+`}`, 1)
		s = strings.Replace(s, "payload: hello.wasm", "payload: "+filepath.Join(helloDir, "hello.wasm"), 1)
		p := filepath.Join(t.TempDir(), target+".yaml")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// submit runs 'job submit --wait --json', which exits non-zero for a
	// job that ends unpaid (the withheld one): its JSON says what happened.
	submit := func(t *testing.T, from int, target string) api.Job {
		t.Helper()
		out, errOut, err := run("--home", nw.Nodes[from].Home, "job", "submit", spec(target), "--wait", "--json")
		var j api.Job
		if jerr := json.Unmarshal([]byte(out), &j); jerr != nil {
			t.Fatalf("job submit: %v, %v\n%s\n%s", err, jerr, out, errOut)
		}
		if (err == nil) != (j.State == api.StatePaid) {
			t.Fatalf("job submit exited %v with the job %s\n%s", err, j.State, errOut)
		}
		if j.Provider != nw.Nodes[nodeIndex(target)].Address {
			t.Fatalf("job went to %s, not %s", j.Provider, target)
		}
		return j
	}
	poll := func(t *testing.T, what string, within time.Duration, f func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			ok, state := f()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waited %s for %s: %s", within, what, state)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	match := func(c *api.Client, id string) api.Match {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, _ := c.Match(ctx, id)
		return m
	}
	job := func(c *api.Client, id string) api.Job {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		j, _ := c.Job(ctx, id)
		return j
	}

	t.Run("honest: paid once fetched and checked, the ack releases it well before the window ends", func(t *testing.T) {
		j := submit(t, 1, "node3")
		if j.State != api.StatePaid {
			t.Fatalf("job %s: %s", j.State, j.Error)
		}
		paidAt := time.Now()
		poll(t, "the ack to release the payment", 15*time.Second, func() (bool, string) {
			m := match(cl[1], j.ID)
			return m.State == "completed", m.State
		})
		if time.Since(paidAt) > 15*time.Second {
			t.Fatal("released only at the window's end")
		}
	})

	t.Run("withhold: the committee gets nothing, the provider is slashed and the client refunded", func(t *testing.T) {
		j := submit(t, 0, "node1")
		poll(t, "the availability challenge to end", time.Minute, func() (bool, string) {
			j = job(cl[0], j.ID)
			return j.State == api.StateResultUnavailable && j.Slashed > 0, fmt.Sprintf("%s %s", j.State, j.Error)
		})
		if j.Refunded != j.Escrowed || j.Paid != 0 || !strings.Contains(j.Error, "did not serve the result to the committee") {
			t.Fatalf("withheld job: %+v", j)
		}
		if m := match(cl[0], j.ID); m.State != "withheld" {
			t.Fatalf("match %s, want withheld", m.State)
		}
	})

	t.Run("wrong hash: verify --challenge sends it to referees, who slash the provider", func(t *testing.T) {
		j := submit(t, 0, "node2")
		if j.State != api.StatePaid {
			t.Fatalf("job %s: %s", j.State, j.Error)
		}
		if m := match(cl[0], j.ID); m.State != "held" {
			t.Fatalf("match %s: node0 holds its ack, want held", m.State)
		}
		out, errOut, err := run("--home", nw.Nodes[0].Home, "job", "verify", j.ID, "--challenge")
		if err != nil || !strings.Contains(out, "MISMATCH") || !strings.Contains(errOut, "challenged on chain") {
			t.Fatalf("verify --challenge: %v\n%s\n%s", err, out, errOut)
		}
		poll(t, "the referees' verdict", time.Minute, func() (bool, string) {
			j = job(cl[0], j.ID)
			return j.State == api.StateWrongResult, fmt.Sprintf("%s %s", j.State, j.Error)
		})
		if j.Refunded != j.Escrowed || j.Slashed == 0 {
			t.Fatalf("wrong-result job: %+v", j)
		}
	})

	t.Run("false challenge: referees confirm a right result, the client loses its deposit", func(t *testing.T) {
		j := submit(t, 0, "node3")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ch, err := cl[0].ChallengeJob(ctx, j.ID, "wrong")
		if err != nil || ch.Status != "committed" || ch.Deposit == 0 {
			t.Fatalf("challenge: %+v %v", ch, err)
		}
		poll(t, "the referees to release the payment", time.Minute, func() (bool, string) {
			m := match(cl[0], j.ID)
			return m.State == "completed", m.State
		})
		if j = job(cl[0], j.ID); j.State != api.StatePaid || !strings.Contains(j.Error, "deposit is lost") {
			t.Fatalf("job after a false challenge: %+v", j)
		}
	})

	t.Run("provider status and market stats count what happened", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p1, err := cl[1].ProviderStatus(ctx)
		if err != nil || p1.ChallengesLost != 1 || p1.SlashedTotal == 0 {
			t.Fatalf("node1 provider status %+v %v", p1, err)
		}
		p3, err := cl[3].ProviderStatus(ctx)
		if err != nil || p3.ChallengesWon != 1 || p3.Released == 0 {
			t.Fatalf("node3 provider status %+v %v", p3, err)
		}
		st, err := cl[0].MarketStats(ctx, 0, 0)
		if err != nil || st.ChallengesLost != 2 || st.ChallengesWon != 1 {
			t.Fatalf("market stats %+v %v", st, err)
		}
	})

	// node1's job of three replicas can only go to node0, node2 and node3
	// (never to its own offer, and node4 is too dear), so node2's wrong
	// result is one of three; the disagreement goes to the one validator
	// that is neither the client nor a replica's provider, node4, which
	// re-executes the job and votes.
	t.Run("replicas: 3 with one liar: referees slash the liar, the majority is paid, the client gets its result", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(helloDir, "job.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(raw), "payload: hello.wasm", "payload: "+filepath.Join(helloDir, "hello.wasm"), 1)
		s = strings.Replace(s, "replicas: 1", "replicas: 3", 1)
		p := filepath.Join(t.TempDir(), "replicas.yaml")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := run("--home", nw.Nodes[1].Home, "job", "submit", p, "--wait", "--json")
		var j api.Job
		if jerr := json.Unmarshal([]byte(out), &j); err != nil || jerr != nil || j.State != api.StatePaid {
			t.Fatalf("job submit: %v %v %s\n%s\n%s", err, jerr, j.State, out, errOut)
		}
		if len(j.Replicas) != 3 {
			t.Fatalf("%d replicas shown, want 3: %+v", len(j.Replicas), j)
		}
		liar := nw.Nodes[2].Address
		seen := map[string]bool{}
		var lie api.JobReplica
		for _, r := range j.Replicas {
			seen[r.Provider] = true
			if r.Provider == liar {
				lie = r
			}
		}
		if len(seen) != 3 || seen[nw.Nodes[1].Address] || lie.ID == "" {
			t.Fatalf("replicas on %v, want node0, node2 and node3", seen)
		}
		if j.Provider == liar {
			t.Fatalf("the job's result is the liar's: %+v", j)
		}
		for _, r := range j.Replicas {
			if r.Provider != liar && r.ResultHash != j.ResultHash {
				t.Fatalf("honest replica %d has %s, the job %s", r.Replica, r.ResultHash, j.ResultHash)
			}
		}
		poll(t, "the referees to slash the liar's replica", time.Minute, func() (bool, string) {
			j = job(cl[1], j.ID)
			for _, r := range j.Replicas {
				if r.Provider == liar {
					lie = r
				}
			}
			return lie.State == api.StateWrongResult && lie.Slashed > 0, fmt.Sprintf("%+v", lie)
		})
		if m := match(cl[1], lie.ID); m.State != "wrong_result" {
			t.Fatalf("the liar's match is %s, want wrong_result", m.State)
		}
		poll(t, "the majority's acks to release their payment", 30*time.Second, func() (bool, string) {
			done := 0
			for _, r := range j.Replicas {
				if r.Provider != liar && match(cl[1], r.ID).State == "completed" {
					done++
				}
			}
			return done == 2, fmt.Sprintf("%d of 2 released", done)
		})
		// The result is the majority's: 'job logs' reads it.
		out, errOut, err = run("--home", nw.Nodes[1].Home, "job", "logs", j.ID)
		if err != nil || !strings.Contains(out, "hello") {
			t.Fatalf("job logs: %v\n%s\n%s", err, out, errOut)
		}
	})
}

func nodeIndex(name string) int {
	i, _ := strconv.Atoi(strings.TrimPrefix(name, "node"))
	return i
}
