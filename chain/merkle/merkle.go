// Package merkle is the state commitment of the Bourse chain: a fixed-fanout
// bucketed Merkle tree. Every key lands in one of 65,536 buckets by the first
// two bytes of sha256(key); a bucket's hash covers its entries sorted by key
// hash; a complete binary tree of sha256 over the bucket hashes gives the
// root. Updating k keys rehashes k buckets and at most 16·k inner nodes, so
// the cost of a block's commitment grows with what it changed, not with the
// size of the state.
//
// The tree is pure and not safe for concurrent mutation; Root and Preview are
// read-only and may run concurrently with each other.
package merkle

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"slices"
	"sort"
)

// Depth is the number of levels above the buckets; Buckets = 1<<Depth.
const (
	Depth   = 16
	Buckets = 1 << Depth
)

var (
	leafTag   = []byte{0x00}
	bucketTag = []byte{0x01}
	innerTag  = []byte{0x02}
)

type entry struct {
	keyHash  [32]byte
	leafHash [32]byte
}

// Tree is the bucketed Merkle tree. The zero value is not ready; use New.
//
// A small state leaves most of the 65,536 buckets empty, and every node
// above only empty buckets has the hash of an empty subtree of its level.
// The tree therefore stores only the nodes that differ from that (in a map)
// until they outnumber the buckets; from then on it keeps every node in
// one array (4 MiB), which is smaller than the map at that size. The root
// does not depend on which form holds the nodes.
type Tree struct {
	buckets map[int][]entry  // the non-empty buckets, each sorted by key hash
	sparse  map[int][32]byte // heap layout: 1 is the root, Buckets+i bucket i; nil once dense
	dense   [][32]byte       // every node, once len(sparse) reached denseAt
}

// denseAt is the number of stored nodes at which the tree turns dense.
const denseAt = Buckets

var emptyBucket = sha256.Sum256(bucketTag)

// emptyAt[l] is the hash of an empty subtree whose root is at level l
// (level 0 is the root, level Depth the buckets).
var emptyAt = func() (e [Depth + 1][32]byte) {
	e[Depth] = emptyBucket
	for l := Depth - 1; l >= 0; l-- {
		e[l] = inner(e[l+1], e[l+1])
	}
	return e
}()

// levelOf is the level of node n in the heap layout.
func levelOf(n int) int { return bits.Len(uint(n)) - 1 }

// New returns the tree of the empty state.
func New() *Tree {
	return &Tree{buckets: map[int][]entry{}, sparse: map[int][32]byte{}}
}

func (t *Tree) node(n int) [32]byte {
	if t.dense != nil {
		return t.dense[n]
	}
	if h, ok := t.sparse[n]; ok {
		return h
	}
	return emptyAt[levelOf(n)]
}

func (t *Tree) setNode(n int, h [32]byte) {
	if t.dense != nil {
		t.dense[n] = h
		return
	}
	if h == emptyAt[levelOf(n)] {
		delete(t.sparse, n)
		return
	}
	t.sparse[n] = h
	if len(t.sparse) >= denseAt {
		dense := make([][32]byte, 2*Buckets)
		for i := 1; i < 2*Buckets; i++ {
			dense[i] = t.node(i)
		}
		t.dense, t.sparse = dense, nil
	}
}

// KeyHash is sha256(key); its first two bytes select the bucket.
func KeyHash(key []byte) [32]byte { return sha256.Sum256(key) }

// LeafHash commits to one key/value pair: sha256(0x00 ‖ len(key) ‖ key ‖ value).
func LeafHash(key, value []byte) [32]byte {
	h := sha256.New()
	h.Write(leafTag)
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(key)))
	h.Write(l[:])
	h.Write(key)
	h.Write(value)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func bucketOf(kh [32]byte) int { return int(binary.BigEndian.Uint16(kh[:2])) }

func inner(l, r [32]byte) [32]byte {
	var buf [1 + 64]byte
	buf[0] = innerTag[0]
	copy(buf[1:], l[:])
	copy(buf[33:], r[:])
	return sha256.Sum256(buf[:])
}

