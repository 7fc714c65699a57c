package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrClosed is returned by calls made on a closed Host.
var ErrClosed = errors.New("p2p host closed")

// Host is a Bourse libp2p node: transports, discovery, validated GossipSub
// topics and request/response protocols for one chain id.
//
// Goroutines: the host loop owns the joined topics; the bootstrap keeper
// owns the redial backoff of bootstrap peers; the discovery loop owns DHT
// rendezvous state; the connector owns dials to discovered peers; the
// pinger refreshes latency. All run under the host's context and Close waits
// for them, for subscription pumps and for in-flight inbound requests.
type Host struct {
	cfg     Config
	chainID string
	log     *slog.Logger
	h       host.Host
	ps      *pubsub.PubSub
	dht     *dht.IpfsDHT // nil when Config.DHT is false
	mdns    mdns.Service // nil when Config.MDNS is false
	m       *metrics

	ctx    context.Context
	cancel context.CancelFunc
	ops    chan func(*hostState) // work run by the host loop
	found  chan found            // discovered peers for the connector

	// gate admits inbound stream handlers and subscription pumps; Close
	// shuts it and waits for the ones inside.
	gate struct {
		sync.Mutex
		closed bool
		wg     sync.WaitGroup
	}
	loops sync.WaitGroup // the long-running goroutines started by New

	scores    atomic.Pointer[map[peer.ID]float64]
	limit     *limiter  // per-peer rate of offers and bids
	pen       penalties // application-specific score (scoring.go)
	mesh      meshTracker
	closeOnce sync.Once
	closeErr  error
}

// hostState is owned by the host loop goroutine.
type hostState struct {
	topics map[string]*Topic
}

type found struct {
	info   peer.AddrInfo
	source string
}

// New starts a host for chainID with identity key. It listens on
// cfg.ListenAddrs, dials the bootstrap peers, and starts mDNS and the DHT
// when configured. The context bounds start-up only; the host runs until
// Close. logger may be nil.
func New(ctx context.Context, cfg Config, chainID string, key crypto.PrivKey, logger *slog.Logger) (*Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("new p2p host: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := validChainID(chainID); err != nil {
		return nil, err
	}
	if key == nil {
		return nil, errors.New("new p2p host: nil identity key")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hctx, cancel := context.WithCancel(context.Background())
	hs := &Host{
		cfg:     cfg,
		chainID: chainID,
		ctx:     hctx,
		cancel:  cancel,
		ops:     make(chan func(*hostState)),
		found:   make(chan found, 256),
		limit:   newLimiter(cfg.MarketRate),
	}
	ok := false
	defer func() {
		if !ok {
			cancel()
			if hs.dht != nil {
				hs.dht.Close()
			}
			if hs.h != nil {
				hs.h.Close()
			}
		}
	}()

	h, err := libp2p.New(hs.libp2pOptions(key)...)
	if err != nil {
		return nil, fmt.Errorf("new p2p host: libp2p: %w", err)
	}
	hs.h = h
	hs.log = logger.With("peer", h.ID().ShortString())
	hs.m = newMetrics(func() float64 { return float64(len(h.Network().Peers())) })
	if cfg.Registerer != nil {
		for _, c := range hs.m.collectors() {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("new p2p host: register metrics: %w", err)
			}
		}
	}

	bootstrap, err := parseAddrInfos(cfg.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("new p2p host: bootstrap: %w", err)
	}
	if cfg.DHT {
		mode := map[string]dht.ModeOpt{DHTModeAuto: dht.ModeAuto, DHTModeServer: dht.ModeServer, DHTModeClient: dht.ModeClient}[cfg.DHTMode]
		d, err := dht.New(h,
			dht.Mode(mode),
			dht.ProtocolPrefix(protocol.ID("/bourse/"+chainID)),
			dht.BootstrapPeers(bootstrap...),
		)
		if err != nil {
			return nil, fmt.Errorf("new p2p host: dht: %w", err)
		}
		hs.dht = d
	}

	hs.ps, err = pubsub.NewGossipSub(hctx, h, hs.pubsubOptions()...)
	if err != nil {
		return nil, fmt.Errorf("new p2p host: gossipsub: %w", err)
	}

	hs.loops.Add(4)
	go hs.run()
	go hs.keepBootstrap(bootstrap)
	go hs.connector()
	go hs.pinger()
	if hs.dht != nil {
		hs.loops.Add(1)
		go hs.discover()
	}
	if cfg.MDNS {
		hs.mdns = mdns.NewMdnsService(h, "bourse-"+chainID, mdnsNotifee{hs})
		if err := hs.mdns.Start(); err != nil {
			hs.Close()
			ok = true // Close cleaned up
			return nil, fmt.Errorf("new p2p host: mdns: %w", err)
		}
	}
	ok = true
	hs.log.Info("p2p host started", "addrs", hs.Addrs(), "chain", chainID)
	return hs, nil
}

