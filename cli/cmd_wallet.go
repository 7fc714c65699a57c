package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/wallet"
	ucli "github.com/urfave/cli/v2"
)

// requireHome fails with a hint when the home has not been initialised.
func requireHome(c *ucli.Context) (string, node.Config, error) {
	home := flagString(c, flagHome)
	path := filepath.Join(home, node.ConfigFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "", node.Config{}, fmt.Errorf("no node home at %s: run 'bourse init' first (or pass --home DIR)", home)
	}
	cfg, err := node.LoadConfig(path)
	if err != nil {
		return "", cfg, err
	}
	return home, cfg, nil
}

type keyJSON struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

func walletCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name:  "wallet",
		Usage: "manage keys and funds",
		Subcommands: []*ucli.Command{
			{
				Name:      "new",
				Usage:     "create a new encrypted key",
				ArgsUsage: "[NAME]",
				Action: func(c *ucli.Context) error {
					home, _, err := requireHome(c)
					if err != nil {
						return err
					}
					if c.NArg() > 1 {
						return usagef("wallet new takes at most one NAME")
					}
					ks := node.Keystore(home)
					name := c.Args().First()
					if name == "" {
						name, err = freeName(ks)
						if err != nil {
							return err
						}
					}
					pass, err := passphrase(c, env, true)
					if err != nil {
						return err
					}
					info, err := ks.Create(name, pass)
					if errors.Is(err, wallet.ErrKeyExists) {
						return fmt.Errorf("a key named %q exists; choose another NAME ('bourse wallet list' shows them)", name)
					}
					if err != nil {
						return err
					}
					out := keyJSON{Name: info.Name, Address: info.Address.String()}
					return output(c, out, func(w io.Writer) error {
						_, err := fmt.Fprintf(w, "%s\t%s\n", out.Name, out.Address)
						return err
					})
				},
			},
			{
				Name:  "list",
				Usage: "list the keys in the keystore",
				Action: func(c *ucli.Context) error {
					home, _, err := requireHome(c)
					if err != nil {
						return err
					}
					keys, err := node.Keystore(home).List()
					if err != nil {
						return err
					}
					out := make([]keyJSON, len(keys))
					rows := make([][]string, len(keys))
					for i, k := range keys {
						out[i] = keyJSON{Name: k.Name, Address: k.Address.String()}
						rows[i] = []string{k.Name, k.Address.String()}
					}
					return output(c, out, func(w io.Writer) error {
						return printTable(w, []string{"NAME", "ADDRESS"}, rows)
					})
				},
			},
			{
				Name:      "address",
				Usage:     "print the address of a key (default: the node's key)",
				ArgsUsage: "[NAME]",
				Action: func(c *ucli.Context) error {
					home, cfg, err := requireHome(c)
					if err != nil {
						return err
					}
					name := c.Args().First()
					if name == "" {
						name = cfg.Wallet.Key
					}
					info, err := node.Keystore(home).Find(name)
					if err != nil {
						return fmt.Errorf("%w ('bourse wallet list' shows the keys)", err)
					}
					out := keyJSON{Name: info.Name, Address: info.Address.String()}
					return output(c, out, func(w io.Writer) error {
						_, err := fmt.Fprintln(w, out.Address)
						return err
					})
				},
			},
			balanceCommand(),
			sendCommand(),
		},
	}
}

func freeName(ks *wallet.Keystore) (string, error) {
	keys, err := ks.List()
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, k := range keys {
		taken[k.Name] = true
	}
	for i := 1; ; i++ {
		n := fmt.Sprintf("key%d", i)
		if !taken[n] {
			return n, nil
		}
	}
}
