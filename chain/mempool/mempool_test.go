package mempool

import (
	"errors"
	"fmt"
	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

func TestMempoolRefusesWithReason(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	n.Block(n.Transfer(0, 1, 10, 1))
	mp := New(Config{MaxPerSender: 3}, n.St)
	raw := func(k wallet.PrivateKey, nonce, fee uint64, mut func(*chain.Tx)) []byte {
		tx := &chain.Tx{ChainID: chaintest.ChainID, Sender: k.Public(), Nonce: nonce, Fee: fee, Transfer: &chain.Transfer{To: n.Keys[5].Address(), Amount: 1}}
		if mut != nil {
			mut(tx)
		}
		if err := tx.Sign(k); err != nil {
			t.Fatal(err)
		}
		b, _ := tx.Encode()
		return b
	}
	good := raw(n.Keys[1], 0, 2, nil)
	if _, err := mp.Add(good); err != nil {
		t.Fatal(err)
	}
	badSig := raw(n.Keys[2], 0, 1, nil)
	badSig[len(badSig)-1] ^= 1
	poor, _ := wallet.KeyFromSeed(make([]byte, 32))
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"duplicate", good, ErrTxKnown},
		{"bad signature", badSig, chain.ErrInvalidTx},
		{"wrong chain", raw(n.Keys[2], 0, 1, func(tx *chain.Tx) { tx.ChainID = "other" }), chain.ErrInvalidTx},
		{"replayed nonce", raw(n.Keys[0], 0, 1, nil), chain.ErrInvalidTx},
		{"nonce gap", raw(n.Keys[2], 5, 1, nil), ErrNonceGap},
		{"same nonce pending", raw(n.Keys[1], 0, 9, nil), ErrTxKnown},
		{"fee below minimum", raw(n.Keys[2], 0, 0, nil), chain.ErrInvalidTx},
		{"cannot pay the fee", raw(poor, 0, 1, nil), chain.ErrInvalidTx},
		{"match from outside", raw(n.Keys[2], 0, 1, func(tx *chain.Tx) { tx.Transfer = nil; tx.Match = &chain.MatchTx{Price: 1} }), chain.ErrInvalidTx},
		{"body would fail", raw(n.Keys[2], 0, 1, func(tx *chain.Tx) { tx.Transfer.Amount = 1 << 40 }), chain.ErrInvalidTx},
		{"garbage", []byte{0xa1, 0x01}, chain.ErrInvalidTx},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mp.Add(tc.raw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	for i := uint64(1); i < 3; i++ {
		if _, err := mp.Add(raw(n.Keys[1], i, 1, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mp.Add(raw(n.Keys[1], 3, 1, nil)); !errors.Is(err, ErrMempoolFull) {
		t.Fatalf("fourth tx of a sender limited to 3: %v", err)
	}
	if c, _ := mp.Size(); c != 3 {
		t.Fatalf("size %d, want 3", c)
	}
}

// TestMempoolReapOrder: highest fee first across senders, nonce order
// within each sender, limits respected.
func TestMempoolReapOrder(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{}, n.St)
	fees := map[int][]uint64{0: {1, 9, 9}, 1: {5, 5}, 2: {7}}
	want := map[[32]byte]struct {
		sender int
		nonce  int
	}{}
	for s, fs := range fees {
		for i, f := range fs {
			raw := n.Transfer(s, 5, 1, f)
			if _, err := mp.Add(raw); err != nil {
				t.Fatal(err)
			}
			want[chain.TxHash(raw)] = struct{ sender, nonce int }{s, i}
		}
	}
	got := mp.Reap(1<<20, 100)
	var order []string
	for _, raw := range got {
		w := want[chain.TxHash(raw)]
		order = append(order, fmt.Sprintf("%d/%d", w.sender, w.nonce))
	}
	// 2/0 (7) beats 1/0 (5) beats 0/0 (1); 0's later 9s wait behind its 1.
	if fmt.Sprint(order) != "[2/0 1/0 1/1 0/0 0/1 0/2]" {
		t.Fatalf("reap order %v", order)
	}
	if got := mp.Reap(1<<20, 2); len(got) != 2 {
		t.Fatalf("maxTxs 2 gave %d", len(got))
	}
	if got := mp.Reap(len(got[0])*2, 100); len(got) != 2 {
		t.Fatalf("maxBytes for two gave %d", len(got))
	}
}

// TestMempoolUpdateEvicts: committed transactions leave, and so do those a
// block made invalid.
func TestMempoolUpdateEvicts(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{}, n.St)
	a := n.Transfer(0, 5, 10, 1)
	b := n.Transfer(0, 5, 10, 1)
	for _, raw := range [][]byte{a, b} {
		if _, err := mp.Add(raw); err != nil {
			t.Fatal(err)
		}
	}
	// Account 1 queues a transfer; then, outside this mempool, spends
	// everything with the same nonce.
	c := n.Transfer(1, 5, 10, 1)
	if _, err := mp.Add(c); err != nil {
		t.Fatal(err)
	}
	n.Pending = map[wallet.Address]uint64{}
	drain := n.Transfer(1, 5, n.Balance(1)-1, 1)
	_, res := n.Block(a, drain)
	mp.Update(res.Height, res.TxHashes, n.St)
	if mp.Has(chain.TxHash(a)) || !mp.Has(chain.TxHash(b)) || mp.Has(chain.TxHash(c)) {
		t.Fatalf("after update: a %v (want gone), b %v (want kept), c %v (want evicted)", mp.Has(chain.TxHash(a)), mp.Has(chain.TxHash(b)), mp.Has(chain.TxHash(c)))
	}
	if cnt, size := mp.Size(); cnt != 1 || size != len(b) {
		t.Fatalf("size %d/%d", cnt, size)
	}
	// Neither remembers the committed a as verified; b is held, verified.
	held := mp.Held([][32]byte{chain.TxHash(a), chain.TxHash(b)})
	if mp.SigCache().Has(chain.TxHash(a)) || held[0] != nil || held[1] == nil {
		t.Fatalf("after update: a cached %v or held %v (want neither), b held %v", mp.SigCache().Has(chain.TxHash(a)), held[0] != nil, held[1] != nil)
	}
}

// TestMempoolReapAlwaysBuilds: whatever random traffic the mempool took,
// what it reaps builds a block without dropping anything, and after the
// block commits the mempool is consistent with the state.
func TestMempoolReapAlwaysBuilds(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 11))
	n := chaintest.NewNet(t, 8, 4)
	mp := New(Config{MaxTxs: 40}, n.St)
	for blk := 0; blk < 15; blk++ {
		for i := 0; i < 30; i++ {
			from := r.IntN(8)
			raw := n.Transfer(from, r.IntN(8), 1+r.Uint64N(200_000), 1+r.Uint64N(5))
			_, err := mp.Add(raw)
			checkQueues(t, mp)
			if err != nil {
				n.Pending = map[wallet.Address]uint64{} // re-derive nonces from the mempool's view
				for _, k := range n.Keys {
					acc, _ := n.St.Account(k.Address())
					n.Pending[k.Address()] = acc.Nonce + uint64(len(mp.senders[k.Address()].txsOrNil()))
				}
			}
		}
		reaped := mp.Reap(1<<20, 25)
		b, res := n.Block(reaped...)
		if len(b.Txs) != len(reaped) {
			t.Fatalf("seed %d: block kept %d of %d reaped transactions", seed, len(b.Txs), len(reaped))
		}
		mp.Update(res.Height, res.TxHashes, n.St)
		checkQueues(t, mp)
		for _, h := range res.TxHashes {
			if mp.Has(h) {
				t.Fatalf("seed %d: committed tx still pending", seed)
			}
		}
		n.Pending = map[wallet.Address]uint64{}
		for _, k := range n.Keys {
			acc, _ := n.St.Account(k.Address())
			n.Pending[k.Address()] = acc.Nonce + uint64(len(mp.senders[k.Address()].txsOrNil()))
		}
	}
}

