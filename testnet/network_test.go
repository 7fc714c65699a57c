package testnet

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/p2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// freeBase finds an API base port with n free API ports and n free P2P
// ports (base+100..) on 127.0.0.1. Other test runs share the machine, so
// it starts from a random place and reports its seed.
func freeBase(t *testing.T, n int) int {
	t.Helper()
	seed := time.Now().UnixNano()
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	for range 50 {
		base := 10000 + r.IntN(22000) // below the kernel's ephemeral range (32768–60999 here)
		o := Options{N: n, APIBasePort: base}.withDefaults()
		if checkPorts(o) == nil {
			return base
		}
	}
	t.Fatalf("no free port range found (seed %d)", seed)
	return 0
}

func TestGenerateHomes(t *testing.T) {
	for _, n := range []int{1, 4, 7} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			dir := t.TempDir()
			base := freeBase(t, n)
			nw, err := Generate(Options{Dir: dir, N: n, APIBasePort: base})
			if err != nil {
				t.Fatal(err)
			}
			checkNetwork(t, nw, n, base, base+100)
			again, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !equalNetworks(nw, again) {
				t.Fatalf("manifest round trip:\n got %+v\nwant %+v", again, nw)
			}
		})
	}
}

func equalNetworks(a, b *Network) bool {
	if a.ChainID != b.ChainID || a.Dir != b.Dir || !a.Created.Equal(b.Created) || a.Collateral != b.Collateral || len(a.Nodes) != len(b.Nodes) {
		return false
	}
	for i := range a.Nodes {
		x, y := a.Nodes[i], b.Nodes[i]
		if x.Name != y.Name || x.Home != y.Home || x.PeerID != y.PeerID || x.API != y.API || x.Address != y.Address ||
			!slices.Equal(x.P2P, y.P2P) || !slices.Equal(x.Roles, y.Roles) {
			return false
		}
	}
	return true
}

