package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"
)

// pending registers a command of the CLI surface whose part is not built
// yet. Its action (set by finish) says so and exits non-zero: no pretend
// output.
func pending(name, usage, args string) *ucli.Command {
	return &ucli.Command{Name: name, Usage: usage + " (not available yet)", ArgsUsage: args}
}

func notYet(path string) ucli.ActionFunc {
	return func(*ucli.Context) error {
		return fmt.Errorf("'%s' is not available yet in this build of Bourse", path)
	}
}

func daemonCommand(Env) *ucli.Command {
	return pending("daemon", "run the node daemon", "")
}

func providerCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "provider", Usage: "sell capacity", Subcommands: []*ucli.Command{
		pending("status", "show this provider's offer, jobs and earnings", ""),
		pending("register", "bond collateral to become a provider", "--collateral AMOUNT"),
		pending("offer", "show the offer this node gossips", ""),
	}}
}

func jobCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "job", Usage: "submit and follow jobs", Subcommands: []*ucli.Command{
		pending("submit", "submit a job", "SPEC|--wasm FILE"),
		pending("status", "show a job", "ID"),
		pending("list", "list jobs", ""),
		pending("logs", "show a job's logs", "ID"),
		pending("result", "download a job's result", "ID [-o DIR]"),
		pending("cancel", "cancel an unmatched job", "ID"),
	}}
}

func marketCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "market", Usage: "inspect the market", Subcommands: []*ucli.Command{
		pending("offers", "list capacity offers", ""),
		pending("bids", "list open bids", ""),
		pending("matches", "list matches", ""),
		pending("stats", "per-provider load, earnings and fairness", ""),
	}}
}

func chainCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "chain", Usage: "inspect the chain", Subcommands: []*ucli.Command{
		pending("status", "show height and sync state", ""),
		pending("block", "show a block", "[HEIGHT]"),
		pending("tx", "show a transaction", "HASH"),
		pending("validators", "list validators", ""),
	}}
}

func stakeCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "stake", Usage: "bond and unbond stake", Subcommands: []*ucli.Command{
		pending("bond", "bond stake", "AMOUNT"),
		pending("unbond", "unbond stake", "AMOUNT"),
	}}
}

func testnetCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "testnet", Usage: "run a local multi-node network", Subcommands: []*ucli.Command{
		pending("up", "start a local network", "[-n 4] [--dir DIR] [--detach]"),
		pending("status", "show the local network", ""),
		pending("down", "stop the local network", ""),
	}}
}
