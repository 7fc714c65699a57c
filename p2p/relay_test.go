package p2p

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// A provider behind a NAT is reached only through a circuit relay v2: the
// connection to it is limited (relayed). The request/response protocols
// (sync, payloads, results) must still open over it: libp2p refuses a new
// stream on a limited connection unless the caller allows it, so before,
// a NATed provider could gossip but never be asked for a result.
func TestRequestsOpenOverARelayedConnection(t *testing.T) {
	relay := newTestHost(t, func(c *Config) { c.RelayService = true; c.DHT = false })
	natted := newTestHost(t, func(c *Config) { c.RelayClient = true; c.DHT = false })
	client_ := newTestHost(t, func(c *Config) { c.RelayClient = true; c.DHT = false })

	const echo = "echo-relay"
	must(t, natted.Handle(echo, 64, func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
		return append([]byte("re:"), req...), nil
	}))
	must(t, natted.HandleStream(echo+"-stream", 64, func(ctx context.Context, from peer.ID, req []byte, send func([]byte) error) error {
		for i := 0; i < 3; i++ {
			if err := send(req); err != nil {
				return err
			}
		}
		return nil
	}))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The NATed host reserves a slot on the relay.
	connect(t, natted.Host, relay.Host)
	if _, err := client.Reserve(ctx, natted.Libp2p(), addrInfo(relay.Host)); err != nil {
		t.Fatalf("reserve a relay slot: %v", err)
	}
	// The client knows the NATed host only by its circuit address.
	var circuit []ma.Multiaddr
	for _, a := range relay.Libp2p().Addrs() {
		circuit = append(circuit, a.Encapsulate(ma.StringCast("/p2p/"+relay.ID().String()+"/p2p-circuit")))
	}
	if err := client_.Connect(ctx, peer.AddrInfo{ID: natted.ID(), Addrs: circuit}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	for _, c := range client_.Libp2p().Network().ConnsToPeer(natted.ID()) {
		if !c.Stat().Limited {
			t.Fatalf("a direct connection %s exists; the test needs only the relayed one", c.RemoteMultiaddr())
		}
	}
	if got := client_.Libp2p().Network().Connectedness(natted.ID()); got != network.Limited {
		t.Fatalf("connectedness %v, want Limited", got)
	}

	resp, err := client_.Request(ctx, natted.ID(), echo, []byte("hi"), 64)
	if err != nil {
		t.Fatalf("request over the relayed connection: %v", err)
	}
	if !bytes.Equal(resp, []byte("re:hi")) {
		t.Fatalf("response %q", resp)
	}
	var frames int
	if err := client_.RequestStream(ctx, natted.ID(), echo+"-stream", []byte("x"), 64, func(b []byte) error { frames++; return nil }); err != nil || frames != 3 {
		t.Fatalf("streamed request over the relayed connection: %d frames, %v", frames, err)
	}
}

// Attack: a peer that reaches a NATed provider only through a relay (or
// through many relays, which cost it nothing) holds the provider's
// request slots with slow streams. Over relayed connections a peer gets
// RelayedPerPeer concurrent exchanges per protocol, fewer than
// MaxInboundPerPeer: at the bound they are served, one more is refused at
// once. Before, a relayed peer had the whole per-peer budget.
func TestRelayedPeerAttackGetsASmallerInboundBudget(t *testing.T) {
	relay := newTestHost(t, func(c *Config) { c.RelayService = true; c.DHT = false })
	natted := newTestHost(t, func(c *Config) { c.RelayClient = true; c.DHT = false })
	greedy := newTestHost(t, func(c *Config) { c.RelayClient = true; c.DHT = false })
	if natted.cfg.MaxInboundPerPeer <= RelayedPerPeer {
		t.Fatalf("MaxInboundPerPeer %d: the test needs it above RelayedPerPeer %d", natted.cfg.MaxInboundPerPeer, RelayedPerPeer)
	}
	const slow = "slow-relay"
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	must(t, natted.HandleStream(slow, 64, func(ctx context.Context, from peer.ID, req []byte, send func([]byte) error) error {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return send(req)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect(t, natted.Host, relay.Host)
	if _, err := client.Reserve(ctx, natted.Libp2p(), addrInfo(relay.Host)); err != nil {
		t.Fatalf("reserve a relay slot: %v", err)
	}
	var circuit []ma.Multiaddr
	for _, a := range relay.Libp2p().Addrs() {
		circuit = append(circuit, a.Encapsulate(ma.StringCast("/p2p/"+relay.ID().String()+"/p2p-circuit")))
	}
	if err := greedy.Connect(ctx, peer.AddrInfo{ID: natted.ID(), Addrs: circuit}); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	if got := greedy.Libp2p().Network().Connectedness(natted.ID()); got != network.Limited {
		t.Fatalf("connectedness %v, want Limited", got)
	}
	results := make(chan error, 16)
	ask := func() {
		results <- greedy.RequestStream(ctx, natted.ID(), slow, []byte("x"), 64, func([]byte) error { return nil })
	}
	for range RelayedPerPeer {
		go ask()
	}
	for range RelayedPerPeer {
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("the requests within the relayed budget were not served")
		}
	}
	// One more over the relay: refused at once, while the others hold.
	go ask()
	select {
	case err := <-results:
		if err == nil {
			t.Fatal("a request over the relayed budget was served")
		}
	case <-entered:
		t.Fatalf("a request beyond RelayedPerPeer (%d) was taken over a relayed connection", RelayedPerPeer)
	case <-ctx.Done():
		t.Fatal("the request beyond the budget neither failed nor was served")
	}
	close(release)
	for range RelayedPerPeer {
		if err := <-results; err != nil {
			t.Fatalf("a request within the budget: %v", err)
		}
	}
}

// The relayed budget at its bounds, and that it is on top of, not instead
// of, the direct one.
func TestInboundLimiterRelayedBudget(t *testing.T) {
	l := newInboundLimiter(8, 4)
	a, b, c, d, e := peer.ID("a"), peer.ID("b"), peer.ID("c"), peer.ID("d"), peer.ID("e")
	for range RelayedPerPeer {
		if !l.acquire(a, true) {
			t.Fatal("relayed slot within the per-peer bound refused")
		}
	}
	if l.acquire(a, true) {
		t.Fatal("relayed slot past RelayedPerPeer taken")
	}
	if !l.acquire(a, false) || !l.acquire(a, false) || l.acquire(a, false) {
		t.Fatal("a's direct slots: want the rest of its per-peer 4")
	}
	// relayedTotal = 8/4 = 2: taken by a; b gets none over a relay.
	if l.acquire(b, true) {
		t.Fatal("relayed slot past the relayed total taken")
	}
	l.release(a, true)
	if !l.acquire(b, true) {
		t.Fatal("a released relayed slot was not given to b")
	}
	// a holds 3, b 1: c and d fill the total of 8 directly.
	for _, p := range []peer.ID{c, c, d, d} {
		if !l.acquire(p, false) {
			t.Fatalf("direct slot for %s refused", p)
		}
	}
	if l.acquire(e, false) {
		t.Fatal("slot past the total taken")
	}
}
