package p2p

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

var allTopics = []string{TopicOffers, TopicBids, TopicTxs, TopicConsensus}

// joinAll joins every Bourse topic on h with v and subscribes to each.
func joinAll(t *testing.T, h *testHost, v Validator) (map[string]*Topic, map[string]*Subscription) {
	t.Helper()
	topics := map[string]*Topic{}
	subs := map[string]*Subscription{}
	for _, name := range allTopics {
		tp, err := h.Join(name, v)
		if err != nil {
			t.Fatal(err)
		}
		s, err := tp.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		topics[name], subs[name] = tp, s
	}
	return topics, subs
}

// On a random connected topology, a message published on each topic
// reaches every subscriber exactly once, with the validator's decoded value.
func TestEveryTopicReachesAllSubscribers(t *testing.T) {
	const n = 8
	rng := seededRand(t)
	hosts := make([]*testHost, n)
	topics := make([]map[string]*Topic, n)
	subs := make([]map[string]*Subscription, n)
	for i := range hosts {
		hosts[i] = newTestHost(t, func(c *Config) { c.DHT = false })
		topics[i], subs[i] = joinAll(t, hosts[i], prefixValidator())
		if i > 0 { // a random spanning tree keeps the graph connected
			connect(t, hosts[i].Host, hosts[rng.IntN(i)].Host)
		}
	}
	for i := 0; i < n; i++ { // plus a few random chords
		if a, b := rng.IntN(n), rng.IntN(n); a != b {
			connect(t, hosts[a].Host, hosts[b].Host)
		}
	}
	// GossipSub forwards along its mesh; a message published while meshes
	// are still forming may miss a newcomer. Wait until every host meshes
	// with all its topic peers (up to D_lo = 5).
	for i := range hosts {
		for _, name := range allTopics {
			eventually(t, 20*time.Second, "meshes to form", func() bool {
				tp := topics[i][name]
				peers := len(tp.Peers())
				return peers > 0 && len(tp.MeshPeers()) >= min(peers, 5)
			})
		}
	}
	publisher := map[string]int{}
	for _, name := range allTopics {
		p := rng.IntN(n)
		publisher[name] = p
		if err := topics[p][name].Publish(context.Background(), []byte("ok:"+name)); err != nil {
			t.Fatalf("publish %s: %v", name, err)
		}
	}
	for i := range hosts {
		for _, name := range allTopics {
			var m Message
			select {
			case m = <-subs[i][name].C:
			case <-time.After(20 * time.Second):
				t.Errorf("host %d topic %s: nothing from host %d within 20s (host %d has %d topic peers)",
					i, name, publisher[name], i, len(topics[i][name].Peers()))
				for j, o := range hosts {
					t.Logf("host %d (%s): peers %d score of 7: %v; validation %v", j, o.ID().ShortString(), len(o.Peers()), o.PeerScores()[hosts[i].ID()],
						metricSum(t, o.reg, "bourse_p2p_validation_total", nil))
				}
				continue
			}
			p := publisher[name]
			if m.Decoded != name || m.Topic != name || m.Local != (i == p) {
				t.Errorf("host %d topic %s: got %+v, want decoded %q published by host %d", i, name, m, name, p)
			}
		}
	}
	for i := range hosts {
		for _, name := range allTopics {
			all := topics[i][name].Peers()
			for _, p := range topics[i][name].MeshPeers() {
				if !slices.Contains(all, p) {
					t.Errorf("host %d topic %s: mesh peer %s is not a topic peer", i, name, p)
				}
			}
		}
	}
	// Exactly once: nothing else is pending.
	time.Sleep(500 * time.Millisecond)
	for i := range hosts {
		for _, name := range allTopics {
			select {
			case m := <-subs[i][name].C:
				t.Errorf("host %d topic %s: duplicate or stray message %q", i, name, m.Data)
			default:
			}
		}
	}
}

