package cli

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node/api"
	ucli "github.com/urfave/cli/v2"
)

func txCommand(env Env) *ucli.Command {
	return &ucli.Command{Name: "tx", Usage: "submit transactions signed elsewhere", Subcommands: []*ucli.Command{
		{
			Name:  "send",
			Usage: "submit signed transactions (hex, one per line) from FILE or stdin ('-')",
			Description: "Each line is one signed chain transaction, hex-encoded (the canonical CBOR of a\n" +
				"signed chain.Tx). They go to the daemon in batches of up to 1000 (POST /v1/txs), which\n" +
				"answers once they are in its mempool, or with --commit once they are in a block.\n" +
				"Resubmitting the same transactions is safe: each takes effect at most once.\n" +
				"The command fails when the daemon rejected any of them.",
			ArgsUsage: "[FILE]",
			Flags: []ucli.Flag{
				&ucli.BoolFlag{Name: "commit", Usage: "wait until the transactions are committed (about 10 s at most)"},
			},
			Action: withClient(func(c *ucli.Context, cl *api.Client) error { return txSend(c, cl, env) }),
		},
	}}
}

func txSend(c *ucli.Context, cl *api.Client, env Env) error {
	a := args(c)
	if len(a) > 1 {
		return usagef("'bourse tx send' takes at most one FILE")
	}
	var in io.Reader = env.Stdin
	if len(a) == 1 && a[0] != "-" {
		f, err := os.Open(a[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	txs, err := readHexTxs(in)
	if err != nil {
		return err
	}
	if len(txs) == 0 {
		return usagef("no transactions given: one hex-encoded signed transaction per line")
	}
	var results []api.TxResult
	for len(txs) > 0 {
		k := min(len(txs), api.MaxSubmitTxs)
		r, err := cl.SubmitTxs(c.Context, txs[:k], c.Bool("commit"))
		if err != nil {
			return err
		}
		results = append(results, r...)
		txs = txs[k:]
	}
	rejected := 0
	for _, r := range results {
		if r.Status == api.TxRejected || r.Status == api.TxFailed {
			rejected++
		}
	}
	err = output(c, results, func(w io.Writer) error {
		for _, r := range results {
			switch {
			case r.Error != "":
				fmt.Fprintf(w, "%s %s: %s\n", r.Hash, r.Status, r.Error)
			case r.Height > 0:
				fmt.Fprintf(w, "%s %s at height %d\n", r.Hash, r.Status, r.Height)
			default:
				fmt.Fprintf(w, "%s %s\n", r.Hash, r.Status)
			}
		}
		return nil
	})
	if err == nil && rejected > 0 {
		err = fmt.Errorf("%d of %d transactions rejected or failed", rejected, len(results))
	}
	return err
}

// readHexTxs reads one hex transaction per line; blank lines and lines
// starting with # are skipped.
func readHexTxs(r io.Reader) ([][]byte, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 2*chain.MaxTxBytes+16)
	var out [][]byte
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		raw, err := hex.DecodeString(s)
		if err != nil || len(raw) == 0 {
			return nil, usagef("line %d: not a hex-encoded transaction", line)
		}
		out = append(out, raw)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read transactions: %w", err)
	}
	return out, nil
}
