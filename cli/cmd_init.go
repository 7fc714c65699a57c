package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node"
	ucli "github.com/urfave/cli/v2"
)

// initResult is what init prints: the new home (when one was made) and the
// network settings it was given.
type initResult struct {
	node.InitResult
	// Joined: the home existed and init only installed the genesis and
	// network settings.
	Joined         bool     `json:"joined"`
	GenesisHash    string   `json:"genesis_hash,omitempty"`
	Bootstrap      []string `json:"bootstrap"`
	AnnounceAddrs  []string `json:"announce_addrs"`
	APIListen      string   `json:"api_listen"`
	APITLS         bool     `json:"api_tls"`
	ProviderEnable bool     `json:"provider"`
}

func initCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name:  "init",
		Usage: "create a node home (config, node key, API token and certificate, a first wallet key), or join it to a network",
		Description: "On a new home: creates it. With --genesis FILE the genesis is copied in and the chain id taken from it.\n" +
			"On a home that exists: --genesis, --bootstrap, --announce, --p2p-listen, --api-listen, --api-tls and --provider\n" +
			"update it in place (the step after the operators have assembled the genesis); config.toml is rewritten\n" +
			"with its values kept. A home whose chain has started keeps its genesis.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "chain-id", Usage: "chain to join (default: the genesis's, else " + node.DefaultConfig().ChainID + ")"},
			&ucli.StringFlag{Name: "moniker", Usage: "human-readable node name (default: host name)"},
			&ucli.StringFlag{Name: "genesis", Usage: "the network's genesis file to install as genesis.json"},
			&ucli.StringSliceFlag{Name: "bootstrap", Usage: "peer to keep connected to: a multiaddr ending in /p2p/<peer id> (repeatable; 'bourse node id' prints them)"},
			&ucli.StringSliceFlag{Name: "announce", Usage: "public address to announce, e.g. /ip4/203.0.113.7/tcp/4001 (repeatable)"},
			&ucli.StringSliceFlag{Name: "p2p-listen", Usage: "p2p listen multiaddr (repeatable; default /ip4/0.0.0.0/tcp/4001 and udp/4001/quic-v1)"},
			&ucli.StringFlag{Name: "api-listen", Usage: "API host:port (beyond loopback needs --api-tls)"},
			&ucli.BoolFlag{Name: "api-tls", Usage: "serve the API over TLS with the home's certificate"},
			&ucli.BoolFlag{Name: "provider", Usage: "sell this machine's capacity (provider.enabled = true)"},
			&ucli.BoolFlag{Name: "mdns", Usage: "find peers on the local network with mDNS", Value: true},
		},
		Action: func(c *ucli.Context) error {
			if err := flagsOnly(c); err != nil {
				return usagef("init takes no arguments; use --home DIR to choose where")
			}
			home := flagString(c, flagHome)
			var genesisRaw []byte
			var g *chain.Genesis
			if p := c.String("genesis"); p != "" {
				var err error
				if genesisRaw, err = os.ReadFile(p); err != nil {
					return fmt.Errorf("--genesis: %w", err)
				}
				if g, err = chain.ParseGenesis(genesisRaw); err != nil {
					return fmt.Errorf("--genesis %s: %w (check it with 'bourse genesis validate %s')", p, err, p)
				}
				if id := c.String("chain-id"); id != "" && id != g.ChainID {
					return usagef("--chain-id %q differs from the genesis's chain_id %q; leave --chain-id out", id, g.ChainID)
				}
			}
			cfgPath := filepath.Join(home, node.ConfigFile)
			_, statErr := os.Stat(cfgPath)
			exists := statErr == nil
			var cfg node.Config
			res := initResult{}
			if exists {
				if !c.IsSet("genesis") && !c.IsSet("bootstrap") && !c.IsSet("announce") && !c.IsSet("p2p-listen") &&
					!c.IsSet("api-listen") && !c.IsSet("api-tls") && !c.IsSet("provider") && !c.IsSet("mdns") {
					return fmt.Errorf("%s is already initialised; use it as it is, choose another with --home DIR, or join it to a network with --genesis FILE --bootstrap ADDR", home)
				}
				if c.IsSet("moniker") || c.IsSet("chain-id") {
					return usagef("%s exists: --moniker and --chain-id only apply to a new home (the chain id comes from --genesis)", home)
				}
				var err error
				if cfg, err = node.LoadConfig(cfgPath); err != nil {
					return err
				}
				res.Joined = true
			} else {
				cfg = node.DefaultConfig()
				if id := c.String("chain-id"); id != "" {
					cfg.ChainID = id
				}
				if m := c.String("moniker"); m != "" {
					cfg.Moniker = m
				}
			}
			if g != nil {
				cfg.ChainID = g.ChainID
			}
			if c.IsSet("bootstrap") {
				cfg.P2P.Bootstrap = nonEmpty(c.StringSlice("bootstrap"))
			}
			if c.IsSet("announce") {
				cfg.P2P.AnnounceAddrs = nonEmpty(c.StringSlice("announce"))
			}
			if c.IsSet("p2p-listen") {
				cfg.P2P.ListenAddrs = nonEmpty(c.StringSlice("p2p-listen"))
			}
			if c.IsSet("api-listen") {
				cfg.API.Listen = c.String("api-listen")
			}
			if c.IsSet("api-tls") {
				cfg.API.TLS = c.Bool("api-tls")
			}
			if c.IsSet("provider") {
				cfg.Provider.Enabled = c.Bool("provider")
			}
			if c.IsSet("mdns") {
				cfg.P2P.MDNS = c.Bool("mdns")
			}
			if err := cfg.Validate(); err != nil {
				return usagef("%v", err)
			}
			gpath := cfg.Chain.Genesis
			if !filepath.IsAbs(gpath) {
				gpath = filepath.Join(home, gpath)
			}
			if exists {
				if genesisRaw != nil {
					if err := checkGenesisReplace(home, gpath, genesisRaw); err != nil {
						return err
					}
				}
				if err := rewriteConfig(cfgPath, cfg); err != nil {
					return err
				}
				id, err := node.ReadIdentity(home)
				if err == nil {
					res.PeerID = id.PeerID
					res.APIFingerprint = id.APIFingerprint
				}
				res.Home, res.ChainID = home, cfg.ChainID
			} else {
				pass, err := passphrase(c, env, true)
				if err != nil {
					return err
				}
				r, err := node.InitHome(node.InitOptions{Home: home, Config: cfg, Passphrase: pass})
				if errors.Is(err, node.ErrHomeExists) {
					return fmt.Errorf("%s is already initialised; use it as it is, or choose another with --home DIR", home)
				}
				if err != nil {
					return fmt.Errorf("init %s: %w", home, err)
				}
				res.InitResult = r
			}
			if genesisRaw != nil {
				if err := os.WriteFile(gpath, genesisRaw, 0o644); err != nil {
					return fmt.Errorf("install genesis: %w", err)
				}
				h, err := node.GenesisHash(genesisRaw)
				if err != nil {
					return err
				}
				res.GenesisHash = h
			}
			if res.Wallet.Name == "" {
				if info, err := node.Keystore(home).Find(cfg.Wallet.Key); err == nil {
					res.Wallet = info
				}
			}
			res.Bootstrap = nonNilStrings(cfg.P2P.Bootstrap)
			res.AnnounceAddrs = nonNilStrings(cfg.P2P.AnnounceAddrs)
			res.APIListen, res.APITLS, res.ProviderEnable = cfg.API.Listen, cfg.API.TLS, cfg.Provider.Enabled
			return output(c, res, func(w io.Writer) error {
				if res.Joined {
					fmt.Fprintf(w, "Updated %s for chain %s\n", res.Home, res.ChainID)
				} else {
					fmt.Fprintf(w, "Initialised %s for chain %s\n", res.Home, res.ChainID)
				}
				fmt.Fprintf(w, "  peer id: %s\n  wallet:  %s (%s)\n", res.PeerID, res.Wallet.Address, res.Wallet.Name)
				fmt.Fprintf(w, "  api certificate fingerprint: %s\n", orDash(res.APIFingerprint))
				if res.GenesisHash != "" {
					fmt.Fprintf(w, "  genesis hash: %s (compare it with the other operators')\n", res.GenesisHash)
				}
				for _, b := range res.Bootstrap {
					fmt.Fprintf(w, "  bootstrap: %s\n", b)
				}
				switch {
				case res.GenesisHash != "":
					fmt.Fprintln(w, "Next: 'bourse daemon'.")
				case !res.Joined:
					fmt.Fprintln(w, "Next: send the output of 'bourse node id --json' to whoever assembles the genesis,")
					fmt.Fprintln(w, "then 'bourse init --genesis genesis.json --bootstrap ADDR' and 'bourse daemon'.")
				}
				return nil
			})
		},
	}
}

func nonNilStrings(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

// checkGenesisReplace allows installing raw as the home's genesis unless
// the home's chain has started from another one.
func checkGenesisReplace(home, gpath string, raw []byte) error {
	old, err := os.ReadFile(gpath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the home's genesis: %w", err)
	}
	if bytes.Equal(old, raw) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(home, node.DataDir)); err == nil {
		return fmt.Errorf("%s has chain data from its current genesis; refusing to replace the genesis under it (move %s away to start over)",
			home, filepath.Join(home, node.DataDir))
	}
	return nil
}

// rewriteConfig replaces config.toml with cfg rendered, atomically, mode
// 0600 as init writes it.
func rewriteConfig(path string, cfg node.Config) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, node.RenderConfig(cfg), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// nonEmpty drops empty entries: "--bootstrap=" (an unset variable in a
// deployment file) means none.
func nonEmpty(xs []string) []string {
	out := []string{}
	for _, x := range xs {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
