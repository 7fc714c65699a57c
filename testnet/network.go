package testnet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/wallet"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults of Options.
const (
	DefaultNodes       = 4
	DefaultAPIBasePort = 26600 // node i's API listens on 127.0.0.1:DefaultAPIBasePort+i
	DefaultP2PBasePort = 26700 // node i's TCP and QUIC listen on DefaultP2PBasePort+i
	DefaultChainID     = "bourse-testnet"
	DefaultStake       = 1_000_000     // bonded by each validator at genesis
	DefaultBalance     = 1_000_000_000 // each node's wallet at genesis
	DefaultCollateral  = 100_000       // each provider registers this much
	MaxNodes           = 64
)

// Files in the network directory and in each node's home.
const (
	ManifestFile   = "network.json" // in DIR: what Generate made, read by Load
	GenesisFile    = "genesis.json" // in each home (and a copy in DIR)
	PassphraseFile = "passphrase"   // in each home, mode 0600: the throwaway keystore passphrase
	DaemonOutFile  = "daemon.out"   // in each home: the daemon's stdout and stderr, appended
)

// Container settings of Options.Containers: every node runs in its own
// network namespace, so they all use the same ports.
const (
	ContainerHome    = "/bourse"
	ContainerAPIPort = 26600
	ContainerP2PPort = 26700
)

// Node roles: the API's status roles (defined once, in node/api).
const (
	RoleValidator = api.RoleValidator
	RoleProvider  = api.RoleProvider
	RoleClient    = api.RoleClient
)

// Options say what network Generate makes. Zero fields take the defaults
// above.
type Options struct {
	// Dir receives node0..node{N-1} and network.json. It must be empty or
	// missing unless Force is set.
	Dir string
	// N is the number of nodes, 1..MaxNodes. Default 4.
	N int
	// APIBasePort and P2PBasePort are the first ports; node i uses base+i.
	// Defaults 26600 and 26700 (P2P: APIBasePort+100 when only the API
	// base is given).
	APIBasePort int
	P2PBasePort int
	// ChainID of the new chain. Default "bourse-testnet".
	ChainID string
	// Force removes a previous testnet in Dir (its network.json, genesis
	// and node homes) and tolerates other files there. It never removes a
	// network whose daemons are still running.
	Force bool
	// Containers generates homes for one node per container (see
	// compose.yaml): P2P listens on 0.0.0.0 and nodes bootstrap from each
	// other by host name (node0, node1, ...), all on the same ports; the
	// manifest's homes are the host paths. Ports are not checked.
	Containers bool
	// Stake, Balance and Collateral per node. Defaults above.
	Stake      uint64
	Balance    uint64
	Collateral uint64
	// Timeouts of consensus. Zero: chain.DefaultTimeouts().
	Timeouts chain.Timeouts
	// GenesisTime of the chain. Zero: now.
	GenesisTime time.Time
	// SkipPortCheck does not probe the ports (they are checked again when
	// the daemons start). For generating homes to copy elsewhere.
	SkipPortCheck bool
	// Executors every node offers as a provider (wasm, docker, exec).
	// Default: the node's default (wasm). A provider whose Docker daemon
	// does not answer simply does not offer docker.
	Executors []string
}

func (o Options) withDefaults() Options {
	if o.N == 0 {
		o.N = DefaultNodes
	}
	if o.APIBasePort == 0 {
		o.APIBasePort = DefaultAPIBasePort
	}
	if o.P2PBasePort == 0 {
		o.P2PBasePort = o.APIBasePort + (DefaultP2PBasePort - DefaultAPIBasePort)
	}
	if o.ChainID == "" {
		o.ChainID = DefaultChainID
	}
	if o.Stake == 0 {
		o.Stake = DefaultStake
	}
	if o.Balance == 0 {
		o.Balance = DefaultBalance
	}
	if o.Collateral == 0 {
		o.Collateral = DefaultCollateral
	}
	if o.Timeouts == (chain.Timeouts{}) {
		o.Timeouts = chain.DefaultTimeouts()
	}
	if o.GenesisTime.IsZero() {
		o.GenesisTime = time.Now()
	}
	if o.Containers {
		o.APIBasePort, o.P2PBasePort = ContainerAPIPort, ContainerP2PPort
		o.SkipPortCheck = true
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Dir == "":
		return errors.New("testnet: no directory given")
	case o.N < 1 || o.N > MaxNodes:
		return fmt.Errorf("testnet: %d nodes: want 1..%d", o.N, MaxNodes)
	case o.Containers:
	case o.APIBasePort < 1024 || o.APIBasePort+o.N > 65536:
		return fmt.Errorf("testnet: api base port %d: want 1024..%d", o.APIBasePort, 65536-o.N)
	case o.P2PBasePort < 1024 || o.P2PBasePort+o.N > 65536:
		return fmt.Errorf("testnet: p2p base port %d: want 1024..%d", o.P2PBasePort, 65536-o.N)
	case overlap(o.APIBasePort, o.P2PBasePort, o.N):
		return fmt.Errorf("testnet: api ports %d.. and p2p ports %d.. overlap for %d nodes", o.APIBasePort, o.P2PBasePort, o.N)
	}
	for _, e := range o.Executors {
		if e != "wasm" && e != "docker" && e != "exec" {
			return fmt.Errorf("testnet: unknown executor %q (want wasm, docker or exec)", e)
		}
	}
	if o.Collateral < chain.DefaultParams().MinProviderCollateral {
		return fmt.Errorf("testnet: collateral %d is below the chain's minimum %d", o.Collateral, chain.DefaultParams().MinProviderCollateral)
	}
	return nil
}

