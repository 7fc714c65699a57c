package market

import (
	"fmt"
	"math/bits"
)

// Pricing arithmetic. All of it is integer, checked and rounded up (a
// provider is never paid less than its terms for a non-zero use):
//
//	cpu    = ceil(millicores × ms × PerCPUSecond / 1,000,000)
//	memory = ceil(MiB × ms × PerGiBSecond / 1,024,000)
//	price  = cpu + memory + PerJob
//
// Disk and GPUs are capacity constraints, not priced separately in v1.

const (
	cpuDiv = 1000 * 1000 // millicore·ms per core·second
	memDiv = 1024 * 1000 // MiB·ms per GiB·second
)

// Usage is what a provider measured for one job: CPU time in core
// milliseconds and the integral of memory use in MiB·milliseconds.
type Usage struct {
	CPUMs    uint64 `cbor:"1,keyasint,omitempty" json:"cpu_ms"`
	MemMiBMs uint64 `cbor:"2,keyasint,omitempty" json:"mem_mib_ms"`
}

// mulDivCeil returns ceil(a×b×c/d) or ErrOverflow if a×b or the result
// does not fit in 64 bits. d must be positive.
func mulDivCeil(a, b, c, d uint64) (uint64, error) {
	hi, ab := bits.Mul64(a, b)
	if hi != 0 {
		return 0, ErrOverflow
	}
	hi, lo := bits.Mul64(ab, c)
	if hi == 0 {
		q := lo / d
		if lo%d != 0 {
			q++ // cannot wrap: d ≥ 2 here in practice, and q ≤ lo/d < 2^64-1
		}
		return q, nil
	}
	if hi >= d {
		return 0, ErrOverflow
	}
	q, r := bits.Div64(hi, lo, d)
	if r != 0 {
		if q == 1<<64-1 {
			return 0, ErrOverflow
		}
		q++
	}
	return q, nil
}

func add3(a, b, c uint64) (uint64, error) {
	s, c1 := bits.Add64(a, b, 0)
	s, c2 := bits.Add64(s, c, 0)
	if c1|c2 != 0 {
		return 0, ErrOverflow
	}
	return s, nil
}

func priceOf(t PriceTerms, r Resources, timeoutMs int64) (uint64, error) {
	if timeoutMs < 0 {
		return 0, fmt.Errorf("negative timeout %d", timeoutMs)
	}
	ms := uint64(timeoutMs)
	cpu, err := mulDivCeil(r.CPU, ms, t.PerCPUSecond, cpuDiv)
	if err != nil {
		return 0, fmt.Errorf("cpu cost: %w", err)
	}
	mem, err := mulDivCeil(r.MemMiB, ms, t.PerGiBSecond, memDiv)
	if err != nil {
		return 0, fmt.Errorf("memory cost: %w", err)
	}
	p, err := add3(cpu, mem, t.PerJob)
	if err != nil {
		return 0, fmt.Errorf("total cost: %w", err)
	}
	return p, nil
}

// PriceFor is what the bid's resources cost for its whole timeout at the
// offer's terms. The matcher and CheckMatch require it to be at most the
// bid's MaxPrice; it is the Match's Price.
func PriceFor(o *Offer, b *Bid) (uint64, error) {
	p, err := priceOf(o.Terms, b.Resources, b.TimeoutMs)
	if err != nil {
		return 0, fmt.Errorf("price bid at offer %s: %w", o.ID(), err)
	}
	return p, nil
}

// Cost is what measured usage costs at terms: the same formula as PriceFor
// with CPUMs standing for millicores×ms/1000 and MemMiBMs for MiB×ms.
func Cost(t PriceTerms, u Usage) (uint64, error) {
	cpu, err := mulDivCeil(u.CPUMs, 1000, t.PerCPUSecond, cpuDiv)
	if err != nil {
		return 0, fmt.Errorf("cost of cpu usage: %w", err)
	}
	mem, err := mulDivCeil(u.MemMiBMs, 1, t.PerGiBSecond, memDiv)
	if err != nil {
		return 0, fmt.Errorf("cost of memory usage: %w", err)
	}
	c, err := add3(cpu, mem, t.PerJob)
	if err != nil {
		return 0, fmt.Errorf("cost of usage: %w", err)
	}
	return c, nil
}
