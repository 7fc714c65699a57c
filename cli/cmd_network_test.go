package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/wallet"
)

type nodeIDJSON struct {
	Moniker        string   `json:"moniker"`
	ChainID        string   `json:"chain_id"`
	PeerID         string   `json:"peer_id"`
	ListenAddrs    []string `json:"listen_addrs"`
	AnnounceAddrs  []string `json:"announce_addrs"`
	BootstrapAddrs []string `json:"bootstrap_addrs"`
	Address        string   `json:"address"`
	PubKey         string   `json:"pub_key"`
	APIFingerprint string   `json:"api_fingerprint"`
	GenesisHash    string   `json:"genesis_hash"`
}

func mustRun(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	out, errs, code := run(t, env, args...)
	if code != 0 {
		t.Fatalf("bourse %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func mustFail(t *testing.T, env map[string]string, wantCode int, wantErr string, args ...string) {
	t.Helper()
	out, errs, code := run(t, env, args...)
	if code != wantCode || !strings.Contains(errs, wantErr) {
		t.Fatalf("bourse %s: exit %d, stderr %q (stdout %q); want exit %d and %q", strings.Join(args, " "), code, errs, out, wantCode, wantErr)
	}
}

// Three operators form one network from what each exports, as
// docs/operators.md tells them: init, node id --json, one of them
// assembles the genesis from the others' files, everyone installs it
// with the bootstrap addresses and compares the hash.
func TestThreeOperatorsAssembleOneGenesis(t *testing.T) {
	dir := t.TempDir()
	pw := map[string]string{"BOURSE_PASSPHRASE": "pw"}
	var ids []nodeIDJSON
	for i, name := range []string{"alice", "bob", "carol"} {
		home := filepath.Join(dir, name)
		port := []string{"4101", "4102", "4103"}[i]
		mustRun(t, pw, "init", "--home", home, "--moniker", name, "--announce", "/ip4/10.0.0."+port[3:]+"/tcp/"+port,
			"--p2p-listen", "/ip4/0.0.0.0/tcp/"+port)
		out := mustRun(t, nil, "node", "id", "--home", home, "--json")
		var id nodeIDJSON
		if err := json.Unmarshal([]byte(out), &id); err != nil {
			t.Fatalf("node id --json: %v\n%s", err, out)
		}
		want := "/ip4/10.0.0." + port[3:] + "/tcp/" + port + "/p2p/" + id.PeerID
		if !strings.HasPrefix(id.PeerID, "12D3") || !strings.HasPrefix(id.Address, "bo1") || len(id.PubKey) != 64 ||
			len(id.APIFingerprint) != 64 || id.GenesisHash != "" || len(id.BootstrapAddrs) != 1 || id.BootstrapAddrs[0] != want {
			t.Fatalf("node id --json = %+v; want bootstrap %s", id, want)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}

	gen := filepath.Join(dir, "genesis.json")
	mustRun(t, nil, "genesis", "new", gen, "--chain-id", "acme-1", "--timeouts", "local")
	mustFail(t, nil, 1, "add a validator", "genesis", "hash", gen)
	for _, name := range []string{"alice", "bob", "carol"} {
		mustRun(t, nil, "genesis", "add-validator", gen, "--from", filepath.Join(dir, name+".json"), "--stake", "1000000", "--balance", "1000000000")
	}
	out := mustRun(t, nil, "genesis", "validate", gen, "--json")
	var sum genesisSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil || !sum.Complete || sum.Validators != 3 || sum.Accounts != 3 ||
		sum.Bonded != 3_000_000 || sum.Supply != 3_003_000_000 || len(sum.Hash) != 64 {
		t.Fatalf("genesis validate --json = %s (%v)", out, err)
	}
	hash := strings.TrimSpace(mustRun(t, nil, "genesis", "hash", gen))
	if hash != sum.Hash {
		t.Fatalf("genesis hash %q, validate said %q", hash, sum.Hash)
	}

	// Every operator installs the genesis; each bootstraps from the others.
	for i, name := range []string{"alice", "bob", "carol"} {
		home := filepath.Join(dir, name)
		args := []string{"init", "--home", home, "--genesis", gen, "--json", "--provider"}
		for j, id := range ids {
			if j != i {
				args = append(args, "--bootstrap", id.BootstrapAddrs[0])
			}
		}
		var res initResult
		out := mustRun(t, nil, args...)
		if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Joined || res.GenesisHash != hash || res.ChainID != "acme-1" || len(res.Bootstrap) != 2 {
			t.Fatalf("init --genesis = %s (%v)", out, err)
		}
		cfg, err := node.LoadConfig(filepath.Join(home, node.ConfigFile))
		if err != nil || cfg.ChainID != "acme-1" || !cfg.Provider.Enabled || len(cfg.P2P.Bootstrap) != 2 || cfg.P2P.AnnounceAddrs[0] != "/ip4/10.0.0."+[]string{"101", "102", "103"}[i][2:]+"/tcp/"+[]string{"4101", "4102", "4103"}[i] {
			t.Fatalf("%s config after join: %+v %v", name, cfg.P2P, err)
		}
		var id nodeIDJSON
		if err := json.Unmarshal([]byte(mustRun(t, nil, "node", "id", "--home", home, "--json")), &id); err != nil || id.GenesisHash != hash || id.ChainID != "acme-1" || id.PeerID != ids[i].PeerID {
			t.Fatalf("%s node id after join: %+v %v", name, id, err)
		}
		if _, err := chain.LoadGenesis(filepath.Join(home, "genesis.json")); err != nil {
			t.Fatal(err)
		}
	}
}

// The hash is of the genesis's content: re-indenting the file does not
// change it, a changed balance does.
func TestGenesisHashIgnoresLayoutNotContent(t *testing.T) {
	dir := t.TempDir()
	gen := filepath.Join(dir, "g.json")
	mustRun(t, nil, "genesis", "new", gen, "--chain-id", "c-1", "--time", "2026-01-01T00:00:00Z")
	mustRun(t, nil, "genesis", "add-validator", gen, "--address", exampleAddr, "--pub-key", examplePub, "--stake", "5")
	h1 := strings.TrimSpace(mustRun(t, nil, "genesis", "hash", gen))

	raw, _ := os.ReadFile(gen)
	var v any
	json.Unmarshal(raw, &v)
	compact, _ := json.Marshal(v)
	os.WriteFile(gen, compact, 0o644)
	if h2 := strings.TrimSpace(mustRun(t, nil, "genesis", "hash", gen)); h2 != h1 {
		t.Fatalf("hash changed with layout: %s vs %s", h1, h2)
	}
	mustRun(t, nil, "genesis", "add-account", gen, "--address", exampleAddr, "--balance", "1")
	if h3 := strings.TrimSpace(mustRun(t, nil, "genesis", "hash", gen)); h3 == h1 {
		t.Fatal("hash unchanged after adding an account")
	}
}

func TestGenesisCommandsRefuseMistakesClearly(t *testing.T) {
	dir := t.TempDir()
	gen := filepath.Join(dir, "g.json")
	mustFail(t, nil, 2, "--chain-id is required", "genesis", "new", gen)
	mustFail(t, nil, 2, "exactly one genesis FILE", "genesis", "new", "--chain-id", "x")
	mustRun(t, nil, "genesis", "new", gen, "--chain-id", "c-1")
	mustFail(t, nil, 1, "pass --force", "genesis", "new", gen, "--chain-id", "c-1")
	mustFail(t, nil, 2, "--timeouts \"slow\"", "genesis", "new", gen, "--chain-id", "c-1", "--force", "--timeouts", "slow")
	mustFail(t, nil, 2, "--stake N is required", "genesis", "add-validator", gen, "--address", exampleAddr, "--pub-key", examplePub)
	mustFail(t, nil, 2, "--address and --pub-key", "genesis", "add-validator", gen, "--stake", "5")
	// A public key that does not belong to the address.
	other := strings.Repeat("11", 32)
	mustFail(t, nil, 1, "belongs to", "genesis", "add-validator", gen, "--address", exampleAddr, "--pub-key", other, "--stake", "5")
	mustFail(t, nil, 2, "--pub-key", "genesis", "add-validator", gen, "--address", exampleAddr, "--pub-key", "abc", "--stake", "5")
	mustFail(t, nil, 2, "positive whole number", "genesis", "add-validator", gen, "--address", exampleAddr, "--pub-key", examplePub, "--stake", "-5")
	mustRun(t, nil, "genesis", "add-validator", gen, "--address", exampleAddr, "--pub-key", examplePub, "--stake", "5", "--balance", "9")
	mustFail(t, nil, 1, "already a validator", "genesis", "add-validator", gen, "--address", exampleAddr, "--pub-key", examplePub, "--stake", "5")
	mustFail(t, nil, 1, "already has an account", "genesis", "add-account", gen, "--address", exampleAddr, "--balance", "5")
	// --from a file that is not node id output.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"peer_id": "x"}`), 0o644)
	mustFail(t, nil, 1, "no \"address\" field", "genesis", "add-account", gen, "--from", bad, "--balance", "5")

	// validate names the bad field, as chain.Genesis.Validate does.
	raw, _ := os.ReadFile(gen)
	os.WriteFile(gen, []byte(strings.Replace(string(raw), `"slash_bps": 500`, `"slash_bps": 20000`, 1)), 0o644)
	mustFail(t, nil, 1, "params.slash_bps", "genesis", "validate", gen)
	mustFail(t, nil, 1, "params.slash_bps", "genesis", "add-account", gen, "--address", exampleAddr, "--balance", "5")
	os.WriteFile(gen, []byte(strings.Replace(string(raw), `"chain_id"`, `"chain"`, 1)), 0o644)
	mustFail(t, nil, 1, "unknown field", "genesis", "validate", gen)
}

func TestInitWithGenesisRefusesConflicts(t *testing.T) {
	dir := t.TempDir()
	pw := map[string]string{"BOURSE_PASSPHRASE": "pw"}
	gen := filepath.Join(dir, "g.json")
	mustRun(t, nil, "genesis", "new", gen, "--chain-id", "c-1")
	// A genesis without validators is not one a node can start from.
	mustFail(t, pw, 1, "validators", "init", "--home", filepath.Join(dir, "h0"), "--genesis", gen)
	mustRun(t, nil, "genesis", "add-validator", gen, "--address", exampleAddr, "--pub-key", examplePub, "--stake", "5")
	mustFail(t, pw, 2, "differs from the genesis", "init", "--home", filepath.Join(dir, "h0"), "--genesis", gen, "--chain-id", "other")
	mustFail(t, pw, 2, "bootstrap", "init", "--home", filepath.Join(dir, "h0"), "--bootstrap", "/ip4/10.0.0.1/tcp/4001")
	// A fresh home takes the genesis and its chain id at once.
	h1 := filepath.Join(dir, "h1")
	out := mustRun(t, pw, "init", "--home", h1, "--genesis", gen, "--json")
	var res initResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Joined || res.ChainID != "c-1" || res.GenesisHash == "" {
		t.Fatalf("init --genesis on a new home = %s (%v)", out, err)
	}
	// init on an existing home without anything to change is refused as before.
	mustFail(t, pw, 1, "already initialised", "init", "--home", h1)
	// A home whose chain has started keeps its genesis.
	os.MkdirAll(filepath.Join(h1, node.DataDir), 0o700)
	gen2 := filepath.Join(dir, "g2.json")
	mustRun(t, nil, "genesis", "new", gen2, "--chain-id", "c-1")
	mustRun(t, nil, "genesis", "add-validator", gen2, "--address", exampleAddr, "--pub-key", examplePub, "--stake", "6")
	mustFail(t, nil, 1, "refusing to replace the genesis", "init", "--home", h1, "--genesis", gen2)
	// The same genesis again is fine (a re-run of the join step).
	mustRun(t, nil, "init", "--home", h1, "--genesis", gen)
	// A non-loopback API without TLS is refused at init already.
	mustFail(t, nil, 2, "api.tls = true", "init", "--home", h1, "--api-listen", "0.0.0.0:7700")
	mustRun(t, nil, "init", "--home", h1, "--api-listen", "0.0.0.0:7700", "--api-tls")
}

// Fixed key material for tests and examples: exampleAddr is the address
// of examplePub.
const examplePub = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

var exampleAddr = func() string {
	var k chain.HexKey
	if err := k.UnmarshalText([]byte(examplePub)); err != nil {
		panic(err)
	}
	return wallet.PublicKey(k).Address().String()
}()
