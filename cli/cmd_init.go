package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/bourse-net/bourse/node"
	ucli "github.com/urfave/cli/v2"
)

func initCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name:  "init",
		Usage: "create a node home: config, node key, API token and a first wallet key",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "chain-id", Usage: "chain to join", Value: node.DefaultConfig().ChainID},
			&ucli.StringFlag{Name: "moniker", Usage: "human-readable node name (default: host name)"},
		},
		Action: func(c *ucli.Context) error {
			if c.Args().Present() {
				return usagef("init takes no arguments; use --home DIR to choose where")
			}
			home := flagString(c, flagHome)
			cfg := node.DefaultConfig()
			cfg.ChainID = c.String("chain-id")
			if m := c.String("moniker"); m != "" {
				cfg.Moniker = m
			}
			pass, err := passphrase(c, env, true)
			if err != nil {
				return err
			}
			res, err := node.InitHome(node.InitOptions{Home: home, Config: cfg, Passphrase: pass})
			if errors.Is(err, node.ErrHomeExists) {
				return fmt.Errorf("%s is already initialised; use it as it is, or choose another with --home DIR", home)
			}
			if err != nil {
				return fmt.Errorf("init %s: %w", home, err)
			}
			return output(c, res, func(w io.Writer) error {
				fmt.Fprintf(w, "Initialised %s for chain %s\n", res.Home, res.ChainID)
				fmt.Fprintf(w, "  peer id: %s\n  wallet:  %s (%s)\n", res.PeerID, res.Wallet.Address, res.Wallet.Name)
				fmt.Fprintf(w, "Next: edit %s/config.toml, add genesis.json, then run 'bourse daemon'.\n", res.Home)
				return nil
			})
		},
	}
}
