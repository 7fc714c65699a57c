package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
)

// Services through the binary on a 4-node testnet (issue 19). node0
// deploys; the three other nodes host the replicas (a provider never hosts
// its own client's replica); every node's gateway routes.

var (
	svcOnce   sync.Once
	svcModule string
	svcErr    error
)

// svcHello builds examples/svc-hello once.
func svcHello(t *testing.T) string {
	t.Helper()
	svcOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bourse-e2e-svc-")
		if err != nil {
			svcErr = err
			return
		}
		svcModule = filepath.Join(dir, "hello.wasm")
		cmd := exec.Command("go", "build", "-o", svcModule, "./examples/svc-hello")
		cmd.Dir = repoRoot()
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			svcErr = fmt.Errorf("build examples/svc-hello: %v\n%s", err, out)
		}
	})
	if svcErr != nil {
		t.Fatal(svcErr)
	}
	return svcModule
}

func writeServiceSpec(t *testing.T, name, body string) string {
	t.Helper()
	dir := t.TempDir()
	mod := svcHello(t)
	data, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.wasm"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte("kind: service\nname: "+name+"\npayload: hello.wasm\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var httpc = &http.Client{Timeout: 5 * time.Second}

// call sends GET /svc/<name>/<who> to a gateway and returns the body of a
// 200, or an error.
func call(gw, name, who string) (string, error) {
	resp, err := httpc.Get("http://" + gw + "/svc/" + name + "/" + who)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// waitProviders waits until node0's book holds offers of the three other
// nodes, so a deploy can spread its replicas.
func waitProviders(t *testing.T, n *net4, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		offers, err := n.cl[0].Offers(n.ctx(5 * time.Second))
		seen := map[string]bool{}
		for _, o := range offers {
			seen[o.Provider] = true
		}
		delete(seen, n.nw.Nodes[0].Address)
		if err == nil && len(seen) >= 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node0 sees offers of %d other providers (%v)", len(seen), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (n *net4) service(t *testing.T, name string) api.Service {
	t.Helper()
	s, err := n.cl[0].Service(n.ctx(10*time.Second), name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

// waitService polls the service until ok holds.
func (n *net4) waitService(t *testing.T, name string, within time.Duration, what string, ok func(api.Service) bool) api.Service {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := n.service(t, name)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %+v", within, what, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func nodeOf(n *net4, addr string) int {
	for i, nd := range n.nw.Nodes {
		if nd.Address == addr {
			return i
		}
	}
	return -1
}

func TestServiceEndToEnd(t *testing.T) {
	needBinary(t)
	n := up(t)
	owner := n.nw.Nodes[0]
	waitProviders(t, n, 30*time.Second)
	spec := writeServiceSpec(t, "hello", "replicas: {min: 1, max: 4, initial: 3}\nresources: {cpu: 500, memory: 128}\n"+
		"price_per_period: 5000\nperiod: 2s\nduration: 2m\nelastic: false\n")
	var svc api.Service
	if err := json.Unmarshal([]byte(bourse(t, "--home", owner.Home, "service", "deploy", spec, "--json")), &svc); err != nil {
		t.Fatal(err)
	}
	budget := svc.Budget
	if svc.Replicas != 3 || budget == 0 {
		t.Fatalf("deployed %+v", svc)
	}

	t.Run("three replicas answer through every node's gateway", func(t *testing.T) {
		svc = n.waitService(t, "hello", 30*time.Second, "three active leases", func(s api.Service) bool { return s.Active == 3 })
		for i, nd := range n.nw.Nodes {
			deadline := time.Now().Add(60 * time.Second)
			for {
				body, err := call(nd.Gateway, "hello", fmt.Sprintf("node%d", i))
				if err == nil {
					if want := fmt.Sprintf("hello, node%d!\n", i); body != want {
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
		// Every replica answers through the owner's gateway before one is
		// killed: a replica still starting is under the owner's start
		// grace (60s), which would hide what the next subtest checks.
		deadline := time.Now().Add(60 * time.Second)
		for {
			for range 20 {
				_, _ = call(owner.Gateway, "hello", "warm") // counted in the stats below
			}
			var st api.ServiceStats
			if err := json.Unmarshal([]byte(bourse(t, "--home", owner.Home, "service", "stats", "hello", "--json")), &st); err != nil {
				t.Fatal(err)
			}
			answered := 0
			for _, r := range st.Replicas {
				if r.Active && r.Requests > r.Errors {
					answered++
				}
			}
			if answered == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not every replica answered through the owner's gateway in 60s: %+v", st.Replicas)
			}
			time.Sleep(250 * time.Millisecond)
		}
		// A request for a service nobody deployed gets a clear 404.
		if _, err := call(owner.Gateway, "nosuch", "x"); err == nil || !strings.HasPrefix(err.Error(), "404") {
			t.Fatalf("unknown service: %v, want a 404", err)
		}
	})

	t.Run("kill a provider: requests fail over in seconds, the chain places a replacement", func(t *testing.T) {
		victim := -1
		var victimLease string
		for _, l := range svc.Leases {
			if i := nodeOf(n, l.Provider); l.Status == "active" && i > 0 {
				victim, victimLease = i, l.ID
				break
			}
		}
		if victim < 0 {
			t.Fatalf("no active lease on a killable provider: %+v", svc.Leases)
		}
		// Traffic through node0's gateway all along: the gateway fails
		// over, and the owner's node sees the replica fail.
		var ok, failed atomic.Int64
		var lastFail atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := call(owner.Gateway, "hello", "load"); err != nil {
					failed.Add(1)
					lastFail.Store(time.Now().UnixNano())
				} else {
					ok.Add(1)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		defer func() { cancel(); wg.Wait() }()
		killed := time.Now()
		bourse(t, "testnet", "down", "--dir", n.dir, "--node", n.nw.Nodes[victim].Name, "--kill")
		// Fail-over: from a few seconds after the kill on, every request
		// answers (20 in a row).
		deadline := killed.Add(15 * time.Second)
		for {
			before := ok.Load()
			time.Sleep(time.Second)
			if ok.Load()-before >= 10 && time.Unix(0, lastFail.Load()).Before(time.Now().Add(-time.Second)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no steady answers 15s after the kill: %d ok, %d failed", ok.Load(), failed.Load())
			}
		}
		t.Logf("fail-over: steady answers %s after the kill (%d requests failed meanwhile)", time.Since(killed).Round(100*time.Millisecond), failed.Load())
		// The owner reports the replica down; the next proposer places a
		// replacement on a live provider.
		svc = n.waitService(t, "hello", 45*time.Second, "the killed replica replaced", func(s api.Service) bool {
			down, live := false, 0
			for _, l := range s.Leases {
				if l.ID == victimLease && l.Status != "active" {
					down = l.EndReason == "down" || l.EndReason == "left"
				}
				if l.Status == "active" && nodeOf(n, l.Provider) != victim {
					live++
				}
			}
			return down && live == 3
		})
		t.Logf("replacement placed %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	})

	t.Run("close pays providers to the period and refunds the rest; conservation holds", func(t *testing.T) {
		var closed api.Service
		if err := json.Unmarshal([]byte(bourse(t, "--home", owner.Home, "service", "close", "hello", "--json")), &closed); err != nil {
			t.Fatal(err)
		}
		if closed.Status != "closed" || closed.Active != 0 || closed.Budget != 0 {
			t.Fatalf("closed: %+v", closed)
		}
		for _, l := range closed.Leases {
			if l.EndReason == "closed" && (l.Status != "settled" || l.PaidPeriods != l.Funded || l.Paid != l.Funded*l.Price) {
				t.Fatalf("a lease the close ended is not paid its funded periods: %+v", l)
			}
		}
		// The leases that ended earlier settle after their claim window;
		// then every unit of the budget is paid or refunded.
		final := n.waitService(t, "hello", 30*time.Second, "every lease settled", func(s api.Service) bool {
			for _, l := range s.Leases {
				if l.Status != "settled" {
					return false
				}
			}
			return true
		})
		var paid, refunded uint64
		for _, l := range final.Leases {
			paid += l.Paid
			refunded += l.Refunded
		}
		if final.Paid != paid || final.Paid+final.Refunded != budget {
			t.Fatalf("budget %d: paid %d (leases %d) + refunded %d (leases %d)", budget, final.Paid, paid, final.Refunded, refunded)
		}
		t.Logf("budget %d: %d paid to providers over %d leases, %d refunded", budget, final.Paid, len(final.Leases), final.Refunded)
		// Every node checks the chain's invariants after every block and
		// halts at the first violation: the live ones still advance.
		live := []int{}
		for i := range n.nw.Nodes {
			if _, ok := n.height(i); ok {
				live = append(live, i)
			}
		}
		n.waitHeight(n.maxHeight(live...)+2, 20*time.Second, live...)
	})
}

// TestServiceLoadStepScalesUpAndDown: a load step on an elastic service
// makes the owner's node scale it up (a ServiceScale on chain), and back
// down when the load stops.
func TestServiceLoadStepScalesUpAndDown(t *testing.T) {
	needBinary(t)
	n := up(t)
	owner := n.nw.Nodes[0]
	waitProviders(t, n, 30*time.Second)
	spec := writeServiceSpec(t, "elastic", "replicas: {min: 1, max: 3, initial: 1}\nresources: {cpu: 500, memory: 128}\n"+
		"price_per_period: 5000\nperiod: 2s\nduration: 5m\n")
	bourse(t, "--home", owner.Home, "service", "deploy", spec)
	n.waitService(t, "elastic", 30*time.Second, "one active lease", func(s api.Service) bool { return s.Active == 1 })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := call(owner.Gateway, "elastic", "x"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the elastic service never answered")
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The step: 32 clients at once through the owner's gateway.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				call(owner.Gateway, "elastic", "load")
			}
		}()
	}
	n.waitService(t, "elastic", 60*time.Second, "a scale up under load", func(s api.Service) bool { return s.Replicas >= 2 && s.Active >= 2 })
	cancel()
	wg.Wait()
	n.waitService(t, "elastic", 90*time.Second, "the scale back down", func(s api.Service) bool { return s.Replicas == 1 && s.Active == 1 })
}
