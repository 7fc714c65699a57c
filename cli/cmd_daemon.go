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
			level, err := logLevel(c)
			if err != nil {
				return err
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
			// BOURSE_PPROF=1 serves runtime profiles on loopback (the
			// address lands in the home's pprof.addr).
			if env.getenv("BOURSE_PPROF") == "1" {
				if err := servePprof(c.Context, home); err != nil {
					return err
				}
			}
			n, err := node.New(c.Context, node.Options{Home: home, Passphrase: pass, LogOutput: env.Stderr, LogLevel: level})
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

// logLevel is --log-level when given (it overrides [log] level in
// config.toml), else "".
func logLevel(c *ucli.Context) (string, error) {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(flagLogLevel) {
			switch l := ctx.String(flagLogLevel); l {
			case "debug", "info", "warn", "error":
				return l, nil
			default:
				return "", usagef("--log-level %q: want debug, info, warn or error", l)
			}
		}
	}
	return "", nil
}
