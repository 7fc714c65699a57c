package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/wallet"
	ucli "github.com/urfave/cli/v2"
)

// maxGenesisFile bounds what the genesis commands read: a genesis with the
// largest validator set and many accounts stays far below it.
const maxGenesisFile = 64 << 20

// WANTimeouts are consensus timeouts for validators on different
// machines across the internet (round trips of up to a few hundred
// milliseconds); chain.DefaultTimeouts suit one machine or a LAN.
func WANTimeouts() chain.Timeouts {
	return chain.Timeouts{ProposeMs: 3000, ProposeDeltaMs: 500, PrevoteMs: 1000, PrevoteDeltaMs: 500,
		PrecommitMs: 1000, PrecommitDeltaMs: 500, CommitMs: 1000, IdleMs: 3000}
}

// genesisSummary is what the genesis commands print.
type genesisSummary struct {
	File        string `json:"file"`
	ChainID     string `json:"chain_id"`
	GenesisTime string `json:"genesis_time"`
	Validators  int    `json:"validators"`
	Accounts    int    `json:"accounts"`
	Bonded      uint64 `json:"bonded"`
	Supply      uint64 `json:"supply"`
	// Complete: the file passes chain validation and a node can start
	// from it (a new genesis has no validator yet).
	Complete bool `json:"complete"`
	// Hash is the genesis hash (node.GenesisHash), once complete.
	Hash string `json:"hash,omitempty"`
}

func summarize(path string, g *chain.Genesis) genesisSummary {
	s := genesisSummary{File: path, ChainID: g.ChainID, GenesisTime: time.UnixMilli(g.GenesisTime).UTC().Format(time.RFC3339Nano),
		Validators: len(g.Validators), Accounts: len(g.Accounts)}
	for _, v := range g.Validators {
		s.Bonded += v.Stake
	}
	s.Supply = s.Bonded
	for _, a := range g.Accounts {
		s.Supply += a.Balance
	}
	if raw, err := json.Marshal(g); err == nil {
		if h, err := node.GenesisHash(raw); err == nil {
			s.Complete, s.Hash = true, h
		}
	}
	return s
}

func printSummary(c *ucli.Context, s genesisSummary, headline string) error {
	return output(c, s, func(w io.Writer) error {
		fmt.Fprintln(w, headline)
		pairs := [][2]string{{"chain id", s.ChainID}, {"genesis time", s.GenesisTime},
			{"validators", strconv.Itoa(s.Validators)}, {"accounts", strconv.Itoa(s.Accounts)},
			{"bonded", u64(s.Bonded)}, {"supply", u64(s.Supply)}}
		if s.Complete {
			pairs = append(pairs, [2]string{"hash", s.Hash})
		} else {
			pairs = append(pairs, [2]string{"hash", "- (add a validator first)"})
		}
		return printKV(w, pairs)
	})
}

// errNoValidators is the only fault a genesis being assembled may have.
func draftOK(err error) error {
	var ge *chain.GenesisError
	if errors.As(err, &ge) && ge.Field == "validators" {
		return nil
	}
	return err
}

