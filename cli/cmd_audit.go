package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/bourse-net/bourse/chain/audit"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/node"
)

func chainAuditCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "audit",
		Usage: "replay the chain from genesis out of the home's store and check every block, certificate, state root, invariant and settlement",
		Description: "Works on a stopped node's home (the daemon holds the store while it runs). " +
			"Exits 1 naming the first discrepancy (its height and what failed).",
		Flags: []ucli.Flag{
			&ucli.Uint64Flag{Name: "to", Usage: "audit up to this height (default: the last stored block)"},
			&ucli.Uint64Flag{Name: "invariants-every", Usage: "check the state invariants (a full state scan) every N heights and at the last", Value: 1},
		},
		Action: chainAudit,
	}
}

func chainAudit(c *ucli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	env := envFor(c)
	home := flagString(c, flagHome)
	dir := filepath.Join(home, node.DataDir)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no chain store in %s: %w ('bourse init' and 'bourse daemon' make one)", home, err)
	}
	s, err := store.Open(dir)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("the chain store %s is in use, most likely by a running daemon: stop it and run the audit again, or audit a copy of the home (--home)", dir)
		}
		return fmt.Errorf("open chain store: %w", err)
	}
	defer s.Close()
	opts := audit.Options{To: c.Uint64("to"), InvariantsEvery: c.Uint64("invariants-every")}
	errw := c.App.ErrWriter
	if isTerminalWriter(env, errw) {
		opts.Progress = progressBar(errw)
	}
	rep, err := audit.Run(c.Context, s, opts)
	if opts.Progress != nil {
		fmt.Fprint(errw, "\r\033[K")
	}
	var d *audit.Discrepancy
	if err != nil && !errors.As(err, &d) {
		return fmt.Errorf("audit: %w", err)
	}
	if perr := output(c, rep, func(w io.Writer) error { return printAudit(w, rep) }); perr != nil {
		return perr
	}
	if d != nil {
		return fmt.Errorf("audit failed at height %d (%s): %s", d.Height, d.Check, d.Detail)
	}
	return nil
}

func printAudit(w io.Writer, r *audit.Report) error {
	verdict := "ok"
	if !r.OK {
		verdict = "FAILED"
	}
	secs := time.Duration(r.Elapsed).Seconds()
	rate := "-"
	if secs > 0 {
		rate = fmt.Sprintf("%.0f blocks/s", float64(r.Blocks)/secs)
	}
	pairs := [][2]string{
		{"audit", verdict},
		{"chain", r.ChainID},
		{"heights", fmt.Sprintf("1..%d of %d", r.Height, r.Target)},
		{"transactions", fmt.Sprintf("%d (%d failed)", r.Txs, r.FailedTxs)},
		{"certificates", u64(r.Commits)},
		{"invariant checks", u64(r.Invariant)},
		{"matches", u64(r.Matches)},
		{"settled", fmt.Sprintf("%d completed, %d failed, %d timed out, %d payload unavailable", r.Settled.Completed, r.Settled.Failed, r.Settled.TimedOut, r.Settled.Unavailable)},
		{"money", fmt.Sprintf("paid %d, refunded %d, burned %d, slashed %d", r.Paid, r.Refunded, r.Burned, r.Slashed)},
		{"state root", orDash(r.StateRoot)},
		{"time", fmt.Sprintf("%s (%s)", time.Duration(r.Elapsed).Round(time.Millisecond), rate)},
	}
	if r.Failure != nil {
		pairs = append(pairs, [2]string{"discrepancy", r.Failure.Error()})
	}
	return printKV(w, pairs)
}

// progressBar redraws one line on w at most every 100 ms.
func progressBar(w io.Writer) func(done, total uint64) {
	var last time.Time
	return func(done, total uint64) {
		if done != total && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		const width = 30
		n := int(done * width / max(total, 1))
		fmt.Fprintf(w, "\r[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total)
	}
}
