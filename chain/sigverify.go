package chain

import (
	"errors"
	"fmt"
	"sync"

	"github.com/bourse-net/bourse/wallet"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Transactions are verified with ZIP-215 rules in both the single and the
// batch path, so every node accepts exactly the same signatures whichever
// path it took (the Go standard library's cofactorless rule would disagree
// with batch verification on crafted edge cases). Honest signatures from
// wallet.Sign verify under both.
var zip215 = &voi.Options{Verify: voi.VerifyOptionsZIP_215}

// ErrBadSignature is returned for a transaction whose signature does not verify.
var ErrBadSignature = errors.New("bad signature")

func txSignMessage(tx *Tx) ([]byte, error) {
	sb, err := tx.SignBytes()
	if err != nil {
		return nil, err
	}
	return wallet.SignBytes(tx.ChainID, MsgTypeTx, sb), nil
}

// VerifyTx checks tx's signature.
func VerifyTx(tx *Tx) error {
	msg, err := txSignMessage(tx)
	if err != nil {
		return fmt.Errorf("verify tx: %w", err)
	}
	if pk := expandedKey(tx.Sender); pk != nil {
		if !voi.VerifyExpandedWithOptions(pk, msg, tx.Sig, zip215) {
			return ErrBadSignature
		}
		return nil
	}
	if !voi.VerifyWithOptions(voi.PublicKey(tx.Sender[:]), msg, tx.Sig, zip215) {
		return ErrBadSignature
	}
	return nil
}

// maxExpandedKeys bounds the senders' expanded public keys kept (about
// 1.5 KiB each): decompressing a key was a sixth of a node's CPU under a
// transfer load, paid again for every transaction of the same sender.
const maxExpandedKeys = 2048

var expanded = struct {
	sync.Mutex
	m map[[32]byte]*voi.ExpandedPublicKey
}{m: map[[32]byte]*voi.ExpandedPublicKey{}}

// expandedKey is sender's key expanded for verification, from the cache
// or made now; nil for bytes that are not a point (the plain path then
// refuses the signature). The cache is emptied when full: one
// decompression per sender again, never unbounded memory.
func expandedKey(sender wallet.PublicKey) *voi.ExpandedPublicKey {
	k := [32]byte(sender[:])
	expanded.Lock()
	pk, ok := expanded.m[k]
	expanded.Unlock()
	if ok {
		return pk
	}
	pk, err := voi.NewExpandedPublicKey(voi.PublicKey(sender[:]))
	if err != nil {
		return nil
	}
	expanded.Lock()
	if len(expanded.m) >= maxExpandedKeys {
		clear(expanded.m)
	}
	expanded.m[k] = pk
	expanded.Unlock()
	return pk
}

// batchMin is the batch size from which batch verification pays.
const batchMin = 4

// VerifyTxs checks the signatures of txs, skipping those whose hash the
// cache reports verified, with batch verification when there are enough.
// It returns the index of the first bad signature, or -1.
func VerifyTxs(txs []*Tx, hashes [][32]byte, cache *SigCache) (int, error) {
	var todo []int
	for i := range txs {
		if cache != nil && cache.Has(hashes[i]) {
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return -1, nil
	}
	cache.Count(len(todo))
	if len(todo) < batchMin {
		for _, i := range todo {
			if err := VerifyTx(txs[i]); err != nil {
				return i, err
			}
			cache.Add(hashes[i])
		}
		return -1, nil
	}
	bv := voi.NewBatchVerifierWithCapacity(len(todo))
	for _, i := range todo {
		msg, err := txSignMessage(txs[i])
		if err != nil {
			return i, fmt.Errorf("verify tx %d: %w", i, err)
		}
		if pk := expandedKey(txs[i].Sender); pk != nil {
			bv.AddExpandedWithOptions(pk, msg, txs[i].Sig, zip215)
		} else {
			bv.AddWithOptions(voi.PublicKey(txs[i].Sender[:]), msg, txs[i].Sig, zip215)
		}
	}
	ok, valid := bv.Verify(nil)
	if !ok {
		for j, i := range todo {
			if !valid[j] {
				return i, ErrBadSignature
			}
		}
		return todo[0], ErrBadSignature
	}
	for _, i := range todo {
		cache.Add(hashes[i])
	}
	return -1, nil
}

// SigCache remembers the hashes of transactions whose signatures this node
// has verified, so a transaction is verified once per node: at the
// mempool, and not again when its block executes. It is a FIFO bounded by
// size in which a forgotten hash gives its place back at once: the
// mempool forgets what it queues (blocks ask it for those directly, see
// ExecOptions.Held) and what commits, so under load the places go to the
// verified transactions the mempool does not hold. Safe for concurrent
// use; a nil *SigCache remembers nothing.
type SigCache struct {
	mu       sync.Mutex
	set      map[[32]byte]uint64 // hash → the seq it was added with
	order    []sigEntry          // in order added; entries whose seq no longer matches are gone
	head     int                 // order[:head] are evicted
	size     int
	seq      uint64
	verified uint64
}

type sigEntry struct {
	h   [32]byte
	seq uint64
}

// NewSigCache holds up to size hashes. Its memory grows with use (an idle
// node does not hold room for size hashes).
func NewSigCache(size int) *SigCache {
	if size < 1 {
		size = 1
	}
	return &SigCache{set: map[[32]byte]uint64{}, size: size}
}

// Verified is how many signatures were verified through this cache
// (VerifyTxs and Verify): a transaction verified twice counts twice.
func (c *SigCache) Verified() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified
}

// Count records n signatures verified without this cache (so not
// remembered), for Verified.
func (c *SigCache) Count(n int) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.verified += uint64(n)
	c.mu.Unlock()
}