func overlap(a, b, n int) bool { return a < b+n && b < a+n }

// Network describes a generated testnet; it is what network.json holds.
type Network struct {
	ChainID    string    `json:"chain_id"`
	Dir        string    `json:"dir"` // absolute; not stored: the manifest's own directory
	Created    time.Time `json:"created"`
	Containers bool      `json:"containers,omitempty"`
	Collateral uint64    `json:"collateral"` // each provider's registration
	Nodes      []Node    `json:"nodes"`
}

// Node is one member of the network.
type Node struct {
	Name    string   `json:"name"`    // node0, node1, ...
	Home    string   `json:"home"`    // absolute path of the home
	PeerID  string   `json:"peer_id"` // libp2p peer id
	API     string   `json:"api"`     // host:port of the HTTP API
	Gateway string   `json:"gateway"` // host:port of the service gateway (p2p port + 100)
	P2P     []string `json:"p2p"`     // full multiaddrs, ending in /p2p/<peer id>
	Address string   `json:"address"` // wallet, validator and provider address (bo1...)
	Roles   []string `json:"roles"`
}

// Node returns the node called name.
func (nw *Network) Node(name string) (Node, bool) {
	for _, n := range nw.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Select returns the nodes named, in the network's order; no names means
// all of them. An unknown name is an error.
func (nw *Network) Select(names []string) ([]Node, error) {
	if len(names) == 0 {
		return nw.Nodes, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		if _, ok := nw.Node(n); !ok {
			return nil, fmt.Errorf("no node %q in the testnet at %s (it has node0..node%d)", n, nw.Dir, len(nw.Nodes)-1)
		}
		want[n] = true
	}
	var out []Node
	for _, n := range nw.Nodes {
		if want[n.Name] {
			out = append(out, n)
		}
	}
	return out, nil
}

var nodeDirRE = regexp.MustCompile(`^node[0-9]+$`)

// Generate creates the network described by o: the homes, one shared
// genesis and network.json. The daemons are not started (see Start).
func Generate(o Options) (*Network, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("testnet dir: %w", err)
	}
	if err := prepareDir(dir, o.Force); err != nil {
		return nil, err
	}
	if !o.SkipPortCheck {
		if err := checkPorts(o); err != nil {
			return nil, err
		}
	}
	pass, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	nw := &Network{ChainID: o.ChainID, Dir: dir, Created: o.GenesisTime.UTC().Truncate(time.Millisecond),
		Containers: o.Containers, Collateral: o.Collateral}
	keys := make([]wallet.PrivateKey, o.N)
	// Node keys first: every config lists the others' peer ids.
	for i := range o.N {
		n := Node{Name: "node" + strconv.Itoa(i), Roles: []string{RoleValidator, RoleProvider, RoleClient}}
		n.Home = filepath.Join(dir, n.Name)
		priv, err := p2p.LoadOrCreateIdentity(filepath.Join(n.Home, node.NodeKeyFile))
		if err != nil {
			return nil, fmt.Errorf("generate %s: %w", n.Name, err)
		}
		id, err := peer.IDFromPrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("generate %s: peer id: %w", n.Name, err)
		}
		n.PeerID = id.String()
		host, p2pPort := "127.0.0.1", o.P2PBasePort+i
		if o.Containers {
			host, p2pPort = n.Name, o.P2PBasePort
		}
		n.API = "127.0.0.1:" + strconv.Itoa(o.APIBasePort+i)
		if o.Containers {
			n.API = "127.0.0.1:" + strconv.Itoa(o.APIBasePort)
		}
		n.Gateway = "127.0.0.1:" + strconv.Itoa(o.P2PBasePort+100+i)
		if o.Containers {
			n.Gateway = "0.0.0.0:8480"
		}
		n.P2P = dialAddrs(host, p2pPort, o.Containers, n.PeerID)
		if keys[i], err = wallet.GenerateKey(nil); err != nil {
			return nil, fmt.Errorf("generate %s: wallet key: %w", n.Name, err)
		}
		n.Address = keys[i].Address().String()
		nw.Nodes = append(nw.Nodes, n)
	}
	g := genesisFor(o, keys)
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("generate genesis: %w", err)
	}
	for i, n := range nw.Nodes {
		cfg := configFor(o, nw, i)
		if _, err := node.InitHome(node.InitOptions{Home: n.Home, Config: cfg, Passphrase: pass,
			Scrypt: wallet.LightScrypt, WalletKey: &keys[i]}); err != nil {
			return nil, fmt.Errorf("generate %s: %w", n.Name, err)
		}
		if err := g.Save(filepath.Join(n.Home, cfg.Chain.Genesis)); err != nil {
			return nil, fmt.Errorf("generate %s: %w", n.Name, err)
		}
		if err := os.WriteFile(filepath.Join(n.Home, PassphraseFile), []byte(pass+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("generate %s: write passphrase: %w", n.Name, err)
		}
	}
	if err := g.Save(filepath.Join(dir, GenesisFile)); err != nil {
		return nil, err
	}
	if err := nw.save(); err != nil {
		return nil, err
	}
	return nw, nil
}

