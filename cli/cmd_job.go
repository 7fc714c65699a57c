package cli

import (
	"context"
	"errors"
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

// pollInterval is how often --wait asks for the job when the event stream
// is not available.
var pollInterval = time.Second

func jobCommand(Env) *ucli.Command {
	return &ucli.Command{Name: "job", Usage: "submit and follow jobs", Subcommands: []*ucli.Command{
		{Name: "submit", Usage: "submit a job from a spec file, or a WebAssembly module with --wasm", ArgsUsage: "SPEC|--wasm FILE",
			Flags: []ucli.Flag{
				&ucli.StringFlag{Name: "wasm", Usage: "submit this WebAssembly module (builds the spec from flags)"},
				&ucli.StringFlag{Name: "name", Usage: "job name (with --wasm)"},
				&ucli.StringSliceFlag{Name: "arg", Usage: "argument for the module, repeatable (with --wasm)"},
				&ucli.StringSliceFlag{Name: "env", Usage: "K=V environment variable, repeatable (with --wasm)"},
				&ucli.Uint64Flag{Name: "cpu", Usage: "millicores (with --wasm)", Value: api.DefaultResources.CPU},
				&ucli.Uint64Flag{Name: "memory", Usage: "MiB of memory (with --wasm)", Value: api.DefaultResources.Memory},
				&ucli.Uint64Flag{Name: "disk", Usage: "MiB of disk (with --wasm)", Value: api.DefaultResources.Disk},
				&ucli.StringFlag{Name: "timeout", Usage: "run timeout (with --wasm)", Value: api.DefaultTimeout.String()},
				&ucli.StringFlag{Name: "deadline", Usage: "match-by deadline (with --wasm)", Value: api.DefaultDeadline.String()},
				&ucli.StringFlag{Name: "max-price", Usage: "the most to pay, base units (required with --wasm)"},
				&ucli.StringFlag{Name: "placement", Usage: "cheapest, least-loaded, nearest or balanced (with --wasm)", Value: api.PlaceCheapest},
				&ucli.StringFlag{Name: "visibility", Usage: "private (only the matched provider and you fetch the job's payload and result) or public (with --wasm)", Value: api.VisibilityPrivate},
				&ucli.StringSliceFlag{Name: "region", Usage: "a region the job may run in, repeatable; NAME=WEIGHT (1..100) to prefer some (with --wasm)"},
				&ucli.Uint64Flag{Name: "min-reputation", Usage: "refuse providers below this reputation, per mille (with --wasm)"},
				&ucli.BoolFlag{Name: "wait", Usage: "follow the job to its end and fetch the result"},
				&ucli.BoolFlag{Name: "dry-run", Usage: "show which offers fit and why the others do not; submit nothing"},
				&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "with --wait: save the result in this directory"},
				rawFlag(),
			},
			Action: withClient(jobSubmit)},
		{Name: "status", Usage: "show a job", ArgsUsage: "ID", Action: withClient(jobStatus)},
		{Name: "list", Usage: "list jobs", Flags: []ucli.Flag{&ucli.StringFlag{Name: "state", Usage: "only jobs in this state"}},
			Action: withClient(jobList)},
		{Name: "logs", Usage: "show a job's logs (control characters escaped on a terminal)", ArgsUsage: "ID",
			Flags: []ucli.Flag{rawFlag()}, Action: withClient(jobLogs)},
		{Name: "result", Usage: "download a job's result (to stdout, or into DIR)", ArgsUsage: "ID [-o DIR]",
			Flags:  []ucli.Flag{&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "save the result in this directory"}},
			Action: withClient(jobResult)},
		{Name: "cancel", Usage: "cancel an unmatched job", ArgsUsage: "ID", Action: withClient(jobCancel)},
		{Name: "verify", Usage: "run a settled WASM job again here and compare its result with the provider's",
			ArgsUsage: "ID", Flags: []ucli.Flag{&ucli.BoolFlag{Name: "challenge",
				Usage: "on a mismatch, challenge the result on chain: referees re-execute it, the loser pays (needs the result still held: hold_ack = true)"}},
			Action: withClient(jobVerify)},
	}}
}

var wasmOnlyFlags = []string{"name", "arg", "env", "cpu", "memory", "disk", "timeout", "deadline", "max-price", "placement", "visibility", "region", "min-reputation"}

