package driver

import (
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/internal/clock"
)

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
	g, err := chain.ParseGenesis(c.genesis)
	if err != nil {
		t.Fatal(err)
	}
	start := time.UnixMilli(g.GenesisTime + 1000)
	clk := clock.NewManual(start)
	c.clk = clk
	for _, n := range c.nodes {
		c.start(n)
	}
	const target = 4
	deadline := time.Now().Add(20 * time.Second) // real time, a bound for a broken run only
	for {
		done := true
		for _, n := range c.nodes {
			if n.store.Height() < target {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("height %d not reached; virtual time %v, pending timers %d", target, clk.Now().Sub(start), clk.Pending())
		}
		if !c.idle() {
			time.Sleep(time.Millisecond) // let the loops drain what is already delivered
			continue
		}
		if next, ok := clk.Next(); ok {
			clk.Set(next)
		}
	}
	c.checkAgreement()
	// Each height waits out TimeoutCommit (two virtual minutes) at least.
	if elapsed := clk.Now().Sub(start); elapsed < (target-1)*2*time.Minute {
		t.Fatalf("%d heights in %v of virtual time: the commit timeout was not waited out", target, elapsed)
	}
}

// idle reports whether no driver has an event waiting in its loop, twice
// in a row a millisecond apart (an event being handled may post more).
func (c *cluster) idle() bool {
	for range 2 {
		for _, n := range c.nodes {
			if n.d != nil && len(n.d.in) > 0 {
				return false
			}
		}
		time.Sleep(time.Millisecond)
	}
	return true
}