// dialAddrs are the addresses others dial to reach a node.
func dialAddrs(host string, port int, dns bool, id string) []string {
	proto := "ip4"
	if dns {
		proto = "dns4"
	}
	p := strconv.Itoa(port)
	return []string{
		"/" + proto + "/" + host + "/tcp/" + p + "/p2p/" + id,
		"/" + proto + "/" + host + "/udp/" + p + "/quic-v1/p2p/" + id,
	}
}

func genesisFor(o Options, keys []wallet.PrivateKey) *chain.Genesis {
	g := &chain.Genesis{ChainID: o.ChainID, GenesisTime: o.GenesisTime.UnixMilli(),
		Timeouts: o.Timeouts, Params: chain.DefaultParams()}
	// A local testnet's unbonding takes about a minute, so it can be tried;
	// real networks keep the default window (chain/RATIONALE.md).
	g.Params.UnbondingBlocks = 1000
	// Results are held 5 s for a challenge (an honest client acks at
	// once), and a committee of the other two validators has 5 s to
	// attest: short enough to watch a challenge play out.
	g.Params.ChallengeWindowMs = 5000
	g.Params.AttestWindowMs = 5000
	g.Params.CommitteeSize = 2
	for _, k := range keys {
		g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: k.Address(), Balance: o.Balance})
		g.Validators = append(g.Validators, chain.GenesisValidator{Address: k.Address(),
			PubKey: chain.HexKey(k.Public()), Stake: o.Stake})
	}
	return g
}

func configFor(o Options, nw *Network, i int) node.Config {
	n := nw.Nodes[i]
	cfg := node.DefaultConfig()
	cfg.ChainID = o.ChainID
	cfg.Moniker = n.Name
	cfg.API.Listen = n.API
	cfg.Gateway.Listen = n.Gateway
	cfg.Gateway.Public = o.Containers
	cfg.P2P = p2p.LocalConfig()
	port := strconv.Itoa(o.P2PBasePort + i)
	listen := "127.0.0.1"
	if o.Containers {
		port, listen = strconv.Itoa(o.P2PBasePort), "0.0.0.0"
	}
	cfg.P2P.ListenAddrs = []string{"/ip4/" + listen + "/tcp/" + port, "/ip4/" + listen + "/udp/" + port + "/quic-v1"}
	cfg.P2P.Bootstrap = nil
	for j, other := range nw.Nodes {
		if j != i {
			cfg.P2P.Bootstrap = append(cfg.P2P.Bootstrap, other.P2P[0])
		}
	}
	cfg.Chain.CheckInvariants = true // a testnet halts loudly where the state breaks
	cfg.Provider.Enabled = true
	cfg.Provider.Region = "local"
	cfg.Provider.Labels = map[string]string{"testnet": "true", "node": n.Name}
	cfg.Provider.OfferInterval = node.Duration{Duration: time.Second}
	if len(o.Executors) > 0 {
		cfg.Provider.Executors = append([]string(nil), o.Executors...)
	}
	return cfg
}

