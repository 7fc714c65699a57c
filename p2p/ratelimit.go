package p2p

import (
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// limiter is a token bucket per (peer, topic) for the market topics: each
// peer may deliver rate messages per second to us, in bursts of up to ten
// seconds' worth. Buckets of quiet peers are swept when the map grows.
type limiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[bucketKey]*bucket
}

type bucketKey struct {
	p     peer.ID
	topic string
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(rate float64) *limiter {
	return &limiter{rate: rate, burst: 10 * rate, buckets: map[bucketKey]*bucket{}}
}

// allow takes a token of p's bucket for topic; false means over the limit.
func (l *limiter) allow(p peer.ID, topic string, now time.Time) bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := bucketKey{p, topic}
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxTracked {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[k] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets full buckets (peers quiet for ten seconds); the caller holds mu.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// maxTracked bounds the peers the limiter and the penalties remember
// before sweeping the quiet ones.
const maxTracked = 4096

// penalties is the application-specific part of peer scores: points a peer
// earns for market messages refused against chain state or over the rate
// limit, decaying with a half-life of PenaltyHalfLife. The score is
// -AppPenaltyWeight × points² (see scoring.go).
type penalties struct {
	mu sync.Mutex
	m  map[peer.ID]*penalty
}

type penalty struct {
	points float64
	at     time.Time
}

func decayed(p *penalty, now time.Time) float64 {
	return p.points * math.Exp2(-now.Sub(p.at).Seconds()/PenaltyHalfLife.Seconds())
}

func (ps *penalties) add(id peer.ID, points float64, now time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil {
		ps.m = map[peer.ID]*penalty{}
	}
	p := ps.m[id]
	if p == nil {
		if len(ps.m) >= maxTracked {
			for k, q := range ps.m {
				if decayed(q, now) < 0.01 {
					delete(ps.m, k)
				}
			}
		}
		p = &penalty{at: now}
		ps.m[id] = p
	}
	p.points = decayed(p, now) + points
	p.at = now
}

// score is the application-specific score of id now.
func (ps *penalties) score(id peer.ID) float64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.m[id]
	if p == nil {
		return 0
	}
	v := decayed(p, time.Now())
	return -AppPenaltyWeight * v * v
}
