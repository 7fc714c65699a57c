package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultLogCap is the number of bytes of stdout and of stderr a run keeps.
const DefaultLogCap = 1 << 20

// DefaultKeepFinished is how many finished runs Runs remembers for Wait.
const DefaultKeepFinished = 1024

// Runs is the bookkeeping every backend shares: a table of runs by job id,
// the goroutine that owns each run, its context (which ends on timeout,
// Cancel, Close or a log overflow, with the matching cause), its capped
// logs and its Exit. A backend implements only the body of a run; Runs
// gives it Wait, Cancel, Logs and Close with the Executor contract's
// semantics.
type Runs struct {
	logCap int64
	keep   int

	base     context.Context
	stopBase context.CancelFunc
	wg       sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	runs     map[JobID]*Run
	finished []JobID // oldest first
}

// NewRuns returns an empty table. logCap <= 0 means DefaultLogCap, keep <= 0
// means DefaultKeepFinished.
func NewRuns(logCap int64, keep int) *Runs {
	if logCap <= 0 {
		logCap = DefaultLogCap
	}
	if keep <= 0 {
		keep = DefaultKeepFinished
	}
	base, stop := context.WithCancel(context.Background())
	return &Runs{logCap: logCap, keep: keep, base: base, stopBase: stop, runs: make(map[JobID]*Run)}
}

// Run is one job's run as a backend sees it.
type Run struct {
	Job    *Job
	OutDir string
	// Ctx ends when the run must stop; context.Cause(Ctx) is ErrTimeout,
	// ErrCancelled or ErrOutputLimit.
	Ctx    context.Context
	Stdout *LogBuffer
	Stderr *LogBuffer

	started time.Time // when the timeout began: Go, or Begin
	hardEnd time.Time // Go + Timeout + Limits.Prep: no run goes past it
	cancel  context.CancelCauseFunc
	timer   *time.Timer // ends Ctx with ErrTimeout
	begun   bool
	done    chan struct{}
	exit    *Exit
}

// Begin marks the end of the run's preparation (compiling a module,
// loading an image): the job's billed wall time starts now, and its
// wall-time limit restarts, ending at the latest Limits.Prep past the
// original limit; so a cold compile is neither charged to the client nor
// eaten out of its timeout (as far as Prep allows), and the run still has
// a hard end. Preparation itself may take up to the timeout.
// A body that prepares nothing need not call it. Only the body's goroutine
// may call it; calls after the first, or after the run was stopped, do
// nothing.
func (r *Run) Begin() {
	if r.begun {
		return
	}
	r.begun = true
	if r.Ctx.Err() != nil || !r.timer.Stop() {
		return // already stopped
	}
	now := time.Now()
	r.started = now
	// The job gets its full timeout again, within the hard end that
	// Limits.Prep sets.
	left := min(r.Job.Limits.Timeout, r.hardEnd.Sub(now))
	r.timer = time.AfterFunc(max(left, 0), func() { r.cancel(ErrTimeout) })
}

// Outcome is what a backend's run body reports.
type Outcome struct {
	State    State
	ExitCode int
	Reason   string
}

// Body is a backend's run: it executes run.Job, writing logs to run.Stdout
// and run.Stderr, and must return promptly once run.Ctx ends.
type Body func(run *Run) Outcome

// Go registers job and runs body in a goroutine owned by the table.
func (rs *Runs) Go(job *Job, outDir string, body Body) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return ErrClosed
	}
	if _, ok := rs.runs[job.ID]; ok {
		return fmt.Errorf("start job %s: %w", job.ID.Short(), ErrDuplicateJob)
	}
	ctx, cancel := context.WithCancelCause(rs.base)
	r := &Run{
		Job: job, OutDir: outDir, Ctx: ctx,
		started: time.Now(), cancel: cancel,
		done: make(chan struct{}),
	}
	r.hardEnd = r.started.Add(job.Limits.Timeout + max(job.Limits.Prep, 0))
	r.timer = time.AfterFunc(job.Limits.Timeout, func() { cancel(ErrTimeout) }) // restarted by Begin
	overflow := func() { cancel(ErrOutputLimit) }
	r.Stdout = NewLogBuffer(rs.logCap, overflow)
	r.Stderr = NewLogBuffer(rs.logCap, overflow)
	rs.runs[job.ID] = r
	rs.wg.Add(1)
	go rs.own(r, body)
	return nil
}

