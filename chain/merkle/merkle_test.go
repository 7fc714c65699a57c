package merkle

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

// reference recomputes the root from scratch, the slow obvious way.
func reference(kv map[string][]byte) [32]byte {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t := New()
	for _, k := range keys {
		t.Update([]Change{{Key: []byte(k), Value: kv[k]}})
	}
	return t.Root()
}

func TestIncrementalMatchesFromScratch(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	tree := New()
	kv := map[string][]byte{}
	for round := 0; round < 40; round++ {
		var changes []Change
		for i := 0; i < 1+r.IntN(30); i++ {
			k := fmt.Sprintf("k%d", r.IntN(200))
			if r.IntN(4) == 0 {
				changes = append(changes, Change{Key: []byte(k)})
				delete(kv, k)
			} else {
				v := []byte(fmt.Sprintf("v%d", r.Uint32()))
				changes = append(changes, Change{Key: []byte(k), Value: v})
				kv[k] = v
			}
		}
		p := tree.Preview(changes)
		before := tree.Root()
		if tree.Root() != before {
			t.Fatalf("seed %d: Preview mutated the tree", seed)
		}
		tree.Apply(p)
		if got, want := tree.Root(), reference(kv); got != want {
			t.Fatalf("seed %d round %d: incremental root %x, from scratch %x", seed, round, got, want)
		}
		if tree.Len() != len(kv) {
			t.Fatalf("seed %d: Len %d, want %d", seed, tree.Len(), len(kv))
		}
	}
}

func TestRootProperties(t *testing.T) {
	empty := New().Root()
	tests := []struct {
		name string
		ops  [][]Change
		same bool // root equals the empty root
	}{
		{"insert then delete returns to empty", [][]Change{{{Key: []byte("a"), Value: []byte("1")}}, {{Key: []byte("a")}}}, true},
		{"delete of missing key is a no-op", [][]Change{{{Key: []byte("nope")}}}, true},
		{"empty value is a value, not a delete", [][]Change{{{Key: []byte("a"), Value: []byte{}}}}, false},
		{"one key", [][]Change{{{Key: []byte("a"), Value: []byte("1")}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New()
			for _, op := range tc.ops {
				tr.Update(op)
			}
			if (tr.Root() == empty) != tc.same {
				t.Fatalf("root == empty root: %v, want %v", tr.Root() == empty, tc.same)
			}
		})
	}
	a, b := New(), New()
	a.Update([]Change{{Key: []byte("x"), Value: []byte("1")}, {Key: []byte("y"), Value: []byte("2")}})
	b.Update([]Change{{Key: []byte("y"), Value: []byte("2")}})
	b.Update([]Change{{Key: []byte("x"), Value: []byte("1")}})
	if a.Root() != b.Root() {
		t.Fatal("root depends on insertion order")
	}
	c := New()
	c.Update([]Change{{Key: []byte("x"), Value: []byte("2")}, {Key: []byte("y"), Value: []byte("1")}})
	if c.Root() == a.Root() {
		t.Fatal("swapping values did not change the root")
	}
}

// BenchmarkStateRootUpdate measures the commitment cost per changed key in
// a state of 100,000 keys, 1,000 keys changed per block.
func BenchmarkStateRootUpdate(b *testing.B) {
	tr := New()
	const n = 100000
	var all []Change
	for i := 0; i < n; i++ {
		all = append(all, Change{Key: []byte(fmt.Sprintf("a/%d", i)), Value: []byte("0123456789abcdef0123456789abcdef")})
	}
	tr.Update(all)
	const perBlock = 1000
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch := make([]Change, perBlock)
		for j := range ch {
			ch[j] = Change{Key: []byte(fmt.Sprintf("a/%d", r.IntN(n))), Value: []byte(fmt.Sprintf("%032d", i))}
		}
		tr.Update(ch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perBlock), "ns/key")
}

// denseReference is the tree as first specified: every bucket hashed,
// every inner node of the complete binary tree computed, nothing stored
// sparsely. It shares only the hash functions with Tree.
func denseReference(kv map[string][]byte) [32]byte {
	buckets := make([][]entry, Buckets)
	for k, v := range kv {
		kh := KeyHash([]byte(k))
		b := bucketOf(kh)
		buckets[b] = append(buckets[b], entry{keyHash: kh, leafHash: LeafHash([]byte(k), v)})
	}
	nodes := make([][32]byte, 2*Buckets)
	for i, es := range buckets {
		sort.Slice(es, func(a, b int) bool { return string(es[a].keyHash[:]) < string(es[b].keyHash[:]) })
		nodes[Buckets+i] = hashBucket(es)
	}
	for i := Buckets - 1; i >= 1; i-- {
		nodes[i] = inner(nodes[2*i], nodes[2*i+1])
	}
	return nodes[1]
}