// loadJob reads the spec and payload the command line names.
func loadJob(c *ucli.Context) (api.JobSpec, []byte, error) {
	wasm := c.String("wasm")
	a := args(c)
	switch {
	case wasm == "" && len(a) != 1:
		return api.JobSpec{}, nil, usagef("'bourse job submit' takes a SPEC file or --wasm FILE")
	case wasm != "" && len(a) != 0:
		return api.JobSpec{}, nil, usagef("give either a SPEC file or --wasm FILE, not both")
	}
	if wasm == "" {
		for _, f := range wasmOnlyFlags {
			if c.IsSet(f) {
				return api.JobSpec{}, nil, usagef("--%s only goes with --wasm; put it in the spec file instead", f)
			}
		}
		return loadSpecFile(a[0])
	}
	if !c.IsSet("max-price") {
		return api.JobSpec{}, nil, usagef("--wasm needs --max-price AMOUNT (the most you will pay, in base units)")
	}
	price, err := parseAmount("--max-price", c.String("max-price"))
	if err != nil {
		return api.JobSpec{}, nil, err
	}
	spec := api.JobSpec{
		Name: c.String("name"), Executor: api.ExecutorWASM, Payload: filepath.Base(wasm),
		Args:      c.StringSlice("arg"),
		Resources: api.Resources{CPU: c.Uint64("cpu"), Memory: c.Uint64("memory"), Disk: c.Uint64("disk")},
		MaxPrice:  price, Placement: c.String("placement"), Visibility: c.String("visibility"),
	}
	if spec.Name == "" {
		spec.Name = strings.TrimSuffix(filepath.Base(wasm), filepath.Ext(wasm))
	}
	if regions := c.StringSlice("region"); len(regions) > 0 {
		spec.Constraints.Regions = map[string]uint32{}
		for _, r := range regions {
			name, w, weighted := strings.Cut(r, "=")
			weight := uint64(1)
			if weighted {
				if weight, err = strconv.ParseUint(w, 10, 32); err != nil || weight == 0 || weight > api.MaxRegionWeight {
					return api.JobSpec{}, nil, usagef("--region %q: the weight must be 1..%d", r, api.MaxRegionWeight)
				}
			}
			spec.Constraints.Regions[name] = uint32(weight)
		}
	}
	minRep := c.Uint64("min-reputation")
	if minRep > api.MaxReputation {
		return api.JobSpec{}, nil, usagef("--min-reputation %d: at most %d (per mille)", minRep, api.MaxReputation)
	}
	spec.Constraints.MinReputation = uint32(minRep)
	for _, kv := range c.StringSlice("env") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return api.JobSpec{}, nil, usagef("--env %q: want KEY=VALUE", kv)
		}
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = v
	}
	for _, d := range []struct {
		flag string
		to   *api.Duration
	}{{"timeout", &spec.Timeout}, {"deadline", &spec.Deadline}} {
		v, err := api.ParseDuration(c.String(d.flag))
		if err != nil {
			return api.JobSpec{}, nil, usagef("--%s: %v", d.flag, err)
		}
		*d.to = v
	}
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return api.JobSpec{}, nil, err
	}
	payload, err := readPayload(wasm, spec.Executor)
	return spec, payload, err
}

