package driver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/chain/store"
)

// writeLog is a datastore that records what is written under the signer
// state's keys: how many times each block value was put, and the largest
// signer state.
type writeLog struct {
	ds.Batching
	mu         sync.Mutex
	valuePuts  map[string]int
	largest    int // bytes of the largest signer state put
	largestVal int // bytes of the largest value put
}

func newWriteLog() *writeLog {
	return &writeLog{Batching: dssync.MutexWrap(ds.NewMapDatastore()), valuePuts: map[string]int{}}
}

func (w *writeLog) Put(ctx context.Context, k ds.Key, v []byte) error {
	w.mu.Lock()
	switch s := k.String(); {
	case s == "/meta/signer":
		w.largest = max(w.largest, len(v))
	case strings.HasPrefix(s, "/meta/signer-values/"):
		w.valuePuts[s]++
		w.largestVal = max(w.largestVal, len(v))
	}
	w.mu.Unlock()
	return w.Batching.Put(ctx, k, v)
}

// Batch goes through Put, so batched writes are logged too.
func (w *writeLog) Batch(context.Context) (ds.Batch, error) { return ds.NewBasicBatch(w), nil }

func (w *writeLog) values(t *testing.T) int {
	t.Helper()
	r, err := w.Query(context.Background(), query.Query{Prefix: "/meta/signer-values/", KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	all, err := r.Rest()
	if err != nil {
		t.Fatal(err)
	}
	return len(all)
}

// TestSignerStateWritesEachBlockOnce: a validator persists its signer
// state before every vote and proposal. It used to write the block values
// the state holds (its last proposal, its lock, its valid value) inside
// every save: a proposer rewrote the block it proposed with each vote it
// signed until it proposed again, and each precommit carried the locked
// block twice, several times a block's bytes per height under load. Now
// each value is written once, under its id, and deleted once no longer
// held; the state itself stays small, and a restart reads the values back.
func TestSignerStateWritesEachBlockOnce(t *testing.T) {
	c := newCluster(t, 4)
	logs := make([]*writeLog, len(c.nodes))
	for i, n := range c.nodes {
		logs[i] = newWriteLog()
		s, err := store.NewOn(logs[i])
		if err != nil {
			t.Fatal(err)
		}
		n.store = s
	}
	c.virtual()
	for _, n := range c.nodes {
		c.start(n)
	}
	c.waitHeight(2, 10*time.Second)
	dest := key(t, 50).Address()
	var nonce uint64
	for range 8 {
		for range 40 {
			c.transfer(nonce, dest, 1)
			nonce++
		}
		want := nonce
		c.until("the transfers committed", 10*time.Second, func() bool {
			acc, err := c.nodes[1].d.State().Account(dest)
			return err == nil && acc.Balance == want
		})
	}
	for i, w := range logs {
		w.mu.Lock()
		for k, n := range w.valuePuts {
			if n > 1 {
				t.Errorf("%s wrote block value %s %d times", c.nodes[i].id, k, n)
			}
		}
		if w.largestVal < 4096 {
			t.Errorf("%s: largest block value written %d bytes: the blocks were too small to test", c.nodes[i].id, w.largestVal)
		}
		if w.largest > 2048 {
			t.Errorf("%s: a signer state of %d bytes was written (a block value in it)", c.nodes[i].id, w.largest)
		}
		w.mu.Unlock()
		// Three values at most: the last proposal, the lock, the valid value.
		if n := w.values(t); n > 3 {
			t.Errorf("%s keeps %d block values", c.nodes[i].id, n)
		}
	}

	// A restart reads the values back: the restored state's last proposal
	// carries the block its id names.
	n0 := c.nodes[0]
	c.stop(n0)
	raw, err := n0.store.LoadSignerState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g, err := consensus.DecodeSignerState(raw)
	if err != nil {
		t.Fatal(err)
	}
	if g.LastProposal == nil {
		t.Fatal("no last proposal stored")
	}
	if len(g.LastProposal.Value) != 0 {
		t.Fatalf("stored last proposal holds %d bytes of value: want one without it", len(g.LastProposal.Value))
	}
	if err := g.JoinValues(func(id consensus.BlockID) ([]byte, error) {
		return n0.store.LoadSignerValue(context.Background(), id)
	}); err != nil {
		t.Fatal(err)
	}
	b, err := chain.DecodeBlock(g.LastProposal.Value)
	if err != nil || consensus.BlockID(b.Hash()) != g.LastProposal.BlockID {
		t.Fatalf("restored last proposal: block %v, err %v", b, err)
	}
	h := c.nodes[1].store.Height()
	c.start(n0)
	c.waitHeight(h+4, 15*time.Second)
	c.checkAgreement()
}

// TestSignerStateMissingValueIsCorruptStore: a store whose signer state
// names a block value it no longer holds does not start with an empty
// lock or proposal: it is a corrupt store, and the error says so.
func TestSignerStateMissingValueIsCorruptStore(t *testing.T) {
	c := newCluster(t, 4)
	w := newWriteLog()
	s, err := store.NewOn(w)
	if err != nil {
		t.Fatal(err)
	}
	n0 := c.nodes[0]
	n0.store = s
	c.virtual()
	for _, n := range c.nodes {
		c.start(n)
	}
	c.waitHeight(6, 10*time.Second)
	c.stop(n0)
	ctx := context.Background()
	// The state as at the next height (the node may have stopped before
	// signing anything there), its last proposal's value stored apart.
	raw, err := n0.store.LoadSignerState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g, err := consensus.DecodeSignerState(raw)
	if err != nil {
		t.Fatal(err)
	}
	if g.Apart&consensus.TakenProposal == 0 {
		t.Fatalf("no proposal value stored apart (apart %b)", g.Apart)
	}
	g.Height = n0.store.Height() + 1
	if raw, err = consensus.EncodeSignerState(g); err != nil {
		t.Fatal(err)
	}
	if err := n0.store.SaveSignerState(ctx, raw, nil, nil); err != nil {
		t.Fatal(err)
	}
	r, err := w.Query(ctx, query.Query{Prefix: "/meta/signer-values/", KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := r.Rest()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no signer values stored (%v)", err)
	}
	for _, k := range keys {
		if err := w.Delete(ctx, ds.NewKey(k.Key)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = New(Config{GenesisJSON: c.genesis, Key: n0.key, Clock: c.clk}, n0.store, &memTransport{net: c.net, id: n0.id})
	if !errors.Is(err, store.ErrCorruptStore) {
		t.Fatalf("start without the signer state's values: %v, want %v", err, store.ErrCorruptStore)
	}
}
