package worker

import (
	"context"
	"testing"
	"time"
)

// TestBeginRestartsTheClock: preparation before Run.Begin is not billed,
// and within Limits.Prep not taken from the job's timeout. Each phase alone
// fits the 2 s timeout with 0.8 s to spare; together they do not, so
// without the restart, or without a Prep allowance, the run times out.
func TestBeginRestartsTheClock(t *testing.T) {
	rs := NewRuns(0, 0)
	defer rs.Close(context.Background())
	const timeout, phase = 2 * time.Second, 1200 * time.Millisecond
	job := &Job{ID: JobID{1}, Limits: Limits{Timeout: timeout, Prep: timeout}}
	var begun time.Time
	err := rs.Go(job, "", func(run *Run) Outcome {
		sleep := func() bool {
			select {
			case <-run.Ctx.Done():
				return false
			case <-time.After(phase):
				return true
			}
		}
		if !sleep() { // preparing: a cold compile
			return Outcome{State: StateCancelled, Reason: "stopped while preparing"}
		}
		begun = time.Now()
		run.Begin()
		run.Begin() // a second call changes nothing
		if !sleep() {
			return Outcome{State: StateCancelled, Reason: "stopped while running"}
		}
		return Outcome{State: StateSucceeded}
	})
	if err != nil {
		t.Fatal(err)
	}
	exit, err := rs.Wait(context.Background(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if exit.State != StateSucceeded {
		t.Fatalf("got %s (%s): the timeout did not restart at Begin", exit.State, exit.Reason)
	}
	if exit.Started.Before(begun) {
		t.Fatalf("billed from %v, before Begin at %v", exit.Started, begun)
	}

	// With Begin but no Prep allowance, the hard end stays at the timeout.
	job3 := &Job{ID: JobID{3}, Limits: Limits{Timeout: timeout}}
	if err := rs.Go(job3, "", func(run *Run) Outcome {
		select {
		case <-run.Ctx.Done():
			return Outcome{State: StateCancelled}
		case <-time.After(phase):
		}
		run.Begin()
		select {
		case <-run.Ctx.Done():
			return Outcome{State: StateCancelled}
		case <-time.After(phase):
			return Outcome{State: StateSucceeded}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if exit, err := rs.Wait(context.Background(), job3.ID); err != nil || exit.State != StateTimedOut {
		t.Fatalf("Begin without Prep: %+v %v, want timed out", exit, err)
	}

	// Without Begin the same two phases run into the timeout.
	job2 := &Job{ID: JobID{2}, Limits: Limits{Timeout: timeout}}
	if err := rs.Go(job2, "", func(run *Run) Outcome {
		select {
		case <-run.Ctx.Done():
			return Outcome{State: StateCancelled}
		case <-time.After(2 * phase):
			return Outcome{State: StateSucceeded}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if exit, err := rs.Wait(context.Background(), job2.ID); err != nil || exit.State != StateTimedOut {
		t.Fatalf("without Begin: %+v %v, want timed out", exit, err)
	}
}
