package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/ui"
	ucli "github.com/urfave/cli/v2"
)

func uiCommand(Env) *ucli.Command {
	return &ucli.Command{
		Name:  "ui",
		Usage: "print a one-time login link to the daemon's dashboard",
		Description: "The link carries a code that works once, for " + ui.CodeTTL.String() + ", and is exchanged for a\n" +
			"browser session (an HttpOnly, SameSite=Strict cookie) that can read the API; the\n" +
			"API token itself never goes into the link.",
		Flags:  []ucli.Flag{&ucli.BoolFlag{Name: "open", Usage: "also open the link in the default browser"}},
		Action: withClient(uiLink),
	}
}

// uiLinkResult is 'bourse ui --json'.
type uiLinkResult struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

func uiLink(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	// The daemon must be up and take the token, or the link is useless.
	if _, err := cl.Status(c.Context); err != nil {
		return fmt.Errorf("reach the daemon at %s: %w", cl.Addr(), err)
	}
	now := time.Now()
	code, err := ui.LoginCode(cl.Token(), now)
	if err != nil {
		return err
	}
	base := cl.BaseURL()
	link := strings.TrimRight(base, "/") + "/ui/login?code=" + url.QueryEscape(code)
	res := uiLinkResult{URL: link, Expires: now.Add(ui.CodeTTL).UTC().Truncate(time.Second)}
	if flagBool(c, "open") {
		open := envFor(c).OpenURL
		if open == nil {
			open = openBrowser
		}
		if err := open(c.Context, link); err != nil {
			return fmt.Errorf("open the dashboard (open this link by hand: %s): %w", link, err)
		}
	}
	return output(c, res, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s\n(works once, until %s)\n", link, res.Expires.Local().Format("15:04:05"))
		return err
	})
}

func openBrowser(ctx context.Context, link string) error {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	// The opener hands the link to the browser and exits.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, link).CombinedOutput(); err != nil {
		return fmt.Errorf("run %s: %w (%s)", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