// Verify checks one transaction's signature, counts it, and remembers it
// when it holds: for the one-by-one search after a batch failed.
func (c *SigCache) Verify(tx *Tx, hash [32]byte) error {
	c.Count(1)
	if err := VerifyTx(tx); err != nil {
		return err
	}
	c.Add(hash)
	return nil
}

// Forget drops hashes that will not be asked about here again (those of
// committed transactions, and those the mempool holds), giving their
// places back. Once nothing is held, the cache lets go of its memory too,
// so it does not stay at its high-water mark after a burst.
func (c *SigCache) Forget(hs [][32]byte) {
	if c == nil || len(hs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hs {
		delete(c.set, h)
	}
	c.tidyLocked()
}

// tidyLocked drops the order's evicted and forgotten entries once they
// outnumber the held ones, so its length stays within twice the held
// count (plus a little): each entry is copied O(1) times on average.
func (c *SigCache) tidyLocked() {
	if len(c.set) == 0 {
		c.set, c.order, c.head = map[[32]byte]uint64{}, nil, 0
		return
	}
	if len(c.order) < 2*len(c.set)+64 {
		return
	}
	kept := make([]sigEntry, 0, 2*len(c.set))
	for _, e := range c.order[c.head:] {
		if s, ok := c.set[e.h]; ok && s == e.seq {
			kept = append(kept, e)
		}
	}
	c.order, c.head = kept, 0
}

// Has reports whether h was verified and is remembered.
func (c *SigCache) Has(h [32]byte) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	_, ok := c.set[h]
	c.mu.Unlock()
	return ok
}

// Add records h, evicting the oldest held entry when full.
func (c *SigCache) Add(h [32]byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.set[h]; ok {
		return
	}
	c.seq++
	c.set[h] = c.seq
	c.order = append(c.order, sigEntry{h, c.seq})
	for len(c.set) > c.size {
		e := c.order[c.head]
		c.head++
		if s, ok := c.set[e.h]; ok && s == e.seq {
			delete(c.set, e.h)
		}
	}
	c.tidyLocked()
}
