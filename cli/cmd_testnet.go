package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/testnet"
	ucli "github.com/urfave/cli/v2"
)

const defaultTestnetDir = ".testnet"

func testnetCommand(env Env) *ucli.Command {
	dir := func() ucli.Flag {
		return &ucli.StringFlag{Name: "dir", Usage: "the testnet's directory (node0..node{N-1} and network.json)", Value: defaultTestnetDir}
	}
	gen := func() []ucli.Flag {
		return []ucli.Flag{
			dir(),
			&ucli.IntFlag{Name: "nodes", Aliases: []string{"n"}, Usage: "number of nodes", Value: testnet.DefaultNodes},
			&ucli.BoolFlag{Name: "force", Usage: "replace a testnet already in --dir (it must be stopped)"},
			&ucli.IntFlag{Name: "base-port", Usage: "node i's API listens on 127.0.0.1:P+i, its P2P on P+100+i", Value: testnet.DefaultAPIBasePort},
			&ucli.StringFlag{Name: "chain-id", Usage: "chain id of the new chain", Value: testnet.DefaultChainID},
			&ucli.StringSliceFlag{Name: "executors", Usage: "executors every node offers, e.g. --executors wasm,docker (default: wasm)"},
		}
	}
	timeout := func(d time.Duration) ucli.Flag {
		return &ucli.DurationFlag{Name: "timeout", Usage: "how long to wait for the daemons", Value: d}
	}
	binary := &ucli.StringFlag{Name: "binary", Usage: "bourse executable to run the daemons with (default: this one)", Hidden: true}
	nodes := &ucli.StringSliceFlag{Name: "node", Usage: "only this node (repeatable), e.g. --node node1"}
	return &ucli.Command{Name: "testnet", Usage: "run a local multi-node network", Subcommands: []*ucli.Command{
		{Name: "up", Usage: "generate a local network and start its daemons", ArgsUsage: "[-n 4] [--dir DIR] [--detach]",
			Flags: append(gen(), &ucli.BoolFlag{Name: "detach", Usage: "leave the daemons running in the background and return"},
				timeout(90*time.Second), binary),
			Action: testnetUp(env)},
		{Name: "gen", Usage: "only generate the homes, genesis and network.json (see also --containers)", ArgsUsage: "[-n 4] [--dir DIR]",
			Flags:  append(gen(), &ucli.BoolFlag{Name: "containers", Usage: "for compose.yaml: one node per container, peers by host name"}),
			Action: testnetGen},
		{Name: "start", Usage: "start stopped daemons of an existing testnet, in the background", ArgsUsage: "[--dir DIR] [--node NAME]",
			Flags: []ucli.Flag{dir(), nodes, timeout(60 * time.Second), binary}, Action: testnetStart(env)},
		{Name: "status", Usage: "show each node's height and peers", ArgsUsage: "[--dir DIR]",
			Flags: []ucli.Flag{dir()}, Action: testnetStatus},
		{Name: "down", Usage: "stop the daemons (SIGTERM, SIGKILL after --grace); the data stays", ArgsUsage: "[--dir DIR] [--node NAME] [--kill]",
			Flags: []ucli.Flag{dir(), nodes,
				&ucli.DurationFlag{Name: "grace", Usage: "time between SIGTERM and SIGKILL", Value: testnet.DefaultGrace},
				&ucli.BoolFlag{Name: "kill", Usage: "SIGKILL at once, as a crash would"}},
			Action: testnetDown},
		{Name: "demo", Usage: "what 'make testnet' runs: a 4-node network, the hello job end to end, and what to try next", ArgsUsage: "[--dir DIR]",
			Flags: append(gen(), &ucli.StringFlag{Name: "spec", Usage: "job spec to run", Value: "examples/hello/job.yaml"},
				timeout(120*time.Second), binary),
			Action: testnetDemo(env)},
	}}
}

// flagsOnly lets flags follow nothing else: testnet commands take no
// positional arguments.
func flagsOnly(c *ucli.Context) error {
	pos, err := trailingFlags(c)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("'%s' takes no arguments, only flags (got %q)", c.Command.HelpName, pos[0])
	}
	return nil
}