// A -- B -- C. A (the attacker) accepts anything locally and publishes
// invalid messages: B rejects them, does not forward them to C, counts
// them, and A's score at B drops below zero. Ignored messages cost A
// nothing, and A's valid messages still flow.
func TestInvalidMessageRejectedNotForwardedAndPenalised(t *testing.T) {
	a := newTestHost(t, func(c *Config) { c.DHT = false })
	b := newTestHost(t, func(c *Config) { c.DHT = false })
	c := newTestHost(t, func(c *Config) { c.DHT = false })
	connect(t, a.Host, b.Host)
	connect(t, b.Host, c.Host)
	var cSawInvalid atomic.Int64
	cv := ValidatorFunc(func(ctx context.Context, from peer.ID, data []byte) (any, Result) {
		d, r := prefixValidator()(ctx, from, data)
		if r != Accept {
			cSawInvalid.Add(1)
		}
		return d, r
	})
	ta, err := a.Join(TopicTxs, acceptAll)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Join(TopicTxs, prefixValidator())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := c.Join(TopicTxs, cv)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := tc.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "B in both meshes", func() bool {
		return len(ta.MeshPeers()) == 1 && len(tb.MeshPeers()) == 2 && len(tc.MeshPeers()) == 1
	})
	count := func(h *testHost, result, reason string) float64 {
		return metricSum(t, h.reg, "bourse_p2p_validation_total", map[string]string{"topic": TopicTxs, "result": result, "reason": reason})
	}

	// Stale messages are ignored, without penalty.
	for i := 0; i < 5; i++ {
		if err := ta.Publish(context.Background(), fmt.Appendf(nil, "old:%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "B to ignore 5 stale messages", func() bool { return count(b, "ignore", "stale") == 5 })
	time.Sleep(3 * time.Duration(b.cfg.ScoreInspectInterval)) // let a fresh score sample land
	if s, ok := b.PeerScores()[a.ID()]; !ok || s < 0 {
		t.Fatalf("after ignored messages A's score at B = %v (known %v), want >= 0", s, ok)
	}

	// Invalid messages are rejected and penalised.
	for i := 0; i < 5; i++ {
		if err := ta.Publish(context.Background(), fmt.Appendf(nil, "evil-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "B to reject 5 invalid messages", func() bool { return count(b, "reject", "bad prefix") == 5 })
	eventually(t, 10*time.Second, "A's score at B to drop below zero", func() bool {
		s, ok := b.PeerScores()[a.ID()]
		return ok && s < 0
	})
	if s := b.PeerScores()[c.ID()]; s < 0 {
		t.Errorf("honest C's score at B = %v, want >= 0", s)
	}

	// The path works: a valid message from A reaches C, and it is the
	// first and only thing C ever received.
	if err := ta.Publish(context.Background(), []byte("ok:fine")); err != nil {
		t.Fatal(err)
	}
	if m := recvMessage(t, sc, 10*time.Second); m.Decoded != "fine" {
		t.Fatalf("C got %q, want the valid message", m.Data)
	}
	if n := cSawInvalid.Load(); n != 0 {
		t.Errorf("C's validator saw %d invalid or stale messages; B forwarded them", n)
	}
}

// A host on another chain shares no topic with us: its messages never
// arrive, even over a direct connection.
func TestOtherChainMessagesDoNotCross(t *testing.T) {
	a := newTestHost(t, func(c *Config) { c.DHT = false })
	key := mustKey(t)
	cfg := LocalConfig()
	cfg.DHT = false
	other, err := New(context.Background(), cfg, "other-chain", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	connect(t, a.Host, other)
	ta, err := a.Join(TopicBids, acceptAll)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := ta.Subscribe()
	to, err := other.Join(TopicBids, acceptAll)
	if err != nil {
		t.Fatal(err)
	}
	if ta.ID() == to.ID() {
		t.Fatalf("two chains share topic id %s", ta.ID())
	}
	if err := to.Publish(context.Background(), []byte("wrong chain")); err != nil {
		t.Fatal(err)
	}
	if err := ta.Publish(context.Background(), []byte("right chain")); err != nil {
		t.Fatal(err)
	}
	if m := recvMessage(t, sa, 5*time.Second); string(m.Data) != "right chain" {
		t.Fatalf("got %q", m.Data)
	}
}

// A flood against a slow validator is dropped at the bounded queue and
// counted; it does not pile up.
func TestValidationQueueDropsWhenFull(t *testing.T) {
	a := newTestHost(t, func(c *Config) { c.DHT = false })
	b := newTestHost(t, func(c *Config) { c.DHT = false; c.ValidationQueue = 4 })
	connect(t, a.Host, b.Host)
	release := make(chan struct{})
	var inFlight, maxInFlight atomic.Int64
	slow := ValidatorFunc(func(ctx context.Context, from peer.ID, data []byte) (any, Result) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, Accept
	})
	ta, err := a.Join(TopicOffers, acceptAll)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Join(TopicOffers, slow)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "topic peers", func() bool { return len(ta.Peers()) == 1 && len(tb.Peers()) == 1 })
	const flood = 200
	for i := 0; i < flood; i++ {
		if err := ta.Publish(context.Background(), fmt.Appendf(nil, "offer %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	dropped := func() float64 {
		return metricSum(t, b.reg, "bourse_p2p_gossip_dropped_total", map[string]string{"topic": TopicOffers})
	}
	eventually(t, 10*time.Second, "drops to be counted", func() bool { return dropped() > 0 })
	close(release)
	if m := maxInFlight.Load(); m > 4 {
		t.Errorf("%d validations ran at once, cap is 4", m)
	}
	if d := dropped(); d >= flood {
		t.Errorf("dropped %v of %d: nothing was validated", d, flood)
	}
}
