package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A host behind a port forward announces its public address: Addrs (what
// `bourse node id` and the testnet print) and what peers learn through
// identify are the announced address, not the private listen address.
func TestAnnouncedAddressIsWhatPeersLearn(t *testing.T) {
	const public = "/ip4/203.0.113.7/tcp/4001"
	a := newTestHost(t, func(c *Config) { c.AnnounceAddrs = []string{public}; c.DHT = false })
	b := newTestHost(t, func(c *Config) { c.DHT = false })

	got := a.Addrs()
	if len(got) != 1 || got[0].String() != public+"/p2p/"+a.ID().String() {
		t.Fatalf("Addrs() = %v, want only %s/p2p/<id>", got, public)
	}
	// b dials a on its real listen address; identify tells b the announced one.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Libp2p().Network().ListenAddresses()}); err != nil {
		t.Fatal(err)
	}
	want := ma.StringCast(public)
	eventually(t, 10*time.Second, "b learns a's announced address", func() bool {
		for _, x := range b.Libp2p().Peerstore().Addrs(a.ID()) {
			if x.Equal(want) {
				return true
			}
		}
		return false
	})
}
