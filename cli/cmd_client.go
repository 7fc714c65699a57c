package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
	ucli "github.com/urfave/cli/v2"
)

// envFor returns the Env the app was built with.
func envFor(c *ucli.Context) Env {
	env, _ := c.App.Metadata["env"].(Env)
	return env
}

// apiClient builds a client for the daemon: the address from --api (env
// BOURSE_API) or the home's config, the token from BOURSE_API_TOKEN or the
// home's api.token.
func apiClient(c *ucli.Context) (*api.Client, error) {
	addr, token, err := apiTarget(c)
	if err != nil {
		return nil, err
	}
	cl, err := api.NewClient(addr, token, nil)
	if err != nil {
		return nil, usagef("--api: %v", err)
	}
	cl.Home = flagString(c, flagHome)
	return cl, nil
}

// apiTarget finds the daemon's API address and token as apiClient does.
func apiTarget(c *ucli.Context) (addr, token string, err error) {
	env := envFor(c)
	addr = flagString(c, flagAPI)
	token = strings.TrimSpace(env.getenv("BOURSE_API_TOKEN"))
	if addr == "" || token == "" {
		h, cfg, err := requireHome(c)
		if err != nil {
			return "", "", err
		}
		if addr == "" {
			addr = cfg.API.Listen
		}
		if token == "" {
			if token, err = node.ReadAPIToken(h); err != nil {
				return "", "", fmt.Errorf("%w (the token is written by 'bourse init'; or set BOURSE_API_TOKEN)", err)
			}
		}
	}
	return addr, token, nil
}

// withClient runs f with a client and maps well-known API errors to
// messages with a next step.
func withClient(f func(c *ucli.Context, cl *api.Client) error) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		pos, err := trailingFlags(c)
		if err != nil {
			return err
		}
		c.Context = context.WithValue(c.Context, positionalKey{}, pos)
		cl, err := apiClient(c)
		if err != nil {
			return err
		}
		err = f(c, cl)
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeUnauthorized {
			return fmt.Errorf("the daemon refused the API token: is --home the daemon's home? (%s)", ae.Message)
		}
		return err
	}
}

// parseAmount reads a positive amount in base units.
func parseAmount(what, s string) (uint64, error) {
	n, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil || n == 0 {
		return 0, usagef("%s %q: want a positive whole number of base units", what, s)
	}
	return n, nil
}

type positionalKey struct{}

// trailingFlags lets flags follow the arguments ("chain block 3 --json"):
// urfave/cli stops parsing flags at the first argument, so the rest are
// set here on the command's flag set. Numbers such as "-3" stay arguments
// (and are refused as amounts later); "--" ends the flags.
func trailingFlags(c *ucli.Context) ([]string, error) {
	in := c.Args().Slice()
	var pos []string
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			pos = append(pos, in[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' || isNumber(a) {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		fl := lookupFlag(c.Command.Flags, name)
		if fl == nil {
			return nil, usagef("flag provided but not defined: %s (see '%s --help')", a, c.Command.HelpName)
		}
		if bf, ok := fl.(*ucli.BoolFlag); ok && !hasVal {
			val, hasVal = "true", true
			name = bf.Name
		}
		if !hasVal {
			if i+1 >= len(in) {
				return nil, usagef("flag needs an argument: %s (see '%s --help')", a, c.Command.HelpName)
			}
			i++
			val = in[i]
		}
		if err := c.Set(fl.Names()[0], val); err != nil {
			return nil, usagef("invalid value %q for flag %s: %v", val, a, err)
		}
	}
	return pos, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func lookupFlag(flags []ucli.Flag, name string) ucli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// args are the command's positional arguments, without trailing flags.
func args(c *ucli.Context) []string {
	if pos, ok := c.Context.Value(positionalKey{}).([]string); ok {
		return pos
	}
	return c.Args().Slice()
}

// oneArg returns the only argument, or a usage error naming it.
func oneArg(c *ucli.Context, name string) (string, error) {
	a := args(c)
	if len(a) != 1 {
		return "", usagef("'%s' takes exactly one %s (see '%s --help')", c.Command.HelpName, name, c.Command.HelpName)
	}
	return a[0], nil
}

func noArgs(c *ucli.Context) error {
	if a := args(c); len(a) != 0 {
		return usagef("'%s' takes no arguments, got %q", c.Command.HelpName, a[0])
	}
	return nil
}

// printKV writes aligned "key  value" lines.
func printKV(w io.Writer, pairs [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

// short abbreviates long hex ids for tables.
func short(s string) string {
	if len(s) > 16 {
		return s[:12] + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func u64(n uint64) string { return strconv.FormatUint(n, 10) }

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func res(r api.Resources) string {
	s := fmt.Sprintf("%dm cpu, %d MiB mem, %d MiB disk", r.CPU, r.Memory, r.Disk)
	if r.GPUs > 0 {
		s += fmt.Sprintf(", %d gpu", r.GPUs)
	}
	return s
}

func hint(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "hint: "+format+"\n", args...)
}

// txOutput prints a posted transaction.
func txOutput(c *ucli.Context, what string, r api.TxResult, next string) error {
	return output(c, r, func(w io.Writer) error {
		switch r.Status {
		case "committed":
			fmt.Fprintf(w, "%s: transaction %s committed at height %d\n", what, r.Hash, r.Height)
		case "rejected":
			return fmt.Errorf("%s: transaction %s rejected: %s", what, r.Hash, r.Error)
		default:
			fmt.Fprintf(w, "%s: transaction %s submitted (%s)\n", what, r.Hash, orDash(r.Status))
			hint(w, "check it with 'bourse chain tx %s'", r.Hash)
		}
		if next != "" {
			hint(w, "%s", next)
		}
		return nil
	})
}