func (hs *Host) libp2pOptions(key crypto.PrivKey) []libp2p.Option {
	cfg := hs.cfg
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	// Error ignored: NewResourceManager only fails on bad options, and we
	// pass none that can fail; a nil manager would make libp2p build its own.
	rm, _ := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()), rcmgr.WithMetricsDisabled())
	cm, _ := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Duration(cfg.ConnGrace)))
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.Ping(true),
		libp2p.UserAgent("bourse/" + hs.chainID),
	}
	if len(cfg.AnnounceAddrs) > 0 {
		opts = append(opts, libp2p.AddrsFactory(announceFactory(cfg.AnnounceAddrs)))
	}
	if cfg.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	if cfg.RelayClient {
		opts = append(opts, libp2p.EnableRelay())
		if relays, err := parseAddrInfos(cfg.StaticRelays); err == nil && len(relays) > 0 {
			opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(relays, autorelay.WithBackoff(time.Minute)))
		}
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService())
		if !cfg.AutoNAT {
			// libp2p serves as a relay only once it believes itself
			// publicly reachable; without AutoNAT to find that out, the
			// operator's relay_service = true is taken as the statement.
			opts = append(opts, libp2p.ForceReachabilityPublic())
		}
	}
	if cfg.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	if cfg.AutoNAT {
		opts = append(opts, libp2p.EnableNATService(), libp2p.EnableAutoNATv2())
	}
	if cfg.HolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	opts = append(opts, cfg.extra...)
	return opts
}

// announceFactory replaces the addresses the host advertises with the
// configured public ones, keeping relay circuit addresses (they are how a
// NATed host is reached). Validate has parsed every entry.
func announceFactory(announce []string) func([]ma.Multiaddr) []ma.Multiaddr {
	var fixed []ma.Multiaddr
	for _, s := range announce {
		if a, err := ma.NewMultiaddr(s); err == nil {
			fixed = append(fixed, a)
		}
	}
	return func(addrs []ma.Multiaddr) []ma.Multiaddr {
		out := slices.Clone(fixed)
		for _, a := range addrs {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
				out = appendUnique(out, a)
			}
		}
		return out
	}
}

