package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Config configures a Runtime.
type Config struct {
	// Capacity is what the provider sells; every job reserves its
	// Limits.Resources out of it while it runs. Required.
	Capacity Resources
	// WorkDir holds each running job's output directory
	// (<WorkDir>/<job id>/out); it is emptied after packing.
	// Default: <os.TempDir()>/bourse-work.
	WorkDir string
	// MaxPayload caps fetched payloads, in bytes. Default DefaultMaxPayload.
	MaxPayload int64
	// MaxOutputFiles caps the entries of an output directory. Default 10000.
	MaxOutputFiles int
	// KeepResults is how many finished jobs' Results Wait can still
	// return. Default 1024.
	KeepResults int
	// OutputPoll is how often a running job's output directory is
	// measured; a job past its disk limit or MaxOutputFiles is stopped
	// and fails, so it cannot fill the provider's disk. Default 250ms.
	// (The WASM backend also refuses the writes themselves.)
	OutputPoll time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(os.TempDir(), "bourse-work")
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.MaxOutputFiles <= 0 {
		c.MaxOutputFiles = 10000
	}
	if c.KeepResults <= 0 {
		c.KeepResults = 1024
	}
	if c.OutputPoll <= 0 {
		c.OutputPoll = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Usage is what a job consumed, as billed.
type Usage struct {
	// CPUMillis is wall milliseconds × reserved millicores / 1000: the
	// reservation is what was sold, so it is what is billed.
	CPUMillis int64 `json:"cpu_ms"`
	// MemoryMiBSeconds is reserved MiB × wall seconds, rounded up.
	MemoryMiBSeconds int64 `json:"memory_mib_s"`
	WallMillis       int64 `json:"wall_ms"`
}

func usageOf(l Limits, wall time.Duration) Usage {
	ms := wall.Milliseconds()
	if wall > 0 && ms == 0 {
		ms = 1
	}
	return Usage{
		CPUMillis:        ms * l.CPU / 1000,
		MemoryMiBSeconds: (ms*l.MemoryMiB + 999) / 1000,
		WallMillis:       ms,
	}
}

// Result is a finished job as the node sees it: how it ended, the hash of
// its packed result (see Pack) stored in the Store, what it used and its
// (capped) logs. Hash is zero only when the result could not be stored;
// Reason then says why.
type Result struct {
	JobID           JobID
	Executor        Kind
	State           State
	ExitCode        int
	Reason          string
	Hash            [32]byte
	Size            int64
	Usage           Usage
	Stdout          []byte
	Stderr          []byte
	StdoutTruncated bool
	StderrTruncated bool
	Started         time.Time
	Finished        time.Time
}

// Err returns nil for a succeeded job, else a *JobError.
func (r *Result) Err() error {
	if r.State == StateSucceeded {
		return nil
	}
	return &JobError{ID: r.JobID, State: r.State, ExitCode: r.ExitCode, Reason: r.Reason}
}

// Runtime is the provider's worker: it reserves capacity for a job, runs it
// on the executor it names, packs and stores its result, and releases the
// capacity. Safe for concurrent use; Close stops everything and waits.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	cap     *Capacity
	store   *Store
	fetcher PayloadFetcher
	execs   map[Kind]Executor

	wg sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	jobs     map[JobID]*rtJob
	finished []JobID
}

type rtJob struct {
	kind   Kind
	done   chan struct{}
	result *Result
}

// NewRuntime returns a runtime over the given executors (at most one per
// Kind; pass only the backends the provider enabled). fetcher may be nil
// if jobs always arrive with their payload.
func NewRuntime(cfg Config, store *Store, fetcher PayloadFetcher, executors ...Executor) (*Runtime, error) {
	cfg.setDefaults()
	if store == nil {
		return nil, errors.New("new runtime: no result store")
	}
	capacity, err := NewCapacity(cfg.Capacity)
	if err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("new runtime: work dir: %w", err)
	}
	r := &Runtime{cfg: cfg, log: cfg.Logger, cap: capacity, store: store, fetcher: fetcher,
		execs: make(map[Kind]Executor), jobs: make(map[JobID]*rtJob)}
	for _, e := range executors {
		if _, dup := r.execs[e.Kind()]; dup {
			return nil, fmt.Errorf("new runtime: two %s executors", e.Kind())
		}
		r.execs[e.Kind()] = e
	}
	return r, nil
}

// Store returns the result store.
func (r *Runtime) Store() *Store { return r.store }

// Load reports reserved versus total capacity, for offers.
func (r *Runtime) Load() Load { return r.cap.Load() }