// loadDraft reads a genesis that may still lack validators: strict JSON
// (unknown fields are errors) and every check but "at least one
// validator".
func loadDraft(path string) (*chain.Genesis, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read genesis: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxGenesisFile+1))
	if err != nil {
		return nil, fmt.Errorf("read genesis %s: %w", path, err)
	}
	if len(raw) > maxGenesisFile {
		return nil, fmt.Errorf("read genesis %s: larger than %d MiB", path, maxGenesisFile>>20)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var g chain.Genesis
	g.Params.PresetOmitted()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("genesis %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("genesis %s: trailing data after the JSON object", path)
	}
	if err := draftOK(g.Validate()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &g, nil
}

// saveDraft checks g and replaces path atomically.
func saveDraft(path string, g *chain.Genesis, replace bool) error {
	if err := draftOK(g.Validate()); err != nil {
		return err
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fmt.Errorf("write genesis: %w", err)
	}
	if !replace {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists: pass --force to replace it, or use 'bourse genesis add-validator %s ...' to extend it", path, path)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".genesis-*.json")
	if err != nil {
		return fmt.Errorf("write genesis: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write genesis: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write genesis: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write genesis: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write genesis: %w", err)
	}
	return nil
}

// identityFile is the part of `bourse node id --json` (or of a genesis
// validator entry) that the genesis commands read.
type identityFile struct {
	ChainID string          `json:"chain_id"`
	Address *wallet.Address `json:"address"`
	PubKey  *chain.HexKey   `json:"pub_key"`
}

func readIdentityFile(path string) (identityFile, error) {
	var id identityFile
	b, err := os.ReadFile(path)
	if err != nil {
		return id, fmt.Errorf("--from: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("--from %s: %w (want the output of 'bourse node id --json')", path, err)
	}
	if id.Address == nil {
		return id, fmt.Errorf("--from %s: no \"address\" field (want the output of 'bourse node id --json')", path)
	}
	return id, nil
}

func genesisFileArg(c *ucli.Context) (string, error) {
	pos, err := trailingFlags(c)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", usagef("'%s' takes exactly one genesis FILE (see '%s --help')", c.Command.HelpName, c.Command.HelpName)
	}
	return pos[0], nil
}

func parseGenesisTime(s string) (time.Time, error) {
	if s == "" || s == "now" {
		return time.Now().UTC().Truncate(time.Millisecond), nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 0 {
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("--time %q: want now, an RFC 3339 time (2026-05-01T12:00:00Z) or unix milliseconds", s)
	}
	return t.UTC(), nil
}

func genesisCommand(env Env) *ucli.Command {
	from := &ucli.StringFlag{Name: "from", Usage: "read address (and pub_key) from FILE: the output of 'bourse node id --json'"}
	address := &ucli.StringFlag{Name: "address", Usage: "bo1 address"}
	return &ucli.Command{Name: "genesis", Usage: "assemble a genesis file with other operators", Subcommands: []*ucli.Command{
		{
			Name: "new", Usage: "write a genesis with no validators yet", ArgsUsage: "FILE --chain-id ID",
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "chain-id", Usage: "the new chain's id (required)"},
				&ucli.StringFlag{Name: "time", Usage: "genesis time: now, RFC 3339 or unix ms", Value: "now"},
				&ucli.StringFlag{Name: "timeouts", Usage: "consensus timeouts: local (one machine, a LAN) or wan (across the internet)", Value: "wan"},
				&ucli.BoolFlag{Name: "force", Usage: "replace FILE if it exists"},
			},
			Action: func(c *ucli.Context) error {
				path, err := genesisFileArg(c)
				if err != nil {
					return err
				}
				if c.String("chain-id") == "" {
					return usagef("genesis new: --chain-id is required (every node's config.toml will take it from the genesis)")
				}
				t, err := parseGenesisTime(c.String("time"))
				if err != nil {
					return err
				}
				g := &chain.Genesis{ChainID: c.String("chain-id"), GenesisTime: t.UnixMilli(), Params: chain.DefaultParams(),
					Accounts: []chain.GenesisAccount{}, Validators: []chain.GenesisValidator{}}
				switch c.String("timeouts") {
				case "local":
					g.Timeouts = chain.DefaultTimeouts()
				case "wan":
					g.Timeouts = WANTimeouts()
				default:
					return usagef("--timeouts %q: want local or wan", c.String("timeouts"))
				}
				if err := saveDraft(path, g, c.Bool("force")); err != nil {
					return err
				}
				return printSummary(c, summarize(path, g), fmt.Sprintf("Wrote %s; next: 'bourse genesis add-validator %s --from NODE_ID.json --stake N'", path, path))
			},
		},
		{
			Name: "add-validator", Usage: "add a validator (its stake bonded at genesis)", ArgsUsage: "FILE (--from ID.json | --address bo1... --pub-key HEX) --stake N [--balance N]",
			Flags: []ucli.Flag{from, address,
				&ucli.StringFlag{Name: "pub-key", Usage: "validator public key, 64 hex digits ('bourse node id' prints it)"},
				&ucli.StringFlag{Name: "stake", Usage: "stake bonded at genesis, base units (required)"},
				&ucli.StringFlag{Name: "balance", Usage: "also give the validator's address this spendable balance"},
			},
			Action: func(c *ucli.Context) error {
				path, err := genesisFileArg(c)
				if err != nil {
					return err
				}
				g, err := loadDraft(path)
				if err != nil {
					return err
				}
				var v chain.GenesisValidator
				switch {
				case c.String("from") != "" && (c.String("address") != "" || c.String("pub-key") != ""):
					return usagef("add-validator: give --from FILE or --address and --pub-key, not both")
				case c.String("from") != "":
					id, err := readIdentityFile(c.String("from"))
					if err != nil {
						return err
					}
					if id.PubKey == nil {
						return fmt.Errorf("--from %s: no \"pub_key\" field (want the output of 'bourse node id --json')", c.String("from"))
					}
					v.Address, v.PubKey = *id.Address, *id.PubKey
					if id.ChainID != "" && id.ChainID != g.ChainID {
						fmt.Fprintf(envFor(c).Stderr, "note: %s was made for chain %q; its node takes chain id %q from this genesis at 'bourse init --genesis'\n", c.String("from"), id.ChainID, g.ChainID)
					}
				default:
					if c.String("address") == "" || c.String("pub-key") == "" {
						return usagef("add-validator: give --from FILE (the output of 'bourse node id --json'), or --address and --pub-key")
					}
					if v.Address, err = wallet.ParseAddress(c.String("address")); err != nil {
						return usagef("--address %q: %v", c.String("address"), err)
					}
					if err := v.PubKey.UnmarshalText([]byte(c.String("pub-key"))); err != nil {
						return usagef("--pub-key: %v", err)
					}
				}
				if got := wallet.PublicKey(v.PubKey).Address(); got != v.Address {
					return fmt.Errorf("add-validator: public key %x belongs to %s, not %s", v.PubKey[:], got, v.Address)
				}
				if c.String("stake") == "" {
					return usagef("add-validator: --stake N is required")
				}
				if v.Stake, err = parseAmount("--stake", c.String("stake")); err != nil {
					return err
				}
				for _, x := range g.Validators {
					if x.Address == v.Address {
						return fmt.Errorf("add-validator: %s is already a validator in %s", v.Address, path)
					}
				}
				g.Validators = append(g.Validators, v)
				if b := c.String("balance"); b != "" {
					if err := addAccount(g, path, v.Address, b); err != nil {
						return err
					}
				}
				if err := saveDraft(path, g, true); err != nil {
					return err
				}
				return printSummary(c, summarize(path, g), fmt.Sprintf("Added validator %s with stake %d to %s", v.Address, v.Stake, path))
			},
		},
		{
			Name: "add-account", Usage: "add an account with a balance", ArgsUsage: "FILE (--from ID.json | --address bo1...) --balance N",
			Flags: []ucli.Flag{from, address, &ucli.StringFlag{Name: "balance", Usage: "balance in base units (required)"}},
			Action: func(c *ucli.Context) error {
				path, err := genesisFileArg(c)
				if err != nil {
					return err
				}
				g, err := loadDraft(path)
				if err != nil {
					return err
				}
				var addr wallet.Address
				switch {
				case c.String("from") != "" && c.String("address") != "":
					return usagef("add-account: give --from FILE or --address, not both")
				case c.String("from") != "":
					id, err := readIdentityFile(c.String("from"))
					if err != nil {
						return err
					}
					addr = *id.Address
				case c.String("address") != "":
					if addr, err = wallet.ParseAddress(c.String("address")); err != nil {
						return usagef("--address %q: %v", c.String("address"), err)
					}
				default:
					return usagef("add-account: give --address bo1... or --from FILE")
				}
				if c.String("balance") == "" {
					return usagef("add-account: --balance N is required")
				}
				if err := addAccount(g, path, addr, c.String("balance")); err != nil {
					return err
				}
				if err := saveDraft(path, g, true); err != nil {
					return err
				}
				return printSummary(c, summarize(path, g), fmt.Sprintf("Added account %s to %s", addr, path))
			},
		},
		{
			Name: "validate", Usage: "check a genesis as a node will; errors name the field", ArgsUsage: "FILE",
			Action: func(c *ucli.Context) error {
				path, err := genesisFileArg(c)
				if err != nil {
					return err
				}
				g, err := chain.LoadGenesis(path)
				if err != nil {
					return withValidatorHint(err, path)
				}
				return printSummary(c, summarize(path, g), fmt.Sprintf("%s is a valid genesis", path))
			},
		},
		{
			Name: "hash", Usage: "print the genesis hash that every operator compares before starting", ArgsUsage: "FILE",
			Action: func(c *ucli.Context) error {
				path, err := genesisFileArg(c)
				if err != nil {
					return err
				}
				raw, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("read genesis: %w", err)
				}
				h, err := node.GenesisHash(raw)
				if err != nil {
					return withValidatorHint(fmt.Errorf("%s: %w", path, err), path)
				}
				return output(c, map[string]string{"file": path, "hash": h}, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, h)
					return err
				})
			},
		},
	}}
}

// withValidatorHint tells what to do about a genesis that has no
// validator yet.
func withValidatorHint(err error, path string) error {
	var ge *chain.GenesisError
	if errors.As(err, &ge) && ge.Field == "validators" {
		return fmt.Errorf("%w: add a validator with 'bourse genesis add-validator %s --from NODE_ID.json --stake N'", err, path)
	}
	return err
}

func addAccount(g *chain.Genesis, path string, addr wallet.Address, balance string) error {
	n, err := parseAmount("--balance", balance)
	if err != nil {
		return err
	}
	for _, a := range g.Accounts {
		if a.Address == addr {
			return fmt.Errorf("%s already has an account in %s (balance %d)", addr, path, a.Balance)
		}
	}
	g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: addr, Balance: n})
	return nil
}
