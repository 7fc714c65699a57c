package p2p

import (
	"fmt"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	lpmetrics "github.com/libp2p/go-libp2p/core/metrics"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// gossipLoadRate is the message rate of the load benchmark: the same
// for every network size, so what one node pays per second should not
// grow with the number of hosts.
const gossipLoadRate = 50 // messages per second, network-wide

// gossipCost is what the load benchmark measured per host.
type gossipCost struct {
	MeanBytesPerS, MaxBytesPerS float64 // sent plus received, per host
	BytesPerMsg, MaxBytesPerMsg float64 // the same per message published
}

// benchGossipLoad publishes b.N messages of benchMsgSize bytes from random
// hosts at gossipLoadRate per second, waits for them to arrive, and
// reports what each host sent and received meanwhile, counted by
// libp2p's bandwidth reporter on every stream (GossipSub's mesh pushes,
// IHAVE/IWANT gossip, heartbeats, identify and ping): the mean and the
// largest per host, in bytes per second and per message. GossipSub
// pushes a message to a host's mesh peers (degree 6 to 12) and gossips
// its id to a few more, so per-host cost is set by those degrees, not by
// the number of hosts.
//
//	go test -run '^$' -bench 'GossipPropagation/hosts=.*/load' -benchtime 250x ./p2p
func benchGossipLoad(b *testing.B, n int) gossipCost {
	rng := rand.New(rand.NewPCG(5, 6))
	bw := make([]*lpmetrics.BandwidthCounter, n)
	g := newGossipNetWith(b, n, benchWarmup+b.N, rng, bw)
	seq := 0
	for ; seq < benchWarmup; seq++ {
		g.publish(b, seq, rng.IntN(n))
		g.await(seq, 5*time.Second)
	}
	before := make([]lpmetrics.Stats, n)
	for i, c := range bw {
		before[i] = c.GetBandwidthTotals()
	}
	b.ResetTimer()
	start := time.Now()
	tick := time.Second / gossipLoadRate
	for i := 0; i < b.N; i, seq = i+1, seq+1 {
		if d := time.Until(start.Add(time.Duration(i) * tick)); d > 0 {
			time.Sleep(d)
		}
		g.publish(b, seq, rng.IntN(n))
	}
	for s := benchWarmup; s < seq; s++ {
		g.await(s, 5*time.Second)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	per := make([]float64, n)
	var sum float64
	for i, c := range bw {
		t := c.GetBandwidthTotals()
		per[i] = float64(t.TotalIn-before[i].TotalIn+t.TotalOut-before[i].TotalOut) / elapsed.Seconds()
		sum += per[i]
	}
	out := gossipCost{MeanBytesPerS: sum / float64(n), MaxBytesPerS: slices.Max(per)}
	msgsPerS := float64(b.N) / elapsed.Seconds()
	out.BytesPerMsg, out.MaxBytesPerMsg = out.MeanBytesPerS/msgsPerS, out.MaxBytesPerS/msgsPerS
	b.ReportMetric(out.MeanBytesPerS, "node_B/s")
	b.ReportMetric(out.MaxBytesPerS, "max_node_B/s")
	b.ReportMetric(out.BytesPerMsg, "node_B/msg")
	return out
}

// plotGossip saves docs/gossip-reach.png (time for a message to reach
// 95% of hosts) and docs/gossip-cost.png (what gossip costs one host per
// message published, at a fixed message rate), against the number of
// hosts. Per message rather than per second: on 2 cores the largest
// networks cannot keep the publishing rate, and the cost per message is
// what must stay flat.
func plotGossip(sizes []int, reach map[int]float64, cost map[int]gossipCost) error {
	var r, mean, most plotter.XYs
	for _, n := range sizes {
		if v, ok := reach[n]; ok {
			r = append(r, plotter.XY{X: float64(n), Y: v})
		}
		if c, ok := cost[n]; ok {
			mean = append(mean, plotter.XY{X: float64(n), Y: c.BytesPerMsg / 1024})
			most = append(most, plotter.XY{X: float64(n), Y: c.MaxBytesPerMsg / 1024})
		}
	}
	dir := filepath.Join("..", "docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sub := fmt.Sprintf("%d-byte messages, in-process hosts on one 2-core machine", benchMsgSize)
	if len(r) > 0 {
		if err := linePlot("Bourse gossip: time to reach 95% of hosts ("+sub+")", "milliseconds (p50)",
			[]series{{"reach 95% of hosts, p50", r, false}}, 200, "200 ms", filepath.Join(dir, "gossip-reach.png")); err != nil {
			return err
		}
	}
	if len(mean) > 0 {
		return linePlot(fmt.Sprintf("Bourse gossip: bytes per host per message (%s, %d/s offered)", sub, gossipLoadRate), "KiB in+out per message",
			[]series{{"mean over hosts", mean, false}, {"largest host", most, true}}, 0, "", filepath.Join(dir, "gossip-cost.png"))
	}
	return nil
}

type series struct {
	name   string
	xys    plotter.XYs
	dashed bool
}

// linePlot saves one line per series against hosts, from zero, with a
// dotted goal line at goal if goal > 0.
func linePlot(title, ylabel string, ss []series, goal float64, goalName, path string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "hosts"
	p.Y.Label.Text = ylabel
	p.Legend.Top, p.Legend.Left = true, true
	top, lo, hi := goal, 0.0, 0.0
	for i, s := range ss {
		l, pts, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return err
		}
		c := plotutil.Color(i)
		l.Color, pts.Color = c, c
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l, pts)
		p.Legend.Add(s.name, l)
		for _, xy := range s.xys {
			top = max(top, xy.Y)
			if lo == 0 || xy.X < lo {
				lo = xy.X
			}
			hi = max(hi, xy.X)
		}
	}
	if goal > 0 {
		g, err := plotter.NewLine(plotter.XYs{{X: lo, Y: goal}, {X: hi, Y: goal}})
		if err != nil {
			return err
		}
		g.Color = color.Gray{Y: 160}
		g.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
		p.Add(g)
		p.Legend.Add(goalName, g)
	}
	p.Y.Min, p.Y.Max = 0, top*1.4 // from zero, with room for the legend
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}
