package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
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

// A chain of 1,000 heights with 3 matches each, served in pages of whole
// heights as the daemon does.
func pagedMatches(_ context.Context, f api.MatchFilter) ([]api.Match, error) {
	to := f.ToHeight
	if to == 0 || to > 1000 {
		to = 1000
	}
	limit := f.Limit
	if limit <= 0 {
		limit = api.DefaultMatchPage
	}
	out := []api.Match{}
	for h := to; h >= max(f.FromHeight, 1); h-- {
		for i := 0; i < 3; i++ {
			out = append(out, api.Match{ID: fmt.Sprintf("m%d-%d", h, i), Height: h, Price: 7, Escrow: 70, State: "open"})
		}
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

func TestMarketMatchesLimitZeroPagesThroughEverything(t *testing.T) {
	env := daemon(t, &apitest.Backend{MatchesFn: pagedMatches})
	out, errOut, code := run(t, env, "market", "matches", "--limit", "0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var ms []api.Match
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3000 || ms[0].Height != 1000 || ms[2999].Height != 1 {
		t.Fatalf("%d matches, want all 3000 newest first", len(ms))
	}
	seen := map[string]bool{}
	for _, m := range ms {
		if seen[m.ID] {
			t.Fatalf("match %s twice", m.ID)
		}
		seen[m.ID] = true
	}
	out, _, _ = run(t, env, "market", "matches", "--limit", "250", "--json")
	if err := json.Unmarshal([]byte(out), &ms); err != nil || len(ms) != 250 {
		t.Fatalf("--limit 250: %d matches, %v", len(ms), err)
	}
	out, _, _ = run(t, env, "market", "matches", "--limit", "1")
	if !strings.Contains(out, "PRICE") || !strings.Contains(out, "ESCROW") || !strings.Contains(out, " 7 ") || !strings.Contains(out, " 70 ") {
		t.Fatalf("table shows no price and escrow:\n%s", out)
	}
}
