package node

import (
	"reflect"
	"testing"

	"github.com/bourse-net/bourse/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// What `bourse node id` offers others to dial: announced addresses first;
// else listen addresses with 0.0.0.0 replaced by the machine's interface
// addresses (loopback only when there is nothing else); never port 0.
func TestBootstrapAddrsAreDialable(t *testing.T) {
	id, err := peer.Decode("12D3KooWFpF1ooxtEBsyf2n1GyaRojG6rdbR5P7dbMiHTrDFkySi")
	if err != nil {
		t.Fatal(err)
	}
	suffix := "/p2p/" + id.String()
	ifaces := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1"), ma.StringCast("/ip4/10.1.2.3"), ma.StringCast("/ip6/::1")}
	cases := []struct {
		name             string
		listen, announce []string
		ifaces           []ma.Multiaddr
		want             []string
	}{
		{"announced", []string{"/ip4/0.0.0.0/tcp/4001"}, []string{"/dns4/n1.example.org/tcp/4001"}, ifaces,
			[]string{"/dns4/n1.example.org/tcp/4001" + suffix}},
		{"unspecified expands, loopback dropped", []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}, nil, ifaces,
			[]string{"/ip4/10.1.2.3/tcp/4001" + suffix, "/ip4/10.1.2.3/udp/4001/quic-v1" + suffix}},
		{"only loopback", []string{"/ip4/0.0.0.0/tcp/4001"}, nil, ifaces[:1], []string{"/ip4/127.0.0.1/tcp/4001" + suffix}},
		{"port 0 is unknown until the daemon runs", []string{"/ip4/127.0.0.1/tcp/0"}, nil, ifaces, []string{}},
	}
	for _, tc := range cases {
		cfg := p2p.DefaultConfig()
		cfg.ListenAddrs, cfg.AnnounceAddrs = tc.listen, tc.announce
		got, err := BootstrapAddrs(cfg, id, tc.ifaces)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v (%v), want %v", tc.name, got, err, tc.want)
		}
	}
}
