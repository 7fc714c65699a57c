package mempool

import (
	"errors"
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
)

// countVerified makes the mempool count the signatures it verifies (those
// handed to the batch check and not already in the cache) for the rest of
// the test.
func countVerified(t *testing.T) *int {
	n := new(int)
	prev := verifyTxs
	verifyTxs = func(txs []*chain.Tx, hashes [][32]byte, cache *chain.SigCache) (int, error) {
		for _, h := range hashes {
			if !cache.Has(h) {
				*n++
			}
		}
		return prev(txs, hashes, cache)
	}
	t.Cleanup(func() { verifyTxs = prev })
	return n
}

// corrupt flips a bit of a transaction's signature (its last byte).
func corrupt(raw []byte) []byte {
	b := append([]byte(nil), raw...)
	b[len(b)-1] ^= 1
	return b
}

// A relay that sends back transactions the chain already committed (an
// honest one a block late, or an attacker replaying old blocks, with or
// without their signatures intact) makes the mempool read one account per
// transaction, never verify a signature: replays cost a state read.
func TestMempoolAttackReplayedCommittedTxsCostNoVerification(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{}, n.St)
	var committed [][]byte
	for i := range 40 {
		committed = append(committed, n.Transfer(i%4, 5, 1, 1))
	}
	_, res := n.Block(committed...)
	if len(res.TxHashes) != len(committed) {
		t.Fatalf("block carried %d of %d", len(res.TxHashes), len(committed))
	}
	mp.Update(res.Height, res.TxHashes, n.St)
	verified := countVerified(t)

	replays := append([][]byte(nil), committed...)
	for i := range 10 {
		replays = append(replays, corrupt(committed[i]))
	}
	for name, add := range map[string]func([][]byte) ([][32]byte, []error){"client": mp.AddBatch, "relay": mp.AddRelayed} {
		_, errs := add(replays)
		for i, err := range errs {
			if !errors.Is(err, chain.ErrInvalidTx) || errors.Is(err, chain.ErrBadSignature) {
				t.Fatalf("%s: replay %d: %v, want nonce already used", name, i, err)
			}
		}
	}
	if *verified != 0 {
		t.Fatalf("%d signatures verified for replays", *verified)
	}
	// Fresh transactions of the same senders are still verified and admitted.
	fresh := [][]byte{n.Transfer(0, 5, 1, 1), n.Transfer(1, 5, 1, 1)}
	if _, errs := mp.AddRelayed(fresh); errs[0] != nil || errs[1] != nil {
		t.Fatalf("fresh: %v", errs)
	}
	if *verified != 2 {
		t.Fatalf("verified %d signatures for 2 fresh transactions", *verified)
	}
}

// A client that retries into a full pool at a fee that cannot evict
// anything (the common case under overload), or a relay flooding one, is
// refused before its signatures are checked, at the bound and past it;
// below the bound, and with a fee that can make room, transactions are
// verified and admitted as before, and a bad signature is still found.
func TestMempoolAttackFloodIntoAFullPoolCostsNoVerification(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	const bound = 8
	mp := New(Config{MaxTxs: bound}, n.St)
	verified := countVerified(t)
	var fill [][]byte
	for i := range bound - 1 {
		fill = append(fill, n.Transfer(i%3, 5, 1, 1))
	}
	if _, errs := mp.AddBatch(fill); errors.Join(errs...) != nil {
		t.Fatal(errors.Join(errs...))
	}
	// One below the bound: admitted after verification.
	last := n.Transfer(3, 5, 1, 1)
	if _, err := mp.Add(last); err != nil {
		t.Fatalf("at the bound: %v", err)
	}
	if *verified != bound {
		t.Fatalf("verified %d, want %d", *verified, bound)
	}
	// Full: the same fee cannot evict; the signature does not matter.
	surplus := [][]byte{n.Transfer(4, 5, 1, 1), corrupt(n.Transfer(1, 5, 1, 1))}
	for name, add := range map[string]func([][]byte) ([][32]byte, []error){"client": mp.AddBatch, "relay": mp.AddRelayed} {
		_, errs := add(surplus)
		for i, err := range errs {
			if !errors.Is(err, ErrMempoolFull) {
				t.Fatalf("%s: past the bound %d: %v, want mempool full", name, i, err)
			}
		}
	}
	if *verified != bound {
		t.Fatalf("verified %d signatures for refused transactions", *verified-bound)
	}
	// A higher fee can make room: verified, so a bad signature is caught
	// and a good one evicts the cheapest.
	delete(n.Pending, n.Keys[4].Address()) // its nonce 0 was refused
	if _, err := mp.Add(corrupt(n.Transfer(4, 5, 1, 2))); !errors.Is(err, chain.ErrBadSignature) {
		t.Fatalf("bad signature at a fee that could evict: %v", err)
	}
	delete(n.Pending, n.Keys[4].Address())
	if _, err := mp.Add(n.Transfer(4, 5, 1, 2)); err != nil {
		t.Fatalf("fee that evicts: %v", err)
	}
	if c, _ := mp.Size(); c != bound {
		t.Fatalf("size %d, want %d", c, bound)
	}
}

