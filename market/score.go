package market

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/bourse-net/bourse/wallet"
)

// Placement scoring. Every quantity is an integer so that every machine
// computes the same placement; lower keys win, compared as (K1, K2, tie,
// offer id bytes).
//
//	load(o)      = max(o.ReportedLoad()×1000, max over dimensions d with
//	               Total_d > 0 of floor((Reserved_d + Need_d) × 1e6 / Total_d)),
//	               saturating
//	cheapest     = (price, load)
//	least-loaded = (load, 0)
//	nearest      = (rtt, load) where rtt is the bid's RTT entry for o's
//	               provider in ms if it lists one, else
//	               MaxRTTMs + 1 + (rank of o.Region in bid.Near, or len(Near))
//	balanced     = (Wp×floor(price×1e6/MaxPrice) + Wl×load + Wr×(1000−reputation)×1000
//	               + Wd×(dist + regionCost) + Wf×perf, 0)
//	tie          = mix64(h(seed, offer id) XOR h(seed, bid id))
//
// where h(seed, x) is the first 8 bytes (big endian) of sha256(seed ‖ x),
// mix64 the splitmix64 finaliser, and Reserved includes placements made
// earlier in the same round. In balanced:
//
//	dist       = 0 if the bid lists no RTT; floor(min(ms, RTTScaleMs)×1e6/RTTScaleMs)
//	             for a provider it lists; 1e6 for one it does not
//	regionCost = 0 without RegionWeights; else floor((maxW − w)×1e6/maxW), w the
//	             weight of o.Region and maxW the bid's largest weight
//	perf       = ProviderState.Perf.Cost(block time)
//
// Latency is local knowledge: what one node measures, another cannot
// verify. So the distances are the client's own, signed into its bid;
// a client that lies about them only misplaces its own job.

// Weights of the balanced preference. Each is at most MaxWeight.
type Weights struct {
	Price       uint64 `json:"price"`
	Load        uint64 `json:"load"`
	Reputation  uint64 `json:"reputation"`
	Distance    uint64 `json:"distance"`    // the bid's RTT list and region weights
	Performance uint64 `json:"performance"` // the provider's Perf.Cost
}

// RTTScaleMs is the round trip at which balanced's distance term is
// full: 200 ms and more count as far.
const RTTScaleMs = 200

// MaxWeight bounds each balanced weight.
const MaxWeight = 1000

// DefaultWeights weigh price, load, reputation, distance and performance
// equally.
var DefaultWeights = Weights{Price: 1, Load: 1, Reputation: 1, Distance: 1, Performance: 1}

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

// nearKey is nearest's first key for an offer of provider a in region.
func nearKey(b *Bid, a wallet.Address, region string) uint64 {
	if ms, ok := b.rttOf(a); ok {
		return uint64(ms)
	}
	return MaxRTTMs + 1 + nearRank(b.Near, region)
}

// distCost is balanced's dist + regionCost for an offer of provider a in
// region (see the table above).
func distCost(b *Bid, a wallet.Address, region string) uint64 {
	var d uint64
	if len(b.RTT) > 0 {
		d = scale
		if ms, ok := b.rttOf(a); ok {
			d = ratio(uint64(min(ms, RTTScaleMs)), RTTScaleMs)
		}
	}
	if ws := b.Constraints.RegionWeights; len(ws) > 0 {
		var maxW, w uint64
		for i, x := range ws {
			maxW = max(maxW, uint64(x))
			if b.Constraints.Regions[i] == region {
				w = uint64(x)
			}
		}
		d += ratio(maxW-min(w, maxW), maxW)
	}
	return d
}

func nearRank(near []string, region string) uint64 {
	if region != "" {
		if i := slices.Index(near, region); i >= 0 {
			return uint64(i)
		}
	}
	return uint64(len(near))
}

// balancedScore is balanced's key; extra is Wd×dist... + Wf×perf
// (extraTerms).
func balancedScore(w Weights, price, maxPrice, load uint64, rep uint32, extra uint64) uint64 {
	var pn uint64
	if maxPrice > 0 {
		pn = ratio(min(price, maxPrice), maxPrice)
	}
	repTerm := uint64(MaxReputation-min(rep, MaxReputation)) * 1000
	return satAdd(satAdd(satAdd(satMul(w.Price, pn), satMul(w.Load, load)), satMul(w.Reputation, repTerm)), extra)
}

// extraTerms is Wd×dist + Wf×perf of balanced.
func extraTerms(w Weights, dist, perf uint64) uint64 {
	return satAdd(satMul(w.Distance, dist), satMul(w.Performance, perf))
}

// scoreKeys returns (k1, k2) of the table above for an offer of provider
// a in region; perf is the provider's Perf.Cost at block time.
func scoreKeys(w Weights, b *Bid, price, load uint64, a wallet.Address, region string, rep uint32, perf uint64) (uint64, uint64) {
	switch b.Preference {
	case PreferCheapest:
		return price, load
	case PreferLeastLoaded:
		return load, 0
	case PreferNearest:
		return nearKey(b, a, region), load
	default: // PreferBalanced; Validate admits no other value
		return balancedScore(w, price, b.MaxPrice, load, rep, extraTerms(w, distCost(b, a, region), perf)), 0
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