// validChainID keeps chain ids usable inside protocol ids and topic names.
func validChainID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("chain id %q: must be 1 to 64 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("chain id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

func parseAddrInfos(ss []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range ss {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// ChainID returns the chain id the host's topics and protocols are scoped by.
func (hs *Host) ChainID() string { return hs.chainID }

// ID returns the host's peer id.
func (hs *Host) ID() peer.ID { return hs.h.ID() }

// Libp2p exposes the underlying libp2p host for callers that need a
// protocol this package does not wrap. Do not close it; call Close.
func (hs *Host) Libp2p() host.Host { return hs.h }

// Addrs returns the host's listen addresses as full multiaddrs ending in
// /p2p/<id>, suitable for another node's Config.Bootstrap.
func (hs *Host) Addrs() []ma.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: hs.h.ID(), Addrs: hs.h.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// Collectors returns the host's Prometheus collectors (already registered
// when Config.Registerer was set).
func (hs *Host) Collectors() []prometheus.Collector { return hs.m.collectors() }

// Connect dials a peer and waits for the connection.
func (hs *Host) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if err := hs.h.Connect(ctx, ai); err != nil {
		return fmt.Errorf("connect %s: %w", ai.ID.ShortString(), err)
	}
	return nil
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	ID        peer.ID
	Addrs     []ma.Multiaddr // addresses of the open connections, then known ones
	Latency   time.Duration  // EWMA of ping round trips; 0 if never measured
	Protocols []protocol.ID  // protocols the peer announced via identify
}

// Peers lists connected peers sorted by id.
func (hs *Host) Peers() []PeerInfo {
	ids := hs.h.Network().Peers()
	slices.Sort(ids)
	out := make([]PeerInfo, 0, len(ids))
	for _, id := range ids {
		var addrs []ma.Multiaddr
		for _, c := range hs.h.Network().ConnsToPeer(id) {
			addrs = appendUnique(addrs, c.RemoteMultiaddr())
		}
		for _, a := range hs.h.Peerstore().Addrs(id) {
			addrs = appendUnique(addrs, a)
		}
		protos, _ := hs.h.Peerstore().GetProtocols(id)
		slices.Sort(protos)
		out = append(out, PeerInfo{ID: id, Addrs: addrs, Latency: hs.Latency(id), Protocols: protos})
	}
	return out
}

func appendUnique(list []ma.Multiaddr, a ma.Multiaddr) []ma.Multiaddr {
	for _, b := range list {
		if b.Equal(a) {
			return list
		}
	}
	return append(list, a)
}

// Latency returns the peerstore's EWMA of round trips to p (fed by the
// pinger and by Ping), or 0 if none was measured.
func (hs *Host) Latency(p peer.ID) time.Duration { return hs.h.Peerstore().LatencyEWMA(p) }

// Ping measures one round trip to p and folds it into the latency EWMA.
func (hs *Host) Ping(ctx context.Context, p peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	ch := ping.Ping(ctx, hs.h, p)
	res, ok := <-ch
	cancel()
	for range ch { // wait for ping's goroutine to finish
	}
	if !ok {
		return 0, fmt.Errorf("ping %s: %w", p.ShortString(), ctx.Err())
	}
	if res.Error != nil {
		return 0, fmt.Errorf("ping %s: %w", p.ShortString(), res.Error)
	}
	return res.RTT, nil
}

// PeerScores returns the latest sample of GossipSub peer scores (taken
// every Config.ScoreInspectInterval).
func (hs *Host) PeerScores() map[peer.ID]float64 {
	p := hs.scores.Load()
	if p == nil {
		return nil
	}
	return *p
}

// Close stops discovery, subscriptions and protocol handlers, waits for
// every goroutine the host started, and closes the libp2p host. It is
// idempotent.
func (hs *Host) Close() error {
	hs.closeOnce.Do(func() {
		hs.gate.Lock()
		hs.gate.closed = true
		hs.gate.Unlock()
		hs.cancel()
		hs.loops.Wait()
		hs.gate.wg.Wait()
		var errs []error
		if hs.mdns != nil {
			if err := hs.mdns.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close mdns: %w", err))
			}
		}
		if hs.dht != nil {
			if err := hs.dht.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close dht: %w", err))
			}
		}
		if err := hs.h.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close libp2p host: %w", err))
		}
		hs.closeErr = errors.Join(errs...)
		hs.log.Info("p2p host closed")
	})
	return hs.closeErr
}

// enter admits one gated goroutine (an inbound handler or a pump); it
// reports false once Close has begun.
func (hs *Host) enter() bool {
	hs.gate.Lock()
	defer hs.gate.Unlock()
	if hs.gate.closed {
		return false
	}
	hs.gate.wg.Add(1)
	return true
}