func genOptions(c *ucli.Context) testnet.Options {
	return testnet.Options{Dir: c.String("dir"), N: c.Int("nodes"), APIBasePort: c.Int("base-port"),
		ChainID: c.String("chain-id"), Force: c.Bool("force"), Executors: c.StringSlice("executors")}
}

// progressTo prints progress lines on stderr, skipping repeats.
func progressTo(w io.Writer) func(string) {
	return func(s string) { fmt.Fprintln(w, s) }
}

func testnetGen(c *ucli.Context) error {
	if err := flagsOnly(c); err != nil {
		return err
	}
	o := genOptions(c)
	o.Containers = c.Bool("containers")
	nw, err := testnet.Generate(o)
	if err != nil {
		return err
	}
	return output(c, nw, func(w io.Writer) error {
		if err := networkTable(w, nw); err != nil {
			return err
		}
		if nw.Containers {
			fmt.Fprintf(w, "Generated %d homes for containers in %s.\n", len(nw.Nodes), nw.Dir)
			hint(w, "start them with 'BOURSE_TESTNET_DIR=%s docker compose -f testnet/compose.yaml up --build' (see testnet/README.md)", nw.Dir)
		} else {
			fmt.Fprintf(w, "Generated %d homes in %s.\n", len(nw.Nodes), nw.Dir)
			hint(w, "start them with 'bourse testnet start --dir %s'", c.String("dir"))
		}
		return nil
	})
}

func networkTable(w io.Writer, nw *testnet.Network) error {
	rows := make([][]string, len(nw.Nodes))
	for i, n := range nw.Nodes {
		rows[i] = []string{n.Name, n.PeerID, n.API, n.Address, strings.Join(n.Roles, ",")}
	}
	return printTable(w, []string{"NODE", "PEER ID", "API", "WALLET", "ROLES"}, rows)
}

func nextSteps(w io.Writer, dir string, detached bool) {
	home := filepath.Join(dir, "node0")
	fmt.Fprintln(w, "\nTry next:")
	fmt.Fprintf(w, "  bourse --home %s chain status\n", home)
	fmt.Fprintf(w, "  bourse --home %s market offers\n", home)
	fmt.Fprintf(w, "  bourse --home %s job submit examples/hello/job.yaml --wait\n", home)
	fmt.Fprintf(w, "  bourse --home %s market stats\n", home)
	fmt.Fprintf(w, "  bourse testnet status --dir %s\n", dir)
	if detached {
		fmt.Fprintf(w, "Stop it with 'bourse testnet down --dir %s' (the data stays in %s).\n", dir, dir)
	}
}

// launch starts the daemons of nw in the background and waits until the
// chain has made its first blocks and every node is a registered provider.
// On failure the daemons it started are stopped again.
func launch(c *ucli.Context, env Env, nw *testnet.Network, names []string, minHeight uint64) (*testnet.Cluster, error) {
	logger := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cl, err := testnet.Start(nw, testnet.StartOptions{Binary: c.String("binary"), Nodes: names, Logger: logger})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	fmt.Fprintf(env.Stderr, "started %d daemons; waiting for the chain (up to %s)\n", len(cl.PIDs()), c.Duration("timeout"))
	err = testnet.WaitReady(ctx, nw, testnet.WaitOptions{Nodes: names, MinHeight: minHeight,
		Failed: cl.ExitError, Progress: progressTo(env.Stderr)})
	if err == nil && len(names) == 0 {
		err = testnet.RegisterProviders(ctx, nw, progressTo(env.Stderr))
		if errors.Is(err, api.ErrUnavailable) {
			// The chain runs, but this build's node does not sell capacity.
			fmt.Fprintf(env.Stderr, "warning: providers not registered: %v\n", err)
			err = nil
		}
	}
	if err != nil {
		stopCtx, stop := context.WithTimeout(context.Background(), testnet.DefaultGrace+5*time.Second)
		defer stop()
		cl.Stop(stopCtx, testnet.DefaultGrace)
		return nil, fmt.Errorf("start testnet in %s: %w\nthe daemons were stopped; their logs are in %s/node*/%s", nw.Dir, err, nw.Dir, testnet.DaemonOutFile)
	}
	return cl, nil
}

