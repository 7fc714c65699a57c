package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bourse-net/bourse/internal/loadgen"
	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/testnet"
	ucli "github.com/urfave/cli/v2"
)

func benchCommand(env Env) *ucli.Command {
	common := func() []ucli.Flag {
		return []ucli.Flag{
			&ucli.StringSliceFlag{Name: "nodes", Usage: "node homes (directories) to load; repeatable or comma-separated (default: every node of --testnet)"},
			&ucli.StringFlag{Name: "testnet", Usage: "a testnet directory ('bourse testnet up'): load all its nodes", Value: defaultTestnetDir},
			&ucli.DurationFlag{Name: "duration", Usage: "how long to offer load", Value: 20 * time.Second},
		}
	}
	return &ucli.Command{Name: "bench", Usage: "load a running network through its public API and measure it", Subcommands: []*ucli.Command{
		{
			Name:  "transfers",
			Usage: "offer signed transfers (POST /v1/txs) at --rate; print committed/s, latency, and check every balance and nonce",
			Description: "Funds --accounts fresh accounts from the nodes' wallets, signs transfers between them\n" +
				"(each to the next, in a ring), offers them at --rate spread over the nodes for --duration,\n" +
				"follows the blocks on the first node, then reads every account on every node and compares\n" +
				"nonce and balance with what the admitted transfers must have done: a transfer lost or\n" +
				"applied twice shows as a mismatch, and the command fails.",
			Flags: append(common(),
				&ucli.Float64Flag{Name: "rate", Usage: "offered transfers per second, over all nodes", Value: 1000},
				&ucli.IntFlag{Name: "accounts", Usage: "sending accounts (default 16 per node)"},
				&ucli.Uint64Flag{Name: "fee", Usage: "fee per transfer (the chain's min fee)", Value: 1},
				&ucli.IntFlag{Name: "batch", Usage: "transactions per request, at most 1000", Value: api.MaxSubmitTxs},
			),
			Action: func(c *ucli.Context) error {
				if err := flagsOnly(c); err != nil {
					return err
				}
				clients, err := benchClients(c)
				if err != nil {
					return err
				}
				r, err := loadgen.RunTransfers(c.Context, loadgen.Transfers{Clients: clients, Rate: c.Float64("rate"),
					Duration: c.Duration("duration"), Accounts: c.Int("accounts"), Fee: c.Uint64("fee"), Batch: c.Int("batch"),
					Log: progressWriter(c, env)})
				if err != nil {
					return err
				}
				err = output(c, r, func(w io.Writer) error {
					fmt.Fprintf(w, "nodes %d, accounts %d\n", r.Nodes, r.Accounts)
					fmt.Fprintf(w, "offered    %d transfers at %.0f tx/s (%d refusals retried, %d refused)\n", r.Submitted, r.Offered, r.Retried, r.Refused)
					fmt.Fprintf(w, "committed  %d of %d admitted, %.0f tx/s over %s (%d blocks, at most %d transfers in one)\n",
						r.Committed, r.Admitted, r.CommittedPerSec, r.Elapsed.Round(time.Millisecond), r.Blocks, r.MaxBlockTxs)
					fmt.Fprintf(w, "latency    submit → committed p50 %s, p90 %s, p99 %s, max %s\n", ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.Max))
					fmt.Fprintf(w, "lost       %d\n", r.Lost)
					fmt.Fprintf(w, "checked    %d account reads (nonce and balance to the unit), %d mismatches\n", r.Checked, len(r.Mismatches))
					for _, m := range r.Mismatches[:min(len(r.Mismatches), 10)] {
						fmt.Fprintf(w, "  %s\n", m)
					}
					return nil
				})
				if err == nil && (r.Lost > 0 || len(r.Mismatches) > 0) {
					err = fmt.Errorf("%d transfers lost, %d account mismatches", r.Lost, len(r.Mismatches))
				}
				return err
			},
		},
		{
			Name:  "jobs",
			Usage: "submit a job (POST /v1/jobs) at --rate; print paid/s, latency, and check every job's money",
			Flags: append(common(),
				&ucli.Float64Flag{Name: "rate", Usage: "offered jobs per second, over all nodes", Value: 20},
				&ucli.StringFlag{Name: "spec", Usage: "job spec (its payload path is relative to the spec)", Value: "examples/hello/job.yaml"},
			),
			Action: func(c *ucli.Context) error {
				if err := flagsOnly(c); err != nil {
					return err
				}
				clients, err := benchClients(c)
				if err != nil {
					return err
				}
				specPath := c.String("spec")
				data, err := os.ReadFile(specPath)
				if err != nil {
					return err
				}
				spec, err := api.ParseJobSpec(data)
				if err != nil {
					return err
				}
				var payload []byte
				if spec.Payload != "" && spec.Executor == api.ExecutorWASM {
					ppath := spec.Payload
					if !filepath.IsAbs(ppath) { // relative to the spec, as for 'job submit'
						ppath = filepath.Join(filepath.Dir(specPath), ppath)
					}
					if payload, err = os.ReadFile(ppath); err != nil {
						return fmt.Errorf("payload: %w", err)
					}
				}
				r, err := loadgen.RunJobs(c.Context, loadgen.Jobs{Clients: clients, Rate: c.Float64("rate"),
					Duration: c.Duration("duration"), Spec: spec, Payload: payload, Log: progressWriter(c, env)})
				if err != nil {
					return err
				}
				err = output(c, r, func(w io.Writer) error {
					fmt.Fprintf(w, "nodes %d\n", r.Nodes)
					fmt.Fprintf(w, "offered    %d jobs at %.1f jobs/s (%d refused)\n", r.Submitted, r.Offered, r.Refused)
					fmt.Fprintf(w, "paid       %d, %.1f jobs/s over %s; other ends %v\n", r.Paid, r.PaidPerSec, r.Elapsed.Round(time.Millisecond), r.Ended)
					fmt.Fprintf(w, "latency    submit → paid p50 %s, p90 %s, p99 %s, max %s\n", ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.Max))
					fmt.Fprintf(w, "submit     POST /v1/jobs p50 %s, p99 %s\n", ms(r.Submit.P50), ms(r.Submit.P99))
					fmt.Fprintf(w, "lost       %d\n", r.Lost)
					fmt.Fprintf(w, "checked    money of every ended job, %d mismatches\n", len(r.Mismatches))
					for _, m := range r.Mismatches[:min(len(r.Mismatches), 10)] {
						fmt.Fprintf(w, "  %s\n", m)
					}
					return nil
				})
				if err == nil && (r.Lost > 0 || len(r.Mismatches) > 0) {
					err = fmt.Errorf("%d jobs lost, %d mismatches", r.Lost, len(r.Mismatches))
				}
				return err
			},
		},
	}}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000) }

