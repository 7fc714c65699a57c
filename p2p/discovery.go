package p2p

import (
	"context"
	"math/rand/v2"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

type eventConnectedness = event.EvtPeerConnectednessChanged

func randUint64() uint64 { return rand.Uint64() }

// rendezvous advertises and finds chain members through DHT provider
// records under a namespace key.
type rendezvous struct{ rd *drouting.RoutingDiscovery }

func newRendezvous(d *dht.IpfsDHT) rendezvous {
	return rendezvous{rd: drouting.NewRoutingDiscovery(d)}
}

func (r rendezvous) Advertise(ctx context.Context, ns string) (time.Duration, error) {
	return r.rd.Advertise(ctx, ns)
}

// FindPeers returns a channel of up to limit peers that closes when the
// lookup ends; on error the channel is already closed.
func (r rendezvous) FindPeers(ctx context.Context, ns string, limit int) (<-chan peer.AddrInfo, error) {
	ch, err := r.rd.FindPeers(ctx, ns, discovery.Limit(limit))
	if err != nil {
		empty := make(chan peer.AddrInfo)
		close(empty)
		return empty, err
	}
	return ch, nil
}
