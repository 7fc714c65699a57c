package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
)

// TestSlowSubscriberUnderBurstStillSeesTerminalState: a subscriber that
// reads nothing while a burst of thousands of events goes out (far more
// than any buffer) still receives every job's final state, and the latest
// block, once it reads: a `--wait` can not miss the end of its job.
func TestSlowSubscriberUnderBurstStillSeesTerminalState(t *testing.T) {
	h := newEventHub()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := h.subscribe(ctx)
	const jobs, states = 50, 100
	for s := 0; s < states; s++ {
		for j := 0; j < jobs; j++ {
			state := api.StateRunning
			if s == states-1 {
				state = api.StatePaid
			}
			h.publish(eventJob(api.Job{ID: fmt.Sprint("job", j), State: state, Error: fmt.Sprint(s)}))
		}
		h.publish(eventBlock(api.Block{Height: uint64(s + 1)}))
	}
	final := map[string]string{}
	var height uint64
	deadline := time.After(10 * time.Second)
	for len(final) < jobs || height < states {
		select {
		case ev := <-ch:
			switch ev.Type {
			case api.EventJob:
				if ev.Job.State == api.StatePaid {
					final[ev.Job.ID] = ev.Job.Error
				}
			case api.EventBlock:
				height = ev.Block.Height
			}
		case <-deadline:
			t.Fatalf("after the burst: %d of %d jobs seen paid, block %d of %d", len(final), jobs, height, states)
		}
	}
	for id, last := range final {
		if last != fmt.Sprint(states-1) {
			t.Fatalf("job %s: final event carries state %s, want the last", id, last)
		}
	}
	// The queue coalesced: nothing is left once the final states are read.
	select {
	case ev := <-ch:
		if ev.Type == api.EventJob && ev.Job.State != api.StatePaid {
			t.Fatalf("a stale state after the final one: %+v", ev.Job)
		}
	default:
	}
}

// TestSubscriberChannelClosesWithItsContext: the hub forgets a subscriber
// whose context ended and closes its channel.
func TestSubscriberChannelClosesWithItsContext(t *testing.T) {
	h := newEventHub()
	ctx, cancel := context.WithCancel(context.Background())
	ch := h.subscribe(ctx)
	h.publish(eventBlock(api.Block{Height: 1}))
	cancel()
	for range ch {
	}
	h.mu.Lock()
	n := len(h.subs)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d subscribers left after their context ended", n)
	}
}
