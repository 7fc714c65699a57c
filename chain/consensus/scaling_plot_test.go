package consensus

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotDir is where the scaling benchmark saves its plots (the README
// shows them): docs/ at the module root.
var plotDir = filepath.Join("..", "..", "docs")

// plotScaling saves docs/consensus-scaling.png: block interval and p50
// finality against the number of validators, one line per link latency.
func plotScaling(rs []scaleResult) error {
	if len(rs) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = "Bourse consensus: simulated network, real signatures"
	p.X.Label.Text = "validators"
	p.Y.Label.Text = "milliseconds"
	p.Legend.Top = true
	p.Legend.Left = true
	type key struct{ lo, hi int64 }
	var order []key
	byLat := map[key][]scaleResult{}
	for _, r := range rs {
		k := key{r.MinLatMs, r.MaxLatMs}
		if _, ok := byLat[k]; !ok {
			order = append(order, k)
		}
		byLat[k] = append(byLat[k], r)
	}
	i := 0
	for _, k := range order {
		var interval, finality plotter.XYs
		for _, r := range byLat[k] {
			interval = append(interval, plotter.XY{X: float64(r.N), Y: r.IntervalMs})
			finality = append(finality, plotter.XY{X: float64(r.N), Y: r.FinalityMs})
		}
		lat := fmt.Sprintf("%d-%d ms", k.lo, k.hi)
		if k.lo == k.hi {
			lat = fmt.Sprintf("%d ms", k.lo)
		}
		for j, s := range []struct {
			name string
			xys  plotter.XYs
		}{{"block interval, links " + lat, interval}, {"finality p50, links " + lat, finality}} {
			l, pts, err := plotter.NewLinePoints(s.xys)
			if err != nil {
				return err
			}
			c := plotutil.Color(i)
			l.Color, pts.Color = c, c
			if j == 1 {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(l, pts)
			p.Legend.Add(s.name, l)
		}
		i++
	}
	goal, err := plotter.NewLine(plotter.XYs{{X: 4, Y: 1000}, {X: 100, Y: 1000}})
	if err != nil {
		return err
	}
	goal.Color = color.Gray{Y: 160}
	goal.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
	p.Add(goal)
	p.Legend.Add("goal: 100 validators final in 1 s", goal)
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, filepath.Join(plotDir, "consensus-scaling.png"))
}
