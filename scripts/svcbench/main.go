// Command svcbench starts what scripts/svc-bench.sh measures with wrk, in
// one process on 127.0.0.1: three provider hosts, each running one
// replica of a WASM service module and serving it over svc/1 and over
// plain HTTP (the "direct" path), and a gateway host whose ingress routes
// service "bench" to the three replicas over libp2p. It prints one line
// per endpoint ("direct URL", "replica URL", "gateway URL") and runs until
// SIGINT or SIGTERM, then prints the gateway's per-replica statistics.
//
//	go run ./scripts/svcbench -module examples/svc-hello/svc-hello.wasm
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bourse-net/bourse/gateway"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/svcwire"
	"github.com/bourse-net/bourse/worker/wasm"
)

func main() {
	module := flag.String("module", "examples/svc-hello/svc-hello.wasm", "service module")
	replicas := flag.Int("replicas", 3, "replicas (one per provider host)")
	instances := flag.Int("instances", 2, "instances per replica")
	transport := flag.String("transport", "", "connect the gateway to providers over only this transport (tcp or quic-v1); default: libp2p's choice")
	flag.Parse()
	onlyTransport = *transport
	if err := run(*module, *replicas, *instances); err != nil {
		log.Fatal(err)
	}
}

var onlyTransport string

// addrs are hs' addresses, only those of onlyTransport if set.
func addrs(hs *p2p.Host) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range hs.Libp2p().Addrs() {
		if onlyTransport == "" || strings.Contains(a.String(), "/"+onlyTransport) {
			out = append(out, a)
		}
	}
	return out
}

type routes []gateway.Replica

func (r routes) Replicas(name string) ([]gateway.Replica, bool) {
	if name != "bench" {
		return nil, false
	}
	return r, true
}

func newHost(ctx context.Context) (*p2p.Host, error) {
	cfg := p2p.LocalConfig()
	cfg.DHT = false
	cfg.Registerer = prometheus.NewRegistry()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	return p2p.New(ctx, cfg, "bourse-bench-1", key, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// direct serves one replica over plain HTTP: the same handler without
// the gateway.
func direct(s *worker.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, svcwire.DefaultMaxBody+1))
		if err != nil || len(body) > svcwire.DefaultMaxBody {
			http.Error(w, "bad body", 400)
			return
		}
		target := r.URL.RequestURI()
		resp, err := s.Handle(r.Context(), &worker.Request{Method: r.Method, Target: target, Body: body})
		if err != nil {
			http.Error(w, err.Error(), 503)
			return
		}
		for _, kv := range resp.Header {
			w.Header().Add(kv[0], kv[1])
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
		w.WriteHeader(resp.Status)
		w.Write(resp.Body)
	})
}

func serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go http.Serve(ln, h)
	return "http://" + ln.Addr().String(), nil
}

func run(module string, n, instances int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mod, err := os.ReadFile(module)
	if err != nil {
		return err
	}
	exec, err := wasm.New(ctx, wasm.Config{})
	if err != nil {
		return err
	}
	defer exec.Close(context.Background())
	gw, err := newHost(ctx)
	if err != nil {
		return err
	}
	defer gw.Close()
	var rt routes
	for i := range n {
		hs, err := newHost(ctx)
		if err != nil {
			return err
		}
		defer hs.Close()
		var id [32]byte
		rand.Read(id[:])
		spec := worker.ServiceSpec{ID: id, Module: mod, Instances: instances,
			Limits: worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 64 * int64(instances)}}}
		b, err := exec.StartService(ctx, &spec)
		if err != nil {
			return err
		}
		svc := worker.NewService(spec, b, nil)
		defer svc.Close()
		ph, err := gateway.NewProviderHandler(hs, func(l [32]byte) (*worker.Service, bool) { return svc, l == id }, gateway.ProviderConfig{})
		if err != nil {
			return err
		}
		defer ph.Close()
		if err := gw.Connect(ctx, peer.AddrInfo{ID: hs.ID(), Addrs: addrs(hs)}); err != nil {
			return err
		}
		url, err := serve(direct(svc))
		if err != nil {
			return err
		}
		if i == 0 {
			fmt.Println("direct", url)
		}
		fmt.Println("replica", url)
		rt = append(rt, gateway.Replica{LeaseID: id, Provider: hs.ID()})
	}
	// Failed attempts (retried or not) are logged to stderr.
	g, err := gateway.New(gateway.Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))}, gw, rt)
	if err != nil {
		return err
	}
	url, err := serve(g)
	if err != nil {
		return err
	}
	fmt.Println("gateway", url+"/svc/bench")
	fmt.Println("ready")
	<-ctx.Done()
	st := g.Stats("bench")
	fmt.Fprintf(os.Stderr, "gateway: %d requests, %d errors, Jain's fairness %.3f\n", st.Requests, st.Errors, st.Fairness)
	for _, r := range st.Replicas {
		fmt.Fprintf(os.Stderr, "  replica %x: %d requests (%.1f%%), p50 %v p99 %v\n", r.LeaseID[:6], r.Requests, 100*r.Share,
			r.Latency.P50.Round(time.Microsecond), r.Latency.P99.Round(time.Microsecond))
	}
	return nil
}
