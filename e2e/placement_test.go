//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/testnet/netns"
)

// placementNet is five daemons in two regions over real packets: node0
// (a client, no capacity) and providers node1 and node2 in region "a";
// providers node3 and node4 in region "b", 100 ms further away: netem
// where the kernel has it, else their incoming packets wait in an NFQUEUE
// (netns.Delay). The "a" providers sell one
// core each, the "b" ones four.
type placementNet struct {
	*nsNet
	delayed bool
	region  map[string]string // provider address → region
	name    map[string]string // provider address → node name
	spec    api.JobSpec
	payload []byte
}

// placementDelay is how much further region b is: between continents,
// and well above what a loaded 2-core machine adds to a round trip
// (measured up to 25 ms while the jobs run).
const placementDelay = 100 * time.Millisecond

func placementUp(t *testing.T) *placementNet {
	t.Helper()
	regions := []string{"a", "a", "a", "b", "b"}
	p := &placementNet{region: map[string]string{}, name: map[string]string{}}
	c := nsUpFaults(t, 5, func(i int, cfg *node.Config) {
		cfg.Provider.Enabled = i > 0
		cfg.Provider.Region = regions[i]
		cfg.Provider.CPU = 1000
		if regions[i] == "b" {
			cfg.Provider.CPU = 4000
		}
		cfg.P2P.PingInterval = p2p.Duration(time.Second) // measure round trips soon
	}, func(c *nsNet) {
		// Region b is far from the first packet on, so the first round
		// trip node0 measures to it already says so.
		ctx := ctxFor(t, 30*time.Second)
		for _, i := range []int{3, 4} {
			err := c.nt.Delay(ctx, i, placementDelay, 0)
			if errors.Is(err, netns.ErrNoNetem) {
				c.note("no netem and no NFQUEUE in this kernel: region b is not delayed; placement follows the spec's region weights")
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p.delayed = true
			c.note("node%d (region b): every round trip with it is %s longer (%s)", i, placementDelay, c.nt.Describe())
		}
	})
	p.nsNet = c
	for i, nd := range c.nw.Nodes {
		p.region[nd.Address], p.name[nd.Address] = regions[i], nd.Name
	}
	ctx := ctxFor(t, 30*time.Second)
	c.registerProviders(1, 2, 3, 4)
	p.spec, p.payload = primesJob(t)
	if p.delayed {
		p.spec.Placement = api.PlaceNearest
	} else {
		p.spec.Placement = api.PlaceBalanced
	}
	// Let node0 hear every offer and ping every provider.
	deadline := time.Now().Add(30 * time.Second)
	for {
		offers, err := c.cl[0].Offers(ctx)
		if err == nil && len(offers) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node0 sees %d offers (%v), want 4", len(offers), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // two ping rounds; no assertion rides on it
	return p
}

// primesJob is examples/primes, built for wasm, counting primes below
// 200,000 (a second or so; more on a loaded machine: long enough to hold its provider's core while
// the next bids are placed), one core, regions a (weight 3) and b (1).
func primesJob(t *testing.T) (api.JobSpec, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "primes.wasm")
	cmd := exec.Command("go", "build", "-o", out, "./examples/primes")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build examples/primes: %v\n%s", err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	spec := api.JobSpec{
		Name: "primes", Executor: api.ExecutorWASM, Payload: "primes.wasm", Args: []string{"200000"},
		Resources: api.Resources{CPU: 1000, Memory: 64, Disk: 1}, MaxPrice: 5_000_000,
		Timeout: api.Duration{Duration: 2 * time.Minute}, Deadline: api.Duration{Duration: 60 * time.Second},
		Constraints: api.Constraints{Regions: map[string]uint32{"a": 3, "b": 1}},
	}
	return spec.WithDefaults(), wasm
}

