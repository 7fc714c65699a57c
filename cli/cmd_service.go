package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bourse-net/bourse/node/api"
	ucli "github.com/urfave/cli/v2"
)

func serviceCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "service", Usage: "deploy and run services: replicas leased on chain, reached through any node's gateway",
		Subcommands: []*ucli.Command{
			{Name: "deploy", Usage: "deploy a service from a spec file (kind: service); waits for the ServiceOpen to commit", ArgsUsage: "SPEC",
				Action: withClient(serviceDeploy)},
			{Name: "list", Usage: "list this node's services", Flags: []ucli.Flag{&ucli.BoolFlag{Name: "all", Usage: "also closed and exhausted ones"}},
				Action: withClient(serviceList)},
			{Name: "status", Usage: "show a service and its leases", ArgsUsage: "NAME", Action: withClient(serviceStatus)},
			{Name: "logs", Usage: "show a service's history on chain and its replicas' output", ArgsUsage: "NAME",
				Flags: []ucli.Flag{rawFlag()}, Action: withClient(serviceLogs)},
			{Name: "scale", Usage: "set the wanted replica count (within the spec's min and max)", ArgsUsage: "NAME N", Action: withClient(serviceScale)},
			{Name: "close", Usage: "close a service: providers are paid their funded periods, the rest is refunded", ArgsUsage: "NAME",
				Action: withClient(serviceClose)},
			{Name: "stats", Usage: "requests across the replicas (this node's gateway), Jain's fairness, latency percentiles", ArgsUsage: "NAME",
				Action: withClient(serviceStats)},
		}}
}

func serviceDeploy(c *ucli.Context, cl *api.Client) error {
	path, err := oneArg(c, "SPEC")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read service spec: %w", err)
	}
	spec, err := api.ParseServiceSpec(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if spec.Payload == "" {
		return fmt.Errorf("%s: payload: name the service's .wasm module (a docker service: its image's docker save tarball)", path)
	}
	mpath := spec.Payload
	if !filepath.IsAbs(mpath) {
		mpath = filepath.Join(filepath.Dir(path), mpath)
	}
	module, err := readPayload(mpath, spec.Executor)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	spec.Payload = filepath.Base(spec.Payload)
	s, err := cl.DeployService(c.Context, spec, module)
	if err != nil {
		return err
	}
	return output(c, s, func(w io.Writer) error {
		fmt.Fprintf(w, "service %s deployed (id %s), %d replicas wanted\n", s.Name, s.ID, s.Replicas)
		if s.URL != "" {
			fmt.Fprintf(w, "call it: curl %s\n", s.URL)
		}
		return nil
	})
}

func serviceList(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	ss, err := cl.Services(c.Context, c.Bool("all"))
	if err != nil {
		return err
	}
	return output(c, ss, func(w io.Writer) error {
		rows := make([][]string, 0, len(ss))
		for _, s := range ss {
			rows = append(rows, []string{s.Name, s.Status, fmt.Sprintf("%d/%d", s.Active, s.Replicas), fmt.Sprintf("%d..%d", s.Min, s.Max),
				strconv.FormatUint(s.Budget, 10), strconv.FormatUint(s.Paid, 10), s.ID[:16]})
		}
		return printTable(w, []string{"NAME", "STATUS", "ACTIVE", "BOUNDS", "BUDGET", "PAID", "ID"}, rows)
	})
}

func serviceStatus(c *ucli.Context, cl *api.Client) error {
	name, err := oneArg(c, "NAME")
	if err != nil {
		return err
	}
	s, err := cl.Service(c.Context, name)
	if err != nil {
		return err
	}
	return output(c, s, func(w io.Writer) error {
		pairs := [][2]string{{"name", s.Name}, {"id", s.ID}, {"status", s.Status}, {"replicas", fmt.Sprintf("%d active of %d wanted (%d..%d)", s.Active, s.Replicas, s.Min, s.Max)},
			{"period", (time.Duration(s.PeriodMs) * time.Millisecond).String()}, {"price", fmt.Sprintf("at most %d per replica and period", s.PricePerPeriod)},
			{"budget", fmt.Sprintf("%d left, %d paid, %d refunded", s.Budget, s.Paid, s.Refunded)}, {"failures", strconv.FormatUint(uint64(s.Failures), 10)},
			{"opened", s.OpenedAt.Format(time.RFC3339)}}
		if s.URL != "" {
			pairs = append(pairs, [2]string{"url", s.URL})
		}
		if err := printKV(w, pairs); err != nil {
			return err
		}
		fmt.Fprintln(w)
		rows := make([][]string, 0, len(s.Leases))
		for _, l := range s.Leases {
			rows = append(rows, []string{l.ID[:16], l.Status + orEmpty(" ("+l.EndReason+")", l.EndReason != ""), shortAddr(l.Provider),
				strconv.FormatUint(l.Price, 10), fmt.Sprintf("%d/%d", l.PaidPeriods, l.Funded), strconv.FormatUint(l.Paid, 10), strconv.FormatUint(l.Requests, 10)})
		}
		return printTable(w, []string{"LEASE", "STATUS", "PROVIDER", "PRICE", "PAID/FUNDED", "PAID", "REQUESTS"}, rows)
	})
}

