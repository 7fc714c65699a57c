package cli

import (
	"errors"
	"fmt"

	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/wallet"
	ucli "github.com/urfave/cli/v2"
)

func daemonCommand(env Env) *ucli.Command {
	return &ucli.Command{
		Name:  "daemon",
		Usage: "run the node daemon (stops cleanly on Ctrl-C or SIGTERM)",
		Action: func(c *ucli.Context) error {
			if c.Args().Present() {
				return usagef("daemon takes no arguments; use --home DIR")
			}
			home, _, err := requireHome(c)
			if err != nil {
				return err
			}
			pass, err := passphrase(c, env, false)
			if err != nil {
				return err
			}
			node.Version = Version
			n, err := node.New(c.Context, node.Options{Home: home, Passphrase: pass, LogOutput: env.Stderr})
			if errors.Is(err, wallet.ErrWrongPassphrase) {
				return fmt.Errorf("wrong passphrase for the wallet key in %s", home)
			}
			if err != nil {
				return fmt.Errorf("start daemon: %w", err)
			}
			return n.Run(c.Context)
		},
	}
}
