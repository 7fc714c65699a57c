package market

import (
	"bytes"
	"math"
	"math/bits"
	"slices"

	"github.com/bourse-net/bourse/wallet"
)

// Jain is Jain's fairness index of loads: (Σx)² / (n·Σx²). It is 1 when
// every load is equal and 1/n when one provider carries everything. Loads
// that are negative or NaN count as 0; no loads, or all zero, give 1
// (nothing was distributed unfairly). Stats are for display: floating
// point is fine here, never in consensus.
func Jain(loads []float64) float64 {
	clean := func(x float64) float64 {
		switch {
		case !(x > 0): // negative or NaN
			return 0
		case math.IsInf(x, 1):
			return math.MaxFloat64
		}
		return x
	}
	var mx float64
	for _, x := range loads {
		mx = max(mx, clean(x))
	}
	if mx == 0 {
		return 1
	}
	// Scale by the largest load so that nothing overflows: sum ≤ n, sq ≥ 1.
	var sum, sq float64
	for _, x := range loads {
		y := clean(x) / mx
		sum += y
		sq += y * y
	}
	return sum * sum / (float64(len(loads)) * sq)
}

// Outcome is the state of a match, as recorded on chain.
type Outcome uint8

// Outcomes.
const (
	OutcomeOpen      Outcome = iota // matched, no result yet
	OutcomeCompleted                // result with exit code 0
	OutcomeFailed                   // result with a non-zero exit code
	OutcomeTimedOut                 // no result by the deadline: refunded and slashed
)

// MatchRecord is what the chain keeps about one match, the input of
// ComputeStats.
type MatchRecord struct {
	Provider  wallet.Address
	Height    uint64    // height of the block that committed the match
	MatchedAt int64     // its block time, unix ms
	SettledAt int64     // block time of the result or timeout; 0 while open
	Resources Resources // reserved by the match
	Price     uint64    // the match's quote
	Paid      uint64    // paid to the provider at settlement
	Outcome   Outcome
}

// StatsWindow selects matches committed at heights From..To (inclusive)
// and measures busy time between the block times FromTime and ToTime.
type StatsWindow struct {
	From, To         uint64
	FromTime, ToTime int64
}

// ProviderStats summarises one provider over a window.
type ProviderStats struct {
	Provider    wallet.Address `json:"provider"`
	Assigned    uint64         `json:"assigned"`
	Completed   uint64         `json:"completed"`
	Failed      uint64         `json:"failed"`
	TimedOut    uint64         `json:"timed_out"`
	Open        uint64         `json:"open"`
	Earnings    uint64         `json:"earnings"`     // saturating sum of Paid
	BusyCPU     uint64         `json:"busy_cpu_mms"` // reserved millicore·ms inside the window (saturating)
	Utilisation float64        `json:"utilisation"`  // BusyCPU / (capacity CPU × window); 0 if capacity unknown
	MeanResult  int64          `json:"mean_time_to_result_ms"`
}

// Stats summarises the market over a window.
type Stats struct {
	Window    StatsWindow     `json:"window"`
	Jobs      uint64          `json:"jobs"`
	Providers []ProviderStats `json:"providers"` // by address
	// Fairness is Jain's index of load across every provider that has a
	// capacity entry or a match in the window (idle providers count).
	// Load is Utilisation when every such provider's capacity is known,
	// otherwise BusyCPU.
	Fairness float64 `json:"fairness"`
}

// ComputeStats summarises records (matches on chain) over w. capacity
// gives each provider's offered Total (e.g. from its latest offer or its
// registration); providers in it with no match count as idle.
func ComputeStats(records []MatchRecord, capacity map[wallet.Address]Resources, w StatsWindow) Stats {
	type acc struct {
		ProviderStats
		resultSum, results uint64
	}
	accs := map[wallet.Address]*acc{}
	get := func(a wallet.Address) *acc {
		p, ok := accs[a]
		if !ok {
			p = &acc{ProviderStats: ProviderStats{Provider: a}}
			accs[a] = p
		}
		return p
	}
	for a := range capacity {
		get(a)
	}
	st := Stats{Window: w}
	for _, r := range records {
		if r.Height < w.From || r.Height > w.To {
			continue
		}
		st.Jobs++
		p := get(r.Provider)
		p.Assigned++
		switch r.Outcome {
		case OutcomeOpen:
			p.Open++
		case OutcomeCompleted:
			p.Completed++
		case OutcomeFailed:
			p.Failed++
		case OutcomeTimedOut:
			p.TimedOut++
		}
		p.Earnings = satAdd(p.Earnings, r.Paid)
		end := w.ToTime
		if r.Outcome != OutcomeOpen {
			end = min(end, r.SettledAt)
			if r.Outcome != OutcomeTimedOut && r.SettledAt >= r.MatchedAt {
				p.resultSum = satAdd(p.resultSum, uint64(r.SettledAt-r.MatchedAt))
				p.results++
			}
		}
		start := max(w.FromTime, r.MatchedAt)
		if end > start {
			hi, lo := bits.Mul64(r.Resources.CPU, uint64(end-start))
			if hi != 0 {
				lo = math.MaxUint64
			}
			p.BusyCPU = satAdd(p.BusyCPU, lo)
		}
	}
	span := float64(w.ToTime - w.FromTime)
	loads := make([]float64, 0, len(accs))
	for a, p := range accs {
		if c := capacity[a].CPU; c > 0 && span > 0 {
			p.Utilisation = float64(p.BusyCPU) / (float64(c) * span)
		}
		if p.results > 0 {
			p.MeanResult = int64(p.resultSum / p.results)
		}
		st.Providers = append(st.Providers, p.ProviderStats)
	}
	slices.SortFunc(st.Providers, func(a, b ProviderStats) int { return bytes.Compare(a.Provider[:], b.Provider[:]) })
	allKnown := true
	for _, p := range st.Providers {
		allKnown = allKnown && capacity[p.Provider].CPU > 0
	}
	for _, p := range st.Providers {
		if allKnown {
			loads = append(loads, p.Utilisation)
		} else {
			loads = append(loads, float64(p.BusyCPU))
		}
	}
	st.Fairness = Jain(loads)
	return st
}
