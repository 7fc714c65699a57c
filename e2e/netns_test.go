//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/testnet"
	"github.com/bourse-net/bourse/testnet/netns"
)

// nsNet is a testnet whose daemons each run in their own network
// namespace (testnet/netns), talking over a bridge the test can cut.
// The test reaches each daemon's loopback API from inside its namespace.
type nsNet struct {
	t      *testing.T
	nt     *netns.Net
	nw     *testnet.Network
	cl     []*api.Client
	supply uint64 // minted at genesis

	mu    sync.Mutex
	procs []*nsProc // nil: not running
	log   []string  // faults injected, in order
}

type nsProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// nsUp starts n daemons, one per namespace (those in behindNAT behind a
// NAT router each), and waits for the first blocks. Namespaces, daemons and their homes go when the test ends.
func nsUp(t *testing.T, n int, behindNAT ...int) *nsNet {
	t.Helper()
	return nsUpWith(t, n, nil, behindNAT...)
}

// nsUpWith is nsUp with edit applied to every node's config first.
func nsUpWith(t *testing.T, n int, edit func(i int, cfg *node.Config), behindNAT ...int) *nsNet {
	t.Helper()
	return nsUpFaults(t, n, edit, nil, behindNAT...)
}

// nsUpFaults is nsUpWith with faults injected before any daemon starts
// (a delay in force from the first packet, so the first measured round
// trip already shows it).
func nsUpFaults(t *testing.T, n int, edit func(i int, cfg *node.Config), faults func(c *nsNet), behindNAT ...int) *nsNet {
	t.Helper()
	needBinary(t)
	if err := netns.Available(); err != nil {
		t.Skip("namespace testnet:", err)
	}
	if removed, err := netns.Sweep(); err != nil || len(removed) > 0 {
		t.Logf("swept namespaces of dead runs: %v %v", removed, err)
	}
	nt, err := netns.New(context.Background(), n, behindNAT...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("network %s", nt.ID)
	c := &nsNet{t: t, nt: nt, procs: make([]*nsProc, n)}
	t.Cleanup(func() {
		if err := nt.Close(); err != nil {
			t.Error(err)
		}
	})
	dir := filepath.Join(t.TempDir(), "tn")
	o := testnet.Options{Dir: dir, N: n, APIBasePort: testnet.DefaultAPIBasePort, SkipPortCheck: true}
	nw, err := testnet.Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	c.nw = nw
	c.supply = uint64(n) * (testnet.DefaultBalance + testnet.DefaultStake)
	if err := netns.Place(nw, nt.Hosts(), netns.DefaultP2PPort); err != nil {
		t.Fatal(err)
	}
	for i, nd := range nw.Nodes {
		if edit == nil {
			break
		}
		path := filepath.Join(nd.Home, node.ConfigFile)
		cfg, err := node.LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		edit(i, &cfg)
		if err := os.WriteFile(path, node.RenderConfig(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, nd := range nw.Nodes {
		tok, err := node.ReadAPIToken(nd.Home)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := api.NewClient(nd.API, tok, nt.HTTPClient(i, 20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		c.cl = append(c.cl, cl)
	}
	t.Cleanup(func() { // before the namespaces go (cleanups run last first)
		c.stopAll()
		if t.Failed() {
			for _, nd := range nw.Nodes {
				t.Logf("--- %s log tail ---\n%s", nd.Name, testnet.LogTail(nd.Home, 30))
			}
		}
	})
	if faults != nil {
		faults(c)
	}
	for i := range n {
		c.start(i)
	}
	c.waitHeight(2, 60*time.Second, c.all()...)
	return c
}

func (c *nsNet) all() []int {
	idx := make([]int, len(c.nw.Nodes))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func (c *nsNet) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.log = append(c.log, msg)
	c.mu.Unlock()
	c.t.Logf("%s: %s", time.Now().Format("15:04:05.000"), msg)
}

// start runs node i's daemon in its namespace.
func (c *nsNet) start(i int) {
	c.t.Helper()
	nd := c.nw.Nodes[i]
	out, err := os.OpenFile(filepath.Join(nd.Home, testnet.DaemonOutFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	os.Remove(filepath.Join(nd.Home, node.PIDFile)) // left by a kill -9
	cmd := c.nt.Command(i, binary, "daemon", "--home", nd.Home, "--passphrase-file", filepath.Join(nd.Home, testnet.PassphraseFile))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "BOURSE_HOME=", "BOURSE_API=", "BOURSE_PASSPHRASE=", "BOURSE_API_TOKEN=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		c.t.Fatalf("start %s: %v", nd.Name, err)
	}
	p := &nsProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		out.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
}

// kill sends sig to node i's daemon and waits for it to exit (SIGKILL
// after 10 s).
func (c *nsNet) kill(i int, sig syscall.Signal) {
	c.mu.Lock()
	p := c.procs[i]
	c.procs[i] = nil
	c.mu.Unlock()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (c *nsNet) running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i] != nil
}

func (c *nsNet) stopAll() {
	var wg sync.WaitGroup
	for i := range c.procs {
		wg.Go(func() { c.kill(i, syscall.SIGTERM) })
	}
	wg.Wait()
}

// exited names a daemon that died on its own (a halt on a broken
// invariant, a panic), or "".
func (c *nsNet) exited() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.procs {
		if p == nil {
			continue
		}
		select {
		case <-p.done:
			return c.nw.Nodes[i].Name + " exited on its own:\n" + testnet.LogTail(c.nw.Nodes[i].Home, 30)
		default:
		}
	}
	return ""
}

func (c *nsNet) status(i int) (api.Status, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := c.cl[i].Status(ctx)
	return st, err == nil
}

func (c *nsNet) height(i int) (uint64, bool) {
	st, ok := c.status(i)
	return st.Height, ok
}

func (c *nsNet) maxHeight(idx ...int) uint64 {
	var m uint64
	for _, i := range idx {
		if h, ok := c.height(i); ok {
			m = max(m, h)
		}
	}
	return m
}

// waitHeight polls until every node in idx reaches h.
func (c *nsNet) waitHeight(h uint64, within time.Duration, idx ...int) {
	c.t.Helper()
	if err := c.tryWaitHeight(h, within, idx...); err != nil {
		c.t.Fatal(err)
	}
}

func (c *nsNet) tryWaitHeight(h uint64, within time.Duration, idx ...int) error {
	deadline := time.Now().Add(within)
	for {
		if msg := c.exited(); msg != "" {
			return errors.New(msg)
		}
		var lag []string
		for _, i := range idx {
			if got, ok := c.height(i); !ok || got < h {
				lag = append(lag, fmt.Sprintf("node%d at %d (up %v)", i, got, ok))
			}
		}
		if len(lag) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %s for height %d: %v (faults: %s)", within, h, lag, c.nt.Describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStill waits until the heights of idx have not moved for quiet
// (within a minute) and returns the highest.
func (c *nsNet) waitStill(quiet time.Duration, idx ...int) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	last, since := c.maxHeight(idx...), time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			c.t.Fatalf("heights of %v still move (at %d) under %s", idx, last, c.nt.Describe())
		}
		time.Sleep(100 * time.Millisecond)
		if h := c.maxHeight(idx...); h != last {
			last, since = h, time.Now()
		}
	}
	return last
}

// proposer is the index of the node that proposed the latest block.
func (c *nsNet) proposer() int {
	c.t.Helper()
	for _, i := range c.all() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		b, err := c.cl[i].LatestBlock(ctx)
		cancel()
		if err != nil {
			continue
		}
		for j, nd := range c.nw.Nodes {
			if nd.Address == b.Proposer {
				return j
			}
		}
		c.t.Fatalf("block %d proposed by %s, not a node of the testnet", b.Height, b.Proposer)
	}
	c.t.Fatal("no node answers for its latest block")
	return -1
}

// heal removes every fault, restarts stopped daemons and waits until
// every node is past the height the most advanced one had.
func (c *nsNet) heal(within time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.nt.Heal(ctx); err != nil {
		c.t.Fatal(err)
	}
	for i := range c.procs {
		if !c.running(i) {
			c.start(i)
			c.note("restart node%d", i)
		}
	}
	target := c.maxHeight(c.all()...) + 2
	c.note("heal; every node must reach height %d", target)
	c.waitHeight(target, within, c.all()...)
}

// registerProviders registers the nodes idx (none: all) as providers and
// waits until the chain has them.
func (c *nsNet) registerProviders(idx ...int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if len(idx) == 0 {
		idx = c.all()
	}
	for _, i := range idx {
		cl := c.cl[i]
		res, err := cl.ProviderRegister(ctx, testnet.DefaultCollateral)
		if err != nil || res.Status == "rejected" || res.Status == "failed" {
			c.t.Fatalf("register node%d as a provider: %+v %v", i, res, err)
		}
	}
	for _, i := range idx {
		cl := c.cl[i]
		for {
			ps, err := cl.ProviderStatus(ctx)
			if err == nil && ps.Registered {
				break
			}
			if ctx.Err() != nil {
				c.t.Fatalf("node%d not registered as a provider: %v", i, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// --- the workload -------------------------------------------------------

// txRecord is what the API answered to one transfer.
type txRecord struct {
	node   int
	hash   string
	status string // committed, failed, pending; "" when the call failed
	height uint64
	err    string
}

type jobRecord struct {
	node int
	id   string
}

// workload sends transfers from every node to random others, and jobs
// when asked, recording every answer.
type workload struct {
	c    *nsNet
	spec api.JobSpec
	wasm []byte

	mu   sync.Mutex
	txs  []txRecord
	jobs []jobRecord
	jerr []string // submissions the API refused or that failed in transit

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *nsNet) startWorkload(seed uint64) *workload {
	c.t.Helper()
	raw, err := os.ReadFile(filepath.Join(helloDir, "job.yaml"))
	if err != nil {
		c.t.Fatal(err)
	}
	spec, err := api.ParseJobSpec(raw)
	if err != nil {
		c.t.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join(helloDir, "hello.wasm"))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{c: c, spec: spec, wasm: wasm, cancel: cancel}
	for i := range c.cl {
		r := rand.New(rand.NewPCG(seed, uint64(100+i)))
		w.wg.Go(func() { w.transfers(ctx, i, r) })
	}
	return w
}

func (w *workload) transfers(ctx context.Context, from int, r *rand.Rand) {
	n := len(w.c.nw.Nodes)
	for ctx.Err() == nil {
		to := (from + 1 + r.IntN(n-1)) % n
		amount := 1 + r.Uint64N(1000)
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		res, err := w.c.cl[from].Send(sctx, w.c.nw.Nodes[to].Address, amount)
		cancel()
		if ctx.Err() != nil && err != nil {
			return // cancelled mid-call: the answer says nothing
		}
		rec := txRecord{node: from, hash: res.Hash, status: res.Status, height: res.Height}
		if err != nil {
			rec.status, rec.err = "", err.Error()
		}
		w.mu.Lock()
		w.txs = append(w.txs, rec)
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50+r.IntN(250)) * time.Millisecond):
		}
	}
}

// submitJob submits the hello job on node i (in the background: the
// submission itself may hang under faults).
func (w *workload) submitJob(i int) {
	w.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		j, err := w.c.cl[i].SubmitJobBytes(ctx, w.spec, w.wasm)
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.jerr = append(w.jerr, fmt.Sprintf("node%d: %v", i, err))
			return
		}
		w.jobs = append(w.jobs, jobRecord{node: i, id: j.ID})
	})
}

// stop ends the transfers and waits for the calls in flight.
func (w *workload) stop() {
	w.cancel()
	w.wg.Wait()
}

// --- the checker --------------------------------------------------------

// check proves, once every fault is healed: every node caught up and holds
// the same block at every height (no fork); every transfer the API said
// committed is in a block exactly once, at the height it said, and no
// transaction is in two blocks; every job reached a final state; and,
// with the daemons stopped, every node's state passes
// chain.CheckInvariants (balances + bonded + unbonding + escrow +
// collateral + burned = supply) with the genesis supply and no escrow
// left.
func (c *nsNet) check(w *workload) {
	c.t.Helper()
	c.heal(2 * time.Minute)
	w.stop()

	// Jobs: every one the nodes know of (including any whose submission
	// the test saw fail in transit) final, and every recorded one known.
	states := map[string]int{}
	deadline := time.Now().Add(3 * time.Minute)
	known := map[string]bool{}
	for i, cl := range c.cl {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			jobs, err := cl.Jobs(ctx, api.JobFilter{Limit: 1000})
			cancel()
			var open []string
			for _, job := range jobs {
				if !api.Terminal(job.State) {
					open = append(open, job.ID+" "+job.State)
				}
			}
			if err == nil && len(open) == 0 {
				for _, job := range jobs {
					known[job.ID] = true
					states[job.State]++
					if job.State == api.StatePaid && job.Paid+job.Refunded != job.Escrowed {
						c.t.Errorf("job %s: paid %d + refunded %d != escrowed %d", job.ID, job.Paid, job.Refunded, job.Escrowed)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("node%d: jobs never reached a final state: %v %v", i, open, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	for _, j := range w.jobs {
		if !known[j.id] {
			c.t.Errorf("job %s submitted on node%d is not listed there", j.id, j.node)
		}
	}
	// Settlements of the last jobs land in blocks: a held payment is
	// released by its client's ack or, at the latest, by the end of its
	// challenge window (chain/settle.go). Wait until no match holds
	// escrow, then let every node pass that height.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(250 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ms, err := c.cl[0].Matches(ctx, api.MatchFilter{Limit: 1000})
		cancel()
		var unsettled []string
		for _, m := range ms {
			if m.State == "open" || m.State == "held" || m.State == "challenged" {
				unsettled = append(unsettled, m.ID[:8]+" "+m.State)
			}
		}
		if err == nil && len(unsettled) == 0 {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("matches still hold escrow: %v %v", unsettled, err)
		}
	}
	c.waitHeight(c.maxHeight(c.all()...)+2, time.Minute, c.all()...)

	// No fork: one hash per height on every node, and where each tx is.
	low := uint64(1 << 62)
	for i := range c.cl {
		h, ok := c.height(i)
		if !ok {
			c.t.Fatalf("node%d does not answer", i)
		}
		low = min(low, h)
	}
	hashes := make([][]string, len(c.cl))
	where := map[string][]uint64{} // tx hash → heights holding it (node0's chain)
	var wg sync.WaitGroup
	errs := make([]error, len(c.cl))
	for i := range c.cl {
		hashes[i] = make([]string, low+1)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			for h := uint64(1); h <= low; h++ {
				b, err := c.cl[i].Block(ctx, h)
				if err != nil {
					errs[i] = fmt.Errorf("node%d block %d: %w", i, h, err)
					return
				}
				hashes[i][h] = b.Hash
				if i == 0 {
					for _, tx := range b.Txs {
						where[tx.Hash] = append(where[tx.Hash], h)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Fatal(err)
	}
	for h := uint64(1); h <= low; h++ {
		for i := 1; i < len(c.cl); i++ {
			if hashes[i][h] != hashes[0][h] {
				c.t.Fatalf("FORK at height %d: node0 has %s, node%d has %s", h, hashes[0][h], i, hashes[i][h])
			}
		}
	}
	var anomalies []string
	for hash, hs := range where {
		if len(hs) > 1 {
			anomalies = append(anomalies, fmt.Sprintf("tx %s in blocks %v", hash, hs))
		}
	}
	counts := map[string]int{}
	for _, tx := range w.txs {
		s := tx.status
		if s == "" {
			s = "no answer"
		}
		counts[s]++
		hs := where[tx.hash]
		switch tx.status {
		case "committed", "failed":
			if tx.height > low {
				continue // committed above the checked range (cannot happen after the final wait)
			}
			if len(hs) != 1 || hs[0] != tx.height {
				anomalies = append(anomalies, fmt.Sprintf("node%d's transfer %s reported %s at height %d is in blocks %v", tx.node, tx.hash, tx.status, tx.height, hs))
			}
		case "pending":
			if len(hs) == 1 {
				counts["pending, later committed"]++
			}
		}
	}
	for _, a := range anomalies {
		c.t.Error("ANOMALY: " + a)
	}

	// The state of every node, read from its store with the daemon stopped.
	c.stopAll()
	var heights []string
	for i, nd := range c.nw.Nodes {
		st, h := c.offlineState(nd)
		g := st.Globals()
		if err := chain.CheckInvariants(st); err != nil {
			c.t.Errorf("node%d at height %d: %v", i, h, err)
		}
		if g.Supply != c.supply {
			c.t.Errorf("node%d: supply %d, genesis minted %d", i, g.Supply, c.supply)
		}
		if g.Escrow != 0 {
			c.t.Errorf("node%d: %d still in escrow with every job final", i, g.Escrow)
		}
		heights = append(heights, strconv.FormatUint(h, 10))
	}
	c.mu.Lock()
	faults := len(c.log)
	c.mu.Unlock()
	c.t.Logf("checked: %d fault steps; %d transfers %v; %d jobs submitted, final states %v (%d submissions failed: %v); %d heights compared on %d nodes (final heights %s); %d anomalies",
		faults, len(w.txs), counts, len(w.jobs), states, len(w.jerr), firstN(w.jerr, 3), low, len(c.cl), strings.Join(heights, ","), len(anomalies))
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

// offlineState opens a stopped node's chain store and loads its state.
// The store stays open until the test ends: the state reads settled
// matches from it.
func (c *nsNet) offlineState(nd testnet.Node) (*chain.State, uint64) {
	c.t.Helper()
	db, err := store.Open(filepath.Join(nd.Home, node.DataDir))
	if err != nil {
		c.t.Fatalf("%s: %v", nd.Name, err)
	}
	c.t.Cleanup(func() { db.Close() })
	st, err := db.LoadState(context.Background())
	if err != nil {
		c.t.Fatalf("%s: load state: %v", nd.Name, err)
	}
	return st, db.Height()
}

// others are the nodes not in idx.
func (c *nsNet) others(idx ...int) []int {
	var out []int
	for _, i := range c.all() {
		if !slices.Contains(idx, i) {
			out = append(out, i)
		}
	}
	return out
}
