package loadtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
)

// Jobs runs b.N jobs through the daemons behind clients, inFlight at a time
// (worker i uses clients[i%len(clients)]). Each is submitted by submit and
// followed by polling every poll until it ends; one that does not end paid
// fails the benchmark. It reports jobs/s and the submit → paid latency
// (p50, p99).
func Jobs(b *testing.B, clients []*api.Client, inFlight int, poll time.Duration,
	submit func(ctx context.Context, c *api.Client) (api.Job, error)) {
	ctx := context.Background()
	one := func(c *api.Client) (time.Duration, error) {
		start := time.Now()
		j, err := submit(ctx, c)
		if err != nil {
			return 0, err
		}
		for !api.Terminal(j.State) {
			time.Sleep(poll)
			if j, err = c.Job(ctx, j.ID); err != nil {
				return 0, err
			}
		}
		if j.State != api.StatePaid {
			return 0, fmt.Errorf("job %s ended %s: %s", j.ID, j.State, j.Error)
		}
		return time.Since(start), nil
	}
	var (
		mu   sync.Mutex
		lats []time.Duration
		wg   sync.WaitGroup
		next = make(chan struct{}, b.N)
	)
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	b.ResetTimer()
	start := time.Now()
	for i := range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				d, err := one(clients[i%len(clients)])
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lats = append(lats, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lats) == 0 {
		return
	}
	slices.Sort(lats)
	b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(lats[len(lats)/2].Seconds(), "p50-s")
	b.ReportMetric(lats[len(lats)*99/100].Seconds(), "p99-s")
}