func orEmpty(s string, ok bool) string {
	if ok {
		return s
	}
	return ""
}

func shortAddr(a string) string {
	if len(a) > 16 {
		return a[:10] + "…" + a[len(a)-4:]
	}
	return a
}

func serviceLogs(c *ucli.Context, cl *api.Client) error {
	name, err := oneArg(c, "NAME")
	if err != nil {
		return err
	}
	l, err := cl.ServiceLogs(c.Context, name)
	if err != nil {
		return err
	}
	return output(c, l, func(w io.Writer) error {
		for _, e := range l.Events {
			lease := ""
			if len(e.Lease) >= 16 {
				lease = " " + e.Lease[:16]
			}
			fmt.Fprintf(w, "%s %-8s%s %s\n", e.Time.Format(time.RFC3339), e.Type, lease, e.Detail)
		}
		safe := jobText(c, w)
		for _, o := range l.Output {
			fmt.Fprintf(w, "\n== replica %s on %s ==\n", o.Lease[:16], shortAddr(o.Provider))
			if o.Error != "" {
				fmt.Fprintf(w, "(unavailable: %s)\n", o.Error)
			}
			text := safe(o.Logs)
			fmt.Fprint(w, text)
			if text != "" && !strings.HasSuffix(text, "\n") {
				fmt.Fprintln(w)
			}
		}
		return nil
	})
}

func serviceScale(c *ucli.Context, cl *api.Client) error {
	a := args(c)
	if len(a) != 2 {
		return usagef("'%s' takes NAME and N (see '%s --help')", c.Command.HelpName, c.Command.HelpName)
	}
	n, err := strconv.ParseUint(a[1], 10, 32)
	if err != nil || n == 0 || n > api.MaxServiceReplicas {
		return usagef("N %q: want a replica count in 1..%d", a[1], api.MaxServiceReplicas)
	}
	s, err := cl.ScaleService(c.Context, a[0], uint32(n))
	if err != nil {
		return err
	}
	return output(c, s, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "service %s wants %d replicas (%d active now)\n", s.Name, s.Replicas, s.Active)
		return err
	})
}

func serviceClose(c *ucli.Context, cl *api.Client) error {
	name, err := oneArg(c, "NAME")
	if err != nil {
		return err
	}
	s, err := cl.CloseService(c.Context, name)
	if err != nil {
		return err
	}
	return output(c, s, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "service %s closed: %d paid to providers, %d refunded\n", s.Name, s.Paid, s.Refunded)
		return err
	})
}

func serviceStats(c *ucli.Context, cl *api.Client) error {
	name, err := oneArg(c, "NAME")
	if err != nil {
		return err
	}
	st, err := cl.ServiceStats(c.Context, name)
	if err != nil {
		return err
	}
	return output(c, st, func(w io.Writer) error {
		fmt.Fprintf(w, "service %s: %d requests, %d errors, Jain's fairness %.3f\n\n", st.Service, st.Requests, st.Errors, st.Fairness)
		rows := make([][]string, 0, len(st.Replicas))
		for _, r := range st.Replicas {
			state := "active"
			if !r.Active {
				state = "ended"
			}
			rows = append(rows, []string{r.Lease[:16], state, shortAddr(r.Provider), strconv.FormatUint(r.Requests, 10),
				fmt.Sprintf("%.1f%%", 100*r.Share), strconv.FormatUint(r.Errors, 10),
				fmt.Sprintf("%.2f", r.P50Ms), fmt.Sprintf("%.2f", r.P90Ms), fmt.Sprintf("%.2f", r.P99Ms)})
		}
		return printTable(w, []string{"LEASE", "STATE", "PROVIDER", "REQUESTS", "SHARE", "ERRORS", "P50 MS", "P90 MS", "P99 MS"}, rows)
	})
}
