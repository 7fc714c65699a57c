package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	lpmetrics "github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkGossipPropagation measures GossipSub delivery of 300-byte
// messages across 20 and 50 in-process hosts on 127.0.0.1 (100 and 200
// too with BOURSE_BENCH_FULL=1), each dialling 7
// random others, on the consensus topic (flood publish and validation on).
//
// latency: one op is one message published by a random host and awaited
// at every other host before the next. Reported:
//
//	p50_ms, p99_ms          single deliveries (publish -> receive)
//	reach95_p50_ms          median time for a message to reach 95% of hosts
//	reach95_within_200ms_%  share of messages that reached 95% within 200ms
//	lost_%                  deliveries still missing after 5s
//
// burst: b.N messages published back to back from random hosts; the op
// ends when every host has every message (or 10s pass without progress).
// Reported: msgs/s (messages fully delivered per second) and lost_%.
//
// load: b.N messages at a fixed network-wide rate (benchGossipLoad), with
// each host's bytes in and out counted: node_B/s, max_node_B/s and
// node_B/msg, which should stay flat as hosts grow.
//
// It saves docs/gossip-reach.png and docs/gossip-cost.png (plotGossip)
// from the sizes it ran.
//
// Run (make bench):
//
//	go test -run '^$' -bench BenchmarkGossipPropagation -benchtime 200x ./p2p/
func BenchmarkGossipPropagation(b *testing.B) {
	sizes := []int{20, 50}
	if os.Getenv("BOURSE_BENCH_FULL") != "" {
		sizes = append(sizes, 100, 200)
	}
	reach, cost := map[int]float64{}, map[int]gossipCost{}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("hosts=%d/latency", n), func(b *testing.B) { reach[n] = benchGossipLatency(b, n) })
		b.Run(fmt.Sprintf("hosts=%d/burst", n), func(b *testing.B) { benchGossipBurst(b, n) })
		b.Run(fmt.Sprintf("hosts=%d/load", n), func(b *testing.B) { cost[n] = benchGossipLoad(b, n) })
	}
	if err := plotGossip(sizes, reach, cost); err != nil {
		b.Logf("plot: %v", err)
	}
}

const benchMsgSize = 300

type gossipNet struct {
	hosts  []*testHost
	topics []*Topic
	// recv[seq] counts deliveries of seq at hosts other than its publisher;
	// at[seq*n+host] is the delivery time in unix nanos.
	recv []atomic.Int32
	at   []atomic.Int64
	sent []int64
}

func newGossipNet(b testing.TB, n, maxMsgs int, rng *rand.Rand) *gossipNet {
	return newGossipNetWith(b, n, maxMsgs, rng, nil)
}

// newGossipNetWith is newGossipNet with bw[i], if bw is not nil, counting
// the bytes host i sends and receives.
func newGossipNetWith(b testing.TB, n, maxMsgs int, rng *rand.Rand, bw []*lpmetrics.BandwidthCounter) *gossipNet {
	g := &gossipNet{recv: make([]atomic.Int32, maxMsgs), at: make([]atomic.Int64, maxMsgs*n), sent: make([]int64, maxMsgs)}
	v := ValidatorFunc(func(_ context.Context, _ peer.ID, data []byte) (any, Result) {
		if len(data) != benchMsgSize {
			return Reason("size"), Reject
		}
		seq := binary.BigEndian.Uint64(data)
		if seq >= uint64(maxMsgs) {
			return Reason("seq"), Reject
		}
		return int(seq), Accept
	})
	for i := 0; i < n; i++ {
		h := newTestHost(b, func(c *Config) {
			c.DHT = false
			c.Registerer = nil
			if bw != nil {
				bw[i] = lpmetrics.NewBandwidthCounter()
				c.extra = append(c.extra, libp2p.BandwidthReporter(bw[i]))
			}
		})
		tp, err := h.Join(TopicConsensus, v)
		if err != nil {
			b.Fatal(err)
		}
		sub, err := tp.Subscribe()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(sub.Cancel)
		g.hosts, g.topics = append(g.hosts, h), append(g.topics, tp)
		go func(i int) { // ends when the subscription closes
			for m := range sub.C {
				if m.Local {
					continue
				}
				seq := m.Decoded.(int)
				g.at[seq*n+i].Store(time.Now().UnixNano())
				g.recv[seq].Add(1)
			}
		}(i)
	}
	for i := range g.hosts {
		for _, j := range rng.Perm(n)[:7] {
			if j != i && len(g.hosts[i].Libp2p().Network().ConnsToPeer(g.hosts[j].ID())) == 0 {
				connect(b, g.hosts[i].Host, g.hosts[j].Host)
			}
		}
	}
	eventually(b, 60*time.Second, "meshes everywhere", func() bool {
		for _, tp := range g.topics {
			if peers := len(tp.Peers()); peers < 4 || len(tp.MeshPeers()) < min(peers, 5) {
				return false
			}
		}
		return true
	})
	return g
}

