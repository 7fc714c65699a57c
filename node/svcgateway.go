package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/gateway"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/svclife"
	"github.com/bourse-net/bourse/worker"
	"github.com/libp2p/go-libp2p/core/peer"
)

// routeTable is gateway.RouteTable from chain state: the active leases of
// every running service, by service name (the newest service of a name
// wins; a service id in hex always works). It is rebuilt for the services
// a block touches, so Replicas is a map read.
type routeTable struct {
	mu     sync.RWMutex
	byName map[string]chain.ServiceID      // name → newest running service of that name
	byID   map[chain.ServiceID]*routeEntry // running services
	hex    map[string]chain.ServiceID      // id in hex → id
}

type routeEntry struct {
	name     string
	replicas []gateway.Replica
	height   uint64
}

func newRouteTable() *routeTable {
	return &routeTable{byName: map[string]chain.ServiceID{}, byID: map[chain.ServiceID]*routeEntry{},
		hex: map[string]chain.ServiceID{}}
}

var _ gateway.RouteTable = (*routeTable)(nil)

// Replicas implements gateway.RouteTable.
func (t *routeTable) Replicas(service string) ([]gateway.Replica, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	id, ok := t.byName[service]
	if !ok {
		if id, ok = t.hex[service]; !ok {
			return nil, false
		}
	}
	e := t.byID[id]
	if e == nil {
		return nil, false
	}
	return e.replicas, true
}