// progressWriter is stderr, silent with --json.
func progressWriter(c *ucli.Context, env Env) io.Writer {
	if wantJSON(c) {
		return io.Discard
	}
	return env.Stderr
}

// benchClients are API clients for --nodes (node homes), or for every node
// of --testnet.
func benchClients(c *ucli.Context) ([]*api.Client, error) {
	var homes []string
	for _, v := range c.StringSlice("nodes") {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				homes = append(homes, h)
			}
		}
	}
	if len(homes) == 0 {
		net, err := testnet.Load(c.String("testnet"))
		if err != nil {
			return nil, fmt.Errorf("%w (pass --nodes with node homes, or --testnet with a testnet directory)", err)
		}
		for _, n := range net.Nodes {
			homes = append(homes, n.Home)
		}
	}
	var out []*api.Client
	for _, h := range homes {
		cl, err := homeClient(h)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", h, err)
		}
		out = append(out, cl)
	}
	if len(out) == 0 {
		return nil, errors.New("no nodes to load")
	}
	return out, nil
}

// homeClient is a client of the API of the node whose home is h.
func homeClient(h string) (*api.Client, error) {
	cfg, err := node.LoadConfig(filepath.Join(h, node.ConfigFile))
	if err != nil {
		return nil, err
	}
	tok, err := node.ReadAPIToken(h)
	if err != nil {
		return nil, err
	}
	addr := cfg.API.Listen
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	hc := &http.Client{Transport: tr}
	if cfg.API.TLS {
		pin, err := node.APIFingerprint(h, cfg)
		if err != nil {
			return nil, err
		}
		if hc, err = api.PinnedHTTPClient(pin); err != nil {
			return nil, err
		}
		addr = "https://" + addr
	}
	cl, err := api.NewClient(addr, tok, hc)
	if err != nil {
		return nil, err
	}
	cl.Home = h
	return cl, nil
}
