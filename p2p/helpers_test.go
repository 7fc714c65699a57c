package p2p

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const testChain = "bourse-test-1"

type testHost struct {
	*Host
	reg *prometheus.Registry
}

// newTestHost starts a host on 127.0.0.1 with LocalConfig (adjusted by
// mutate) and closes it when the test ends.
func newTestHost(tb testing.TB, mutate func(*Config)) *testHost {
	tb.Helper()
	cfg := LocalConfig()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	if mutate != nil {
		mutate(&cfg)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := New(ctx, cfg, testChain, key, nil)
	if err != nil {
		tb.Fatalf("new host: %v", err)
	}
	tb.Cleanup(func() {
		if err := h.Close(); err != nil {
			tb.Errorf("close host: %v", err)
		}
	})
	return &testHost{Host: h, reg: reg}
}

func addrInfo(h *Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Libp2p().Addrs()}
}

func connect(tb testing.TB, a, b *Host) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, addrInfo(b)); err != nil {
		tb.Fatalf("connect: %v", err)
	}
}

// eventually polls cond every 20ms until it holds or timeout passes; it
// waits, it does not assert speed.
func eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metricSum adds up every series of metric name whose labels include all
// of want.
func metricSum(tb testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				if !hasLabel(m, k, v) {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// seededRand returns a rand seeded from the clock and logs the seed if
// the test fails, so a failure can be replayed by fixing the seed.
func seededRand(tb testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("P2P_TEST_SEED"), 10, 64); err == nil {
		seed = s
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("random seed: %d (replay with P2P_TEST_SEED=%d)", seed, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// checkNoHostGoroutines fails if goroutines started by this package's
// types are still running (call after every host is closed).
func checkNoHostGoroutines(tb testing.TB) {
	tb.Helper()
	var leaked []string
	eventually(tb, 5*time.Second, "host goroutines to exit", func() bool {
		leaked = leaked[:0]
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "bourse/p2p.(*") {
				leaked = append(leaked, g)
			}
		}
		return len(leaked) == 0
	})
	if len(leaked) > 0 {
		tb.Fatalf("leaked goroutines:\n%s", strings.Join(leaked, "\n\n"))
	}
}

// acceptAll is a validator that accepts everything and decodes to a
// string.
var acceptAll = ValidatorFunc(func(ctx context.Context, from peer.ID, data []byte) (any, Result) {
	return string(data), Accept
})

// prefixValidator accepts messages starting with "ok:" and rejects others
// with reason "bad prefix", counting what it saw.
func prefixValidator() ValidatorFunc {
	return func(ctx context.Context, from peer.ID, data []byte) (any, Result) {
		switch {
		case strings.HasPrefix(string(data), "ok:"):
			return strings.TrimPrefix(string(data), "ok:"), Accept
		case strings.HasPrefix(string(data), "old:"):
			return Reason("stale"), Ignore
		}
		return Reason("bad prefix"), Reject
	}
}

func recvMessage(tb testing.TB, s *Subscription, timeout time.Duration) Message {
	tb.Helper()
	select {
	case m, ok := <-s.C:
		if !ok {
			tb.Fatal("subscription closed")
		}
		return m
	case <-time.After(timeout):
		tb.Fatalf("no message within %v", timeout)
	}
	return Message{}
}

var _ = fmt.Sprintf

func mustKey(tb testing.TB) crypto.PrivKey {
	tb.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
