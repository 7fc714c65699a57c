package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
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

// apiClient builds a client for the daemon.
//
//   - Address: --api (env BOURSE_API), else the home's api.listen (https
//     when the home's api.tls is on).
//   - Token: BOURSE_API_TOKEN, else the home's api.token, but only for the
//     home's own API: it is never sent to another address.
//   - TLS: an https address needs a certificate fingerprint to pin:
//     --api-fingerprint (env BOURSE_API_FINGERPRINT), else the home's own
//     certificate when the address is the home's API.
//   - Plain HTTP beyond loopback is refused (api.ErrPlaintextToken).
func apiClient(c *ucli.Context) (*api.Client, error) {
	env := envFor(c)
	addr := flagString(c, flagAPI)
	home := flagString(c, flagHome)
	token := strings.TrimSpace(env.getenv("BOURSE_API_TOKEN"))
	pin := flagString(c, flagAPIFingerprint)

	var cfg node.Config
	haveHome := false
	if addr == "" {
		h, hc, err := requireHome(c)
		if err != nil {
			return nil, err
		}
		home, cfg, haveHome = h, hc, true
		addr = cfg.API.Listen
		if cfg.API.TLS {
			addr = "https://" + addr
		}
	} else if hc, err := node.LoadConfig(filepath.Join(home, node.ConfigFile)); err == nil {
		cfg, haveHome = hc, true
	}
	u, err := parseAPIAddr(addr, pin != "" || (haveHome && cfg.API.TLS && ownAPI(addr, cfg)))
	if err != nil {
		return nil, usagef("--api: %v", err)
	}
	own := haveHome && ownAPI(u.Host, cfg)
	if token == "" {
		if !own {
			if !haveHome {
				return nil, fmt.Errorf("no API token for %s: set BOURSE_API_TOKEN to the token of the node at that address (its api.token), or pass --home of a node whose API it is", u.Host)
			}
			return nil, fmt.Errorf("refusing to send the API token of %s to %s, which is not that home's API (api.listen = %s): set BOURSE_API_TOKEN to the token of the node at %s", home, u.Host, cfg.API.Listen, u.Host)
		}
		if token, err = node.ReadAPIToken(home); err != nil {
			return nil, fmt.Errorf("%w (the token is written by 'bourse init'; or set BOURSE_API_TOKEN)", err)
		}
	}
	var hc *http.Client
	if u.Scheme == "https" {
		if pin == "" {
			if !own {
				return nil, fmt.Errorf("%s: no certificate fingerprint to pin: pass --api-fingerprint (or set BOURSE_API_FINGERPRINT) to the api fingerprint that the node's 'bourse node id' prints", u.Host)
			}
			if pin, err = node.APIFingerprint(home, cfg); err != nil {
				return nil, fmt.Errorf("%w (api.tls is on; the certificate is made by 'bourse init' or at the daemon's first start)", err)
			}
		}
		if hc, err = api.PinnedHTTPClient(pin); err != nil {
			return nil, usagef("--api-fingerprint: %v", err)
		}
	}
	cl, err := api.NewClient(u.String(), token, hc)
	if errors.Is(err, api.ErrPlaintextToken) {
		return nil, fmt.Errorf("%s is not a loopback address: %w; use https://%s with --api-fingerprint (the node must run with api.tls = true)", u.Host, api.ErrPlaintextToken, u.Host)
	}
	if err != nil {
		return nil, usagef("--api: %v", err)
	}
	cl.Home = home
	return cl, nil
}

// parseAPIAddr reads "host:port" or "http(s)://host:port"; without a
// scheme it is https when tls is true.
func parseAPIAddr(addr string, tls bool) (*url.URL, error) {
	if !strings.Contains(addr, "://") {
		if tls {
			addr = "https://" + addr
		} else {
			addr = "http://" + addr
		}
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("api address %q: want host:port, http://host:port or https://host:port", addr)
	}
	return u, nil
}

// ownAPI reports whether addr (host:port, or a URL) is the API of the home
// whose config is cfg: the same port, and the same host, or a loopback
// host when the API listens on loopback or on every address.
func ownAPI(addr string, cfg node.Config) bool {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	lh, lp, err := net.SplitHostPort(cfg.API.Listen)
	if err != nil || p != lp {
		return false
	}
	if h == lh {
		return true
	}
	unspecified := lh == "" || lh == "0.0.0.0" || lh == "::"
	return api.IsLoopbackHost(h) && (unspecified || api.IsLoopbackHost(lh))
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
