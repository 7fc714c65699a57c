package chain

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/chain/merkle"
)

// scanModel is the reference for State.scan and overlay.scan: a plain map
// per layer (nil values in overlay layers are deletions), read through
// from the top layer down, scanned by sorting every visible key.
type scanModel struct {
	layers []map[string][]byte // layers[0] is the State
}

func (m *scanModel) visible() map[string][]byte {
	out := map[string][]byte{}
	for _, l := range m.layers {
		for k, v := range l {
			if v == nil {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
	}
	return out
}

func (m *scanModel) scan(prefix, from string, limit int) []string {
	var keys []string
	for k := range m.visible() {
		if strings.HasPrefix(k, prefix) && k >= from {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if limit >= 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	return keys
}

// collect scans r and returns "key=value" entries, stopping after limit
// (-1: never).
func collect(r reader, prefix, from string, limit int) []string {
	var out []string
	r.scan(prefix, from, func(k string, v []byte) bool {
		out = append(out, k+"="+string(v))
		return limit < 0 || len(out) < limit
	})
	return out
}

func (m *scanModel) expect(prefix, from string, limit int) []string {
	vis := m.visible()
	var out []string
	for _, k := range m.scan(prefix, from, limit) {
		out = append(out, k+"="+string(vis[k]))
	}
	return out
}

// randKey draws from a small alphabet with shared prefixes, so prefixes,
// "from" bounds and the 128-record chunks of both scans overlap a lot.
func randKey(rng *rand.Rand) string {
	pfx := []string{"a/", "a/b", "ab/", "b/", ""}[rng.IntN(5)]
	n := 1 + rng.IntN(3)
	var sb strings.Builder
	sb.WriteString(pfx)
	for range n {
		sb.WriteByte("\x00\x01xyz\xff"[rng.IntN(6)])
	}
	return sb.String()
}

func randBound(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return ""
	}
	k := randKey(rng)
	return k[:rng.IntN(len(k)+1)]
}

// TestOverlayScanMatchesSortedReference checks the ordered scans that every
// index (stakes, unbondings, deadlines) relies on for consensus: State.scan
// across its 128-record chunks and overlay.scan merging nested overlays of
// puts and deletes, after mergeInto and after Apply-like installs, must
// visit exactly the visible keys, in order, from any bound, and stop when
// told. A different order or a missed key would make a validator compute
// another state root than the proposer.
func TestOverlayScanMatchesSortedReference(t *testing.T) {
	rounds := 25
	if testing.Short() {
		rounds = 8
	}
	for seed := range rounds {
		rng := rand.New(rand.NewPCG(uint64(seed), 13))
		// State: a few hundred records, so scans cross several chunks.
		base := map[string][]byte{}
		for range 100 + rng.IntN(600) {
			base[randKey(rng)] = []byte(fmt.Sprint("s", rng.IntN(1000)))
		}
		st, err := StateFromRecords(base)
		if err != nil {
			t.Fatal(err)
		}
		// Mutate the State as Apply does, so its btree sees deletes too.
		var ch []merkle.Change
		for range rng.IntN(200) {
			k := randKey(rng)
			if rng.IntN(2) == 0 {
				ch = append(ch, merkle.Change{Key: []byte(k)})
				delete(base, k)
			} else {
				v := []byte(fmt.Sprint("S", rng.IntN(1000)))
				ch = append(ch, merkle.Change{Key: []byte(k), Value: v})
				base[k] = v
			}
		}
		slices.SortFunc(ch, func(a, b merkle.Change) int { return strings.Compare(string(a.Key), string(b.Key)) })
		ch = slices.CompactFunc(ch, func(a, b merkle.Change) bool { return string(a.Key) == string(b.Key) })
		// Dedup kept the first change of a key; make the model agree.
		for _, c := range ch {
			if c.Value == nil {
				delete(base, string(c.Key))
			} else {
				base[string(c.Key)] = c.Value
			}
		}
		st.mu.Lock()
		if err := st.installLocked(ch, nil, nil); err != nil {
			st.mu.Unlock()
			t.Fatal(err)
		}
		st.mu.Unlock()

		model := &scanModel{layers: []map[string][]byte{base}}
		var stack []*overlay
		top := func() reader {
			if len(stack) == 0 {
				return st
			}
			return stack[len(stack)-1]
		}
		check := func(step string) {
			t.Helper()
			for range 8 {
				prefix, from := randBound(rng), randBound(rng)
				limit := -1
				if rng.IntN(3) == 0 {
					limit = 1 + rng.IntN(300)
				}
				got, want := collect(top(), prefix, from, limit), model.expect(prefix, from, limit)
				if !slices.Equal(got, want) {
					i := 0
					for i < min(len(got), len(want)) && got[i] == want[i] {
						i++
					}
					t.Fatalf("seed %d, %s, depth %d: scan(%q, %q, limit %d): %d records, want %d; first difference at %d: got %q, want %q",
						seed, step, len(stack), prefix, from, limit, len(got), len(want), i, got[i:min(i+3, len(got))], want[i:min(i+3, len(want))])
				}
			}
			// Point reads agree too.
			vis := model.visible()
			for range 20 {
				k := randKey(rng)
				v, ok := top().get(k)
				wv, wok := vis[k]
				if ok != wok || string(v) != string(wv) {
					t.Fatalf("seed %d, %s: get(%q) = %q %v, want %q %v", seed, step, k, v, ok, wv, wok)
				}
			}
		}
		check("state")
		for op := range 40 {
			switch r := rng.IntN(10); {
			case r < 2 && len(stack) < 4: // push an overlay
				stack = append(stack, newOverlay(top()))
				model.layers = append(model.layers, map[string][]byte{})
			case r < 3 && len(stack) > 0: // merge the top overlay into its parent
				if len(stack) == 1 {
					continue // the bottom overlay's parent is the State: Apply's job
				}
				o := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				o.mergeInto(stack[len(stack)-1])
				l := model.layers[len(model.layers)-1]
				model.layers = model.layers[:len(model.layers)-1]
				for k, v := range l {
					model.layers[len(model.layers)-1][k] = v
				}
			case r < 4 && len(stack) > 0: // discard the top overlay
				stack = stack[:len(stack)-1]
				model.layers = model.layers[:len(model.layers)-1]
			case len(stack) > 0: // bursts of writes, often more than a chunk
				o, l := stack[len(stack)-1], model.layers[len(model.layers)-1]
				for range rng.IntN(300) {
					k := randKey(rng)
					if rng.IntN(3) == 0 {
						o.del(k)
						l[k] = nil
					} else {
						v := []byte(fmt.Sprint("o", op, "-", rng.IntN(1000)))
						o.write(k, v)
						l[k] = v
					}
				}
			default:
				continue
			}
			check(fmt.Sprintf("op %d", op))
		}
	}
}

// TestStateScanCrossesChunkBoundaries pins State.scan at its 128-record
// chunk: exactly 127, 128, 129, 256 and 257 records under a prefix, with
// neighbours on both sides, all visited once and in order, from every
// bound around the chunk edges.
func TestStateScanCrossesChunkBoundaries(t *testing.T) {
	for _, n := range []int{0, 1, scanChunk - 1, scanChunk, scanChunk + 1, 2 * scanChunk, 2*scanChunk + 1} {
		recs := map[string][]byte{"p": []byte("before"), "q/": []byte("after"), "p/": []byte("exact")}
		var keys []string
		for i := range n {
			k := fmt.Sprintf("p/%04d", i)
			recs[k] = []byte(k)
			keys = append(keys, k)
		}
		keys = append([]string{"p/"}, keys...)
		st, err := StateFromRecords(recs)
		if err != nil {
			t.Fatal(err)
		}
		o := newOverlay(newOverlay(st)) // empty overlays read through
		for _, r := range []reader{st, o} {
			for _, skip := range []int{0, 1, scanChunk - 1, scanChunk, scanChunk + 1} {
				if skip > len(keys) {
					continue
				}
				from := ""
				if skip > 0 {
					from = keys[skip-1] + "\x00"
				}
				var got []string
				r.scan("p/", from, func(k string, _ []byte) bool { got = append(got, k); return true })
				if !slices.Equal(got, keys[skip:]) {
					t.Fatalf("%d records, %T, from %q: got %d keys, want %d", n, r, from, len(got), len(keys)-skip)
				}
			}
			// Stopping exactly at a chunk edge visits no more.
			var got int
			r.scan("p/", "", func(string, []byte) bool { got++; return got < scanChunk })
			if want := min(scanChunk, len(keys)); got != want {
				t.Fatalf("%d records, %T: stopped after %d, want %d", n, r, got, want)
			}
		}
	}
}