// checkQueues: every queue's running spend is the sum of its
// transactions', and the index and byte count hold exactly the queues'.
func checkQueues(t *testing.T, mp *Mempool) {
	t.Helper()
	mp.mu.Lock()
	defer mp.mu.Unlock()
	count, bytes := 0, 0
	for addr, q := range mp.senders {
		var want sum
		for _, e := range q.txs {
			want = want.plus(e.spend)
			if mp.byHash[e.hash] != e {
				t.Fatalf("%s: queued tx %x not indexed", addr, e.hash[:4])
			}
			bytes += len(e.raw)
		}
		count += len(q.txs)
		if q.spend != want {
			t.Fatalf("%s: running spend %v, transactions sum to %v", addr, q.spend, want)
		}
	}
	if count != len(mp.byHash) || bytes != mp.bytes {
		t.Fatalf("queues hold %d txs, %d bytes; index %d, bytes %d", count, bytes, len(mp.byHash), mp.bytes)
	}
}

func (q *senderQueue) txsOrNil() []*mtx {
	if q == nil {
		return nil
	}
	return q.txs
}

// TestMempoolConcurrent hammers Add, Reap and Update from several
// goroutines (run with -race); reaped batches never hold a duplicate.
func TestMempoolConcurrent(t *testing.T) {
	n := chaintest.NewNet(t, 8, 4)
	var raws [][]byte
	for i := 0; i < 8; i++ {
		for j := 0; j < 20; j++ {
			raws = append(raws, n.Transfer(i, (i+1)%8, 1, 1))
		}
	}
	mp := New(Config{}, n.St)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(raws); i += 4 {
				_, _ = mp.Add(raws[i])
				seen := map[[32]byte]bool{}
				for _, r := range mp.Reap(1<<20, 50) {
					if seen[chain.TxHash(r)] {
						t.Error("duplicate in reap")
					}
					seen[chain.TxHash(r)] = true
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			mp.Update(0, nil, n.St)
		}
	}()
	wg.Wait()
	if c, _ := mp.Size(); c == 0 || c > len(raws) {
		t.Fatalf("size %d", c)
	}
}

