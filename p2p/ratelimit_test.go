package p2p

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// marketPair is a hostile host A and an honest host B joined to the bids
// topic, A accepting everything it publishes, B refusing "unfunded:"
// messages and accepting the rest.
func marketPair(t *testing.T, rate float64) (a, b *testHost, ta *Topic) {
	t.Helper()
	a = newTestHost(t, func(c *Config) { c.DHT = false })
	b = newTestHost(t, func(c *Config) { c.DHT = false; c.MarketRate = rate })
	connect(t, a.Host, b.Host)
	ta, err := a.Join(TopicBids, acceptAll)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Join(TopicBids, ValidatorFunc(func(_ context.Context, _ peer.ID, data []byte) (any, Result) {
		if strings.HasPrefix(string(data), "unfunded:") {
			return Reason("unfunded"), Refuse
		}
		return string(data), Accept
	}))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "A and B in one mesh", func() bool {
		return len(ta.MeshPeers()) == 1 && len(tb.MeshPeers()) == 1
	})
	return a, b, ta
}

func count(t *testing.T, h *testHost, result, reason string) float64 {
	want := map[string]string{"topic": TopicBids, "result": result}
	if reason != "" {
		want["reason"] = reason
	}
	return metricSum(t, h.reg, "bourse_p2p_validation_total", want)
}

// The attack: a peer floods validly signed bids the chain does not fund.
// Each is refused (not forwarded, no P4 penalty), and the refusals add up
// in the application score until the peer is graylisted.
func TestPeerRepeatingUnfundedBidsIsGraylisted(t *testing.T) {
	a, b, ta := marketPair(t, 1000)
	for i := range 80 {
		if err := ta.Publish(context.Background(), fmt.Appendf(nil, "unfunded:%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "A's score at B under the graylist threshold", func() bool {
		s, ok := b.PeerScores()[a.ID()]
		return ok && s < GraylistThreshold
	})
	if n := count(t, b, "refuse", "unfunded"); n < 50 {
		t.Fatalf("B refused %v messages, want the ~50 it takes to graylist", n)
	}
}

// The attack: a peer floods bids faster than any honest relay delivers.
// Beyond the burst they are dropped unvalidated, and the peer is
// graylisted; the burst itself (ten seconds' worth) gets through.
func TestPeerOverTheMarketRateIsDroppedAndGraylisted(t *testing.T) {
	const rate = 2 // burst 20
	a, b, ta := marketPair(t, rate)
	for i := range 120 {
		if err := ta.Publish(context.Background(), fmt.Appendf(nil, "bid:%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "A's score at B under the graylist threshold", func() bool {
		s, ok := b.PeerScores()[a.ID()]
		return ok && s < GraylistThreshold
	})
	accepted := count(t, b, "accept", "")
	if limited := count(t, b, "ignore", "rate limited"); limited < 50 {
		t.Fatalf("B rate-limited %v messages (accepted %v), want at least 50", limited, accepted)
	}
	// The burst, plus what the rate refilled while the test ran.
	if accepted < 2*rate*5 || accepted > 2*rate*10+rate*30 {
		t.Fatalf("B accepted %v messages; the burst is %d", accepted, 10*rate)
	}
}

// The limiter at its bound: a full bucket gives exactly burst tokens, then
// one per 1/rate seconds.
func TestLimiterAllowsTheBurstThenTheRate(t *testing.T) {
	l := newLimiter(5)
	now := time.Unix(1000, 0)
	for i := range 50 {
		if !l.allow("p", TopicBids, now) {
			t.Fatalf("message %d of the burst of 50 refused", i)
		}
	}
	if l.allow("p", TopicBids, now) {
		t.Fatal("message 51 allowed with an empty bucket")
	}
	if !l.allow("q", TopicBids, now) || !l.allow("p", TopicOffers, now) {
		t.Fatal("another peer's or topic's bucket is shared")
	}
	if !l.allow("p", TopicBids, now.Add(200*time.Millisecond)) || l.allow("p", TopicBids, now.Add(200*time.Millisecond)) {
		t.Fatal("after 1/rate seconds exactly one token is back")
	}
}
