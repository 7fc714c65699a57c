package worker

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestCapacityReserve(t *testing.T) {
	total := Resources{CPU: 2000, MemoryMiB: 1024, DiskMiB: 100, GPUs: 0}
	cases := []struct {
		name string
		need Resources
		err  error
		why  string
	}{
		{"fits", Resources{CPU: 500, MemoryMiB: 128}, nil, ""},
		{"exactly all", total, nil, ""},
		{"too much cpu", Resources{CPU: 2001}, ErrInsufficientCapacity, "cpu 2001m > free 2000m"},
		{"too much memory", Resources{MemoryMiB: 2048}, ErrInsufficientCapacity, "memory 2048 MiB > free 1024 MiB"},
		{"a gpu", Resources{GPUs: 1}, ErrInsufficientCapacity, "gpus 1 > free 0"},
		{"negative", Resources{CPU: -1}, nil, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cp, err := NewCapacity(total)
			if err != nil {
				t.Fatal(err)
			}
			err = cp.Reserve(JobID{1}, c.need)
			if c.why == "" && err != nil {
				t.Fatalf("Reserve = %v", err)
			}
			if c.why != "" && (err == nil || !strings.Contains(err.Error(), c.why)) {
				t.Fatalf("Reserve = %v, want reason %q", err, c.why)
			}
			if c.err != nil && !errors.Is(err, c.err) {
				t.Fatalf("Reserve = %v, want %v", err, c.err)
			}
		})
	}
}

// TestCapacityInvariants: under random reserve/release, reserved is the sum
// of live reservations, never exceeds the total, and a refusal happens
// exactly when the request does not fit.
func TestCapacityInvariants(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 3))
	total := Resources{CPU: 4000, MemoryMiB: 4096, DiskMiB: 1000, GPUs: 1}
	cp, _ := NewCapacity(total)
	live := map[JobID]Resources{}
	for i := range 2000 {
		id := JobID{byte(rng.IntN(20))}
		if _, ok := live[id]; ok && rng.IntN(2) == 0 {
			cp.Release(id)
			delete(live, id)
		} else {
			need := Resources{CPU: rng.Int64N(2000), MemoryMiB: rng.Int64N(2000), DiskMiB: rng.Int64N(400), GPUs: rng.Int64N(2)}
			var sum Resources
			for _, r := range live {
				sum = sum.Add(r)
			}
			fits, _ := need.Fits(total.Sub(sum))
			_, dup := live[id]
			err := cp.Reserve(id, need)
			switch {
			case dup && !errors.Is(err, ErrDuplicateJob):
				t.Fatalf("seed %d step %d: duplicate reserve = %v", seed, i, err)
			case !dup && fits && err != nil:
				t.Fatalf("seed %d step %d: fitting reserve refused: %v", seed, i, err)
			case !dup && !fits && !errors.Is(err, ErrInsufficientCapacity):
				t.Fatalf("seed %d step %d: oversized reserve = %v", seed, i, err)
			}
			if err == nil {
				live[id] = need
			}
		}
		var sum Resources
		for _, r := range live {
			sum = sum.Add(r)
		}
		l := cp.Load()
		if l.Reserved != sum || l.Free != total.Sub(sum) || l.Running != len(live) {
			t.Fatalf("seed %d step %d: load %+v, live sum %+v (%d jobs)", seed, i, l, sum, len(live))
		}
		if ok, why := l.Reserved.Fits(total); !ok {
			t.Fatalf("seed %d step %d: over-reserved: %s", seed, i, why)
		}
		if u := l.Utilisation(); u < 0 || u > 1 {
			t.Fatalf("seed %d step %d: utilisation %v", seed, i, u)
		}
	}
}