// TestMempoolAddBetweenApplyAndUpdate: the driver applies a block to the
// state before it calls Update, and transactions keep arriving in between.
// The sender's next transaction must be accepted then, not refused as
// "already pending" (which would lose it on every node at once).
func TestMempoolAddBetweenApplyAndUpdate(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{}, n.St)
	a := n.Transfer(0, 5, 10, 1)
	b := n.Transfer(0, 5, 10, 1)
	for _, raw := range [][]byte{a, b} {
		if _, err := mp.Add(raw); err != nil {
			t.Fatal(err)
		}
	}
	_, res := n.Block(a, b) // applied: the state is ahead of the mempool
	c := n.Transfer(0, 5, 10, 1)
	if next, _ := mp.NextNonce(n.Keys[0].Address()); next != 2 {
		t.Fatalf("NextNonce = %d before Update, want 2", next)
	}
	if _, err := mp.Add(c); err != nil {
		t.Fatalf("next-nonce transaction refused between apply and update: %v", err)
	}
	mp.Update(res.Height, res.TxHashes, n.St)
	if mp.Has(chain.TxHash(a)) || mp.Has(chain.TxHash(b)) || !mp.Has(chain.TxHash(c)) {
		t.Fatalf("after update: a %v b %v (want gone), c %v (want kept)", mp.Has(chain.TxHash(a)), mp.Has(chain.TxHash(b)), mp.Has(chain.TxHash(c)))
	}
	if got := mp.Reap(1<<20, 10); len(got) != 1 {
		t.Fatalf("reaped %d, want 1", len(got))
	}
}
