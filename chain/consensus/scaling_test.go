package consensus

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"
)

// The scaling benchmark runs n validators (real keys: every proposal and
// vote is signed and verified) over a simulated network in which every
// message takes a latency drawn uniformly from [minLat, maxLat], and every
// node is busy for the wall time its core really took to handle each input
// (so signature checks and vote counting cost what they cost on this
// machine, and a busy node queues what arrives). Consensus messages go
// from each validator to every other directly (gossip's extra hops are not
// modelled). It reports the block interval and the finality (from the
// proposer's proposal to each validator's decision), in simulated time.

// scaleResult is one configuration's outcome.
type scaleResult struct {
	N                      int
	MinLatMs, MaxLatMs     int64
	Heights                int
	IntervalMs, FinalityMs float64 // mean block interval, p50 finality
	FinalityP99Ms          float64
	LateRounds             int // heights decided in a round > 0
}

// realisticConfig is the testnet genesis's timeouts.
func realisticConfig() Config {
	return Config{
		TimeoutPropose: 300 * time.Millisecond, TimeoutProposeDelta: 100 * time.Millisecond,
		TimeoutPrevote: 100 * time.Millisecond, TimeoutPrevoteDelta: 50 * time.Millisecond,
		TimeoutPrecommit: 100 * time.Millisecond, TimeoutPrecommitDelta: 50 * time.Millisecond,
		TimeoutCommit: 50 * time.Millisecond,
	}
}

type scaleEvent struct {
	at   int64 // µs of simulated time
	seq  uint64
	node int
	ev   Event
}

type scaleQueue []*scaleEvent

