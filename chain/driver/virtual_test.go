package driver

import (
	"runtime"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/internal/clock"
)

// virtual puts the cluster on a Manual clock, reading the wall time (so
// after the genesis), before its nodes start.
func (c *cluster) virtual() *clock.Manual {
	m := clock.NewManual(time.Now())
	c.clk = m
	return m
}

// wallBound bounds a virtual run in real time: only a broken run meets it.
const wallBound = 60 * time.Second

// until runs the cluster until cond holds, failing after within of the
// cluster's time. On the real clock it polls. On a Manual clock it waits
// until every running driver is idle (Driver.busy), checks cond, and moves
// the clock to the next pending timer: no timeout is waited out, and time
// moves only when nothing is left to do before it.
func (c *cluster) until(what string, within time.Duration, cond func() bool) {
	c.t.Helper()
	m, virtual := c.clk.(*clock.Manual)
	if !virtual {
		for deadline := time.Now().Add(within); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				c.fail(what, within)
			}
		}
		return
	}
	end, wall := m.Now().Add(within), time.Now().Add(wallBound)
	for {
		for spins := 0; !c.idle(); spins++ {
			if time.Now().After(wall) {
				c.fail(what+" (the drivers never went idle)", within)
			}
			if spins < 100 {
				runtime.Gosched() // the loops usually drain in a few switches
			} else {
				time.Sleep(100 * time.Microsecond)
			}
		}
		if cond() {
			return
		}
		next, ok := m.Next()
		if !ok || next.After(end) || time.Now().After(wall) {
			c.fail(what, within)
		}
		m.Set(next)
	}
}

// runFor runs the cluster for d of virtual time.
func (c *cluster) runFor(d time.Duration) {
	c.t.Helper()
	m := c.clk.(*clock.Manual)
	to := m.Now().Add(d)
	c.until("the end of the run", d+time.Second, func() bool { return !m.Now().Before(to) })
}

// idle reports whether no running driver has work taken and not done,
// nor a mempool admission it has yet to see (Mempool.Added).
func (c *cluster) idle() bool {
	for _, n := range c.nodes {
		if n.d != nil && n.d.ctx.Err() == nil && (n.d.busy.Load() != 0 || len(n.d.app.mp.Added()) != 0) {
			return false
		}
	}
	return true
}

func (c *cluster) fail(what string, within time.Duration) {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.d != nil {
			c.t.Logf("%s at height %d (err %v, busy %d, queued %d)", n.id, n.store.Height(), n.d.Err(), n.d.busy.Load(), len(n.d.in))
		}
	}
	if m, ok := c.clk.(*clock.Manual); ok {
		c.t.Fatalf("%s not reached within %s; virtual time %v, pending timers %d", what, within, m.Now(), m.Pending())
	}
	c.t.Fatalf("%s not reached within %s", what, within)
}

// The driver takes every timeout and every timestamp from Config.Clock: with
// consensus timeouts of minutes, four validators still commit several
// heights in a fraction of a second of real time, because the test moves a
// virtual clock from one pending timer to the next whenever the drivers are
// idle. Nothing sleeps through a timeout; a driver that read the wall clock
// or used time.AfterFunc would stall here.
func TestDriverRunsHeightsInVirtualTime(t *testing.T) {
	const minute = 60_000
	c := newClusterWith(t, 4, func(g *chain.Genesis) {
		g.Timeouts = chain.Timeouts{ProposeMs: 3 * minute, ProposeDeltaMs: minute, PrevoteMs: minute, PrevoteDeltaMs: minute,
			PrecommitMs: minute, PrecommitDeltaMs: minute, CommitMs: 2 * minute}
	})
	c.catchup = 10 * time.Second // with minutes of timeouts, not 100 ms: fewer ticks to step through
	clk := c.virtual()
	start := clk.Now()
	for _, n := range c.nodes {
		c.start(n)
	}
	const target = 4
	c.waitHeight(target, time.Hour)
	c.checkAgreement()
	// Each height waits out TimeoutCommit (two virtual minutes) at least.
	if elapsed := clk.Now().Sub(start); elapsed < (target-1)*2*time.Minute {
		t.Fatalf("%d heights in %v of virtual time: the commit timeout was not waited out", target, elapsed)
	}
}

// TestDriverIdleChainRestsAndWakesForATransaction: with an idle wait of a
// second, a quiet chain makes about a block a second instead of one per
// commit pause; a transaction ends the rest at once, and the chain stays
// awake for the idle wait after its block before resting again.
func TestDriverIdleChainRestsAndWakesForATransaction(t *testing.T) {
	c := newClusterWith(t, 4, func(g *chain.Genesis) { g.Timeouts.IdleMs = 1000 })
	clk := c.virtual()
	for _, n := range c.nodes {
		c.start(n)
	}
	c.waitHeight(2, 10*time.Second)
	h0 := c.nodes[0].store.Height()
	c.runFor(10 * time.Second)
	rested := c.nodes[0].store.Height() - h0
	if rested < 5 || rested > 11 {
		t.Fatalf("%d heights in 10 s of an idle chain, want about 10 (one per idle wait)", rested)
	}
	// Send in the middle of a rest: just after a height, 100 ms on.
	c.waitHeight(c.nodes[0].store.Height()+1, 5*time.Second)
	c.runFor(100 * time.Millisecond)
	dest := key(t, 50).Address()
	sent := clk.Now()
	c.transfer(0, dest, 10)
	c.until("the transfer committed", 5*time.Second, func() bool {
		acc, err := c.nodes[0].d.State().Account(dest)
		return err == nil && acc.Balance == 10
	})
	if took := clk.Now().Sub(sent); took > 200*time.Millisecond {
		t.Fatalf("a transaction to a resting chain took %v of virtual time to commit, want no idle wait", took)
	}
	// Awake for the idle wait after a block with transactions: heights
	// follow at the commit pause.
	h1 := c.nodes[0].store.Height()
	c.runFor(500 * time.Millisecond)
	if awake := c.nodes[0].store.Height() - h1; awake < 10 {
		t.Fatalf("%d heights in the 500 ms after a transaction's block, want the chain awake", awake)
	}
	c.runFor(2 * time.Second) // the wake ends within a second
	h2 := c.nodes[0].store.Height()
	c.runFor(5 * time.Second)
	if again := c.nodes[0].store.Height() - h2; again > 6 {
		t.Fatalf("%d heights in 5 s after the chain went quiet again, want it resting", again)
	}
	c.checkAgreement()
}