// Executors lists the kinds that answer Available now, sorted, for offers.
func (r *Runtime) Executors(ctx context.Context) []Kind {
	var out []Kind
	for k, e := range r.execs {
		if e.Available(ctx) == nil {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// FetchPayload fetches and verifies a payload with the runtime's fetcher
// and cap.
func (r *Runtime) FetchPayload(ctx context.Context, hash [32]byte, size int64, from string) ([]byte, error) {
	if r.fetcher == nil {
		return nil, fmt.Errorf("fetch payload: no fetcher configured: %w", ErrUnavailable)
	}
	return FetchPayload(ctx, r.fetcher, hash, size, from, r.cfg.MaxPayload)
}

// Start checks the job, fetches its payload if needed (bounded by ctx),
// reserves its resources and starts it. Errors: the job is invalid, its
// executor is missing or unavailable (ErrUnavailable), it does not fit
// (ErrInsufficientCapacity, with the reason), the id is known
// (ErrDuplicateJob), the payload cannot be fetched or verified, or the
// runtime is closed (ErrClosed). On error nothing stays reserved.
func (r *Runtime) Start(ctx context.Context, job *Job) error {
	if job == nil {
		return errors.New("start job: nil job")
	}
	exec, ok := r.execs[job.Executor]
	if !ok {
		return fmt.Errorf("start job %s: executor %q not enabled: %w", job.ID.Short(), job.Executor, ErrUnavailable)
	}
	if len(job.Payload) == 0 && job.PayloadFrom != "" {
		b, err := r.FetchPayload(ctx, job.PayloadHash, job.PayloadSize, job.PayloadFrom)
		if err != nil {
			return fmt.Errorf("start job %s: %w", job.ID.Short(), err)
		}
		j := *job
		j.Payload = b
		job = &j
	}
	if int64(len(job.Payload)) > r.cfg.MaxPayload {
		return fmt.Errorf("start job %s: %d bytes: %w", job.ID.Short(), len(job.Payload), ErrPayloadTooLarge)
	}
	if err := job.Validate(); err != nil {
		return fmt.Errorf("start job: %w", err)
	}
	if err := exec.Available(ctx); err != nil {
		return fmt.Errorf("start job %s: %w", job.ID.Short(), err)
	}

	// Register and reserve under the lock; prepare and start outside it
	// (a backend's Start may talk to a daemon).
	j := &rtJob{kind: job.Executor, done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("start job %s: %w", job.ID.Short(), ErrClosed)
	}
	if _, ok := r.jobs[job.ID]; ok {
		r.mu.Unlock()
		return fmt.Errorf("start job %s: %w", job.ID.Short(), ErrDuplicateJob)
	}
	if err := r.cap.Reserve(job.ID, job.Limits.Resources); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("start job: %w", err)
	}
	r.jobs[job.ID] = j
	r.wg.Add(1)
	r.mu.Unlock()

	jobDir := filepath.Join(r.cfg.WorkDir, job.ID.String())
	outDir := filepath.Join(jobDir, "out")
	_ = os.RemoveAll(jobDir) // left over from a crash
	err := os.MkdirAll(outDir, 0o755)
	if err != nil {
		err = fmt.Errorf("start job %s: output dir: %w", job.ID.Short(), err)
	} else if err = exec.Start(ctx, job, outDir); err != nil {
		err = fmt.Errorf("start job %s on %s: %w", job.ID.Short(), job.Executor, err)
	}
	if err != nil {
		_ = os.RemoveAll(jobDir)
		r.cap.Release(job.ID)
		now := time.Now()
		j.result = &Result{JobID: job.ID, Executor: job.Executor, State: StateFailed, ExitCode: -1,
			Reason: err.Error(), Started: now, Finished: now}
		close(j.done)
		r.mu.Lock()
		delete(r.jobs, job.ID)
		r.mu.Unlock()
		r.wg.Done()
		return err
	}
	go r.finish(exec, job, jobDir, outDir, j)
	r.log.Info("job started", "job", job.ID.Short(), "executor", job.Executor,
		"cpu", job.Limits.CPU, "memory_mib", job.Limits.MemoryMiB, "timeout", job.Limits.Timeout)
	return nil
}

// finish owns a started job until its result is stored.
func (r *Runtime) finish(exec Executor, job *Job, jobDir, outDir string, j *rtJob) {
	defer r.wg.Done()

	lim := PackLimits{MaxBytes: job.Limits.DiskMiB << 20, MaxFiles: r.cfg.MaxOutputFiles}
	if job.Limits.DiskMiB == 0 {
		lim.MaxBytes = 1 // no disk bought: an empty output directory only
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	overflow := make(chan error, 1)
	go func() {
		defer close(overflow)
		if err := r.watchOutput(watchCtx, exec, job.ID, outDir, lim); err != nil {
			overflow <- err
		}
	}()

	// The executor guarantees the run ends (timeout), so this Wait ends.
	exit, err := exec.Wait(context.Background(), job.ID)
	stopWatch()
	if err != nil {
		exit = &Exit{State: StateFailed, ExitCode: -1, Reason: fmt.Sprintf("wait: %v", err), Started: time.Now(), Finished: time.Now()}
	}
	res := &Result{
		JobID: job.ID, Executor: job.Executor, State: exit.State, ExitCode: exit.ExitCode, Reason: exit.Reason,
		Stdout: exit.Stdout, Stderr: exit.Stderr, StdoutTruncated: exit.StdoutTruncated, StderrTruncated: exit.StderrTruncated,
		Started: exit.Started, Finished: exit.Finished, Usage: usageOf(job.Limits, exit.Wall()),
	}
	overErr := <-overflow
	if overErr != nil {
		res.State, res.Reason = StateFailed, overErr.Error()
	}
	pack := func(dir string) error {
		h, n, err := r.store.WriteOwned(context.Background(), job.Owner, func(w io.Writer) error {
			return Pack(w, exit.ExitCode, exit.Stdout, exit.Stderr, dir, lim)
		})
		res.Hash, res.Size = h, n
		return err
	}
	if err := pack(outDir); err != nil {
		if errors.Is(err, ErrOutputLimit) {
			if overErr == nil {
				res.State, res.Reason = StateFailed, err.Error()
			}
			err = pack("")
		}
		if err != nil {
			res.State, res.Reason, res.Hash, res.Size = StateFailed, fmt.Sprintf("store result: %v", err), [32]byte{}, 0
		}
	}
	// Clean up before publishing the result, so a Wait that returned sees
	// the capacity free and the work dir gone.
	if err := os.RemoveAll(jobDir); err != nil {
		r.log.Warn("remove job dir", "job", job.ID.Short(), "err", err)
	}
	r.cap.Release(job.ID)
	r.log.Info("job finished", "job", job.ID.Short(), "state", res.State, "exit_code", res.ExitCode,
		"reason", res.Reason, "wall_ms", res.Usage.WallMillis, "result", fmt.Sprintf("%x", res.Hash[:8]))

	r.mu.Lock()
	j.result = res
	r.finished = append(r.finished, job.ID)
	for len(r.finished) > r.cfg.KeepResults {
		delete(r.jobs, r.finished[0])
		r.finished = r.finished[1:]
	}
	r.mu.Unlock()
	close(j.done)
}

// watchOutput measures a running job's output directory every OutputPoll
// until ctx ends. Once the directory passes lim it cancels the job and
// returns the ErrOutputLimit error that names the bound. Files removed
// under the walk are skipped; a directory the job made unreadable stops it
// as well (it could be neither measured nor packed); other errors of the
// walk are retried on the next tick.
func (r *Runtime) watchOutput(ctx context.Context, exec Executor, id JobID, outDir string, lim PackLimits) error {
	t := time.NewTicker(r.cfg.OutputPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := walkOutput(outDir, lim, nil)
		if errors.Is(err, fs.ErrPermission) {
			// A job that makes its output unreadable cannot be measured
			// (nor packed): stop it rather than watch blind.
			err = fmt.Errorf("%w: the output directory cannot be measured: %v", ErrOutputLimit, err)
		}
		if errors.Is(err, ErrOutputLimit) {
			r.log.Warn("job stopped: output over its limit", "job", id.Short(), "err", err)
			if cerr := exec.Cancel(ctx, id); cerr != nil && ctx.Err() == nil {
				r.log.Warn("cancel job over its output limit", "job", id.Short(), "err", cerr)
			}
			return err
		}
	}
}

func (r *Runtime) get(id JobID) (*rtJob, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[id]
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id.Short(), ErrUnknownJob)
	}
	return j, nil
}

// Wait blocks until the job's result is stored and returns it, or returns
// ctx's error or ErrUnknownJob. The job's own failure is in the Result.
func (r *Runtime) Wait(ctx context.Context, id JobID) (*Result, error) {
	j, err := r.get(id)
	if err != nil {
		return nil, err
	}
	select {
	case <-j.done:
		return j.result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for job %s: %w", id.Short(), ctx.Err())
	}
}

// Run is Start then Wait.
func (r *Runtime) Run(ctx context.Context, job *Job) (*Result, error) {
	if err := r.Start(ctx, job); err != nil {
		return nil, err
	}
	return r.Wait(ctx, job.ID)
}

// Cancel stops a running job; it ends StateCancelled. Idempotent.
func (r *Runtime) Cancel(ctx context.Context, id JobID) error {
	j, err := r.get(id)
	if err != nil {
		return err
	}
	if err := r.execs[j.kind].Cancel(ctx, id); err != nil && !errors.Is(err, ErrUnknownJob) {
		return fmt.Errorf("cancel job %s: %w", id.Short(), err)
	}
	return nil
}

// Logs follows a job's stdout or stderr (see Executor.Logs).
func (r *Runtime) Logs(ctx context.Context, id JobID, s Stream) (io.ReadCloser, error) {
	j, err := r.get(id)
	if err != nil {
		return nil, err
	}
	return r.execs[j.kind].Logs(ctx, id, s)
}

// Close refuses new jobs, cancels the running ones, waits for their results
// to be stored (or for ctx) and closes the executors.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	already := r.closed
	r.closed = true
	r.mu.Unlock()
	if already {
		return nil
	}
	var errs []error
	for _, e := range r.execs {
		if err := e.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close %s executor: %w", e.Kind(), err))
		}
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("close runtime: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}
