package worker

import (
	"context"
	"io"
	"time"
)

// Executor runs jobs in one kind of sandbox. Every backend implements it and
// passes the contract suite in worker/workertest.
//
// Contract:
//
//   - Start validates the job, registers it under job.ID and returns as soon
//     as the run is under way; the ctx passed to Start bounds only Start
//     itself, not the run. It returns an error (nothing started, nothing to
//     Wait for) only when the job is invalid for this backend, the id is
//     already known (ErrDuplicateJob), the backend is unavailable
//     (ErrUnavailable) or closed (ErrClosed). A payload that turns out not to
//     run (an invalid module, a missing image) is a started job that fails:
//     Wait reports it.
//   - outDir is an existing, empty host directory owned by the caller. The
//     job sees it as its only writable place (path in the BOURSE_OUTPUT
//     environment variable). The executor never deletes it; the caller
//     packs and removes it after Wait.
//   - The run's wall-time budget is job.Limits.Timeout counted from Start,
//     and counted afresh once the backend has prepared the run (compiled
//     the module, loaded the image: Run.Begin), which is also where its
//     billed wall time starts; when it runs out the job is stopped and
//     ends StateTimedOut.
//     Exceeding job.Limits.MemoryMiB ends it StateOOM (where the backend can
//     tell; see each backend's doc). Writing more than the log cap to stdout
//     or stderr ends it StateFailed with ErrOutputLimit's text in Reason.
//   - Wait blocks until the run has ended and returns its Exit (the same
//     value on every call), or ctx's error if ctx ends first, or
//     ErrUnknownJob. A job's own failure is never Wait's error: it is in
//     Exit.State / Exit.Err(). Finished runs are remembered for a bounded
//     number of later runs (see Runs).
//   - Cancel stops a running job (it ends StateCancelled) and is idempotent;
//     on a finished job it does nothing. Unknown ids give ErrUnknownJob.
//   - Logs returns a reader over the job's stdout or stderr from its first
//     byte, following new output until the job ends (then io.EOF) or ctx
//     ends. The reader must be closed.
//   - Close cancels every running job, waits for every goroutine the
//     executor started and releases what it holds (containers, temp files,
//     compiled modules). After Close, Start returns ErrClosed. Close is
//     idempotent.
//   - All methods are safe for concurrent use. When Wait has returned, the
//     backend holds nothing for that job besides the remembered Exit.
type Executor interface {
	Kind() Kind
	// Available reports whether this backend can run jobs here; the error
	// wraps ErrUnavailable with the reason.
	Available(ctx context.Context) error
	Start(ctx context.Context, job *Job, outDir string) error
	Wait(ctx context.Context, id JobID) (*Exit, error)
	Cancel(ctx context.Context, id JobID) error
	Logs(ctx context.Context, id JobID, stream Stream) (io.ReadCloser, error)
	Close(ctx context.Context) error
}

// Stream selects stdout or stderr.
type Stream int

// The two log streams.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return "stream?"
}

// State is how a job ended.
type State string

// The job end states. The strings are stable: the node and the chain use them.
const (
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateTimedOut  State = "timed_out"
	StateOOM       State = "oom"
	StateCancelled State = "cancelled"
)

// Exit is what an executor reports about a finished run. Stdout and Stderr
// are the captured logs (at most the cap; Truncated says whether more was
// written). The Exit is shared by every Wait caller: treat it as read-only.
type Exit struct {
	State    State
	ExitCode int // the process' exit code; -1 when it did not exit by itself
	Reason   string
	Stdout   []byte
	Stderr   []byte
	// StdoutTruncated / StderrTruncated: the job wrote more than the cap.
	StdoutTruncated bool
	StderrTruncated bool
	Started         time.Time
	Finished        time.Time
}

// Err returns nil for a successful exit and a *JobError otherwise.
func (e *Exit) Err(id JobID) error {
	if e.State == StateSucceeded {
		return nil
	}
	return &JobError{ID: id, State: e.State, ExitCode: e.ExitCode, Reason: e.Reason}
}

// Wall is how long the run took.
func (e *Exit) Wall() time.Duration { return e.Finished.Sub(e.Started) }
