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

	"github.com/bourse-net/bourse/internal/clock"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/lifecycle"
	"github.com/bourse-net/bourse/worker"
)

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
// lifecycle driver uses: no host, no chain, virtual time. Its persister
// does not run on its own: settle writes the queued records, so the
// service's only goroutines are the work it spawns.
func lifecycleMarket(t *testing.T, jobsDir string) (*marketService, *clock.Manual, *errorLog) {
	t.Helper()
	logs := &errorLog{Handler: slog.NewTextHandler(os.Stderr, nil)}
	n := &Node{log: slog.New(logs), events: newEventHub()}
	clk := clock.NewManual(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
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
	t.Cleanup(func() {
		cancel()
		m.mu.Lock()
		m.closing = true
		m.mu.Unlock()
		m.wg.Wait()
	})
	return m, clk, logs
}

// settle runs the service in virtual time until cond holds: it waits for
// the work the service spawned, writes the queued job records, and when
// nothing is left to do moves the clock to the next timer. It fails when
// no timer is left and cond is still false. Nothing sleeps.
func settle(t *testing.T, m *marketService, clk *clock.Manual, what string, cond func() bool) {
	t.Helper()
	for {
		m.wg.Wait() // the spawned work, and the work it spawned
		m.persist.mu.Lock()
		queued := len(m.persist.order)
		m.persist.mu.Unlock()
		if queued > 0 {
			m.persist.flush() // a failed write steps the core, which may spawn
			continue
		}
		if cond() {
			return
		}
		next, ok := clk.Next()
		if !ok {
			t.Fatalf("still waiting for %s, and no timer is left (virtual time %v)", what, clk.Now())
		}
		clk.Set(next)
	}
}

// TestUnfetchableResultIsNeverReportedPaid: a settled job whose result
// cannot be fetched from the provider is retried on the clock, then
// challenged on chain (here there is no chain, so the challenge fails and
// it ends result_unavailable — on disk too) instead of paid, as the old
// driver reported it. It runs on virtual time: no real backoff is waited out.
func TestUnfetchableResultIsNeverReportedPaid(t *testing.T) {
	dir := t.TempDir()
	m, clk, _ := lifecycleMarket(t, dir)
	hash := strings.Repeat("ab", 32)
	j := lifecycle.ClientJob{Job: api.Job{ID: strings.Repeat("01", 32), State: api.StateResultCommitted, ResultHash: hash},
		ProviderPeer: "not a peer id"}
	m.step(lifecycle.Restore{Jobs: []lifecycle.ClientJob{j}})
	settle(t, m, clk, "the job to end", func() bool {
		got, _ := m.clientJob(j.ID)
		return api.Terminal(got.State)
	})
	got, _ := m.clientJob(j.ID)
	if got.State != api.StateResultUnavailable || !strings.Contains(got.Error, "5 attempts") {
		t.Fatalf("job ended %s: %s", got.State, got.Error)
	}
	settle(t, m, clk, "the record on disk", func() bool {
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
	settle(t, m, clk, "the write failure on the job", func() bool {
		got, _ := m.clientJob(j.ID)
		return strings.Contains(got.Error, "not saved to disk")
	})
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if len(logs.msgs) == 0 {
		t.Fatal("no error logged for the failed write")
	}
}
