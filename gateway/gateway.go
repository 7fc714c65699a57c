package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bourse-net/bourse/internal/latency"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/wallet"
	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/svcwire"
)

// Replica is one placed replica of a service: its lease and the
// provider serving it.
type Replica struct {
	LeaseID  [32]byte
	Provider peer.ID
	// Load is the provider's last reported load, 0..1 (busy instances
	// over instances); the gateway also learns it from every response.
	Load float64
}

// RouteTable tells the gateway where a service's replicas are. Replicas
// returns false for a service it does not know, and true with an empty
// list for a known service without live replicas. It is called on every
// request, so it must be cheap and safe for concurrent use.
type RouteTable interface {
	Replicas(service string) ([]Replica, bool)
}

// Config configures a Gateway. Zero values are the defaults.
type Config struct {
	// Listen is the HTTP ingress address (default DefaultListen, on
	// loopback). A non-loopback address is refused unless Public.
	Listen string
	Public bool
	// Domain: a request whose Host is <name>.<Domain> goes to service
	// <name> (default "svc.localhost"). Requests to /svc/<name>/... go
	// to <name> whatever their Host, with the prefix removed.
	Domain string
	// MaxBody bounds request and response bodies (default
	// svcwire.DefaultMaxBody); a larger request gets 413.
	MaxBody int
	// Timeout bounds one request through the gateway, retries included
	// (default 30 s); AttemptTimeout one attempt at one replica (default
	// 15 s; keep it above the services' request timeout).
	Timeout        time.Duration
	AttemptTimeout time.Duration
	// MaxAttempts is how many replicas one request may try (default 3).
	MaxAttempts int
	// DownFor is how long a replica that failed is avoided (default 2 s,
	// doubling with consecutive failures up to 30 s).
	DownFor time.Duration
	// MaxIdleStreams per provider kept for reuse (default 64).
	MaxIdleStreams int
	// Local returns a replica this node serves itself: requests to it
	// skip the network. May be nil.
	Local func(lease [32]byte) (*worker.Service, bool)
	// Key signs usage receipts (see Receipts); ChainID is their domain.
	Key     wallet.PrivateKey
	ChainID string
	Logger  *slog.Logger
}