// burst submits n jobs from node0 at once and waits for them all to end;
// it returns the finished jobs and their submit-to-paid latencies.
func (p *placementNet) burst(t *testing.T, n int) ([]api.Job, []time.Duration) {
	t.Helper()
	ctx := ctxFor(t, 3*time.Minute)
	jobs := make([]api.Job, n)
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			start := time.Now()
			j, err := p.cl[0].SubmitJobBytes(ctx, p.spec, p.payload)
			for err == nil && !api.Terminal(j.State) {
				time.Sleep(100 * time.Millisecond)
				j, err = p.cl[0].Job(ctx, j.ID)
			}
			jobs[k], lat[k], errs[k] = j, time.Since(start), err
		})
	}
	wg.Wait()
	for k, j := range jobs {
		if errs[k] != nil || j.State != api.StatePaid {
			t.Fatalf("job %d: %s %s (%v)", k, j.State, j.Error, errs[k])
		}
	}
	return jobs, lat
}

func (p *placementNet) byRegion(jobs []api.Job) map[string]int {
	out := map[string]int{}
	for _, j := range jobs {
		out[p.region[j.Provider]]++
	}
	return out
}

// report logs each provider's share, its clients' round trip as the chain
// learnt it from the signed bids, and its learnt cost.
func (p *placementNet) report(t *testing.T, lat []time.Duration) {
	t.Helper()
	st, err := p.cl[0].MarketStats(ctxFor(t, 30*time.Second), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(st.Providers, func(i, j int) bool { return p.name[st.Providers[i].Address] < p.name[st.Providers[j].Address] })
	for _, ps := range st.Providers {
		rtt, cost := "-", "-"
		if ps.Performance != nil {
			rtt, cost = fmt.Sprintf("%d ms", ps.Performance.ClientRTTMs), fmt.Sprintf("%.1f%%", 100*ps.Performance.Cost)
		}
		t.Logf("%s (region %s): %d jobs (%.0f%%), clients' RTT %s, reputation %d, learnt cost %s",
			p.name[ps.Address], p.region[ps.Address], ps.Matches, 100*ps.Share, rtt, ps.Reputation, cost)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		t.Logf("submit-to-paid latency over %d jobs: p50 %s, max %s", len(lat), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}
}

// TestPlacementByRegionOverRealPackets: jobs from region a land on a's
// providers while they fit, and spill to region b when a is full. With a
// delay (netem or NFQUEUE), b is 100 ms away and the placement is nearest,
// ranked by the round trips node0 measured and signed into its bids;
// without one (a kernel with neither) every link is equally near, and the
// balanced placement follows the spec's region weights (a: 3, b: 1).
func TestPlacementByRegionOverRealPackets(t *testing.T) {
	p := placementUp(t)
	// Fit: two one-core jobs, one per "a" provider.
	fit, lat1 := p.burst(t, 2)
	if got := p.byRegion(fit); got["a"] != 2 {
		t.Fatalf("two jobs that fit in region a went %v", got)
	}
	p.note("fit: 2 jobs, both in region a")
	// Spill: four at once, region a holds two at a time.
	spill, lat2 := p.burst(t, 4)
	got := p.byRegion(spill)
	if got["b"] == 0 || got["a"] == 0 {
		t.Fatalf("four jobs at once went %v: want a full, the rest in b", got)
	}
	p.note("spill: 4 jobs at once: %d in region a, %d in region b", got["a"], got["b"])
	p.report(t, append(lat1, lat2...))
	if p.delayed {
		st, err := p.cl[0].MarketStats(ctxFor(t, 30*time.Second), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, ps := range st.Providers {
			if ps.Performance == nil || ps.Performance.ClientRTTMs == 0 {
				continue
			}
			if far := p.region[ps.Address] == "b"; far != (time.Duration(ps.Performance.ClientRTTMs)*time.Millisecond >= placementDelay) {
				t.Errorf("%s in region %s: clients reported %d ms", p.name[ps.Address], p.region[ps.Address], ps.Performance.ClientRTTMs)
			}
		}
	}
}

// shares runs bursts of n jobs and returns each provider's jobs.
func (p *placementNet) shares(t *testing.T, bursts, n int) (map[string]int, []time.Duration) {
	t.Helper()
	got := map[string]int{}
	var lat []time.Duration
	for range bursts {
		jobs, l := p.burst(t, n)
		for _, j := range jobs {
			got[p.name[j.Provider]]++
		}
		lat = append(lat, l...)
	}
	return got, lat
}

// TestLongPlacementDegradedProviderLosesShare (BOURSE_LONG=1): the
// network of TestPlacementByRegionOverRealPackets, jobs placed balanced
// with no region preference. A baseline of bursts; then the region-b
// provider that took more of them loses half its packets, so the jobs it takes are not paid (they time
// out after the 1 min timeout and the chain's result grace, or end with
// the payload unavailable); healed, it is a provider with a bad record:
// its learnt cost and reputation say so, and its share of the next
// bursts falls. Shares, RTTs and costs are logged per phase.
func TestLongPlacementDegradedProviderLosesShare(t *testing.T) {
	if os.Getenv("BOURSE_LONG") == "" {
		t.Skip("long placement run: set BOURSE_LONG=1 (make test-long)")
	}
	p := placementUp(t)
	p.spec.Constraints = api.Constraints{}
	p.spec.Placement = api.PlaceBalanced
	p.spec.Timeout = api.Duration{Duration: time.Minute}
	base, lat := p.shares(t, 3, 4)
	p.note("baseline, 3 bursts of 4: %v", base)
	p.report(t, lat)
	// Degrade the region-b provider that took more of the baseline: the
	// other one, further in the ranking, might take no job while its
	// packets are lost.
	degraded := 3
	if base[p.nw.Nodes[4].Name] > base[p.nw.Nodes[3].Name] {
		degraded = 4
	}
	victim := p.nw.Nodes[degraded].Name

	// Degrade it: half its packets lost, both ways. Its offers still
	// get through now and then, so it still takes jobs, but fetching a
	// payload and committing a result over such a link runs past the
	// timeout (or ends unavailable): those jobs are not paid.
	ctx := ctxFor(t, 10*time.Minute)
	p.lossy(degraded, 0.5)
	bad := map[string]int{}
	for attempt := 0; attempt < 4 && bad[victim] == 0; attempt++ {
		// Eight at once: region a holds two, so both b providers take some.
		jobs := make([]api.Job, 8)
		var wg sync.WaitGroup
		for k := range jobs {
			wg.Go(func() {
				j, err := p.cl[0].SubmitJobBytes(ctx, p.spec, p.payload)
				for err == nil && !api.Terminal(j.State) {
					time.Sleep(200 * time.Millisecond)
					j, err = p.cl[0].Job(ctx, j.ID)
				}
				jobs[k] = j
			})
		}
		wg.Wait()
		for _, j := range jobs {
			if j.State != api.StatePaid {
				bad[p.name[j.Provider]]++
			}
		}
		by := map[string]int{}
		for _, j := range jobs {
			by[p.name[j.Provider]]++
		}
		p.note("degraded burst %d: %v; not paid by provider %v", attempt, by, bad)
	}
	if bad[victim] == 0 {
		t.Fatalf("no job on the degraded %s went unpaid", victim)
	}
	timedOut := bad[victim]
	p.lossy(degraded, 0) // region b stays 100 ms away
	p.waitHeight(p.maxHeight(p.all()...)+2, 2*time.Minute, p.all()...)
	p.note("%s healed after %d of its jobs went unpaid", victim, timedOut)
	p.report(t, nil)

	after, lat := p.shares(t, 3, 4)
	p.note("after the timeouts, 3 bursts of 4: %v", after)
	p.report(t, lat)
	if after[victim] >= base[victim] {
		t.Fatalf("%s took %d of 12 jobs before its timeouts and %d after: its share did not fall", victim, base[victim], after[victim])
	}
	later, lat := p.shares(t, 3, 4)
	p.note("later, 3 more bursts of 4: %v", later)
	p.report(t, lat)
}