// One sender's consecutive transactions in one batch are admitted
// together: the screen cannot know the second's place before the first
// is in, so it lets it through to the full checks.
func TestMempoolScreenKeepsASendersRunInOneBatch(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{}, n.St)
	run := [][]byte{n.Transfer(0, 5, 1, 1), n.Transfer(0, 5, 1, 1), n.Transfer(0, 5, 1, 1)}
	if _, errs := mp.AddBatch(run); errors.Join(errs...) != nil {
		t.Fatal(errors.Join(errs...))
	}
	if c, _ := mp.Size(); c != 3 {
		t.Fatalf("size %d, want 3", c)
	}
}

// Under load a transaction can wait in the mempool longer than the
// signature cache's FIFO spans (here: a cache of 2 and 6 waiting
// transactions). Its block still finds it verified: the mempool vouches
// for what it holds, so a block of them costs no verification at all.
func TestMempoolTxWaitingPastTheCacheIsNotVerifiedAgainInItsBlock(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{SigCacheSize: 2}, n.St)
	var raws [][]byte
	for i := range 6 {
		raws = append(raws, n.Transfer(i%3, 5, 1, 1))
	}
	if _, errs := mp.AddBatch(raws); errors.Join(errs...) != nil {
		t.Fatal(errors.Join(errs...))
	}
	before := mp.SigCache().Added()
	tmpl := chain.BlockTemplate{Height: n.St.Height() + 1, Time: n.Time + 1000, PrevHash: n.PrevHash, Proposer: n.Proposer().Address()}
	for _, name := range []string{"build", "execute"} {
		b, _, err := chain.BuildBlock(n.St, tmpl, mp.Reap(1<<20, 100), chain.ExecOptions{SigCache: mp.SigCache()})
		if err != nil || len(b.Txs) != len(raws) {
			t.Fatalf("%s: block of %d: %v", name, len(b.Txs), err)
		}
		if name == "execute" {
			if _, err := chain.Execute(n.St, b, chain.ExecOptions{SigCache: mp.SigCache()}); err != nil {
				t.Fatal(err)
			}
		}
		if v := mp.SigCache().Added() - before; v != 0 {
			t.Fatalf("%s: %d signatures verified again", name, v)
		}
	}
	// A transaction the mempool does not hold is verified (once).
	other := n.Transfer(4, 5, 1, 1)
	tx, _ := chain.DecodeTx(other)
	if _, err := chain.VerifyTxs([]*chain.Tx{tx}, [][32]byte{chain.TxHash(other)}, mp.SigCache()); err != nil {
		t.Fatal(err)
	}
	if v := mp.SigCache().Added() - before; v != 1 {
		t.Fatalf("a transaction outside the mempool: %d verified, want 1", v)
	}
}