// DefaultListen is the ingress' default address.
const DefaultListen = "127.0.0.1:8480"

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Domain == "" {
		c.Domain = "svc.localhost"
	}
	if c.MaxBody <= 0 {
		c.MaxBody = svcwire.DefaultMaxBody
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 15 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.DownFor <= 0 {
		c.DownFor = 2 * time.Second
	}
	if c.MaxIdleStreams <= 0 {
		c.MaxIdleStreams = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Gateway is a node's HTTP ingress and load balancer for services: it
// routes each request to one replica over svc/1 and keeps per-replica
// statistics. It implements http.Handler.
type Gateway struct {
	cfg    Config
	hs     *p2p.Host
	routes RouteTable
	cl     *client
	now    func() time.Time

	mu       sync.Mutex
	replicas map[[32]byte]*replicaState
}

// New returns a gateway forwarding through hs (which may be nil if every
// replica is Local) to the replicas routes names.
func New(cfg Config, hs *p2p.Host, routes RouteTable) (*Gateway, error) {
	cfg.setDefaults()
	if routes == nil {
		return nil, errors.New("new gateway: no route table")
	}
	if !cfg.Public {
		host, _, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("new gateway: listen %q: %w", cfg.Listen, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("new gateway: listen %q is not a loopback address; set public to bind it", cfg.Listen)
		}
	}
	g := &Gateway{cfg: cfg, hs: hs, routes: routes, now: time.Now, replicas: map[[32]byte]*replicaState{}}
	if hs != nil {
		g.cl = newClient(hs, cfg.MaxBody, cfg.MaxIdleStreams)
	}
	return g, nil
}

// ListenAndServe serves the ingress on Config.Listen until ctx ends.
func (g *Gateway) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return g.Serve(ctx, ln)
}

// Serve serves the ingress on ln until ctx ends.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: svcwire.MaxHeaderBytes}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.Serve(ln)
	if g.cl != nil {
		g.cl.closeAll()
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// replicaState is what the gateway knows about one replica.
type replicaState struct {
	lease    [32]byte // these three are set once
	provider peer.ID
	service  string

	outstanding atomic.Int64

	mu        sync.Mutex
	load      float64
	ewma      time.Duration // of request latency through this gateway
	sampled   time.Time
	tried     time.Time // last picked
	downUntil time.Time
	fails     int

	requests, errors, bytesIn, bytesOut atomic.Uint64
	lat                                 latency.Hist
	usage                               usage // since the last receipt
}

type usage struct {
	requests, errors, bytesIn, bytesOut uint64
	lat                                 latency.Hist
}

func (g *Gateway) state(service string, r Replica) *replicaState {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.replicas[r.LeaseID]
	if st == nil {
		st = &replicaState{lease: r.LeaseID, provider: r.Provider, service: service, load: r.Load}
		g.replicas[r.LeaseID] = st
	}
	// A lease's provider and service never change: both stay as first seen,
	// so they are read without a lock.
	return st
}

// decay is how fast what was measured about a replica fades back to the
// prior when it gets no traffic, so a replica that was slow gets tried
// again.
const decay = 10 * time.Second

// probeEvery is how often a replica gets a request whatever its cost: at
// most one request a second per replica leaves the cost-based choice.
const probeEvery = time.Second

// cost ranks a replica: (outstanding + 1) × expected latency × (1 + load).
// Expected latency is the EWMA of its requests through this gateway,
// fading to the p2p round-trip time (the prior) as it ages.
func (g *Gateway) cost(st *replicaState, now time.Time) float64 {
	prior := time.Millisecond
	if g.hs != nil && st.provider != g.hs.ID() {
		if rtt := g.hs.Latency(st.provider); rtt > 0 {
			prior = rtt
		}
	}
	st.mu.Lock()
	lat, load := float64(prior), st.load
	if !st.sampled.IsZero() {
		w := math.Exp(-float64(now.Sub(st.sampled)) / float64(decay))
		lat = float64(prior) + (float64(st.ewma)-float64(prior))*w
		load *= w
	}
	st.mu.Unlock()
	return float64(st.outstanding.Load()+1) * max(lat, float64(50*time.Microsecond)) * (1 + load)
}

// pick chooses a replica by the power of two choices: two random
// candidates among those not tried and not marked down (or, if all are
// down, among those not tried), the cheaper one. A replica not marked
// down that was not picked for probeEvery is probed first: its cost is
// only a prior or an old measurement, and replicas measured faster would
// otherwise win every comparison, so a replica that started late, failed
// while starting, or was slow once would never be tried again, and one
// that died unpicked would never be seen failing (the owner reports a
// replica down from what its gateway saw). A replica that costs k times
// the cheapest is probed every k × probeEvery, at most every decay: on a
// service with fewer requests a second than replicas every replica is
// "not picked for probeEvery" at almost every request, and a probe-first
// rule blind to cost would hand a replica answering in seconds (a far or
// hostile provider) its round-robin share of the real requests.
func (g *Gateway) pick(states []*replicaState, tried map[*replicaState]bool, now time.Time) *replicaState {
	var up, fresh, any []*replicaState
	var since []time.Duration
	for _, st := range states {
		if tried[st] {
			continue
		}
		any = append(any, st)
		st.mu.Lock()
		down, idle := now.Before(st.downUntil), now.Sub(st.tried)
		st.mu.Unlock()
		if !down {
			up = append(up, st)
			since = append(since, idle)
		}
	}
	if len(up) > 1 {
		costs := make([]float64, len(up))
		best := math.Inf(1)
		for i, st := range up {
			costs[i] = g.cost(st, now)
			best = min(best, costs[i])
		}
		for i, st := range up {
			every := time.Duration(float64(probeEvery) * min(costs[i]/best, float64(decay/probeEvery)))
			if since[i] >= every {
				fresh = append(fresh, st)
			}
		}
	} else if len(up) == 1 && since[0] >= probeEvery {
		fresh = up
	}
	cands := up
	switch {
	case len(fresh) > 0:
		cands = fresh
	case len(cands) == 0:
		cands = any
	}
	var c *replicaState
	switch len(cands) {
	case 0:
		return nil
	case 1:
		c = cands[0]
	default:
		i := rand.IntN(len(cands))
		j := rand.IntN(len(cands) - 1)
		if j >= i {
			j++
		}
		c = cands[i]
		if o := cands[j]; g.cost(o, now) < g.cost(c, now) {
			c = o
		}
	}
	c.mu.Lock()
	c.tried = now
	c.mu.Unlock()
	return c
}

func (st *replicaState) succeeded(d time.Duration, load float64, now time.Time) {
	st.mu.Lock()
	if st.sampled.IsZero() {
		st.ewma = d
	} else {
		st.ewma = time.Duration(0.7*float64(st.ewma) + 0.3*float64(d))
	}
	st.sampled, st.load, st.fails, st.downUntil = now, load, 0, time.Time{}
	st.mu.Unlock()
}

func (st *replicaState) failed(down time.Duration, load float64, now time.Time) {
	st.mu.Lock()
	st.fails++
	st.downUntil = now.Add(min(down<<min(st.fails-1, 4), 30*time.Second))
	if load > 0 {
		st.load = load
	}
	st.mu.Unlock()
}

// idempotent reports whether a request with this method may be sent
// again after a replica may have seen it (RFC 9110 §9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// route finds the service a request names and the target to send it.
func (g *Gateway) route(r *http.Request) (service, target string, ok bool) {
	path := r.URL.EscapedPath()
	if rest, found := strings.CutPrefix(path, "/svc/"); found {
		service, target, _ = strings.Cut(rest, "/")
		target = "/" + target
	} else {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		name, found := strings.CutSuffix(strings.ToLower(host), "."+g.cfg.Domain)
		if !found || name == "" || strings.Contains(name, ".") {
			return "", "", false
		}
		service, target = name, path
		if target == "" { // absolute form with no path: GET http://name.domain HTTP/1.1
			target = "/"
		}
	}
	if service == "" {
		return "", "", false
	}
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	return service, target, true
}

// hopHeaders are not forwarded (RFC 9110 §7.6.1).
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Bourse-Gateway", "error")
	w.WriteHeader(code)
	fmt.Fprintf(w, format+"\n", args...)
}

// ServeHTTP routes one request: 404 for a request naming no service or
// an unknown one, 503 when no replica is placed or none answered, 502
// when a replica failed a non-idempotent request after it may have seen
// it (it is not sent again), 413 for a body over MaxBody.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	service, target, ok := g.route(r)
	if !ok {
		httpError(w, http.StatusNotFound, "no service named: use /svc/<name>/... or the host <name>.%s", g.cfg.Domain)
		return
	}
	reps, known := g.routes.Replicas(service)
	if !known {
		httpError(w, http.StatusNotFound, "unknown service %q", service)
		return
	}
	if len(reps) == 0 {
		httpError(w, http.StatusServiceUnavailable, "service %q has no live replica placed", service)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(g.cfg.MaxBody)+1))
	if err != nil {
		httpError(w, http.StatusBadRequest, "read body: %v", err)
		return
	}
	if len(body) > g.cfg.MaxBody {
		httpError(w, http.StatusRequestEntityTooLarge, "body over %d bytes", g.cfg.MaxBody)
		return
	}
	req := &svcwire.Request{Method: r.Method, Target: target, Body: body}
	for k, vs := range r.Header {
		if hopHeaders[k] {
			continue
		}
		for _, v := range vs {
			req.Header = append(req.Header, [2]string{k, v})
		}
	}
	req.Header = append(req.Header, [2]string{"X-Forwarded-Host", r.Host})
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		req.Header = append(req.Header, [2]string{"X-Forwarded-For", host})
	}

	states := make([]*replicaState, len(reps))
	for i, rep := range reps {
		states[i] = g.state(service, rep)
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.Timeout)
	defer cancel()
	tried := map[*replicaState]bool{}
	var reasons []string
	for attempt := 0; attempt < g.cfg.MaxAttempts; attempt++ {
		st := g.pick(states, tried, g.now())
		if st == nil {
			break
		}
		tried[st] = true
		resp, err := g.attempt(ctx, st, req)
		if err == nil {
			for _, kv := range resp.Header {
				if !hopHeaders[http.CanonicalHeaderKey(kv[0])] && !strings.EqualFold(kv[0], "Content-Length") {
					w.Header().Add(kv[0], kv[1])
				}
			}
			w.Header().Set("X-Bourse-Replica", fmt.Sprintf("%x", st.lease[:6]))
			w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
			w.WriteHeader(resp.Status)
			_, _ = w.Write(resp.Body)
			return
		}
		reasons = append(reasons, fmt.Sprintf("replica %x: %v", st.lease[:6], err))
		g.cfg.Logger.Debug("replica attempt failed", "service", service, "lease", fmt.Sprintf("%x", st.lease[:6]),
			"provider", st.provider.ShortString(), "method", r.Method, "err", err)
		if !errors.Is(err, errNotSent) && !errors.Is(err, errRefused) && !idempotent(r.Method) {
			httpError(w, http.StatusBadGateway, "service %q: %s; not retried: %s is not idempotent", service, reasons[len(reasons)-1], r.Method)
			return
		}
		if ctx.Err() != nil {
			break
		}
	}
	httpError(w, http.StatusServiceUnavailable, "service %q: no live replica answered: %s", service, strings.Join(reasons, "; "))
}