func loadSpecFile(path string) (api.JobSpec, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return api.JobSpec{}, nil, fmt.Errorf("read job spec: %w", err)
	}
	spec, err := api.ParseJobSpec(data)
	if err != nil {
		return api.JobSpec{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	if spec.Executor == api.ExecutorDocker && spec.Payload == "" {
		return spec, nil, nil // an image the provider has, or pulls by digest
	}
	ppath := spec.Payload
	if !filepath.IsAbs(ppath) {
		ppath = filepath.Join(filepath.Dir(path), ppath)
	}
	payload, err := readPayload(ppath, spec.Executor)
	if err != nil {
		return api.JobSpec{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	spec.Payload = filepath.Base(spec.Payload)
	return spec, payload, nil
}

func readPayload(path, executor string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read payload: %w", err)
	}
	if err := api.CheckPayload(executor, data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

func jobSubmit(c *ucli.Context, cl *api.Client) error {
	spec, payload, err := loadJob(c)
	if err != nil {
		return err
	}
	if c.Bool("dry-run") {
		return dryRun(c, cl, spec)
	}
	if c.IsSet("output") && !c.Bool("wait") {
		return usagef("-o goes with --wait (or use 'bourse job result ID -o DIR' later)")
	}
	// A module the daemon already holds is named by hash, not uploaded.
	job, err := cl.SubmitJobBytes(c.Context, spec, payload)
	if err != nil {
		return fmt.Errorf("submit job: %w", err)
	}
	if !c.Bool("wait") {
		return output(c, job, func(w io.Writer) error {
			fmt.Fprintf(w, "submitted job %s (%s)\n", job.ID, job.State)
			hint(w, "follow it with 'bourse job status %s', or submit with --wait", job.ID)
			return nil
		})
	}
	return waitJob(c, cl, job)
}

func dryRun(c *ucli.Context, cl *api.Client, spec api.JobSpec) error {
	dr, err := cl.DryRun(c.Context, spec)
	if err != nil {
		return fmt.Errorf("dry run: %w", err)
	}
	return output(c, dr, func(w io.Writer) error {
		if len(dr.Offers) > 0 {
			rows := make([][]string, len(dr.Offers))
			for i, o := range dr.Offers {
				fits, why := "no", strings.Join(o.Reasons, "; ")
				if o.Fits {
					fits = "yes"
					if o.OfferID == dr.Chosen {
						fits = "yes (chosen)"
					}
				}
				rows[i] = []string{short(o.OfferID), o.Provider, fits, u64(o.Price), orDash(why)}
			}
			if err := printTable(w, []string{"OFFER", "PROVIDER", "FITS", "PRICE", "WHY NOT"}, rows); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(w, "no live offers")
		}
		if dr.Summary != "" {
			fmt.Fprintln(w, dr.Summary)
		}
		if dr.Chosen != "" {
			hint(w, "submit it for real without --dry-run; it would go to offer %s at about %d", short(dr.Chosen), dr.Price)
		}
		return nil
	})
}

// progress writes one status line per change, or rewrites one live line
// on a terminal.
type progress struct {
	w    io.Writer
	live bool
	last string
}

func (p *progress) show(line string) {
	if line == p.last {
		return
	}
	p.last = line
	if p.live {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) done() {
	if p.live && p.last != "" {
		fmt.Fprintln(p.w)
	}
}

// describe is the one-line status of a job.
func describe(j api.Job) string {
	id := short(j.ID)
	switch j.State {
	case api.StateSubmitted, api.StateBidding:
		return fmt.Sprintf("job %s: %s, waiting for a match", id, j.State)
	case api.StateMatched:
		return fmt.Sprintf("job %s: matched to %s at %d (escrowed)", id, j.Provider, j.Escrowed)
	case api.StateRunning:
		return fmt.Sprintf("job %s: running on %s", id, j.Provider)
	case api.StateResultCommitted:
		return fmt.Sprintf("job %s: result committed (%s)", id, short(j.ResultHash))
	case api.StatePaid:
		return fmt.Sprintf("job %s: paid %d to %s, refunded %d", id, j.Paid, j.Provider, j.Refunded)
	case api.StateExpired:
		return fmt.Sprintf("job %s: expired, nothing matched before the deadline", id)
	case api.StateFailed:
		return fmt.Sprintf("job %s: failed: %s (paid %d, refunded %d)", id, orDash(j.Error), j.Paid, j.Refunded)
	case api.StateTimedOut:
		return fmt.Sprintf("job %s: timed out on %s: refunded %d, provider slashed %d", id, j.Provider, j.Refunded, j.Slashed)
	case api.StateCancelled:
		return fmt.Sprintf("job %s: cancelled", id)
	case api.StatePayloadUnavailable:
		return fmt.Sprintf("job %s: %s could not get the payload from this node in time: refunded %d", id, j.Provider, j.Refunded)
	case api.StateResultUnavailable:
		return fmt.Sprintf("job %s: paid %d to %s, but its result could not be fetched: %s", id, j.Paid, j.Provider, orDash(j.Error))
	}
	return fmt.Sprintf("job %s: %s", id, j.State)
}

// follow returns the job once it is terminal, reporting each state on the
// way. It listens to the event stream and falls back to polling when the
// stream cannot be opened or breaks.
func follow(ctx context.Context, cl *api.Client, job api.Job, report func(api.Job)) (api.Job, error) {
	report(job)
	stream, serr := cl.Events(ctx)
	if serr == nil {
		defer stream.Close()
	}
	// Catch what happened before the stream was open.
	cur, err := cl.Job(ctx, job.ID)
	if err != nil {
		return job, fmt.Errorf("follow job %s: %w", job.ID, err)
	}
	report(cur)
	for !api.Terminal(cur.State) {
		if stream != nil {
			ev, err := stream.Next()
			if err != nil {
				stream.Close()
				stream = nil
				continue
			}
			if ev.Type == api.EventJob && ev.Job != nil && ev.Job.ID == job.ID {
				cur = *ev.Job
				report(cur)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return cur, ctx.Err()
		case <-time.After(pollInterval):
		}
		if cur, err = cl.Job(ctx, job.ID); err != nil {
			return cur, fmt.Errorf("follow job %s: %w", job.ID, err)
		}
		report(cur)
	}
	return cur, nil
}

func waitJob(c *ucli.Context, cl *api.Client, job api.Job) error {
	env := envFor(c)
	w := c.App.Writer
	if wantJSON(c) {
		w = c.App.ErrWriter
	}
	p := &progress{w: w, live: env.IsTerminal != nil && env.IsTerminal()}
	final, err := follow(c.Context, cl, job, func(j api.Job) { p.show(describe(j)) })
	p.done()
	if err != nil {
		return err
	}
	var saved string
	if final.State == api.StatePaid || final.State == api.StateFailed {
		if dir := c.String("output"); dir != "" && final.ResultHash != "" {
			if saved, err = saveResult(c.Context, cl, final.ID, dir); err != nil {
				return err
			}
		}
	}
	if wantJSON(c) {
		if err := printJSON(c.App.Writer, final); err != nil {
			return err
		}
	} else {
		if err := finalReport(c.Context, cl, w, final, saved, jobText(c, w)); err != nil {
			return err
		}
	}
	switch final.State {
	case api.StatePaid:
		return nil
	case api.StateExpired:
		return fmt.Errorf("job %s expired: no offer matched before its deadline (%d offers considered)", final.ID, len(final.Unmatched))
	default:
		return fmt.Errorf("job %s ended %s%s", final.ID, final.State, suffix(final.Error))
	}
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// smallResult is the largest result --wait prints inline.
const smallResult = 16 << 10

// finalReport shows how job j ended; text renders the job's own output.
func finalReport(ctx context.Context, cl *api.Client, w io.Writer, j api.Job, saved string, text func(string) string) error {
	switch j.State {
	case api.StateExpired:
		if len(j.Unmatched) == 0 {
			fmt.Fprintln(w, "no offers were live while the bid was open")
		} else {
			fmt.Fprintln(w, "why no offer matched:")
			rows := make([][]string, len(j.Unmatched))
			for i, o := range j.Unmatched {
				rows[i] = []string{short(o.OfferID), o.Provider, orDash(strings.Join(o.Reasons, "; "))}
			}
			if err := printTable(w, []string{"OFFER", "PROVIDER", "REASON"}, rows); err != nil {
				return err
			}
		}
		hint(w, "raise max_price, relax the constraints, or try 'bourse job submit --dry-run'")
		return nil
	case api.StatePaid, api.StateFailed:
	default:
		return nil
	}
	if j.ExitCode != nil {
		fmt.Fprintf(w, "exit code %d\n", *j.ExitCode)
	}
	// The result is a tar of stdout, stderr, the exit code and the output
	// directory; show the job's output from it, and where to get all of it.
	if j.ResultHash != "" {
		if logs, err := cl.JobLogs(ctx, j.ID); err == nil {
			if logs.Stdout != "" {
				fmt.Fprint(w, text(logs.Stdout))
				if !strings.HasSuffix(logs.Stdout, "\n") {
					fmt.Fprintln(w)
				}
			}
			if logs.Stderr != "" {
				fmt.Fprintf(w, "stderr:\n%s", text(logs.Stderr))
				if !strings.HasSuffix(logs.Stderr, "\n") {
					fmt.Fprintln(w)
				}
			}
		}
		if saved != "" {
			fmt.Fprintf(w, "result saved to %s (%d bytes, sha256 %s, verified)\n", saved, j.ResultSize, j.ResultHash)
		} else {
			fmt.Fprintf(w, "result: %d bytes, sha256 %s (verified against the chain)\n", j.ResultSize, j.ResultHash)
			hint(w, "save the archive (stdout, stderr, exit code, output files) with 'bourse job result %s -o DIR'", j.ID)
		}
		if j.Spec.Executor == api.ExecutorWASM {
			hint(w, "check the provider's work by running it again here: 'bourse job verify %s'", j.ID)
		}
	}
	fmt.Fprintf(w, "paid %d to %s; refunded %d of the %d escrowed\n", j.Paid, j.Provider, j.Refunded, j.Escrowed)
	return nil
}

// saveResult downloads a verified result into dir/<id>.tar, atomically.
func saveResult(ctx context.Context, cl *api.Client, id, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("save result: %w", err)
	}
	rc, _, err := cl.JobResult(ctx, id)
	if err != nil {
		return "", fmt.Errorf("fetch result of job %s: %w", id, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(dir, ".result-*")
	if err != nil {
		return "", fmt.Errorf("save result: %w", err)
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("fetch result of job %s: %w", id, err)
	}
	path := filepath.Join(dir, id+".tar")
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("save result: %w", err)
	}
	return path, nil
}

func jobNotFound(id string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("no job %s on this node ('bourse job list' shows them)", id)
	}
	return err
}

func jobStatus(c *ucli.Context, cl *api.Client) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	j, err := cl.Job(c.Context, id)
	if err != nil {
		return jobNotFound(id, err)
	}
	return output(c, j, func(w io.Writer) error {
		pairs := [][2]string{
			{"id", j.ID}, {"name", orDash(j.Name)}, {"state", j.State}, {"executor", j.Spec.Executor},
			{"needs", res(j.Spec.Resources)}, {"max price", u64(j.Spec.MaxPrice)},
			{"submitted", when(j.SubmittedAt)}, {"updated", when(j.UpdatedAt)},
		}
		if j.Provider != "" {
			pairs = append(pairs, [2]string{"provider", j.Provider}, [2]string{"escrowed", u64(j.Escrowed)},
				[2]string{"match", fmt.Sprintf("%s at height %d", j.MatchID, j.MatchHeight)})
		}
		if j.ResultHash != "" {
			pairs = append(pairs, [2]string{"result", fmt.Sprintf("%d bytes, sha256 %s", j.ResultSize, j.ResultHash)})
		}
		if j.ExitCode != nil {
			pairs = append(pairs, [2]string{"exit code", fmt.Sprint(*j.ExitCode)})
		}
		if api.Terminal(j.State) && j.State != api.StateCancelled && j.State != api.StateExpired {
			pairs = append(pairs, [2]string{"paid", u64(j.Paid)}, [2]string{"refunded", u64(j.Refunded)})
		}
		if j.Error != "" {
			pairs = append(pairs, [2]string{"error", j.Error})
		}
		if err := printKV(w, pairs); err != nil {
			return err
		}
		for _, o := range j.Unmatched {
			fmt.Fprintf(w, "  offer %s (%s): %s\n", short(o.OfferID), o.Provider, strings.Join(o.Reasons, "; "))
		}
		switch j.State {
		case api.StatePaid, api.StateFailed:
			hint(w, "download the result with 'bourse job result %s -o DIR'", j.ID)
		case api.StateSubmitted, api.StateBidding:
			hint(w, "cancel it with 'bourse job cancel %s' before it is matched", j.ID)
		}
		return nil
	})
}

func jobList(c *ucli.Context, cl *api.Client) error {
	if err := noArgs(c); err != nil {
		return err
	}
	jobs, err := cl.Jobs(c.Context, api.JobFilter{State: c.String("state")})
	if err != nil {
		return err
	}
	if jobs == nil {
		jobs = []api.Job{}
	}
	return output(c, jobs, func(w io.Writer) error {
		if len(jobs) == 0 {
			fmt.Fprintln(w, "no jobs")
			hint(w, "submit one with 'bourse job submit SPEC' or 'bourse job submit --wasm FILE --max-price N'")
			return nil
		}
		rows := make([][]string, len(jobs))
		for i, j := range jobs {
			rows[i] = []string{j.ID, orDash(j.Name), j.State, orDash(j.Provider), u64(j.Spec.MaxPrice), u64(j.Paid), when(j.SubmittedAt)}
		}
		return printTable(w, []string{"ID", "NAME", "STATE", "PROVIDER", "MAX PRICE", "PAID", "SUBMITTED"}, rows)
	})
}

func jobLogs(c *ucli.Context, cl *api.Client) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	l, err := cl.JobLogs(c.Context, id)
	if err != nil {
		return jobNotFound(id, err)
	}
	return output(c, l, func(w io.Writer) error {
		io.WriteString(w, jobText(c, w)(l.Stdout))
		if l.Stderr != "" {
			io.WriteString(c.App.ErrWriter, jobText(c, c.App.ErrWriter)(l.Stderr))
		}
		if l.Truncated {
			fmt.Fprintln(c.App.ErrWriter, "(logs truncated)")
		}
		return nil
	})
}

type savedResult struct {
	ID   string `json:"id"`
	Path string `json:"path"`
	Size int64  `json:"size"`
	Hash string `json:"hash"`
}

func jobResult(c *ucli.Context, cl *api.Client) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	dir := c.String("output")
	if dir == "" {
		if wantJSON(c) {
			return usagef("--json needs -o DIR (the result itself goes to stdout otherwise)")
		}
		rc, _, err := cl.JobResult(c.Context, id)
		if err != nil {
			return resultErr(id, err)
		}
		defer rc.Close()
		if _, err := io.Copy(c.App.Writer, rc); err != nil {
			return fmt.Errorf("fetch result of job %s: %w", id, err)
		}
		return nil
	}
	path, err := saveResult(c.Context, cl, id, dir)
	if err != nil {
		return resultErr(id, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	j, err := cl.Job(c.Context, id)
	if err != nil {
		return err
	}
	out := savedResult{ID: id, Path: path, Size: st.Size(), Hash: j.ResultHash}
	return output(c, out, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "saved %s (%d bytes, sha256 verified)\n", path, out.Size)
		return err
	})
}

func resultErr(id string, err error) error {
	switch {
	case errors.Is(err, api.ErrConflict):
		return fmt.Errorf("job %s has no result yet ('bourse job status %s' shows where it is): %w", id, id, err)
	case errors.Is(err, api.ErrResultCorrupt):
		return fmt.Errorf("job %s: the downloaded result does not match its on-chain hash; nothing was saved (%w)", id, err)
	}
	return jobNotFound(id, err)
}

func jobCancel(c *ucli.Context, cl *api.Client) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	j, err := cl.CancelJob(c.Context, id)
	if errors.Is(err, api.ErrConflict) {
		return fmt.Errorf("job %s cannot be cancelled: %w (only jobs not yet matched can be)", id, err)
	}
	if err != nil {
		return jobNotFound(id, err)
	}
	return output(c, j, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "job %s: %s\n", j.ID, j.State)
		return err
	})
}

