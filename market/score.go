package market

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"slices"
)

// Placement scoring. Every quantity is an integer so that every machine
// computes the same placement; lower keys win, compared as (K1, K2, tie,
// offer id bytes).
//
//	load(o)      = max(o.Load×1000, max over dimensions d with Total_d > 0 of
//	               floor((Reserved_d + Need_d) × 1e6 / Total_d)), saturating
//	cheapest     = (price, load)
//	least-loaded = (load, 0)
//	nearest      = (rank of o.Region in bid.Near, or len(Near); load)
//	balanced     = (Wp×floor(price×1e6/MaxPrice) + Wl×load + Wr×(1000−reputation)×1000, 0)
//	tie          = mix64(h(seed, offer id) XOR h(seed, bid id))
//
// where h(seed, x) is the first 8 bytes (big endian) of sha256(seed ‖ x),
// mix64 the splitmix64 finaliser, and Reserved includes placements made
// earlier in the same round. The proposer cannot know latencies that every
// validator agrees on, so "nearest" uses only the client's declared hint
// (Bid.Near) and falls back to least-loaded among equally near offers.

// Weights of the balanced preference. Each is at most MaxWeight.
type Weights struct {
	Price      uint64 `json:"price"`
	Load       uint64 `json:"load"`
	Reputation uint64 `json:"reputation"`
}

// MaxWeight bounds each balanced weight.
const MaxWeight = 1000

// DefaultWeights weigh price, load and reputation equally.
var DefaultWeights = Weights{Price: 1, Load: 1, Reputation: 1}

const scale = 1_000_000 // fixed point of load and normalised price

type key struct {
	k1, k2, tie uint64
	id          [28]byte
}

func (a key) less(b key) bool {
	if a.k1 != b.k1 {
		return a.k1 < b.k1
	}
	if a.k2 != b.k2 {
		return a.k2 < b.k2
	}
	if a.tie != b.tie {
		return a.tie < b.tie
	}
	return bytes.Compare(a.id[:], b.id[:]) < 0
}

func satAdd(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	if c != 0 {
		return 1<<64 - 1
	}
	return s
}

func satMul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return 1<<64 - 1
	}
	return lo
}

// ratio is floor(a × 1e6 / t), saturating; t > 0.
func ratio(a, t uint64) uint64 {
	hi, lo := bits.Mul64(a, scale)
	if hi == 0 {
		return lo / t
	}
	if hi >= t {
		return 1<<64 - 1
	}
	q, _ := bits.Div64(hi, lo, t)
	return q
}

// loadAfter is load(o) with need placed on top of reserved.
func loadAfter(load uint32, total, reserved, need Resources) uint64 {
	l := uint64(load) * 1000
	dim := func(t, r, n uint64) {
		if t > 0 {
			l = max(l, ratio(satAdd(r, n), t))
		}
	}
	dim(total.CPU, reserved.CPU, need.CPU)
	dim(total.MemMiB, reserved.MemMiB, need.MemMiB)
	dim(total.DiskMiB, reserved.DiskMiB, need.DiskMiB)
	dim(uint64(total.GPUs), uint64(reserved.GPUs), uint64(need.GPUs))
	return l
}

func nearRank(near []string, region string) uint64 {
	if region != "" {
		if i := slices.Index(near, region); i >= 0 {
			return uint64(i)
		}
	}
	return uint64(len(near))
}

func balancedScore(w Weights, price, maxPrice, load uint64, rep uint32) uint64 {
	var pn uint64
	if maxPrice > 0 {
		pn = ratio(min(price, maxPrice), maxPrice)
	}
	repTerm := uint64(MaxReputation-min(rep, MaxReputation)) * 1000
	return satAdd(satAdd(satMul(w.Price, pn), satMul(w.Load, load)), satMul(w.Reputation, repTerm))
}

// scoreKeys returns (k1, k2) of the table above.
func scoreKeys(w Weights, b *Bid, price, load uint64, region string, rep uint32) (uint64, uint64) {
	switch b.Preference {
	case PreferCheapest:
		return price, load
	case PreferLeastLoaded:
		return load, 0
	case PreferNearest:
		return nearRank(b.Near, region), load
	default: // PreferBalanced; Validate admits no other value
		return balancedScore(w, price, b.MaxPrice, load, rep), 0
	}
}

func seedHash(seed [32]byte, x []byte) uint64 {
	var buf [96]byte // seed and an id (28 or 32 bytes) without allocating
	n := copy(buf[:], seed[:])
	n += copy(buf[n:], x)
	if n != len(seed)+len(x) { // longer x than any id: hash it whole
		h := sha256.New()
		h.Write(seed[:])
		h.Write(x)
		var sum [32]byte
		return binary.BigEndian.Uint64(h.Sum(sum[:0]))
	}
	sum := sha256.Sum256(buf[:n])
	return binary.BigEndian.Uint64(sum[:8])
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
