package market

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

func TestJain(t *testing.T) {
	cases := []struct {
		name  string
		loads []float64
		want  float64
	}{
		{"none", nil, 1},
		{"all idle", []float64{0, 0, 0}, 1},
		{"equal", []float64{3, 3, 3, 3}, 1},
		{"one carries all of four", []float64{0, 0, 5, 0}, 0.25},
		{"two of four", []float64{1, 1, 0, 0}, 0.5},
		{"1 and 3", []float64{1, 3}, 16.0 / 20},
		{"negative and NaN count as idle", []float64{-1, math.NaN(), 2}, 1.0 / 3},
		{"huge values do not overflow", []float64{math.MaxFloat64, math.MaxFloat64}, 1},
		{"infinity is the largest load", []float64{math.Inf(1), 0}, 0.5},
	}
	for _, c := range cases {
		if got := Jain(c.loads); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: Jain(%v) = %v, want %v", c.name, c.loads, got, c.want)
		}
	}
	// Always within [1/n, 1] and scale invariant.
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 5))
	for i := 0; i < 1000; i++ {
		n := 1 + r.IntN(50)
		xs := make([]float64, n)
		ys := make([]float64, n)
		k := 1 + r.Float64()*1000
		for j := range xs {
			xs[j] = r.Float64() * 100
			ys[j] = xs[j] * k
		}
		j := Jain(xs)
		if j < 1/float64(n)-1e-12 || j > 1+1e-12 || math.Abs(j-Jain(ys)) > 1e-9 {
			t.Fatalf("seed %d: Jain(%v) = %v (scaled %v) outside [1/n, 1] or not scale invariant", seed, xs, j, Jain(ys))
		}
	}
}

func TestComputeStats(t *testing.T) {
	a, b, idle := testKey(t, 1).Address(), testKey(t, 2).Address(), testKey(t, 3).Address()
	capacity := map[wallet.Address]Resources{a: {CPU: 1000}, b: {CPU: 2000}, idle: {CPU: 1000}}
	w := StatsWindow{From: 10, To: 20, FromTime: 0, ToTime: 10_000}
	records := []MatchRecord{
		// a: completed, busy 0..4000 with 1000m; paid 50.
		{Provider: a, Height: 10, MatchedAt: 0, SettledAt: 4000, Resources: Resources{CPU: 1000}, Paid: 50, Outcome: OutcomeCompleted},
		// a: failed after 1000 ms, 500m.
		{Provider: a, Height: 12, MatchedAt: 5000, SettledAt: 6000, Resources: Resources{CPU: 500}, Paid: 5, Outcome: OutcomeFailed},
		// b: still open since 8000: busy to the window's end.
		{Provider: b, Height: 20, MatchedAt: 8000, Resources: Resources{CPU: 2000}, Outcome: OutcomeOpen},
		// b: timed out; began before the window's time.
		{Provider: b, Height: 11, MatchedAt: -2000, SettledAt: 1000, Resources: Resources{CPU: 1000}, Outcome: OutcomeTimedOut},
		// outside the height range: ignored.
		{Provider: a, Height: 21, MatchedAt: 0, SettledAt: 9000, Resources: Resources{CPU: 1000}, Paid: 1000, Outcome: OutcomeCompleted},
		{Provider: a, Height: 9, MatchedAt: 0, SettledAt: 9000, Resources: Resources{CPU: 1000}, Paid: 1000, Outcome: OutcomeCompleted},
	}
	st := ComputeStats(records, capacity, w)
	if st.Jobs != 4 || len(st.Providers) != 3 {
		t.Fatalf("jobs %d, providers %d; want 4, 3", st.Jobs, len(st.Providers))
	}
	by := map[wallet.Address]ProviderStats{}
	for _, p := range st.Providers {
		by[p.Provider] = p
	}
	pa, pb, pi := by[a], by[b], by[idle]
	if pa.Assigned != 2 || pa.Completed != 1 || pa.Failed != 1 || pa.Earnings != 55 || pa.BusyCPU != 1000*4000+500*1000 || pa.MeanResult != 2500 {
		t.Errorf("provider a: %+v", pa)
	}
	if pb.Assigned != 2 || pb.Open != 1 || pb.TimedOut != 1 || pb.BusyCPU != 2000*2000+1000*1000 || pb.MeanResult != 0 {
		t.Errorf("provider b: %+v", pb)
	}
	if pi.Assigned != 0 || pi.Utilisation != 0 {
		t.Errorf("idle provider: %+v", pi)
	}
	ua, ub := 4.5e6/1e7, 5e6/2e7
	if math.Abs(pa.Utilisation-ua) > 1e-12 || math.Abs(pb.Utilisation-ub) > 1e-12 {
		t.Errorf("utilisation a %v b %v, want %v %v", pa.Utilisation, pb.Utilisation, ua, ub)
	}
	if want := Jain([]float64{ua, ub, 0}); math.Abs(st.Fairness-want) > 1e-12 {
		t.Errorf("fairness %v, want %v", st.Fairness, want)
	}
	// Without every capacity, fairness falls back to busy CPU time.
	delete(capacity, b)
	st = ComputeStats(records, capacity, w)
	if want := Jain([]float64{4.5e6, 5e6, 0}); math.Abs(st.Fairness-want) > 1e-12 {
		t.Errorf("fairness without b's capacity %v, want %v", st.Fairness, want)
	}
}