// rebuild reads every running service (at start).
func (t *routeTable) rebuild(st *chain.State) error {
	var ids []chain.ServiceID
	if err := st.Services(func(v chain.Service) error {
		if v.Status == chain.ServiceRunning {
			ids = append(ids, v.ID)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		if err := t.refresh(st, id); err != nil {
			return err
		}
	}
	return nil
}

// update refreshes the services a block's events touched.
func (t *routeTable) update(st *chain.State, res *chain.Result) {
	touched := map[chain.ServiceID]bool{}
	scan := func(evs []chain.Event) {
		for _, e := range evs {
			switch e.Type {
			case chain.EvServiceOpened, chain.EvServiceClosed:
				touched[chain.ServiceID(e.JobID)] = true
			case chain.EvLeasePlaced, chain.EvLeaseEnded:
				if l, ok, err := st.Lease(chain.LeaseID(e.JobID)); err == nil && ok {
					touched[l.Service] = true
				}
			}
		}
	}
	scan(res.Events)
	for _, tr := range res.TxResults {
		scan(tr.Events)
	}
	for id := range touched {
		_ = t.refresh(st, id)
	}
}

func (t *routeTable) refresh(st *chain.State, id chain.ServiceID) error {
	v, ok, err := st.Service(id)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ok || v.Status != chain.ServiceRunning {
		if e := t.byID[id]; e != nil {
			if t.byName[e.name] == id {
				delete(t.byName, e.name)
				// another running service of that name takes it
				var best *chain.ServiceID
				var bh uint64
				for oid, oe := range t.byID {
					if oid != id && oe.name == e.name && (best == nil || oe.height > bh) {
						c := oid
						best, bh = &c, oe.height
					}
				}
				if best != nil {
					t.byName[e.name] = *best
				}
			}
			delete(t.byID, id)
			delete(t.hex, id.String())
		}
		return nil
	}
	ls, err := st.ServiceLeases(id, true, chain.MaxServiceReplicas)
	if err != nil {
		return err
	}
	e := &routeEntry{name: v.Spec.Name, height: v.Height, replicas: []gateway.Replica{}}
	for _, l := range ls {
		p, err := peer.Decode(l.Offer.PeerID)
		if err != nil {
			continue
		}
		e.replicas = append(e.replicas, gateway.Replica{LeaseID: l.ID, Provider: p, Load: float64(l.Offer.Load) / 1000})
	}
	t.byID[id] = e
	t.hex[id.String()] = id
	if cur, ok := t.byName[v.Spec.Name]; !ok || cur == id || t.byID[cur] == nil || t.byID[cur].height <= v.Height {
		t.byName[v.Spec.Name] = id
	}
	return nil
}

// startGateway registers the provider side of svc/1 and starts the HTTP
// ingress when configured.
func (s *serviceManager) startGateway() {
	n := s.n
	if s.run != nil {
		ph, err := gateway.NewProviderHandler(n.host, s.run.lookup, gateway.ProviderConfig{Logger: n.log})
		if err != nil {
			n.log.Error("services: provider handler", "err", err)
		} else {
			s.ph = ph
		}
	}
	gc := n.cfg.Gateway
	if !gc.Enabled {
		return
	}
	cfg := gateway.Config{Listen: gc.Listen, Public: gc.Public, Domain: gc.Domain, Key: n.key, ChainID: n.cfg.ChainID, Logger: n.log}
	if s.run != nil {
		cfg.Local = s.run.lookup
	}
	g, err := gateway.New(cfg, n.host, s.routes)
	if err != nil {
		n.log.Error("services: gateway", "err", err)
		return
	}
	ln, err := net.Listen("tcp", gc.Listen)
	if err != nil {
		n.log.Error("services: gateway listen", "addr", gc.Listen, "err", err)
		return
	}
	s.gw, s.gwAddr = g, ln.Addr().String()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := g.Serve(s.ctx, ln); err != nil && !errors.Is(err, context.Canceled) && s.ctx.Err() == nil {
			n.log.Error("services: gateway stopped", "err", err)
		}
	}()
	n.log.Info("services: gateway listening", "addr", s.gwAddr, "domain", gc.Domain)
}

func (s *serviceManager) gatewayURL(name string) string {
	if s.gwAddr == "" {
		return ""
	}
	return "http://" + s.gwAddr + "/svc/" + name + "/"
}

// gatewayInputs turns the gateway's view of this node's own services into
// core inputs: per-replica usage and health, per-service load.
func (s *serviceManager) gatewayInputs() []svclife.Input {
	if s.gw == nil {
		return nil
	}
	st := s.n.drv.State()
	svcs, err := st.OwnerServices(s.n.key.Address(), maxOwnedServices)
	if err != nil {
		return nil
	}
	var out []svclife.Input
	served := make(map[chain.ServiceID]uint64, len(svcs)) // only services still owned
	for _, v := range svcs {
		gs := s.gw.Stats(v.Spec.Name)
		var worst time.Duration
		var inflight float64
		for _, r := range gs.Replicas {
			out = append(out, svclife.Usage{Lease: chain.LeaseID(r.LeaseID), Requests: r.Requests, Bytes: r.BytesIn + r.BytesOut, OK: s.healthy(r)})
			worst = max(worst, r.LatencyEWMA)
			inflight += float64(r.Outstanding)
		}
		if len(gs.Replicas) > 0 && gs.Requests > 0 {
			// No request since the last tick: the recent latency is that of
			// the last burst, frozen; an idle service reports none, or it
			// would never scale back down.
			if gs.Requests == s.served[v.ID] {
				worst = 0
			}
			served[v.ID] = gs.Requests
			out = append(out, svclife.Load{Service: v.ID, P99: worst, Outstanding: inflight / float64(max(v.Active, 1))})
		}
	}
	s.served = served
	return out
}

// healthy judges a replica from the gateway's counters since the last
// tick: answers mean healthy, only failures mean failing, no traffic keeps
// the last judgement (a replica that failed stays failing until it
// answers). Called from the tick goroutine only.
func (s *serviceManager) healthy(r gateway.ReplicaStats) bool {
	h := s.health[r.LeaseID]
	ok := !r.Down
	if h != nil {
		answered := (r.Requests - r.Errors) > (h.requests - h.errors)
		failed := r.Errors > h.errors
		switch {
		case answered:
			ok = true
		case failed:
			ok = false
		default:
			ok = h.ok && !r.Down
		}
	}
	if s.health == nil {
		s.health = map[[32]byte]*replicaHealth{}
	}
	s.health[r.LeaseID] = &replicaHealth{requests: r.Requests, errors: r.Errors, ok: ok}
	return ok
}

type replicaHealth struct {
	requests, errors uint64
	ok               bool
}

// stats is the gateway's view of a service, with Jain's fairness over
// the active replicas and their latency percentiles.
func (s *serviceManager) stats(name string) (api.ServiceStats, error) {
	v, err := s.resolve(name)
	if err != nil {
		return api.ServiceStats{}, err
	}
	out := api.ServiceStats{Service: v.Spec.Name, Fairness: 1}
	if s.gw == nil {
		return out, fmt.Errorf("%w: this node runs no gateway", api.ErrUnavailable)
	}
	st := s.n.drv.State()
	active := map[[32]byte]bool{}
	ls, _ := st.ServiceLeases(v.ID, true, chain.MaxServiceReplicas)
	for _, l := range ls {
		active[l.ID] = true
	}
	gs := s.gw.Stats(v.Spec.Name)
	var counts []uint64
	for _, r := range gs.Replicas {
		rs := api.ReplicaStats{Lease: chain.LeaseID(r.LeaseID).String(), Active: active[r.LeaseID], Requests: r.Requests, Errors: r.Errors,
			Bytes: r.BytesIn + r.BytesOut, Share: r.Share, Outstanding: int(r.Outstanding),
			P50Ms: ms(r.Latency.P50), P90Ms: ms(r.Latency.P90), P99Ms: ms(r.Latency.P99)}
		if l, ok, _ := st.Lease(chain.LeaseID(r.LeaseID)); ok {
			rs.Provider = l.ProviderAddress().String()
		}
		if rs.Active {
			counts = append(counts, r.Requests)
		}
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.Replicas = append(out.Replicas, rs)
	}
	sort.Slice(out.Replicas, func(i, j int) bool { return out.Replicas[i].Lease < out.Replicas[j].Lease })
	out.Fairness = api.JainFairness(counts)
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// gatewayLocal is the gateway's shortcut to replicas this node serves.
func (s *serviceManager) gatewayLocal(lease [32]byte) (*worker.Service, bool) {
	if s.run == nil {
		return nil, false
	}
	return s.run.lookup(lease)
}
