package chain

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/market"
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
		{"timeouts.idle_ms", func(g *Genesis) { g.Timeouts.IdleMs = -1 }},
		{"timeouts.idle_ms", func(g *Genesis) { g.Timeouts.IdleMs = MaxIdleMs + 1 }},
		{"timeouts.idle_ms", func(g *Genesis) { g.Params.ResultGraceMs = MinResultGraceMs; g.Timeouts.IdleMs = MinResultGraceMs + 1 }},
		{"params.unbonding_blocks", func(g *Genesis) { g.Params.UnbondingBlocks = 0 }},
		{"params.slash_bps", func(g *Genesis) { g.Params.SlashBps = 10001 }},
		{"params.timeout_slash_bps", func(g *Genesis) { g.Params.TimeoutSlashBps = 20000 }},
		{"params.max_block_bytes", func(g *Genesis) { g.Params.MaxBlockBytes = 10 }},
		{"params.max_block_txs", func(g *Genesis) { g.Params.MaxBlockTxs = 0 }},
		{"params.max_validators", func(g *Genesis) { g.Params.MaxValidators = 0 }},
		{"params.min_provider_collateral", func(g *Genesis) { g.Params.MinProviderCollateral = 0 }},
		{"params.result_grace_ms", func(g *Genesis) { g.Params.ResultGraceMs = 0 }},
		{"params.result_grace_ms", func(g *Genesis) { g.Params.ResultGraceMs = MinResultGraceMs - 1 }},
		{"params.result_grace_ms", func(g *Genesis) { g.Params.ResultGraceMs = MaxResultGraceMs + 1 }},
		{"params.unavailable_fee_bps", func(g *Genesis) { g.Params.UnavailableFeeBps = 10001 }},
		{"params.provider_exit_delay_ms", func(g *Genesis) { g.Params.ProviderExitDelayMs = MaxProviderExitDelayMs + 1 }},
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
	// idle_ms at its bounds: a minute, and the result grace.
	for _, c := range []struct{ idle, grace uint64 }{{MaxIdleMs, 2 * MaxIdleMs}, {MinResultGraceMs, MinResultGraceMs}} {
		g := testGenesis(3, 2)
		g.Timeouts.IdleMs, g.Params.ResultGraceMs = int64(c.idle), c.grace
		if err := g.Validate(); err != nil {
			t.Fatalf("idle_ms %d with result_grace_ms %d refused: %v", c.idle, c.grace, err)
		}
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

// TestGenesisResultGrace: a genesis file that omits params.result_grace_ms
// (written before it existed) loads with the default; one that gives it
// keeps it, bounds included; an explicit out-of-range value is refused,
// naming the field.
func TestGenesisResultGrace(t *testing.T) {
	if got := DefaultParams().ResultGraceMs; got != market.DefaultResultGraceMs {
		t.Fatalf("default grace %d, want %d", got, market.DefaultResultGraceMs)
	}
	withGrace := func(v any) []byte { return genesisWithParam(t, "result_grace_ms", v) }
	tests := []struct {
		name string
		v    any // nil: omitted
		want uint64
		ok   bool
	}{
		{"omitted", nil, market.DefaultResultGraceMs, true},
		{"minimum", MinResultGraceMs, MinResultGraceMs, true},
		{"maximum", MaxResultGraceMs, MaxResultGraceMs, true},
		{"short", 2500, 2500, true},
		{"zero", 0, 0, false},
		{"below the minimum", MinResultGraceMs - 1, 0, false},
		{"above the maximum", MaxResultGraceMs + 1, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ParseGenesis(withGrace(tc.v))
			if !tc.ok {
				var ge *GenesisError
				if !errors.As(err, &ge) || ge.Field != "params.result_grace_ms" {
					t.Fatalf("got %v, want an error naming params.result_grace_ms", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st, err := g.State()
			if err != nil {
				t.Fatal(err)
			}
			if g.Params.ResultGraceMs != tc.want || st.Params().ResultGraceMs != tc.want {
				t.Fatalf("grace: genesis %d, state %d, want %d", g.Params.ResultGraceMs, st.Params().ResultGraceMs, tc.want)
			}
		})
	}
}

// TestStoredParamsWithoutResultGrace: a state whose params record was
// written before ResultGraceMs existed reloads with the default grace and
// keeps its root (the stored bytes are not rewritten).
func TestStoredParamsWithoutResultGrace(t *testing.T) {
	st, err := testGenesis(3, 2).State()
	if err != nil {
		t.Fatal(err)
	}
	// The params record as it was, fields 1 to 9.
	type oldParams struct {
		ChainID               string `cbor:"1,keyasint"`
		MinFee                uint64 `cbor:"2,keyasint"`
		UnbondingBlocks       uint64 `cbor:"3,keyasint"`
		SlashBps              uint32 `cbor:"4,keyasint"`
		MinProviderCollateral uint64 `cbor:"5,keyasint"`
		TimeoutSlashBps       uint32 `cbor:"6,keyasint"`
		MaxBlockBytes         uint64 `cbor:"7,keyasint"`
		MaxBlockTxs           uint64 `cbor:"8,keyasint"`
		MaxValidators         uint32 `cbor:"9,keyasint"`
	}
	p := st.Params()
	old := codec.MustMarshal(oldParams{p.ChainID, p.MinFee, p.UnbondingBlocks, p.SlashBps, p.MinProviderCollateral,
		p.TimeoutSlashBps, p.MaxBlockBytes, p.MaxBlockTxs, p.MaxValidators})
	records := map[string][]byte{}
	if err := st.Each(func(k string, v []byte) error { records[k] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := records[keyParams]; !ok {
		t.Fatal("no params record")
	}
	records[keyParams] = old
	back, err := StateFromRecords(records)
	if err != nil {
		t.Fatal(err)
	}
	want := p
	want.ResultGraceMs = market.DefaultResultGraceMs
	// unavailable_fee_bps and provider_exit_delay_ms came with store
	// format 2, so no stored record lacks them; absent ones read as 0,
	// itself a valid value.
	want.UnavailableFeeBps, want.ProviderExitDelayMs = 0, 0
	// The settlement parameters came with store format 3: those where 0
	// is invalid get their defaults, the others read as 0.
	want.ChallengeWindowMs, want.CommitteeSize, want.AttestWindowMs, want.AvailDepositBase = DefaultChallengeWindowMs, DefaultCommitteeSize, DefaultAttestWindowMs, DefaultAvailDepositBase
	want.AvailDepositPerMiB, want.ChallengeSlashBps, want.RefereeSlashBps = 0, 0, 0
	if back.Params() != want {
		t.Fatalf("reloaded params %+v, want %+v", back.Params(), want)
	}
	if rec, _ := back.get(keyParams); !bytes.Equal(rec, old) {
		t.Fatal("params record rewritten on load")
	}
}

// TestGenesisUnavailableFee: params.unavailable_fee_bps omitted gets the
// default; 0 (no fee) and 10000 (the whole escrow) are kept; past 10000
// is refused, naming the field.
func TestGenesisUnavailableFee(t *testing.T) {
	with := func(v any) []byte { return genesisWithParam(t, "unavailable_fee_bps", v) }
	for _, tc := range []struct {
		name string
		v    any
		want uint32
		ok   bool
	}{
		{"omitted", nil, DefaultUnavailableFeeBps, true},
		{"none", 0, 0, true},
		{"all", 10000, 10000, true},
		{"past all", 10001, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ParseGenesis(with(tc.v))
			if !tc.ok {
				var ge *GenesisError
				if !errors.As(err, &ge) || ge.Field != "params.unavailable_fee_bps" {
					t.Fatalf("got %v, want an error naming params.unavailable_fee_bps", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st, err := g.State()
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Params().UnavailableFeeBps; got != tc.want {
				t.Fatalf("fee %d bps in the state, want %d", got, tc.want)
			}
		})
	}
}

// genesisWithParam is a test genesis as JSON with params.key set to v, or
// left out when v is nil (as in a file written before the parameter).
func genesisWithParam(t *testing.T, key string, v any) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(genesisJSON(t, testGenesis(3, 2)), &doc); err != nil {
		t.Fatal(err)
	}
	params := doc["params"].(map[string]any)
	if _, ok := params[key]; !ok {
		t.Fatalf("genesis JSON has no params.%s", key)
	}
	if v == nil {
		delete(params, key)
	} else {
		params[key] = v
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
