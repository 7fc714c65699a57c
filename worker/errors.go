package worker

import (
	"context"
	"errors"
)

// Sentinel errors. Executors and the Runtime wrap them with what was being
// done; test with errors.Is.
var (
	// ErrUnknownJob: no run with that id is known (never started or forgotten).
	ErrUnknownJob = errors.New("unknown job")
	// ErrDuplicateJob: a run with that id is already known.
	ErrDuplicateJob = errors.New("job already started")
	// ErrClosed: the executor or runtime has been closed.
	ErrClosed = errors.New("worker closed")
	// ErrUnavailable: the backend cannot run jobs on this host (no Docker
	// daemon, exec not enabled, ...).
	ErrUnavailable = errors.New("executor unavailable")
	// ErrInsufficientCapacity: the job needs more than is free.
	ErrInsufficientCapacity = errors.New("insufficient capacity")
	// ErrPayloadHash: payload bytes do not hash to the announced hash.
	ErrPayloadHash = errors.New("payload hash mismatch")
	// ErrPayloadTooLarge: payload larger than the configured cap.
	ErrPayloadTooLarge = errors.New("payload too large")
	// ErrNotFound: the result store has no blob with that hash.
	ErrNotFound = errors.New("not found")

	// ErrTimeout is the error of a job that ran out of wall time. It
	// matches context.DeadlineExceeded too.
	ErrTimeout error = timeoutError{}
	// ErrOutOfMemory is the error of a job that hit its memory limit.
	ErrOutOfMemory = errors.New("out of memory")
	// ErrCancelled is the error of a job stopped by Cancel or Close. It
	// matches context.Canceled too.
	ErrCancelled error = cancelledError{}
	// ErrJobFailed is the error of a job that failed any other way (non-zero
	// exit, trap, invalid payload, output over its cap).
	ErrJobFailed = errors.New("job failed")
	// ErrOutputLimit is the cause recorded when a job's stdout, stderr or
	// output directory exceeds its cap; such a job ends as failed.
	ErrOutputLimit = errors.New("output limit exceeded")
)

type timeoutError struct{}

func (timeoutError) Error() string        { return "job timed out" }
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

type cancelledError struct{}

func (cancelledError) Error() string        { return "job cancelled" }
func (cancelledError) Is(target error) bool { return target == context.Canceled }

// JobError is the error form of an unsuccessful Exit or Result. Callers
// branch with errors.Is(err, ErrTimeout / ErrOutOfMemory / ErrCancelled /
// ErrJobFailed), or read State.
type JobError struct {
	ID       JobID
	State    State
	ExitCode int
	Reason   string
}

func (e *JobError) Error() string {
	return "job " + e.ID.Short() + " " + string(e.State) + ": " + e.Reason
}

// Unwrap returns the sentinel for the state.
func (e *JobError) Unwrap() error {
	switch e.State {
	case StateTimedOut:
		return ErrTimeout
	case StateOOM:
		return ErrOutOfMemory
	case StateCancelled:
		return ErrCancelled
	default:
		return ErrJobFailed
	}
}