func testnetUp(env Env) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if err := flagsOnly(c); err != nil {
			return err
		}
		if _, err := testnet.FindBinary(c.String("binary")); err != nil {
			return err
		}
		nw, err := testnet.Generate(genOptions(c))
		if err != nil {
			return err
		}
		cl, err := launch(c, env, nw, nil, 2)
		if err != nil {
			return err
		}
		detach := c.Bool("detach")
		if err := output(c, nw, func(w io.Writer) error {
			fmt.Fprintf(w, "Testnet %s is up: %d nodes in %s\n", nw.ChainID, len(nw.Nodes), nw.Dir)
			if err := networkTable(w, nw); err != nil {
				return err
			}
			nextSteps(w, c.String("dir"), detach)
			return nil
		}); err != nil {
			return err
		}
		if detach {
			cl.Detach()
			return nil
		}
		fmt.Fprintln(env.Stderr, "Running in the foreground; Ctrl-C stops every node.")
		var died error
		select {
		case <-c.Context.Done():
		case <-cl.Exited():
			died = cl.ExitError()
		}
		fmt.Fprintln(env.Stderr, "stopping the testnet...")
		stopCtx, stop := context.WithTimeout(context.Background(), testnet.DefaultGrace+5*time.Second)
		defer stop()
		serr := cl.Stop(stopCtx, testnet.DefaultGrace)
		if died != nil {
			return fmt.Errorf("a node stopped on its own, so the testnet was stopped: %w", died)
		}
		if serr != nil {
			return serr
		}
		fmt.Fprintf(env.Stderr, "stopped; the data stays in %s\n", nw.Dir)
		return nil
	}
}

