package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/testnet"
)

// DefaultP2PPort is the P2P port of every node placed in a namespace: each
// has its own address, so they all use the same port.
const DefaultP2PPort = 26700

// Place rewrites the homes of a network made by testnet.Generate for nodes
// that each run on a host of their own: node i listens for P2P (TCP and
// QUIC) on hosts[i].Inner:port and bootstraps from the others at their
// Addr (for a host behind a NAT, its router's address, where nothing
// answers: the others reach it only through connections it opens). The API stays where Generate put it (loopback, inside the
// node's namespace). The nodes' P2P addresses in nw are updated (in
// memory: network.json keeps Generate's).
func Place(nw *testnet.Network, hosts []Host, port int) error {
	if len(hosts) != len(nw.Nodes) {
		return fmt.Errorf("place %d nodes on %d hosts", len(nw.Nodes), len(hosts))
	}
	if port <= 0 || port > 65535 {
		return fmt.Errorf("place nodes: port %d", port)
	}
	p := strconv.Itoa(port)
	for i := range nw.Nodes {
		n := &nw.Nodes[i]
		n.P2P = []string{
			"/ip4/" + hosts[i].Addr + "/tcp/" + p + "/p2p/" + n.PeerID,
			"/ip4/" + hosts[i].Addr + "/udp/" + p + "/quic-v1/p2p/" + n.PeerID,
		}
	}
	for i, n := range nw.Nodes {
		path := filepath.Join(n.Home, node.ConfigFile)
		cfg, err := node.LoadConfig(path)
		if err != nil {
			return fmt.Errorf("place %s: %w", n.Name, err)
		}
		in := hosts[i].Inner
		cfg.P2P.ListenAddrs = []string{"/ip4/" + in + "/tcp/" + p, "/ip4/" + in + "/udp/" + p + "/quic-v1"}
		cfg.P2P.Bootstrap = nil
		for j, other := range nw.Nodes {
			if j != i {
				cfg.P2P.Bootstrap = append(cfg.P2P.Bootstrap, other.P2P...)
			}
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("place %s: %w", n.Name, err)
		}
		if err := os.WriteFile(path, node.RenderConfig(cfg), 0o600); err != nil {
			return fmt.Errorf("place %s: %w", n.Name, err)
		}
	}
	return nil
}
