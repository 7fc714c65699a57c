package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/wasm"
	"github.com/bourse-net/bourse/worker/workertest"
)

const (
	testChain = "bourse-test-1"
	svcProg   = "github.com/bourse-net/bourse/worker/workertest/svcprog"
)

var buildDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "gateway-test-")
	if err != nil {
		panic(err)
	}
	buildDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func svcModule(tb testing.TB) []byte {
	tb.Helper()
	b, err := workertest.BuildWasm(buildDir, workertest.CacheDir(), svcProg)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func newHost(tb testing.TB) *p2p.Host {
	tb.Helper()
	cfg := p2p.LocalConfig()
	cfg.DHT = false
	cfg.Registerer = prometheus.NewRegistry()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := p2p.New(ctx, cfg, testChain, key, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func connect(tb testing.TB, a, b *p2p.Host) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Libp2p().Addrs()}); err != nil {
		tb.Fatal(err)
	}
}

// provider is a host serving replicas of svcprog on svc/1.
type provider struct {
	hs   *p2p.Host
	exec *wasm.Executor
	h    *ProviderHandler

	mu       sync.Mutex
	services map[[32]byte]*worker.Service
}

func newProvider(tb testing.TB, pcfg ProviderConfig) *provider {
	tb.Helper()
	e, err := wasm.New(context.Background(), wasm.Config{CacheDir: workertest.CacheDir()})
	if err != nil {
		tb.Fatal(err)
	}
	p := &provider{hs: newHost(tb), exec: e, services: map[[32]byte]*worker.Service{}}
	p.h, err = NewProviderHandler(p.hs, p.lookup, pcfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Close(ctx)
	})
	return p
}

func (p *provider) lookup(lease [32]byte) (*worker.Service, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.services[lease]
	return s, ok
}

// start runs a replica of svcprog with env and returns its Replica.
func (p *provider) start(tb testing.TB, timeout time.Duration, instances int, env ...string) Replica {
	tb.Helper()
	spec := worker.ServiceSpec{ID: workertest.NewID(), Module: svcModule(tb), Env: env, Instances: instances,
		Limits: worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 64 * int64(instances)}, Timeout: timeout}}
	b, err := p.exec.StartService(context.Background(), &spec)
	if err != nil {
		tb.Fatal(err)
	}
	s := worker.NewService(spec, b, nil)
	tb.Cleanup(func() { s.Close() })
	p.mu.Lock()
	p.services[spec.ID] = s
	p.mu.Unlock()
	return Replica{LeaseID: spec.ID, Provider: p.hs.ID()}
}

// routes is a RouteTable the test edits.
type routes struct {
	mu sync.Mutex
	m  map[string][]Replica
}

func (r *routes) Replicas(name string) ([]Replica, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reps, ok := r.m[name]
	return append([]Replica(nil), reps...), ok
}

// newGateway starts a gateway host connected to the providers, serving
// HTTP on an httptest server.
func newGateway(tb testing.TB, cfg Config, rt RouteTable, providers ...*provider) (*Gateway, *httptest.Server) {
	tb.Helper()
	hs := newHost(tb)
	for _, p := range providers {
		connect(tb, hs, p.hs)
	}
	g, err := New(cfg, hs, rt)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(g)
	tb.Cleanup(srv.Close)
	return g, srv
}

func do(tb testing.TB, method, url string, body io.Reader) (int, string, http.Header) {
	tb.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func shortLease(r Replica) string { return filepath.Base(string(hexShort(r.LeaseID))) }

func hexShort(l [32]byte) []byte {
	const hx = "0123456789abcdef"
	out := make([]byte, 12)
	for i := range 6 {
		out[2*i], out[2*i+1] = hx[l[i]>>4], hx[l[i]&15]
	}
	return out
}