// checkNetwork checks the invariants of a generated local network.
func checkNetwork(t *testing.T, nw *Network, n, apiBase, p2pBase int) {
	t.Helper()
	if len(nw.Nodes) != n {
		t.Fatalf("%d nodes, want %d", len(nw.Nodes), n)
	}
	g0, err := chain.LoadGenesis(filepath.Join(nw.Dir, GenesisFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(g0.Validators) != n || len(g0.Accounts) != n {
		t.Fatalf("genesis has %d validators and %d accounts, want %d each", len(g0.Validators), len(g0.Accounts), n)
	}
	if g0.Timeouts != chain.DefaultTimeouts() || g0.ChainID != DefaultChainID {
		t.Fatalf("genesis timeouts %+v chain %q", g0.Timeouts, g0.ChainID)
	}
	ports := map[string]string{}
	claim := func(port, who string) {
		if prev, dup := ports[port]; dup {
			t.Fatalf("port %s used by %s and %s", port, prev, who)
		}
		ports[port] = who
	}
	genesisBytes, _ := os.ReadFile(filepath.Join(nw.Dir, GenesisFile))
	for i, nd := range nw.Nodes {
		if nd.Name != "node"+strconv.Itoa(i) || nd.Home != filepath.Join(nw.Dir, nd.Name) {
			t.Fatalf("node %d is %q at %s", i, nd.Name, nd.Home)
		}
		cfg, err := node.LoadConfig(filepath.Join(nd.Home, node.ConfigFile))
		if err != nil {
			t.Fatalf("%s: %v", nd.Name, err)
		}
		if cfg.ChainID != nw.ChainID || cfg.API.Listen != nd.API || cfg.API.Listen != "127.0.0.1:"+strconv.Itoa(apiBase+i) {
			t.Fatalf("%s: chain %q api %q", nd.Name, cfg.ChainID, cfg.API.Listen)
		}
		claim(cfg.API.Listen, nd.Name+" api")
		wantListen := []string{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(p2pBase+i), "/ip4/127.0.0.1/udp/" + strconv.Itoa(p2pBase+i) + "/quic-v1"}
		if !slices.Equal(cfg.P2P.ListenAddrs, wantListen) {
			t.Fatalf("%s listens on %v, want %v", nd.Name, cfg.P2P.ListenAddrs, wantListen)
		}
		claim(strconv.Itoa(p2pBase+i), nd.Name+" p2p")
		if cfg.P2P.MDNS || !cfg.Provider.Enabled || cfg.Chain.Genesis != GenesisFile {
			t.Fatalf("%s: mdns %v provider %v genesis %q", nd.Name, cfg.P2P.MDNS, cfg.Provider.Enabled, cfg.Chain.Genesis)
		}
		// Bootstraps: exactly the others, each dialable with its peer id.
		if len(cfg.P2P.Bootstrap) != n-1 {
			t.Fatalf("%s bootstraps from %d peers, want %d", nd.Name, len(cfg.P2P.Bootstrap), n-1)
		}
		for _, b := range cfg.P2P.Bootstrap {
			ai, err := peer.AddrInfoFromString(b)
			if err != nil {
				t.Fatal(err)
			}
			j := slices.IndexFunc(nw.Nodes, func(o Node) bool { return o.PeerID == ai.ID.String() })
			if j < 0 || j == i || nw.Nodes[j].P2P[0] != b {
				t.Fatalf("%s bootstraps from %s: not another node's address", nd.Name, b)
			}
		}
		// The peer id is the node key's.
		priv, err := p2p.LoadIdentity(filepath.Join(nd.Home, node.NodeKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := peer.IDFromPrivateKey(priv); id.String() != nd.PeerID {
			t.Fatalf("%s: manifest peer id %s, key says %s", nd.Name, nd.PeerID, id)
		}
		// The passphrase file unlocks the wallet key, which is a genesis validator and account.
		for _, f := range []string{PassphraseFile, node.APITokenFile, node.NodeKeyFile} {
			st, err := os.Stat(filepath.Join(nd.Home, f))
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("%s/%s: %v mode %v, want 0600", nd.Name, f, err, st.Mode().Perm())
			}
		}
		pass, _ := os.ReadFile(filepath.Join(nd.Home, PassphraseFile))
		key, err := node.Keystore(nd.Home).Unlock(cfg.Wallet.Key, strings.TrimSpace(string(pass)))
		if err != nil {
			t.Fatalf("%s: unlock with the passphrase file: %v", nd.Name, err)
		}
		if key.Address().String() != nd.Address {
			t.Fatalf("%s: key %s, manifest %s", nd.Name, key.Address(), nd.Address)
		}
		v, a := g0.Validators[i], g0.Accounts[i]
		if v.Address != key.Address() || v.PubKey != chain.HexKey(key.Public()) || v.Stake != DefaultStake ||
			a.Address != key.Address() || a.Balance != DefaultBalance {
			t.Fatalf("%s: genesis entry %+v %+v", nd.Name, v, a)
		}
		// Every home holds the same genesis.
		gb, err := os.ReadFile(filepath.Join(nd.Home, GenesisFile))
		if err != nil || string(gb) != string(genesisBytes) {
			t.Fatalf("%s: genesis differs from the shared one (%v)", nd.Name, err)
		}
	}
	if len(ports) != 2*n {
		t.Fatalf("%d distinct ports, want %d", len(ports), 2*n)
	}
}

func TestGenerateContainers(t *testing.T) {
	dir := t.TempDir()
	nw, err := Generate(Options{Dir: dir, N: 3, Containers: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, nd := range nw.Nodes {
		cfg, err := node.LoadConfig(filepath.Join(nd.Home, node.ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.API.Listen != "127.0.0.1:26600" || cfg.P2P.ListenAddrs[0] != "/ip4/0.0.0.0/tcp/26700" {
			t.Fatalf("%s: api %s p2p %v", nd.Name, cfg.API.Listen, cfg.P2P.ListenAddrs)
		}
		for _, b := range cfg.P2P.Bootstrap {
			if !strings.HasPrefix(b, "/dns4/node") || strings.HasPrefix(b, "/dns4/node"+strconv.Itoa(i)+"/") {
				t.Fatalf("%s bootstraps from %s", nd.Name, b)
			}
		}
	}
	if _, err := Start(nw, StartOptions{}); err == nil {
		t.Fatal("Start ran a container network on the host")
	}
}

func TestGenerateRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	base := freeBase(t, 2)
	if _, err := Generate(Options{Dir: dir, N: 2, APIBasePort: base}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("non-empty dir: err %v, want a refusal that mentions --force", err)
	}
	first, err := Generate(Options{Dir: dir, N: 3, APIBasePort: base, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Generate(Options{Dir: dir, N: 2, APIBasePort: base, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if second.Nodes[0].PeerID == first.Nodes[0].PeerID {
		t.Fatal("--force kept the old node key")
	}
	if _, err := os.Stat(filepath.Join(dir, "node2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("--force left the old node2 behind: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "mine" {
		t.Fatal("--force removed a file that is not part of a testnet")
	}
	checkNetwork(t, second, 2, base, base+100)
}

func TestGenerateRefusesBusyPort(t *testing.T) {
	base := freeBase(t, 3)
	for _, tc := range []struct {
		name, network string
		port          int
	}{
		{"api", "tcp", base + 1},
		{"p2p tcp", "tcp", base + 102},
		{"p2p udp", "udp", base + 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := "127.0.0.1:" + strconv.Itoa(tc.port)
			var closer interface{ Close() error }
			var err error
			if tc.network == "udp" {
				closer, err = net.ListenPacket("udp", addr)
			} else {
				closer, err = net.Listen("tcp", addr)
			}
			if err != nil {
				t.Skipf("port %d taken meanwhile: %v", tc.port, err)
			}
			defer closer.Close()
			_, err = Generate(Options{Dir: t.TempDir(), N: 3, APIBasePort: base})
			if err == nil || !strings.Contains(err.Error(), strconv.Itoa(tc.port)) {
				t.Fatalf("err %v, want one naming port %d", err, tc.port)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no dir", Options{}, "no directory"},
		{"too many", Options{Dir: "x", N: MaxNodes + 1}, "nodes"},
		{"negative", Options{Dir: "x", N: -1}, "nodes"},
		{"low port", Options{Dir: "x", APIBasePort: 80}, "api base port"},
		{"high port", Options{Dir: "x", APIBasePort: 65534}, "api base port"},
		{"overlap", Options{Dir: "x", N: 4, APIBasePort: 30000, P2PBasePort: 30002}, "overlap"},
		{"collateral", Options{Dir: "x", Collateral: 1}, "collateral"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.withDefaults().validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if err := (Options{Dir: "x"}).withDefaults().validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestParseManifest(t *testing.T) {
	dir := t.TempDir()
	nw, err := Generate(Options{Dir: dir, N: 2, SkipPortCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseManifest(good, dir); err != nil {
		t.Fatal(err)
	}
	n0 := nw.Nodes[0]
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown field", `"chain_id"`, `"extra": 1, "chain_id"`, "unknown field"},
		{"no chain", `"chain_id": "` + DefaultChainID + `"`, `"chain_id": ""`, "chain_id"},
		{"escaping home", `"home": "node0"`, `"home": "../../etc"`, "home"},
		{"bad name", `"name": "node0"`, `"name": "../x"`, "name"},
		{"repeated name", `"name": "node1"`, `"name": "node0"`, "name"},
		{"bad peer id", n0.PeerID, "QmNope", "peer id"},
		{"bad address", n0.Address, "bo1nope", "address"},
		{"bad api", n0.API, "nowhere", "api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := strings.Replace(string(good), tc.from, tc.to, 1)
			if raw == string(good) {
				t.Fatalf("test edit %q did not apply", tc.from)
			}
			if _, err := ParseManifest([]byte(raw), dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "testnet up") {
		t.Fatalf("Load of an empty dir: %v", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	dir := f.TempDir()
	if _, err := Generate(Options{Dir: dir, N: 2, SkipPortCheck: true}); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"chain_id":"x","nodes":[{"name":"node0","home":"node0"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		nw, err := ParseManifest(raw, "/base")
		if err != nil {
			return
		}
		for _, n := range nw.Nodes {
			if filepath.Dir(n.Home) != "/base" || !nodeDirRE.MatchString(filepath.Base(n.Home)) {
				t.Fatalf("accepted home %q outside the network dir", n.Home)
			}
		}
	})
}