func (g *gossipNet) publish(b testing.TB, seq, from int) {
	msg := make([]byte, benchMsgSize)
	binary.BigEndian.PutUint64(msg, uint64(seq))
	g.sent[seq] = time.Now().UnixNano()
	if err := g.topics[from].Publish(context.Background(), msg); err != nil {
		b.Fatalf("publish %d: %v", seq, err)
	}
}

// await waits until seq reached all other hosts or timeout passed.
func (g *gossipNet) await(seq int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	want := int32(len(g.hosts) - 1)
	for g.recv[seq].Load() < want {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
	return true
}

const benchWarmup = 20

// warmGossipNet builds the network and pushes a few messages through it.
func warmGossipNet(b *testing.B, n, msgs int, rng *rand.Rand) (*gossipNet, int) {
	g := newGossipNet(b, n, benchWarmup+msgs, rng)
	seq := 0
	for ; seq < benchWarmup; seq++ {
		g.publish(b, seq, rng.IntN(n))
		g.await(seq, 5*time.Second)
	}
	return g, seq
}

func benchGossipLatency(b *testing.B, n int) float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	g, seq := warmGossipNet(b, n, b.N, rng)
	b.ResetTimer()
	first := seq
	lost := 0
	for i := 0; i < b.N; i, seq = i+1, seq+1 {
		g.publish(b, seq, rng.IntN(n))
		if !g.await(seq, 5*time.Second) {
			lost += n - 1 - int(g.recv[seq].Load())
		}
	}
	b.StopTimer()

	var lat []float64
	var reach95 []float64
	within := 0
	need := (95*(n-1) + 99) / 100
	for s := first; s < seq; s++ {
		var mine []float64
		for h := 0; h < n; h++ {
			if at := g.at[s*n+h].Load(); at != 0 {
				mine = append(mine, float64(at-g.sent[s])/1e6)
			}
		}
		slices.Sort(mine)
		lat = append(lat, mine...)
		if len(mine) >= need {
			r := mine[need-1]
			reach95 = append(reach95, r)
			if r <= 200 {
				within++
			}
		}
	}
	slices.Sort(lat)
	slices.Sort(reach95)
	b.ReportMetric(pct(lat, 0.50), "p50_ms")
	b.ReportMetric(pct(lat, 0.99), "p99_ms")
	b.ReportMetric(pct(reach95, 0.50), "reach95_p50_ms")
	b.ReportMetric(100*float64(within)/float64(b.N), "reach95_within_200ms_%")
	b.ReportMetric(100*float64(lost)/float64(b.N*(n-1)), "lost_%")
	return pct(reach95, 0.50)
}

func benchGossipBurst(b *testing.B, n int) {
	rng := rand.New(rand.NewPCG(3, 4))
	g, seq := warmGossipNet(b, n, b.N, rng)
	b.ResetTimer()
	start := time.Now()
	first := seq
	for i := 0; i < b.N; i, seq = i+1, seq+1 {
		g.publish(b, seq, rng.IntN(n))
	}
	// Wait for completion, giving up after 10s without progress.
	want := int64(b.N * (n - 1))
	var got, last int64
	lastProgress := time.Now()
	for {
		got = 0
		for s := first; s < seq; s++ {
			got += int64(g.recv[s].Load())
		}
		if got == want || time.Since(lastProgress) > 10*time.Second {
			break
		}
		if got != last {
			last, lastProgress = got, time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	if got != want {
		elapsed = lastProgress.Sub(start)
	}
	b.StopTimer()
	complete := 0
	for s := first; s < seq; s++ {
		if int(g.recv[s].Load()) == n-1 {
			complete++
		}
	}
	b.ReportMetric(float64(complete)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(100*float64(want-got)/float64(want), "lost_%")
}

func pct(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