func (q scaleQueue) Len() int { return len(q) }
func (q scaleQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q scaleQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *scaleQueue) Push(x any)   { *q = append(*q, x.(*scaleEvent)) }
func (q *scaleQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// runScale decides heights blocks with n validators and returns the
// figures; seed fixes the latencies.
func runScale(tb testing.TB, n int, minLat, maxLat int64, heights int, seed uint64) scaleResult {
	tb.Helper()
	powers := make([]uint64, n)
	for i := range powers {
		powers[i] = 10
	}
	keys, vs := testValidators(tb, powers...)
	rng := rand.New(rand.NewPCG(seed, 0x5ca1e))
	var (
		q        scaleQueue
		seq      uint64
		now      int64
		busy     = make([]int64, n)
		states   = make([]*State, n)
		proposed = map[uint64]int64{}   // height → µs its first proposal was broadcast
		decided  = map[uint64][]int64{} // height → decision times
		rounds   = map[uint64]int32{}
	)
	push := func(at int64, node int, ev Event) {
		seq++
		heap.Push(&q, &scaleEvent{at: at, seq: seq, node: node, ev: ev})
	}
	nowMs := func(t int64) int64 { return simEpoch + t/1000 }
	var handle func(i int, out []Output, at int64)
	handle = func(i int, out []Output, at int64) {
		for _, o := range out {
			switch o := o.(type) {
			case Broadcast:
				if o.Message.Proposal != nil {
					if _, ok := proposed[o.Message.Proposal.Height]; !ok {
						proposed[o.Message.Proposal.Height] = at
					}
				}
				for j := range n {
					if j != i {
						lat := (minLat + rng.Int64N(maxLat-minLat+1)) * 1000
						push(at+lat, j, msgEvent(o.Message))
					}
				}
			case ScheduleTimeout:
				push(at+o.Duration.Microseconds(), i, Timeout{Height: o.Height, Round: o.Round, Step: o.Step})
			case RequestValue:
				value := fmt.Appendf(nil, "block h=%d r=%d by=%d", o.Height, o.Round, i)
				push(at, i, ValueReady{Height: o.Height, Round: o.Round, BlockID: idOf(value), Value: value})
			case ValidateValue:
				push(at, i, ValueValidity{Height: o.Height, BlockID: o.BlockID, Value: o.Value, Valid: idOf(o.Value) == o.BlockID})
			case Decide:
				decided[o.Height] = append(decided[o.Height], at)
				rounds[o.Height] = max(rounds[o.Height], o.Commit.Round)
				push(at, i, NextHeight{Validators: vs})
			}
		}
	}
	for i, k := range keys {
		st, err := New(realisticConfig(), testChain, k, 1, vs, nil)
		if err != nil {
			tb.Fatal(err)
		}
		states[i] = st
		handle(i, st.Start(nowMs(0)), 0)
	}
	for q.Len() > 0 {
		e := heap.Pop(&q).(*scaleEvent)
		if e.at < busy[e.node] {
			e.at = busy[e.node] // the node is still handling an earlier input
			heap.Push(&q, e)
			continue
		}
		now = e.at
		if len(decided[uint64(heights)]) == n {
			break
		}
		start := time.Now()
		out := states[e.node].Step(Input{Now: nowMs(now), Event: e.ev})
		done := now + max(time.Since(start).Microseconds(), 1)
		busy[e.node] = done
		handle(e.node, out, done)
		if now > 600_000_000 {
			tb.Fatalf("n=%d: not %d heights in 10 simulated minutes", n, heights)
		}
	}
	r := scaleResult{N: n, MinLatMs: minLat, MaxLatMs: maxLat, Heights: heights}
	var fin []int64
	var last int64
	var gaps []int64
	for h := uint64(1); h <= uint64(heights); h++ {
		ts := decided[h]
		slices.Sort(ts)
		med := ts[len(ts)/2]
		if h > 1 {
			gaps = append(gaps, med-last)
		}
		last = med
		for _, t := range ts {
			fin = append(fin, t-proposed[h])
		}
		if rounds[h] > 0 {
			r.LateRounds++
		}
	}
	slices.Sort(fin)
	var sum int64
	for _, g := range gaps {
		sum += g
	}
	r.IntervalMs = float64(sum) / float64(len(gaps)) / 1000
	r.FinalityMs = float64(fin[len(fin)/2]) / 1000
	r.FinalityP99Ms = float64(fin[len(fin)*99/100]) / 1000
	return r
}

// scaleFull: BOURSE_BENCH_FULL=1 runs every size and latency with more
// heights; by default a short run (4, 16 and 64 validators, 10–50 ms).
func scaleFull() bool { return os.Getenv("BOURSE_BENCH_FULL") != "" }

// BenchmarkConsensusScaling reports block interval and finality for 4,
// 16, 64 (and with BOURSE_BENCH_FULL=1, 100) validators over links of
// 10–50 ms, and with the full run also fixed 10, 30 and 50 ms links, and
// saves the curves as PNG plots in docs/ (see plotScaling).
//
//	go test -run '^$' -bench ConsensusScaling ./chain/consensus
//	BOURSE_BENCH_FULL=1 go test -run '^$' -bench ConsensusScaling -timeout 30m ./chain/consensus
func BenchmarkConsensusScaling(b *testing.B) {
	sizes, heights := []int{4, 16, 64}, 6
	lats := [][2]int64{{10, 50}}
	if scaleFull() {
		sizes, heights = []int{4, 16, 64, 100}, 20
		lats = [][2]int64{{10, 50}, {10, 10}, {30, 30}, {50, 50}}
	}
	type cfg struct {
		n      int
		lo, hi int64
	}
	got := map[cfg]scaleResult{}
	var order []cfg
	for _, l := range lats {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("n=%d/lat=%d-%dms", n, l[0], l[1]), func(b *testing.B) {
				var r scaleResult
				for i := range b.N {
					r = runScale(b, n, l[0], l[1], heights, uint64(i+1))
				}
				b.ReportMetric(r.IntervalMs, "interval-ms")
				b.ReportMetric(r.FinalityMs, "finality-p50-ms")
				b.ReportMetric(r.FinalityP99Ms, "finality-p99-ms")
				b.ReportMetric(float64(r.LateRounds), "late-rounds")
				c := cfg{n, l[0], l[1]}
				if _, ok := got[c]; !ok {
					order = append(order, c)
				}
				got[c] = r // the last (largest b.N) run
			})
		}
	}
	var all []scaleResult
	for _, c := range order {
		all = append(all, got[c])
	}
	if err := plotScaling(all); err != nil {
		b.Logf("plot: %v", err)
	}
}

// A small network decides in round 0 with finality near three link
// latencies; the simulation is deterministic in everything but the
// measured CPU time.
func TestConsensusScalingSimDecides(t *testing.T) {
	r := runScale(t, 4, 10, 10, 4, 1)
	if r.LateRounds != 0 {
		t.Fatalf("late rounds on a perfect network: %+v", r)
	}
	if r.FinalityMs < 20 || r.FinalityMs > 300 {
		t.Fatalf("finality %.1f ms with 10 ms links", r.FinalityMs)
	}
}
