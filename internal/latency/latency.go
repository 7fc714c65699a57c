// Package latency keeps latency distributions in fixed logarithmic
// buckets (eight per doubling, from 1 µs to about 4.6 hours), so
// percentiles cost constant memory and a bounded relative error (about
// 9%), whatever the number of samples.
package latency

import (
	"math"
	"sync"
	"time"
)

const (
	perDoubling = 8
	buckets     = 34 * perDoubling // 2^34 µs ≈ 4.8 h
)

// Hist is a latency histogram, safe for concurrent use. The zero value is
// ready.
type Hist struct {
	mu    sync.Mutex
	n     uint64
	sum   time.Duration
	max   time.Duration
	count [buckets]uint64
}

func bucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Log2(us)*perDoubling)+1, buckets-1)
}

// upper is bucket i's upper bound.
func upper(i int) time.Duration {
	return time.Duration(math.Exp2(float64(i)/perDoubling) * float64(time.Microsecond))
}

// Observe records one sample.
func (h *Hist) Observe(d time.Duration) {
	h.mu.Lock()
	h.n++
	h.sum += d
	h.max = max(h.max, d)
	h.count[bucket(d)]++
	h.mu.Unlock()
}

// Summary is a histogram's figures at one moment.
type Summary struct {
	Count uint64        `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary returns the count, mean, p50, p90, p99 and maximum.
func (h *Hist) Summary() Summary {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Summary{Count: h.n, Max: h.max}
	if h.n == 0 {
		return s
	}
	s.Mean = h.sum / time.Duration(h.n)
	s.P50, s.P90, s.P99 = h.quantile(0.5), h.quantile(0.9), h.quantile(0.99)
	return s
}

// Quantile returns the q-quantile (0..1): the upper bound of the bucket
// holding it, never above the largest sample.
func (h *Hist) Quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.quantile(q)
}

func (h *Hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.count {
		if seen += c; seen >= rank && i < buckets-1 {
			return min(upper(i), h.max)
		}
	}
	return h.max
}