func (rs *Runs) own(r *Run, body Body) {
	defer rs.wg.Done()
	out := runBody(r, body)
	if cause := context.Cause(r.Ctx); r.Ctx.Err() != nil || cause != nil {
		switch {
		case errors.Is(cause, ErrOutputLimit):
			out.State, out.Reason = StateFailed, fmt.Sprintf("%v: a log stream passed %d bytes", ErrOutputLimit, rs.logCap)
		case out.State == StateSucceeded || out.State == StateOOM:
			// The job finished (or hit its memory limit) before the stop took effect.
		case errors.Is(cause, ErrTimeout):
			out.State, out.Reason = StateTimedOut, fmt.Sprintf("wall-time limit of %v reached", r.Job.Limits.Timeout)
		default:
			out.State, out.Reason = StateCancelled, "cancelled"
		}
	}
	r.Stdout.CloseWrite()
	r.Stderr.CloseWrite()
	r.timer.Stop()
	r.cancel(nil)
	r.exit = &Exit{
		State: out.State, ExitCode: out.ExitCode, Reason: out.Reason,
		Stdout: r.Stdout.Bytes(), Stderr: r.Stderr.Bytes(),
		StdoutTruncated: r.Stdout.Truncated(), StderrTruncated: r.Stderr.Truncated(),
		Started: r.started, Finished: time.Now(),
	}
	rs.mu.Lock()
	rs.finished = append(rs.finished, r.Job.ID)
	for len(rs.finished) > rs.keep {
		delete(rs.runs, rs.finished[0])
		rs.finished = rs.finished[1:]
	}
	rs.mu.Unlock()
	close(r.done)
}

// runBody turns a panic in a backend into a failed outcome: a bad job must
// never take the provider down.
func runBody(r *Run, body Body) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			out = Outcome{State: StateFailed, ExitCode: -1, Reason: fmt.Sprintf("executor panic: %v", p)}
		}
	}()
	return body(r)
}

func (rs *Runs) get(id JobID) (*Run, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.runs[id]
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id.Short(), ErrUnknownJob)
	}
	return r, nil
}

// Wait implements Executor.Wait.
func (rs *Runs) Wait(ctx context.Context, id JobID) (*Exit, error) {
	r, err := rs.get(id)
	if err != nil {
		return nil, err
	}
	select {
	case <-r.done:
		return r.exit, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for job %s: %w", id.Short(), ctx.Err())
	}
}

// Cancel implements Executor.Cancel.
func (rs *Runs) Cancel(_ context.Context, id JobID) error {
	r, err := rs.get(id)
	if err != nil {
		return err
	}
	r.cancel(ErrCancelled)
	return nil
}

// Logs implements Executor.Logs.
func (rs *Runs) Logs(ctx context.Context, id JobID, s Stream) (io.ReadCloser, error) {
	r, err := rs.get(id)
	if err != nil {
		return nil, err
	}
	switch s {
	case Stdout:
		return r.Stdout.Follow(ctx), nil
	case Stderr:
		return r.Stderr.Follow(ctx), nil
	}
	return nil, fmt.Errorf("logs of job %s: unknown stream %d", id.Short(), s)
}

// Control is the part of a Runs table a backend's Executor exposes as its
// own Wait, Cancel and Logs: embed it (from Runs.Control) instead of
// writing the delegations. Go stays on Runs, behind the backend's Start.
type Control struct{ rs *Runs }

// Control returns rs's Wait, Cancel and Logs for embedding.
func (rs *Runs) Control() Control { return Control{rs} }

// Wait implements Executor.Wait.
func (c Control) Wait(ctx context.Context, id JobID) (*Exit, error) { return c.rs.Wait(ctx, id) }

// Cancel implements Executor.Cancel.
func (c Control) Cancel(ctx context.Context, id JobID) error { return c.rs.Cancel(ctx, id) }

// Logs implements Executor.Logs.
func (c Control) Logs(ctx context.Context, id JobID, s Stream) (io.ReadCloser, error) {
	return c.rs.Logs(ctx, id, s)
}

// Running returns how many runs have not finished.
func (rs *Runs) Running() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.runs) - len(rs.finished)
}

// Close cancels every run and waits for their goroutines, or for ctx.
func (rs *Runs) Close(ctx context.Context) error {
	rs.mu.Lock()
	rs.closed = true
	for _, r := range rs.runs {
		r.cancel(ErrCancelled)
	}
	rs.mu.Unlock()
	done := make(chan struct{})
	go func() { rs.wg.Wait(); close(done) }()
	select {
	case <-done:
		rs.stopBase()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close runs: %w", ctx.Err())
	}
}

// Closed reports whether Close has been called.
func (rs *Runs) Closed() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.closed
}
