package p2p

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Ten hosts that only know one bootstrap peer find each other through the
// DHT rendezvous and end up fully connected.
func TestDiscoveryTenHostsFromOneBootstrap(t *testing.T) {
	const n = 10
	fast := func(c *Config) { c.DiscoveryInterval = Duration(time.Second) }
	boot := newTestHost(t, fast)
	bootAddr := boot.Addrs()[0].String()
	hosts := []*testHost{boot}
	for i := 1; i < n; i++ {
		hosts = append(hosts, newTestHost(t, func(c *Config) {
			fast(c)
			c.Bootstrap = []string{bootAddr}
		}))
	}
	eventually(t, 40*time.Second, "every host connected to every other", func() bool {
		for _, h := range hosts {
			if len(h.Libp2p().Network().Peers()) < n-1 {
				return false
			}
		}
		return true
	})
	for _, h := range hosts {
		for _, o := range hosts {
			if h != o && h.Libp2p().Network().Connectedness(o.ID()) != network.Connected {
				t.Errorf("%s not connected to %s", h.ID(), o.ID())
			}
		}
	}
}

// A host that loses its bootstrap peer dials it again.
func TestBootstrapPeerIsRedialled(t *testing.T) {
	// No DHT and no AutoNAT (whose service dials back) on either side:
	// nothing but h's bootstrap loop reconnects them.
	boot := newTestHost(t, func(c *Config) { c.DHT, c.AutoNAT = false, false })
	h := newTestHost(t, func(c *Config) {
		c.Bootstrap = []string{boot.Addrs()[0].String()}
		c.DHT, c.AutoNAT = false, false
	})
	// Both sides must see the connection, or the bootstrap peer could try
	// to hang up on a connection it has not registered yet.
	connected := func() bool {
		return h.Libp2p().Network().Connectedness(boot.ID()) == network.Connected &&
			boot.Libp2p().Network().Connectedness(h.ID()) == network.Connected
	}
	eventually(t, 10*time.Second, "first bootstrap connection", connected)
	sub, err := h.Libp2p().EventBus().Subscribe(new(eventConnectedness))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	dials := func() float64 {
		return metricSum(t, h.reg, "bourse_p2p_discovery_dials_total", map[string]string{"source": "bootstrap", "outcome": "ok"})
	}
	for round := 0; round < 3; round++ {
		before := dials()
		// The bootstrap side hangs up, as a restarting node would.
		if err := boot.Libp2p().Network().ClosePeer(h.ID()); err != nil {
			t.Fatal(err)
		}
		sawDrop := false
		for !sawDrop {
			select {
			case ev := <-sub.Out():
				e := ev.(eventConnectedness)
				sawDrop = e.Peer == boot.ID() && e.Connectedness != network.Connected
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: no disconnect event", round)
			}
		}
		eventually(t, 20*time.Second, fmt.Sprintf("reconnect in round %d", round), connected)
		// h dialled its bootstrap peer again.
		eventually(t, 20*time.Second, fmt.Sprintf("a bootstrap redial in round %d", round), func() bool { return dials() > before })
	}
}

// Peers reports addresses, protocols and, once measured, latency.
func TestPeersInfo(t *testing.T) {
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	if err := b.Handle(ProtoSync, 16, func(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) { return req, nil }); err != nil {
		t.Fatal(err)
	}
	connect(t, a.Host, b.Host)
	// No check that latency is unknown before the ping: libp2p may measure
	// a round trip on its own once connected (it did in 1 of 3 runs).
	rtt, err := a.Ping(context.Background(), b.ID())
	if err != nil || rtt <= 0 {
		t.Fatalf("ping: %v %v", rtt, err)
	}
	var info PeerInfo
	eventually(t, 10*time.Second, "identify to report b's protocols", func() bool {
		ps := a.Peers()
		if len(ps) != 1 {
			return false
		}
		info = ps[0]
		for _, p := range info.Protocols {
			if p == b.ProtocolID(ProtoSync) {
				return true
			}
		}
		return false
	})
	if info.ID != b.ID() || len(info.Addrs) == 0 || info.Latency <= 0 {
		t.Fatalf("peer info %+v", info)
	}
	// Not equal to info.Latency: the DHT records round trips of its own
	// queries between the two reads.
	if got := a.Latency(b.ID()); got <= 0 {
		t.Errorf("Latency = %v after a ping", got)
	}
}

// Both transports work on their own: a TCP-only and a QUIC-only pair each
// connect and exchange a request.
func TestTransports(t *testing.T) {
	for _, tc := range []struct{ name, addr, proto string }{
		{"tcp", "/ip4/127.0.0.1/tcp/0", "/tcp/"},
		{"quic", "/ip4/127.0.0.1/udp/0/quic-v1", "/quic-v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			only := func(c *Config) { c.ListenAddrs = []string{tc.addr}; c.DHT = false }
			a, b := newTestHost(t, only), newTestHost(t, only)
			must(t, b.Handle("ping/1", 8, func(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) { return req, nil }))
			connect(t, a.Host, b.Host)
			conns := a.Libp2p().Network().ConnsToPeer(b.ID())
			if len(conns) == 0 || !strings.Contains(conns[0].RemoteMultiaddr().String(), tc.proto) {
				t.Fatalf("connection %v is not over %s", conns, tc.name)
			}
			if got, err := a.Request(context.Background(), b.ID(), "ping/1", []byte("x"), 8); err != nil || string(got) != "x" {
				t.Fatalf("request over %s: %q %v", tc.name, got, err)
			}
			for _, addr := range a.Addrs() {
				if !strings.HasSuffix(addr.String(), "/p2p/"+a.ID().String()) {
					t.Errorf("Addrs entry %s lacks /p2p/<id>", addr)
				}
			}
		})
	}
}
