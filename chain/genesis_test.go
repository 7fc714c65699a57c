package chain

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestGenesisValidateNamesTheField(t *testing.T) {
	tests := []struct {
		field string
		mut   func(g *Genesis)
	}{
		{"chain_id", func(g *Genesis) { g.ChainID = "" }},
		{"chain_id", func(g *Genesis) { g.ChainID = "a/b" }},
		{"genesis_time", func(g *Genesis) { g.GenesisTime = 0 }},
		{"timeouts.propose_ms", func(g *Genesis) { g.Timeouts.ProposeMs = 0 }},
		{"timeouts.commit_ms", func(g *Genesis) { g.Timeouts.CommitMs = -1 }},
		{"params.unbonding_blocks", func(g *Genesis) { g.Params.UnbondingBlocks = 0 }},
		{"params.slash_bps", func(g *Genesis) { g.Params.SlashBps = 10001 }},
		{"params.timeout_slash_bps", func(g *Genesis) { g.Params.TimeoutSlashBps = 20000 }},
		{"params.max_block_bytes", func(g *Genesis) { g.Params.MaxBlockBytes = 10 }},
		{"params.max_block_txs", func(g *Genesis) { g.Params.MaxBlockTxs = 0 }},
		{"params.max_validators", func(g *Genesis) { g.Params.MaxValidators = 0 }},
		{"params.min_provider_collateral", func(g *Genesis) { g.Params.MinProviderCollateral = 0 }},
		{"accounts[1].address", func(g *Genesis) { g.Accounts[1].Address = g.Accounts[0].Address }},
		{"accounts[0].balance", func(g *Genesis) { g.Accounts[0].Balance = MaxSupply + 1 }},
		{"validators", func(g *Genesis) { g.Validators = nil }},
		{"validators[0].stake", func(g *Genesis) { g.Validators[0].Stake = 0 }},
		{"validators[1].pub_key", func(g *Genesis) { g.Validators[1].PubKey = g.Validators[0].PubKey }},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			g := testGenesis(3, 2)
			tc.mut(g)
			err := g.Validate()
			var ge *GenesisError
			if !errors.As(err, &ge) || ge.Field != tc.field {
				t.Fatalf("got %v, want an error naming %s", err, tc.field)
			}
		})
	}
	if err := testGenesis(3, 2).Validate(); err != nil {
		t.Fatalf("valid genesis refused: %v", err)
	}
}

func TestGenesisFileRoundTrip(t *testing.T) {
	g := testGenesis(3, 2)
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadGenesis(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := g.State()
	b, _ := back.State()
	if a.Root() != b.Root() {
		t.Fatal("genesis state differs after a file round trip")
	}
	if err := os.WriteFile(path, []byte(`{"chain_id":"x","bogus":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadGenesis(path); err == nil {
		t.Fatal("unknown field accepted")
	}
	if got := a.Globals().Supply; got != 3*1_000_000+2*10_000 {
		t.Fatalf("supply %d", got)
	}
	vals, err := a.ValidatorsAt(1)
	if err != nil || len(vals) != 2 {
		t.Fatalf("validators at 1: %v %v", vals, err)
	}
}
