package node

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/wallet"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Identity is what an operator hands to the others when a network is
// formed: `bourse node id --json` prints it and `bourse genesis
// add-validator --from FILE` reads its address and pub_key. Nothing in it
// is secret.
type Identity struct {
	Moniker string `json:"moniker"`
	ChainID string `json:"chain_id"`
	// PeerID is the libp2p identity (node.key).
	PeerID string `json:"peer_id"`
	// ListenAddrs and AnnounceAddrs are p2p.listen_addrs and
	// p2p.announce_addrs as configured.
	ListenAddrs   []string `json:"listen_addrs"`
	AnnounceAddrs []string `json:"announce_addrs"`
	// BootstrapAddrs are full multiaddrs (ending in /p2p/<peer id>) other
	// nodes can put in their p2p.bootstrap: the announced addresses, or
	// else the listen addresses with 0.0.0.0 and :: replaced by this
	// machine's interface addresses (loopback only when there is nothing
	// else). Listen addresses on port 0 are left out: their port is only
	// known once the daemon runs.
	BootstrapAddrs []string `json:"bootstrap_addrs"`
	// WalletKey names the signing key; Address and PubKey are the
	// validator's (and wallet's) address and public key.
	WalletKey string         `json:"wallet_key"`
	Address   wallet.Address `json:"address"`
	PubKey    chain.HexKey   `json:"pub_key"`
	// API is api.listen; APIFingerprint is the SHA-256 fingerprint of the
	// API's TLS certificate when the home has one (see APIFingerprint).
	API            string `json:"api"`
	APIFingerprint string `json:"api_fingerprint,omitempty"`
	// GenesisHash is the hash of the home's genesis (GenesisHash), empty
	// when the home has no genesis yet.
	GenesisHash string `json:"genesis_hash,omitempty"`
}

// ReadIdentity reads a home's identity from its files: config.toml, the
// node key, the keystore header of the signing key (the public key is
// stored in clear beside the encrypted private key, so no passphrase is
// needed) and the genesis. The daemon need not run.
func ReadIdentity(home string) (Identity, error) {
	cfg, err := LoadConfig(filepath.Join(home, ConfigFile))
	if err != nil {
		return Identity{}, err
	}
	key, err := p2p.LoadIdentity(filepath.Join(home, NodeKeyFile))
	if err != nil {
		return Identity{}, fmt.Errorf("read node key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return Identity{}, fmt.Errorf("read node key: %w", err)
	}
	info, err := Keystore(home).Find(cfg.Wallet.Key)
	if err != nil {
		return Identity{}, fmt.Errorf("wallet key %q (config wallet.key): %w", cfg.Wallet.Key, err)
	}
	out := Identity{
		Moniker: cfg.Moniker, ChainID: cfg.ChainID, PeerID: id.String(),
		ListenAddrs: nonNil(cfg.P2P.ListenAddrs), AnnounceAddrs: nonNil(cfg.P2P.AnnounceAddrs),
		WalletKey: info.Name, Address: info.Address, PubKey: chain.HexKey(info.PublicKey),
		API: cfg.API.Listen,
	}
	out.BootstrapAddrs, err = BootstrapAddrs(cfg.P2P, id, interfaceAddrs())
	if err != nil {
		return Identity{}, err
	}
	if fp, err := APIFingerprint(home, cfg); err == nil {
		out.APIFingerprint = fp
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Identity{}, err
	}
	raw, err := os.ReadFile(genesisPath(home, cfg))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Identity{}, fmt.Errorf("read genesis: %w", err)
	default:
		if out.GenesisHash, err = GenesisHash(raw); err != nil {
			return Identity{}, fmt.Errorf("genesis %s: %w", genesisPath(home, cfg), err)
		}
	}
	return out, nil
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

func genesisPath(home string, cfg Config) string {
	if filepath.IsAbs(cfg.Chain.Genesis) {
		return cfg.Chain.Genesis
	}
	return filepath.Join(home, cfg.Chain.Genesis)
}

func interfaceAddrs() []ma.Multiaddr {
	addrs, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return nil
	}
	return addrs
}

// BootstrapAddrs are the full multiaddrs another node can dial this one
// on (see Identity.BootstrapAddrs); ifaces are the machine's interface
// addresses that stand in for 0.0.0.0 and ::.
func BootstrapAddrs(cfg p2p.Config, id peer.ID, ifaces []ma.Multiaddr) ([]string, error) {
	src := cfg.AnnounceAddrs
	if len(src) == 0 {
		src = cfg.ListenAddrs
	}
	var routable, loopback []ma.Multiaddr
	add := func(a ma.Multiaddr) {
		if manet.IsIPLoopback(a) {
			loopback = append(loopback, a)
		} else {
			routable = append(routable, a)
		}
	}
	for _, s := range src {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", s, err)
		}
		if portZero(a) {
			continue
		}
		if !manet.IsIPUnspecified(a) {
			add(a)
			continue
		}
		resolved, err := manet.ResolveUnspecifiedAddress(a, ifaces)
		if err != nil {
			continue // no interface of that family
		}
		for _, r := range resolved {
			if !manet.IsIP6LinkLocal(r) {
				add(r)
			}
		}
	}
	if len(routable) == 0 {
		routable = loopback
	}
	suffix := ma.StringCast("/p2p/" + id.String())
	out := make([]string, 0, len(routable))
	for _, a := range routable {
		out = append(out, a.Encapsulate(suffix).String())
	}
	return out, nil
}

func portZero(a ma.Multiaddr) bool {
	for _, p := range []int{ma.P_TCP, ma.P_UDP} {
		if v, err := a.ValueForProtocol(p); err == nil && v == "0" {
			return true
		}
	}
	return false
}

// GenesisHash is the hash operators compare before they start a network:
// the SHA-256, in hex, of the genesis in canonical form (compact JSON,
// fields in a fixed order, omitted defaults filled in), so that two files
// that differ only in layout have one hash. The genesis must be valid.
func GenesisHash(raw []byte) (string, error) {
	g, err := chain.ParseGenesis(raw)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(g)
	if err != nil {
		return "", fmt.Errorf("genesis hash: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