// TestSparseTreeTurnsDenseAtTheBoundWithTheSameRoots grows a tree one key
// at a time until it keeps every node, checks that it turned dense exactly
// when the nodes it stores reached denseAt, and that roots agree with the
// dense reference before, at and after the change, and as keys are deleted.
func TestSparseTreeTurnsDenseAtTheBoundWithTheSameRoots(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d", seed)
	tree := New()
	if tree.Root() != denseReference(nil) {
		t.Fatal("empty root differs from the dense reference")
	}
	kv := map[string][]byte{}
	check := func(when string) {
		t.Helper()
		if got, want := tree.Root(), denseReference(kv); got != want {
			t.Fatalf("seed %d, %s (%d keys): root %x, dense reference %x", seed, when, len(kv), got, want)
		}
	}
	for i := 0; tree.dense == nil; i++ {
		if len(tree.sparse) >= denseAt {
			t.Fatalf("sparse tree stores %d nodes, bound %d", len(tree.sparse), denseAt)
		}
		k := fmt.Sprintf("key-%d-%d", i, r.Uint32())
		v := []byte{byte(i)}
		kv[k] = v
		tree.Update([]Change{{Key: []byte(k), Value: v}})
		if i%4096 == 0 {
			check("growing sparse")
		}
	}
	check("just turned dense")
	stored := 0
	for n := 1; n < 2*Buckets; n++ {
		if tree.dense[n] != emptyAt[levelOf(n)] {
			stored++
		}
	}
	if stored < denseAt {
		t.Fatalf("turned dense at %d non-empty nodes, bound %d", stored, denseAt)
	}
	var changes []Change
	for k := range kv {
		if r.IntN(2) == 0 {
			changes = append(changes, Change{Key: []byte(k)})
			delete(kv, k)
		}
	}
	tree.Update(changes)
	check("half deleted")
	if tree.Len() != len(kv) {
		t.Fatalf("Len %d, want %d", tree.Len(), len(kv))
	}
}

// TestSparseTreeForgetsDeletedNodes: deleting every key leaves the empty
// tree's root and stores no node, so a small state's tree stays small.
func TestSparseTreeForgetsDeletedNodes(t *testing.T) {
	tree := New()
	var add, del []Change
	for i := range 300 {
		k := []byte(fmt.Sprintf("k%d", i))
		add = append(add, Change{Key: k, Value: []byte("v")})
		del = append(del, Change{Key: k})
	}
	tree.Update(add)
	if tree.Root() == New().Root() || len(tree.sparse) == 0 {
		t.Fatal("300 keys stored no node")
	}
	tree.Update(del)
	if tree.Root() != New().Root() || len(tree.sparse) != 0 || len(tree.buckets) != 0 {
		t.Fatalf("after deleting every key: %d nodes, %d buckets stored", len(tree.sparse), len(tree.buckets))
	}
}

// Build, from leaves in random key order with some keys given twice (the later
// wins), is the tree an empty tree updated with the same keys reaches:
// the same root, and the same roots after further updates. Sizes cross
// the sparse-to-dense bound.
func TestBuildFromLeavesMatchesUpdates(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d", seed)
	for _, n := range []int{0, 1, 2, 100, 5_000, 70_000} {
		kv := map[string][]byte{}
		var leaves []Leaf
		for range n {
			k := fmt.Sprintf("k%d", r.IntN(2*n+1))
			v := fmt.Appendf(nil, "v%d", r.Uint64())
			kv[k] = v
			leaves = append(leaves, NewLeaf([]byte(k), v))
		}
		built := Build(leaves)
		want := New()
		var all []Change
		for k, v := range kv {
			all = append(all, Change{Key: []byte(k), Value: v})
		}
		want.Update(all)
		if built.Root() != want.Root() || built.Len() != len(kv) {
			t.Fatalf("n=%d: built root %x (%d keys), updated %x (%d keys)", n, built.Root(), built.Len(), want.Root(), len(kv))
		}
		more := []Change{{Key: []byte("k1"), Value: nil}, {Key: []byte("new"), Value: []byte("x")}, {Key: []byte("k0"), Value: []byte("y")}}
		if built.Update(more) != want.Update(more) {
			t.Fatalf("n=%d: roots differ after a further update", n)
		}
	}
}
