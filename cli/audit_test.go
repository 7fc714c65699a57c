package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/wallet"
)

// auditHome makes a home whose store holds only a genesis.
func auditHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	k, err := wallet.KeyFromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	g := &chain.Genesis{ChainID: "audit-test", GenesisTime: 1_700_000_000_000, Timeouts: chain.DefaultTimeouts(), Params: chain.DefaultParams(),
		Accounts:   []chain.GenesisAccount{{Address: k.Address(), Balance: 1000}},
		Validators: []chain.GenesisValidator{{Address: k.Address(), PubKey: chain.HexKey(k.Public()), Stake: 10}}}
	st, err := g.State()
	if err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(g)
	s, err := store.Open(filepath.Join(home, node.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InitGenesis(context.Background(), gj, st); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return home
}

func TestChainAuditOfAStoppedNodesHome(t *testing.T) {
	home := auditHome(t)
	out, errOut, code := run(t, nil, "chain", "audit", "--home", home, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		OK      bool   `json:"ok"`
		ChainID string `json:"chain_id"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || rep.ChainID != "audit-test" {
		t.Fatalf("report %q: %v", out, err)
	}
	if errOut != "" {
		t.Fatalf("stderr not a terminal, yet: %q", errOut)
	}
}

func TestChainAuditSaysTheStoreIsInUseByARunningDaemon(t *testing.T) {
	home := auditHome(t)
	s, err := store.Open(filepath.Join(home, node.DataDir)) // the daemon's hold
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, errOut, code := run(t, nil, "chain", "audit", "--home", home)
	if code != 1 || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "daemon") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestChainAuditOfAHomeWithoutAStore(t *testing.T) {
	_, errOut, code := run(t, nil, "chain", "audit", "--home", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "no chain store") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestDaemonRefusesAnUnknownLogLevel(t *testing.T) {
	_, errOut, code := run(t, nil, "daemon", "--log-level", "loud", "--home", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "want debug, info, warn or error") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
