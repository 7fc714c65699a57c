package node

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/lifecycle"
	"github.com/bourse-net/bourse/worker"
)

// fakeClock is virtual time: After fires when Advance passes it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

// Advance moves time on and fires the timers due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// errorLog counts records at error level.
type errorLog struct {
	slog.Handler
	mu   sync.Mutex
	msgs []string
}

func (h *errorLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.mu.Lock()
		h.msgs = append(h.msgs, r.Message)
		h.mu.Unlock()
	}
	return nil
}

func (h *errorLog) Enabled(context.Context, slog.Level) bool { return true }

// lifecycleMarket is a market service with only what the client's
// lifecycle driver uses: no host, no chain, virtual time.
func lifecycleMarket(t *testing.T, jobsDir string) (*marketService, *fakeClock, *errorLog) {
	t.Helper()
	logs := &errorLog{Handler: slog.NewTextHandler(os.Stderr, nil)}
	n := &Node{log: slog.New(logs), events: newEventHub()}
	clk := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := &marketService{n: n, clock: clk, runs: map[market.BidID]context.CancelFunc{},
		core: lifecycle.New(lifecycle.Config{})}
	var err error
	for _, st := range []**worker.Store{&m.payloads, &m.results} {
		if *st, err = worker.OpenStore(t.TempDir(), worker.StoreConfig{MaxBytes: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	}
	m.jobStore = &jobStore{dir: jobsDir}
	m.persist = newPersister(m.jobStore, m.persistFailed, m.logPersistFailed)
	ctx, cancel := context.WithCancel(context.Background())
	m.ctx, m.cancel = ctx, cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.persist.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		m.mu.Lock()
		m.closing = true
		m.mu.Unlock()
		m.wg.Wait()
	})
	return m, clk, logs
}

// waitFor polls cond to a deadline, advancing virtual time meanwhile.
func waitFor(t *testing.T, clk *fakeClock, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		clk.Advance(100 * time.Millisecond)
		time.Sleep(time.Millisecond)
	}
}

// TestUnfetchableResultIsNeverReportedPaid: a settled job whose result
// cannot be fetched from the provider is retried on the clock, then ends
// result_unavailable — on disk too — instead of paid, as the old driver
// reported it. It runs on virtual time: no real backoff is waited out.
func TestUnfetchableResultIsNeverReportedPaid(t *testing.T) {
	dir := t.TempDir()
	m, clk, _ := lifecycleMarket(t, dir)
	hash := strings.Repeat("ab", 32)
	j := lifecycle.ClientJob{Job: api.Job{ID: strings.Repeat("01", 32), State: api.StateResultCommitted, ResultHash: hash},
		ProviderPeer: "not a peer id"}
	m.step(lifecycle.Restore{Jobs: []lifecycle.ClientJob{j}})
	waitFor(t, clk, "the job to end", func() bool {
		got, _ := m.clientJob(j.ID)
		return api.Terminal(got.State)
	})
	got, _ := m.clientJob(j.ID)
	if got.State != api.StateResultUnavailable || !strings.Contains(got.Error, "5 attempts") {
		t.Fatalf("job ended %s: %s", got.State, got.Error)
	}
	waitFor(t, clk, "the record on disk", func() bool {
		raw, err := os.ReadFile(filepath.Join(dir, j.ID+".json"))
		return err == nil && strings.Contains(string(raw), api.StateResultUnavailable)
	})
}

// TestFailedJobWriteSurfacesOnTheJobAndInTheLog: a job record that cannot
// be written is logged at error level and said on the job itself, where
// before the failure was dropped and memory and disk silently differed.
func TestFailedJobWriteSurfacesOnTheJobAndInTheLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs")
	if err := os.WriteFile(dir, nil, 0o600); err != nil { // a file where the directory should be
		t.Fatal(err)
	}
	m, clk, logs := lifecycleMarket(t, dir)
	j := lifecycle.ClientJob{Job: api.Job{ID: strings.Repeat("02", 32), State: api.StateBidding}}
	m.step(lifecycle.Restore{Jobs: []lifecycle.ClientJob{j}})
	m.step(lifecycle.CancelConfirmed{ID: j.ID})
	waitFor(t, clk, "the write failure on the job", func() bool {
		got, _ := m.clientJob(j.ID)
		return strings.Contains(got.Error, "not saved to disk")
	})
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if len(logs.msgs) == 0 {
		t.Fatal("no error logged for the failed write")
	}
}
