package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
)

// BenchmarkHelloJob measures, against a 4-node testnet, the latency from
// submit to paid of the hello job (p50, p99; the on-chain match and
// settlement included) and the sustained rate with jobs submitted from all
// four nodes at once (4 providers). Run:
//
//	go test -run '^$' -bench HelloJob -benchtime 200x ./e2e
func BenchmarkHelloJob(b *testing.B) {
	needBinary(b)
	n := up(b)
	spec, err := os.ReadFile(filepath.Join(helloDir, "job.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	js, err := api.ParseJobSpec(spec)
	if err != nil {
		b.Fatal(err)
	}
	payload, err := os.ReadFile(filepath.Join(helloDir, "hello.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	js.Payload = "hello.wasm"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	poll := 5 * time.Millisecond
	one := func(cl *api.Client) (time.Duration, error) {
		start := time.Now()
		j, err := cl.SubmitJobBytes(ctx, js, payload)
		if err != nil {
			return 0, err
		}
		for !api.Terminal(j.State) {
			time.Sleep(poll)
			if j, err = cl.Job(ctx, j.ID); err != nil {
				return 0, err
			}
		}
		if j.State != api.StatePaid {
			return 0, fmt.Errorf("job %s ended %s: %s", j.ID, j.State, j.Error)
		}
		return time.Since(start), nil
	}
	// latency: one job at a time, submit to paid (the on-chain match,
	// the run, the Result transaction and the verified fetch included).
	// throughput: inFlight jobs at once, spread over the four nodes.
	run := func(b *testing.B, inFlight int) {
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
					d, err := one(n.cl[i%len(n.cl)])
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
		b.ReportMetric(lats[len(lats)/2].Seconds(), "p50-s")
		b.ReportMetric(lats[len(lats)*99/100].Seconds(), "p99-s")
		b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "jobs/s")
	}
	b.Run("latency", func(b *testing.B) { run(b, 1) })
	// Many clients polling every 5 ms would measure the polling.
	b.Run("throughput", func(b *testing.B) { poll = 25 * time.Millisecond; run(b, 32) })
}