// attempt sends req to one replica and records the outcome.
func (g *Gateway) attempt(ctx context.Context, st *replicaState, req *svcwire.Request) (*svcwire.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.AttemptTimeout)
	defer cancel()
	st.outstanding.Add(1)
	start := g.now()
	var (
		resp *svcwire.Response
		load float64
		err  error
	)
	self := g.hs == nil || st.provider == g.hs.ID()
	if svc, ok := g.local(st); ok {
		resp, err = svc.Handle(ctx, req)
		load = svc.Load()
		if errors.Is(err, worker.ErrServiceBusy) || errors.Is(err, worker.ErrServiceClosed) {
			err = fmt.Errorf("%w: %v", errRefused, err)
		}
	} else if self {
		// This node is the provider but does not run the replica (yet):
		// libp2p cannot dial itself, and nothing was sent.
		err = fmt.Errorf("%w: this node's replica of the lease is not running", errRefused)
	} else if g.cl == nil {
		err = fmt.Errorf("%w: no p2p host to reach provider %s", errNotSent, st.provider.ShortString())
	} else {
		resp, load, err = g.cl.forward(ctx, st.provider, st.lease, req)
	}
	st.outstanding.Add(-1)
	now := g.now()
	d := now.Sub(start)
	in := uint64(req.Size())
	st.requests.Add(1)
	st.bytesIn.Add(in)
	var out uint64
	if err != nil {
		st.errors.Add(1)
		st.failed(g.cfg.DownFor, load, now)
		if g.cl != nil && !errors.Is(err, errRefused) {
			g.cl.drop(st.provider)
		}
	} else {
		out = uint64(resp.Size())
		st.bytesOut.Add(out)
		st.lat.Observe(d)
		st.succeeded(d, load, now)
	}
	st.mu.Lock()
	st.usage.requests++
	st.usage.bytesIn += in
	st.usage.bytesOut += out
	if err != nil {
		st.usage.errors++
	} else {
		st.usage.lat.Observe(d)
	}
	st.mu.Unlock()
	return resp, err
}

func (g *Gateway) local(st *replicaState) (*worker.Service, bool) {
	if g.cfg.Local == nil || (g.hs != nil && st.provider != g.hs.ID()) {
		return nil, false
	}
	return g.cfg.Local(st.lease)
}
