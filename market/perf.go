package market

import "math/bits"

// Perf is a provider's performance figures, learnt from the chain's own
// record of its matches: every validator applies the same outcomes in the
// same order with the same integer arithmetic, so every node holds the
// same figures (the chain keeps them in its state, one key per
// provider, updated in O(1) when a run ends: a result when it is
// committed, a payload-unavailable claim, a timeout; and once more, as a
// timeout, when a challenge proves a result withheld or wrong).
//
// Each figure is a moving average over about the last PerfWindow
// outcomes, weighted by what each job was worth:
//
//	n      = min(Jobs, PerfWindow)               (Jobs already counts this one)
//	T      = max(QuoteAvg, PerfQuotePrior)       the provider's typical quote
//	q      = clamp(the job's quote, 1, T)
//	x_new  = x_old + (sample − x_old)·q / (q + T·(n−1))   (integer, toward zero)
//
// so a typical job weighs 1/n (the first PerfWindow outcomes give about
// their mean, later ones 1/PerfWindow each: an exponential moving
// average), and a job worth a tenth of the typical one a tenth of that:
// a provider cannot wash a bad record with many tiny jobs it pays itself
// (below PerfQuotePrior a job never weighs fully). QuoteAvg =
// (QuoteAvg·(n−1) + quote)/n. The samples:
//
//	SlowPpm     run time / the job's timeout, in millionths, capped at
//	            1e6; a timed-out job counts 1e6. Run time is the time from
//	            the block that matched the job to the block that settled it.
//	FailPpm     1e6 for a failed job (non-zero exit code or payload
//	            unavailable), else 0.
//	TimeoutPpm  1e6 for a job that missed its deadline, else 0.
//	PaidAvg     what the client paid, in base units (0 for failures and
//	            timeouts: nothing was paid).
//	RTTMs       the round trip the client reported to this provider in its
//	            signed bid (Bid.RTT), for the jobs whose bid listed it
//	            (RTTJobs of them, averaged the same way).
//
// Cost folds the first three into one placement cost (see Cost); the
// balanced preference adds Weights.Performance × Cost.
type Perf struct {
	Jobs       uint64 `cbor:"1,keyasint,omitempty" json:"jobs"`
	SlowPpm    uint32 `cbor:"2,keyasint,omitempty" json:"slow_ppm"`
	FailPpm    uint32 `cbor:"3,keyasint,omitempty" json:"fail_ppm"`
	TimeoutPpm uint32 `cbor:"4,keyasint,omitempty" json:"timeout_ppm"`
	PaidAvg    uint64 `cbor:"5,keyasint,omitempty" json:"paid_avg"`
	RTTJobs    uint64 `cbor:"6,keyasint,omitempty" json:"rtt_jobs"`
	RTTMs      uint32 `cbor:"7,keyasint,omitempty" json:"rtt_ms"`
	// UpdatedAt is the block time (unix ms) of the last outcome.
	UpdatedAt int64 `cbor:"8,keyasint,omitempty" json:"updated_at"`
	// QuoteAvg is the moving average of its jobs' quotes (Match.Price).
	QuoteAvg uint64 `cbor:"9,keyasint,omitempty" json:"quote_avg"`
}

// PerfQuotePrior is the floor of a provider's typical quote in Observe,
// in base units (as chain.ReputationPrior): a job quoted below it weighs
// less than a full sample.
const PerfQuotePrior = 1000

// PerfWindow is the number of outcomes a performance average spans.
const PerfWindow = 16

// PerfHalfLifeMs is how fast Cost forgets: it halves for every full
// PerfHalfLifeMs without a new outcome, so a provider that lost its
// share is tried again (and can show it recovered).
const PerfHalfLifeMs = 60 * 60 * 1000

// Observe folds one settled match into the figures: the outcome
// (OutcomeCompleted, OutcomeFailed — a payload-unavailable claim counts
// as failed — or OutcomeTimedOut), the run
// time (block time of settlement minus that of the match), the job's
// timeout, what the client paid, the client's reported round trip to this
// provider (ok false if its bid listed none) and the block time. It is
// pure integer arithmetic; Jobs saturates.
func (p Perf) Observe(o Outcome, runMs, timeoutMs int64, quote, paid uint64, rttMs uint32, rttOK bool, at int64) Perf {
	if p.Jobs < 1<<63 {
		p.Jobs++
	}
	n := min(p.Jobs, PerfWindow)
	T := min(max(p.QuoteAvg, PerfQuotePrior), 1<<40)
	q := min(max(quote, 1), T)
	num, den := q, q+T*(n-1)
	wavg := func(x, s uint64) uint64 { // x + (s−x)·num/den, toward x
		if s >= x {
			return x + mulDivFloor(s-x, num, den)
		}
		return x - mulDivFloor(x-s, num, den)
	}
	slow := uint64(scale)
	if o != OutcomeTimedOut && timeoutMs > 0 {
		slow = min(ratio(uint64(max(runMs, 0)), uint64(timeoutMs)), scale)
	}
	var fail, tout uint64
	switch o {
	case OutcomeFailed:
		fail, paid = scale, 0
	case OutcomeTimedOut:
		tout, paid = scale, 0
	}
	p.SlowPpm = uint32(wavg(uint64(p.SlowPpm), slow))
	p.FailPpm = uint32(wavg(uint64(p.FailPpm), fail))
	p.TimeoutPpm = uint32(wavg(uint64(p.TimeoutPpm), tout))
	p.PaidAvg = avg(p.PaidAvg, min(paid, 1<<60), n)
	p.QuoteAvg = avg(p.QuoteAvg, min(quote, 1<<60), n)
	if rttOK {
		if p.RTTJobs < 1<<63 {
			p.RTTJobs++
		}
		p.RTTMs = uint32(avg(uint64(p.RTTMs), uint64(min(rttMs, MaxRTTMs)), min(p.RTTJobs, PerfWindow)))
	}
	p.UpdatedAt = max(p.UpdatedAt, at)
	return p
}

// mulDivFloor is floor(a·b/d) for a ≤ 1e6, b ≤ d < 2^45: no overflow.
func mulDivFloor(a, b, d uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	q, _ := bits.Div64(hi, lo, d) // a·b/d ≤ a: hi < d
	return q
}

// avg is (x·(n−1) + s)/n; x, s < 2^60 and n ≤ PerfWindow, so no overflow.
func avg(x, s, n uint64) uint64 { return (x*(n-1) + s) / n }

// Cost is the placement cost of the figures at block time now, in
// millionths (0 best, 1e6 worst):
//
//	raw  = (FailPpm + 2·TimeoutPpm + SlowPpm) / 4
//	Cost = raw >> floor((now − UpdatedAt) / PerfHalfLifeMs)
//
// A provider with no outcome yet costs 0, like a perfect one: the
// reputation term carries the prior for newcomers.
func (p Perf) Cost(now int64) uint64 {
	raw := (uint64(p.FailPpm) + 2*uint64(p.TimeoutPpm) + uint64(p.SlowPpm)) / 4
	if now > p.UpdatedAt && p.UpdatedAt > 0 {
		if k := (now - p.UpdatedAt) / PerfHalfLifeMs; k >= 20 {
			return 0
		} else {
			raw >>= k
		}
	}
	return min(raw, scale)
}