func (hs *Host) leave() { hs.gate.wg.Done() }

// run is the host loop: it owns hostState and runs the closures posted to
// ops, one at a time.
func (hs *Host) run() {
	defer hs.loops.Done()
	st := &hostState{topics: make(map[string]*Topic)}
	for {
		select {
		case <-hs.ctx.Done():
			return
		case op := <-hs.ops:
			op(st)
		}
	}
}

// do runs f on the host loop and waits for it.
func (hs *Host) do(ctx context.Context, f func(*hostState)) error {
	done := make(chan struct{})
	op := func(st *hostState) { f(st); close(done) }
	select {
	case hs.ops <- op:
	case <-hs.ctx.Done():
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

// keepBootstrap keeps the host connected to every bootstrap peer,
// redialling a dropped one with exponential backoff (ReconnectMin doubling
// to ReconnectMax, reset on success). It owns the backoff state.
func (hs *Host) keepBootstrap(peers []peer.AddrInfo) {
	defer hs.loops.Done()
	if len(peers) == 0 {
		return
	}
	type state struct {
		info    peer.AddrInfo
		next    time.Time
		backoff time.Duration
		dialing bool
	}
	states := make(map[peer.ID]*state, len(peers))
	for _, p := range peers {
		if p.ID == hs.h.ID() {
			continue
		}
		hs.h.ConnManager().Protect(p.ID, "bourse-bootstrap")
		states[p.ID] = &state{info: p, backoff: time.Duration(hs.cfg.ReconnectMin)}
	}
	sub, err := hs.h.EventBus().Subscribe(new(eventConnectedness))
	if err != nil {
		hs.log.Error("bootstrap keeper: subscribe to connectedness events", "err", err)
		return
	}
	defer sub.Close()
	type result struct {
		id  peer.ID
		err error
	}
	results := make(chan result)
	var dials sync.WaitGroup
	defer dials.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		wake := now.Add(time.Duration(hs.cfg.ReconnectMax))
		for id, s := range states {
			if s.dialing || hs.h.Network().Connectedness(id) == network.Connected {
				continue
			}
			if !now.Before(s.next) {
				s.dialing = true
				dials.Add(1)
				go func(info peer.AddrInfo) {
					defer dials.Done()
					ctx, cancel := context.WithTimeout(hs.ctx, 15*time.Second)
					err := hs.h.Connect(ctx, info)
					cancel()
					select {
					case results <- result{info.ID, err}:
					case <-hs.ctx.Done():
					}
				}(s.info)
				continue
			}
			if s.next.Before(wake) {
				wake = s.next
			}
		}
		timer.Reset(time.Until(wake))
		select {
		case <-hs.ctx.Done():
			return
		case r := <-results:
			s := states[r.id]
			s.dialing = false
			if r.err != nil {
				hs.m.dials.WithLabelValues("bootstrap", "error").Inc()
				hs.log.Debug("bootstrap dial failed", "bootstrap", r.id.ShortString(), "retry_in", s.backoff, "err", r.err)
				s.next = time.Now().Add(jitter(s.backoff))
				s.backoff = min(2*s.backoff, time.Duration(hs.cfg.ReconnectMax))
				continue
			}
			hs.m.dials.WithLabelValues("bootstrap", "ok").Inc()
			s.backoff = time.Duration(hs.cfg.ReconnectMin)
			if hs.dht != nil {
				// A new routing table neighbour: refresh so lookups work.
				hs.dht.RefreshRoutingTable()
			}
		case ev := <-sub.Out():
			e, ok := ev.(eventConnectedness)
			if !ok {
				continue
			}
			if s := states[e.Peer]; s != nil && e.Connectedness != network.Connected && !s.dialing {
				hs.log.Info("bootstrap peer dropped; redialling", "bootstrap", e.Peer.ShortString(), "in", s.backoff)
				s.next = time.Now().Add(jitter(s.backoff))
			}
		case <-timer.C:
		}
	}
}

// jitter spreads d by up to +25% so that peers do not redial in lockstep.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(randUint64()%uint64(d/4+1))
}