// jobVerify asks the node to re-run a settled WASM job and compare result
// hashes. A mismatch prints the comparison and exits 1.
func jobVerify(c *ucli.Context, cl *api.Client) error {
	id, err := oneArg(c, "ID")
	if err != nil {
		return err
	}
	v, err := cl.VerifyJob(c.Context, id)
	switch {
	case errors.Is(err, api.ErrConflict):
		return fmt.Errorf("job %s cannot be verified yet: %w (wait until its result is on chain: 'bourse job status %s')", id, err, id)
	case err != nil:
		return jobNotFound(id, err)
	}
	err = output(c, v, func(w io.Writer) error {
		verdict := "MISMATCH: the provider's result differs from this node's re-run"
		if v.Match {
			verdict = "verified: the provider's result equals this node's re-run"
		}
		_, err := fmt.Fprintf(w, "%s\n  provider  %s\n  on chain  %s (exit %d)\n  re-run    %s (exit %d, %s, %d ms)\n",
			verdict, v.Provider, v.ChainHash, v.ChainExitCode, v.LocalHash, v.LocalExitCode, v.LocalState, v.WallMs)
		return err
	})
	if err == nil && !v.Match {
		err = fmt.Errorf("job %s: result hashes differ (provider %s)", id, v.Provider)
		if c.Bool("challenge") {
			ch, cerr := cl.ChallengeJob(c.Context, id, "wrong")
			switch {
			case cerr != nil:
				err = fmt.Errorf("%w; the challenge was not sent: %v", err, cerr)
			case ch.Status != "committed":
				err = fmt.Errorf("%w; the chain refused the challenge: %s", err, ch.Error)
			default:
				fmt.Fprintf(c.App.ErrWriter, "challenged on chain: referees re-execute the job; deposit up to %d ('bourse job status %s' shows the verdict)\n", ch.Deposit, id)
				err = nil
			}
		}
	}
	return err
}