func hashBucket(es []entry) [32]byte {
	if len(es) == 0 {
		return emptyBucket
	}
	h := sha256.New()
	h.Write(bucketTag)
	for i := range es {
		h.Write(es[i].keyHash[:])
		h.Write(es[i].leafHash[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Root is the current root hash.
func (t *Tree) Root() [32]byte { return t.node(1) }

// Change is one update: Value nil deletes Key.
type Change struct {
	Key   []byte
	Value []byte
}

// Pending is a computed but not yet installed update (see Preview).
type Pending struct {
	root    [32]byte
	buckets map[int][]entry
	nodes   map[int][32]byte
}

// Root is the root the tree will have once the update is applied.
func (p *Pending) Root() [32]byte { return p.root }

// Preview computes the root after changes without modifying t. Later changes
// to the same key win. Apply installs the result.
func (t *Tree) Preview(changes []Change) *Pending {
	p := &Pending{buckets: map[int][]entry{}, nodes: map[int][32]byte{}}
	for _, c := range changes {
		kh := KeyHash(c.Key)
		b := bucketOf(kh)
		es, ok := p.buckets[b]
		if !ok {
			es = append([]entry(nil), t.buckets[b]...)
		}
		i := sort.Search(len(es), func(i int) bool { return bytes.Compare(es[i].keyHash[:], kh[:]) >= 0 })
		found := i < len(es) && es[i].keyHash == kh
		switch {
		case c.Value == nil && found:
			es = append(es[:i], es[i+1:]...)
		case c.Value == nil:
		case found:
			es[i].leafHash = LeafHash(c.Key, c.Value)
		default:
			es = append(es, entry{})
			copy(es[i+1:], es[i:])
			es[i] = entry{keyHash: kh, leafHash: LeafHash(c.Key, c.Value)}
		}
		p.buckets[b] = es
	}
	t.hashNodes(p)
	return p
}

// hashNodes fills p.nodes and p.root from p.buckets and the tree.
func (t *Tree) hashNodes(p *Pending) {
	level := make(map[int]struct{}, len(p.buckets))
	for b, es := range p.buckets {
		n := Buckets + b
		p.nodes[n] = hashBucket(es)
		level[n/2] = struct{}{}
	}
	get := func(n int) [32]byte {
		if h, ok := p.nodes[n]; ok {
			return h
		}
		return t.node(n)
	}
	for len(level) > 0 {
		next := make(map[int]struct{}, len(level))
		for n := range level {
			p.nodes[n] = inner(get(2*n), get(2*n+1))
			if n > 1 {
				next[n/2] = struct{}{}
			}
		}
		level = next
	}
	p.root = get(1)
}

// Leaf is one key's commitment: its key hash and its leaf hash.
type Leaf struct{ KeyHash, Hash [32]byte }

// NewLeaf is the commitment to key holding value.
func NewLeaf(key, value []byte) Leaf { return Leaf{KeyHash(key), LeafHash(key, value)} }

// Build returns the tree of leaves, each key once (a later leaf of the
// same key wins), in one pass: for loading a stored state without holding
// all its values at once. It sorts leaves in place. Its root equals the
// root of an empty tree updated with the same keys and values.
func Build(leaves []Leaf) *Tree {
	slices.SortStableFunc(leaves, func(a, b Leaf) int { return bytes.Compare(a.KeyHash[:], b.KeyHash[:]) })
	p := &Pending{buckets: map[int][]entry{}, nodes: map[int][32]byte{}}
	for i := 0; i < len(leaves); {
		b := bucketOf(leaves[i].KeyHash)
		var es []entry
		for ; i < len(leaves) && bucketOf(leaves[i].KeyHash) == b; i++ {
			if n := len(es); n > 0 && es[n-1].keyHash == leaves[i].KeyHash {
				es[n-1].leafHash = leaves[i].Hash
				continue
			}
			es = append(es, entry{keyHash: leaves[i].KeyHash, leafHash: leaves[i].Hash})
		}
		p.buckets[b] = es
	}
	t := New()
	t.hashNodes(p)
	t.Apply(p)
	return t
}

// Apply installs a Pending computed by Preview on this same tree, with no
// other Apply in between.
func (t *Tree) Apply(p *Pending) {
	for b, es := range p.buckets {
		if len(es) == 0 {
			delete(t.buckets, b)
		} else {
			t.buckets[b] = es
		}
	}
	for n, h := range p.nodes {
		t.setNode(n, h)
	}
}

// Update is Preview followed by Apply; it returns the new root.
func (t *Tree) Update(changes []Change) [32]byte {
	p := t.Preview(changes)
	t.Apply(p)
	return p.root
}

// Len is the number of keys committed.
func (t *Tree) Len() int {
	n := 0
	for _, b := range t.buckets {
		n += len(b)
	}
	return n
}