func testnetStart(env Env) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if err := flagsOnly(c); err != nil {
			return err
		}
		nw, err := testnet.Load(c.String("dir"))
		if err != nil {
			return err
		}
		names := c.StringSlice("node")
		if len(names) == 0 {
			for _, n := range nw.Nodes {
				if !contains(testnet.RunningNodes(nw), n.Name) {
					names = append(names, n.Name)
				}
			}
			if len(names) == 0 {
				return fmt.Errorf("every node of the testnet in %s is already running", nw.Dir)
			}
		}
		cl, err := launch(c, env, nw, names, 0)
		if err != nil {
			return err
		}
		cl.Detach()
		pids := cl.PIDs()
		return output(c, pids, func(w io.Writer) error {
			for _, n := range names {
				fmt.Fprintf(w, "%s started (pid %d)\n", n, pids[n])
			}
			return nil
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func testnetStatus(c *ucli.Context) error {
	if err := flagsOnly(c); err != nil {
		return err
	}
	nw, err := testnet.Load(c.String("dir"))
	if err != nil {
		return err
	}
	sts := testnet.Status(c.Context, nw)
	return output(c, sts, func(w io.Writer) error {
		rows := make([][]string, len(sts))
		for i, s := range sts {
			state := "stopped"
			switch {
			case s.Up && s.Syncing:
				state = "syncing"
			case s.Up:
				state = "up"
			case s.Running:
				state = "starting"
			}
			height, peers := "-", "-"
			if s.Up {
				height, peers = u64(s.Height), fmt.Sprint(s.Peers)
			}
			pid := "-"
			if s.Running {
				pid = fmt.Sprint(s.PID)
			}
			rows[i] = []string{s.Name, state, pid, height, peers, s.API, strings.Join(s.Roles, ",")}
		}
		return printTable(w, []string{"NODE", "STATE", "PID", "HEIGHT", "PEERS", "API", "ROLES"}, rows)
	})
}

func testnetDown(c *ucli.Context) error {
	if err := flagsOnly(c); err != nil {
		return err
	}
	nw, err := testnet.Load(c.String("dir"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("grace")+10*time.Second)
	defer cancel()
	results, err := testnet.Stop(ctx, nw, testnet.StopOptions{Nodes: c.StringSlice("node"), Grace: c.Duration("grace"), Kill: c.Bool("kill")})
	if err != nil {
		return err
	}
	return output(c, results, func(w io.Writer) error {
		for _, r := range results {
			if r.PID != 0 {
				fmt.Fprintf(w, "%s: %s (pid %d)\n", r.Node, r.Result, r.PID)
			} else {
				fmt.Fprintf(w, "%s: %s\n", r.Node, r.Result)
			}
		}
		fmt.Fprintf(w, "The data stays in %s; 'bourse testnet start --dir %s' starts it again.\n", nw.Dir, c.String("dir"))
		return nil
	})
}

// demoReport is the --json output of testnet demo.
type demoReport struct {
	Network         *testnet.Network `json:"network"`
	Job             api.Job          `json:"job"`
	Output          string           `json:"output"`
	Provider        string           `json:"provider"`
	ProviderNode    string           `json:"provider_node"`
	BalanceBefore   uint64           `json:"balance_before"`
	BalanceAfter    uint64           `json:"balance_after"`
	EarnedOnChain   uint64           `json:"earned_on_chain"`
	SubmitToPaidSec float64          `json:"submit_to_paid_seconds"`
	// Verified: the client's node ran the (WASM) job again and got the
	// provider's result hash; absent when it could not verify.
	Verified *bool `json:"verified,omitempty"`
}

func testnetDemo(env Env) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if err := flagsOnly(c); err != nil {
			return err
		}
		if _, err := testnet.FindBinary(c.String("binary")); err != nil {
			return err
		}
		spec, payload, err := loadSpecFile(c.String("spec"))
		if err != nil {
			return fmt.Errorf("%w (run 'make examples' first to build the example jobs)", err)
		}
		o := genOptions(c)
		o.Force = true
		if o.N < 2 {
			return usagef("testnet demo needs at least 2 nodes: its client (node0) cannot be its own provider (the chain refuses self-matches)")
		}
		if old, err := testnet.Load(o.Dir); err == nil && len(testnet.RunningNodes(old)) > 0 {
			fmt.Fprintf(env.Stderr, "stopping the testnet already running in %s\n", old.Dir)
			if _, err := testnet.Stop(c.Context, old, testnet.StopOptions{}); err != nil {
				return err
			}
		}
		nw, err := testnet.Generate(o)
		if err != nil {
			return err
		}
		cl, err := launch(c, env, nw, nil, 2)
		if err != nil {
			return err
		}
		cl.Detach()
		w := c.App.Writer
		if wantJSON(c) {
			w = env.Stderr
		}
		fmt.Fprintf(w, "Testnet %s is up: %d nodes in %s\n", nw.ChainID, len(nw.Nodes), nw.Dir)
		if err := networkTable(w, nw); err != nil {
			return err
		}
		rep, err := runDemoJob(c, nw, spec, payload, w)
		if err != nil {
			fmt.Fprintf(env.Stderr, "The testnet keeps running; stop it with 'bourse testnet down --dir %s'.\n", c.String("dir"))
			return err
		}
		if wantJSON(c) {
			return printJSON(c.App.Writer, rep)
		}
		nextSteps(w, c.String("dir"), false)
		fmt.Fprintf(w, "The network keeps running. Stop it with 'make testnet-down' (or 'bourse testnet down --dir %s').\n", c.String("dir"))
		return nil
	}
}

func runDemoJob(c *ucli.Context, nw *testnet.Network, spec api.JobSpec, payload []byte, w io.Writer) (demoReport, error) {
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	rep := demoReport{Network: nw}
	if err := testnet.WaitOffers(ctx, nw.Nodes[0], len(nw.Nodes)); err != nil {
		return rep, err
	}
	client, err := testnet.Client(nw.Nodes[0])
	if err != nil {
		return rep, err
	}
	before := map[string]uint64{}
	for _, n := range nw.Nodes {
		acc, err := client.Account(ctx, n.Address)
		if err != nil {
			return rep, fmt.Errorf("balance of %s: %w", n.Name, err)
		}
		before[n.Address] = acc.Balance
	}
	// earned is every provider's earnings as the chain's market stats show them.
	earned := func() (map[string]uint64, error) {
		stats, err := client.MarketStats(ctx, 0, 0)
		if err != nil {
			return nil, fmt.Errorf("market stats: %w", err)
		}
		out := map[string]uint64{}
		for _, ps := range stats.Providers {
			out[ps.Address] = ps.Earned
		}
		return out, nil
	}
	earnedBefore, err := earned()
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(w, "\nSubmitting %s from node0 and waiting for it:\n", c.String("spec"))
	start := time.Now()
	job, err := client.SubmitJobBytes(ctx, spec, payload)
	if err != nil {
		return rep, fmt.Errorf("submit job: %w", err)
	}
	p := &progress{w: w}
	final, err := follow(ctx, client, job, func(j api.Job) { p.show(describe(j)) })
	p.done()
	if err != nil {
		return rep, err
	}
	rep.SubmitToPaidSec = time.Since(start).Seconds()
	rep.Job = final
	if final.State != api.StatePaid {
		return rep, fmt.Errorf("job %s ended %s%s; see 'bourse --home %s job status %s'", final.ID, final.State, suffix(final.Error), nw.Nodes[0].Home, final.ID)
	}
	logs, err := client.JobLogs(ctx, final.ID)
	if err != nil {
		return rep, fmt.Errorf("read the output of job %s: %w", final.ID, err)
	}
	rep.Output = logs.Stdout + logs.Stderr
	rep.Provider = final.Provider
	for _, n := range nw.Nodes {
		if n.Address == final.Provider {
			rep.ProviderNode = n.Name
		}
	}
	// "paid" is the client's verdict: it fetched and checked the result
	// and sent its ack; the payment lands with the ack's block. Wait for
	// the chain to show it before reading the provider's balance.
	for deadline := time.Now().Add(15 * time.Second); ; {
		now, err := earned()
		if err != nil {
			return rep, err
		}
		rep.EarnedOnChain = now[final.Provider]
		if rep.EarnedOnChain > earnedBefore[final.Provider] {
			break
		}
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("job %s is paid, but the chain shows no payment to %s after 15 s; see 'bourse --home %s market stats'", final.ID, final.Provider, nw.Nodes[0].Home)
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	acc, err := client.Account(ctx, final.Provider)
	if err != nil {
		return rep, fmt.Errorf("balance of provider %s: %w", final.Provider, err)
	}
	rep.BalanceBefore, rep.BalanceAfter = before[final.Provider], acc.Balance
	fmt.Fprintf(w, "\nOutput of job %s (ran on %s):\n%s", short(final.ID), orDash(rep.ProviderNode), rep.Output)
	if !strings.HasSuffix(rep.Output, "\n") {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nPaid %d to %s (%s); %d of the %d escrowed went back to the client.\n",
		final.Paid, final.Provider, orDash(rep.ProviderNode), final.Refunded, final.Escrowed)
	fmt.Fprintf(w, "Provider balance %d -> %d; the chain's market stats say it has earned %d.\n",
		rep.BalanceBefore, rep.BalanceAfter, rep.EarnedOnChain)
	fmt.Fprintln(w, "(Its balance also moves by transaction fees it paid and block fees it collected as a validator.)")
	fmt.Fprintf(w, "Submit to paid: %.2fs\n", rep.SubmitToPaidSec)
	if final.Spec.Executor == api.ExecutorWASM {
		v, err := client.VerifyJob(ctx, final.ID)
		switch {
		case err != nil:
			fmt.Fprintf(w, "Could not verify the result here: %v\n", err)
		case v.Match:
			rep.Verified = &v.Match
			fmt.Fprintf(w, "Verified: node0 ran the job again and got the provider's result hash %s ('bourse job verify ID').\n", short(v.LocalHash))
		default:
			rep.Verified = &v.Match
			fmt.Fprintf(w, "MISMATCH: node0's re-run gives %s, the provider committed %s.\n", short(v.LocalHash), short(v.ChainHash))
		}
	}
	return rep, nil
}