// connector dials peers found by mDNS and the DHT. It owns those dials:
// at most four at a time, each bounded by a timeout.
func (hs *Host) connector() {
	defer hs.loops.Done()
	sem := make(chan struct{}, 4)
	var dials sync.WaitGroup
	defer dials.Wait()
	for {
		select {
		case <-hs.ctx.Done():
			return
		case f := <-hs.found:
			if f.info.ID == hs.h.ID() || hs.h.Network().Connectedness(f.info.ID) == network.Connected {
				continue
			}
			if len(hs.h.Network().Peers()) >= hs.cfg.ConnHigh {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-hs.ctx.Done():
				return
			}
			dials.Add(1)
			go func() {
				defer dials.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(hs.ctx, 10*time.Second)
				defer cancel()
				if err := hs.h.Connect(ctx, f.info); err != nil {
					hs.m.dials.WithLabelValues(f.source, "error").Inc()
					hs.log.Debug("dial discovered peer", "source", f.source, "to", f.info.ID.ShortString(), "err", err)
					return
				}
				hs.m.dials.WithLabelValues(f.source, "ok").Inc()
			}()
		}
	}
}

// offer hands a discovered peer to the connector without blocking; when
// the connector is behind, the peer is dropped (it will be found again).
func (hs *Host) offer(info peer.AddrInfo, source string) {
	select {
	case hs.found <- found{info: info, source: source}:
	default:
		hs.m.dials.WithLabelValues(source, "dropped").Inc()
	}
}

type mdnsNotifee struct{ hs *Host }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { n.hs.offer(ai, "mdns") }

// discover advertises this node under the chain's rendezvous key in the
// DHT and looks up others, starting every second and backing off to
// Config.DiscoveryInterval.
func (hs *Host) discover() {
	defer hs.loops.Done()
	rd := newRendezvous(hs.dht)
	ns := "bourse/" + hs.chainID
	var readvertise time.Time
	wait := time.Second
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-hs.ctx.Done():
			return
		case <-timer.C:
		}
		if hs.dht.RoutingTable().Size() == 0 {
			// Nothing to ask yet; the bootstrap keeper will fill the table.
			timer.Reset(time.Second)
			continue
		}
		if time.Now().After(readvertise) {
			ctx, cancel := context.WithTimeout(hs.ctx, 30*time.Second)
			ttl, err := rd.Advertise(ctx, ns)
			cancel()
			if err != nil {
				hs.log.Debug("dht advertise", "err", err)
			} else {
				readvertise = time.Now().Add(ttl * 7 / 8)
			}
		}
		ctx, cancel := context.WithTimeout(hs.ctx, 30*time.Second)
		peers, err := rd.FindPeers(ctx, ns, hs.cfg.ConnHigh)
		if err != nil {
			hs.log.Debug("dht find peers", "err", err)
		}
		for ai := range peers {
			if ai.ID != hs.h.ID() && len(ai.Addrs) > 0 {
				hs.offer(ai, "dht")
			}
		}
		cancel()
		if len(hs.h.Network().Peers()) >= hs.cfg.ConnLow {
			wait = time.Duration(hs.cfg.DiscoveryInterval)
		} else {
			wait = min(2*wait, time.Duration(hs.cfg.DiscoveryInterval))
		}
		timer.Reset(wait)
	}
}

// pinger refreshes the latency EWMA of every connected peer each
// PingInterval.
func (hs *Host) pinger() {
	defer hs.loops.Done()
	t := time.NewTicker(time.Duration(hs.cfg.PingInterval))
	defer t.Stop()
	for {
		select {
		case <-hs.ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range hs.h.Network().Peers() {
			if hs.ctx.Err() != nil {
				return
			}
			if _, err := hs.Ping(hs.ctx, p); err != nil {
				hs.log.Debug("ping", "to", p.ShortString(), "err", err)
			}
		}
	}
}
