package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bourse-net/bourse/node/api"
)

// Jobs configures a job run.
type Jobs struct {
	// Clients are the nodes' APIs; job i is submitted to node i mod n, and
	// each node's event stream follows its own jobs.
	Clients []*api.Client
	// Rate is the offered load in jobs per second over all nodes.
	Rate     float64
	Duration time.Duration
	// Spec and Payload are the job submitted each time.
	Spec    api.JobSpec
	Payload []byte
	// Drain bounds the wait for the last jobs to end (default 60s).
	Drain time.Duration
	// Log receives progress lines; nil: none.
	Log io.Writer
}

// JobReport is a job run's outcome.
type JobReport struct {
	Nodes     int
	Offered   float64 // jobs/s actually submitted
	Submitted int
	Refused   int // the API refused the submission
	Paid      int
	Ended     map[string]int // terminal states other than paid
	Lost      int            // submitted, never ended within Drain
	// PaidPerSec is Paid over the time from the first submission to the
	// last payment.
	PaidPerSec float64
	Elapsed    time.Duration
	Latency    Latency // submit → paid, as the node's event stream said
	// Submit is the API's own time to take a job (POST /v1/jobs).
	Submit Latency
	// Mismatches lists jobs whose money does not add up (paid + refunded
	// + slashed ≠ escrowed) or that matched twice.
	Mismatches []string
}

type jobRec struct {
	node      int
	submitted time.Time
	ended     time.Time
	job       api.Job
}

// RunJobs submits c.Spec at c.Rate for c.Duration, follows every job to
// its end and checks each one's money.
func RunJobs(ctx context.Context, c Jobs) (*JobReport, error) {
	if len(c.Clients) == 0 {
		return nil, errors.New("no nodes")
	}
	if c.Rate <= 0 || c.Duration <= 0 {
		return nil, errors.New("rate and duration must be positive")
	}
	if c.Drain <= 0 {
		c.Drain = 60 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	n := len(c.Clients)
	var (
		mu   sync.Mutex
		jobs = map[string]*jobRec{}
		sub  []time.Duration
	)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var streams sync.WaitGroup
	for node, cl := range c.Clients {
		es, err := cl.Events(sctx)
		if err != nil {
			return nil, fmt.Errorf("node %d: events: %w", node, err)
		}
		streams.Add(1)
		go func() {
			defer streams.Done()
			defer es.Close()
			for {
				ev, err := es.Next()
				if err != nil {
					return
				}
				if ev.Type != api.EventJob || ev.Job == nil || !api.Terminal(ev.Job.State) {
					continue
				}
				mu.Lock()
				if j := jobs[ev.Job.ID]; j != nil && j.ended.IsZero() {
					j.ended, j.job = time.Now(), *ev.Job
				}
				mu.Unlock()
			}
		}()
	}
	defer func() { cancel(); streams.Wait() }()

	r := &JobReport{Nodes: n, Ended: map[string]int{}}
	fmt.Fprintf(c.Log, "offering %.1f jobs/s for %s to %d nodes\n", c.Rate, c.Duration, n)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; ; i++ {
		at := start.Add(time.Duration(float64(i) / c.Rate * float64(time.Second)))
		if at.Sub(start) >= c.Duration {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Until(at)):
		}
		sem <- struct{}{}
		wg.Add(1)
		node := i % n
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			j, err := c.Clients[node].SubmitJobBytes(ctx, c.Spec, c.Payload)
			mu.Lock()
			defer mu.Unlock()
			r.Submitted++
			if err != nil {
				r.Refused++
				if r.Refused == 1 {
					fmt.Fprintf(c.Log, "refused: %v\n", err)
				}
				return
			}
			sub = append(sub, time.Since(t0))
			if old := jobs[j.ID]; old == nil {
				jobs[j.ID] = &jobRec{node: node, submitted: t0, job: j}
			} else {
				r.Mismatches = append(r.Mismatches, fmt.Sprintf("job id %s returned twice", j.ID))
			}
		}()
	}
	wg.Wait()
	r.Offered = float64(r.Submitted) / time.Since(start).Seconds()
	fmt.Fprintf(c.Log, "submitted %d (%.1f jobs/s); waiting for them to end\n", r.Submitted, r.Offered)

	// Wait for the streams to report every job's end, polling the ones
	// they did not after a while (a stream may drop events).
	progress, left := time.Now(), -1
	for {
		mu.Lock()
		open := 0
		for _, j := range jobs {
			if j.ended.IsZero() {
				open++
			}
		}
		mu.Unlock()
		if open != left {
			left, progress = open, time.Now()
		}
		if open == 0 || time.Since(progress) > c.Drain {
			break
		}
		if time.Since(progress) > 5*time.Second {
			mu.Lock()
			var poll []*jobRec
			for _, j := range jobs {
				if j.ended.IsZero() {
					poll = append(poll, j)
				}
			}
			mu.Unlock()
			for _, j := range poll {
				if got, err := c.Clients[j.node].Job(ctx, j.job.ID); err == nil && api.Terminal(got.State) {
					mu.Lock()
					j.ended, j.job = time.Now(), got
					mu.Unlock()
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	var last time.Time
	matches := map[string]string{}
	for id, j := range jobs {
		switch {
		case j.ended.IsZero():
			r.Lost++
			continue
		case j.job.State == api.StatePaid:
			r.Paid++
			lat = append(lat, j.ended.Sub(j.submitted))
			if j.ended.After(last) {
				last = j.ended
			}
		default:
			r.Ended[j.job.State]++
		}
		if got := j.job.Paid + j.job.Refunded + j.job.Slashed; j.job.MatchID != "" && got != j.job.Escrowed {
			r.Mismatches = append(r.Mismatches, fmt.Sprintf("job %s: paid %d + refunded %d + slashed %d != escrowed %d",
				id, j.job.Paid, j.job.Refunded, j.job.Slashed, j.job.Escrowed))
		}
		if m := j.job.MatchID; m != "" {
			if other, dup := matches[m]; dup {
				r.Mismatches = append(r.Mismatches, fmt.Sprintf("jobs %s and %s share match %s", other, id, m))
			}
			matches[m] = id
		}
	}
	if len(lat) > 0 {
		r.Elapsed = last.Sub(start)
		r.PaidPerSec = float64(len(lat)) / r.Elapsed.Seconds()
		r.Latency = latencyOf(lat)
	}
	if len(sub) > 0 {
		r.Submit = latencyOf(sub)
	}
	return r, nil
}