// prepareDir makes dir exist and be free for a new network.
func prepareDir(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("testnet dir: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("%s is not empty: choose an empty directory, or pass --force to replace the testnet in it", dir)
	}
	if old, err := Load(dir); err == nil {
		if running := RunningNodes(old); len(running) > 0 {
			return fmt.Errorf("the testnet in %s is still running (%v): stop it first with 'bourse testnet down --dir %s'", dir, running, dir)
		}
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == ManifestFile || name == GenesisFile:
		case e.IsDir() && nodeDirRE.MatchString(name):
			home := filepath.Join(dir, name)
			if _, err := os.Stat(filepath.Join(home, node.ConfigFile)); err != nil {
				if _, err := os.Stat(filepath.Join(home, node.NodeKeyFile)); err != nil {
					continue // not a node home: leave it alone
				}
			}
			if pid, ok := livePID(home); ok {
				return fmt.Errorf("a daemon (pid %d) still runs in %s: stop it first with 'bourse testnet down --dir %s'", pid, home, dir)
			}
		default:
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("remove old testnet: %w", err)
		}
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// manifest is network.json: homes are stored relative to the directory so
// that it can be moved or mounted elsewhere.
type manifest struct {
	ChainID    string    `json:"chain_id"`
	Created    time.Time `json:"created"`
	Containers bool      `json:"containers,omitempty"`
	Collateral uint64    `json:"collateral"`
	Nodes      []Node    `json:"nodes"`
}

func (nw *Network) save() error {
	m := manifest{ChainID: nw.ChainID, Created: nw.Created, Containers: nw.Containers, Collateral: nw.Collateral}
	for _, n := range nw.Nodes {
		rel, err := filepath.Rel(nw.Dir, n.Home)
		if err != nil {
			return fmt.Errorf("save manifest: %w", err)
		}
		n.Home = filepath.ToSlash(rel)
		m.Nodes = append(m.Nodes, n)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(nw.Dir, ManifestFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	return nil
}

// maxManifest bounds how much of network.json is read.
const maxManifest = 1 << 20

// Load reads the network.json in dir.
func Load(dir string) (*Network, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("testnet dir: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(abs, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no testnet in %s (no %s): start one with 'bourse testnet up --dir %s'", abs, ManifestFile, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read testnet manifest: %w", err)
	}
	nw, err := ParseManifest(raw, abs)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(abs, ManifestFile), err)
	}
	return nw, nil
}

// ParseManifest decodes network.json for a network in dir. It checks what
// status and down rely on: node names, relative homes inside dir, API
// addresses.
func ParseManifest(raw []byte, dir string) (*Network, error) {
	if len(raw) > maxManifest {
		return nil, fmt.Errorf("manifest: %d bytes is too large", len(raw))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if dec.More() {
		return nil, errors.New("manifest: trailing data")
	}
	if m.ChainID == "" {
		return nil, errors.New("manifest: no chain_id")
	}
	if len(m.Nodes) == 0 || len(m.Nodes) > MaxNodes {
		return nil, fmt.Errorf("manifest: %d nodes, want 1..%d", len(m.Nodes), MaxNodes)
	}
	nw := &Network{ChainID: m.ChainID, Dir: dir, Created: m.Created, Containers: m.Containers, Collateral: m.Collateral}
	seen := map[string]bool{}
	for i, n := range m.Nodes {
		if !nodeDirRE.MatchString(n.Name) || seen[n.Name] {
			return nil, fmt.Errorf("manifest: nodes[%d]: bad or repeated name %q", i, n.Name)
		}
		seen[n.Name] = true
		if n.Home != n.Name {
			return nil, fmt.Errorf("manifest: nodes[%d]: home %q must be %q", i, n.Home, n.Name)
		}
		n.Home = filepath.Join(dir, n.Name)
		if _, err := peer.Decode(n.PeerID); err != nil {
			return nil, fmt.Errorf("manifest: nodes[%d]: peer id: %w", i, err)
		}
		if _, err := wallet.ParseAddress(n.Address); err != nil {
			return nil, fmt.Errorf("manifest: nodes[%d]: address: %w", i, err)
		}
		if err := checkHostPort(n.API); err != nil {
			return nil, fmt.Errorf("manifest: nodes[%d]: api: %w", i, err)
		}
		nw.Nodes = append(nw.Nodes, n)
	}
	return nw, nil
}
