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
