package mempool

import (
	"errors"
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
	"github.com/bourse-net/bourse/wallet"
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
// transaction and verify at most one signature per batch: the spot check
// of a relayed batch that is ignored. A client's replays cost none.
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
	var forged [][]byte
	for i := range 10 {
		forged = append(forged, corrupt(committed[i]))
	}
	nonceUsed := func(err error) bool {
		return errors.Is(err, chain.ErrInvalidTx) && !errors.Is(err, chain.ErrBadSignature)
	}

	_, errs := mp.AddBatch(append(append([][]byte(nil), committed...), forged...))
	for i, err := range errs {
		if !nonceUsed(err) {
			t.Fatalf("client: replay %d: %v, want nonce already used", i, err)
		}
	}
	if *verified != 0 {
		t.Fatalf("client: %d signatures verified for replays", *verified)
	}
	errs, v := relay(mp, committed)
	for i, err := range errs {
		if !nonceUsed(err) {
			t.Fatalf("relay: replay %d: %v, want nonce already used", i, err)
		}
	}
	if v != "ignore" || *verified != 1 {
		t.Fatalf("relay of 40 replays: %s, %d verified; want ignore after one spot check", v, *verified)
	}
	// Forged replays: the spot check finds one, and the batch is rejected.
	if _, v := relay(mp, forged); v != "reject" || *verified != 2 {
		t.Fatalf("relay of 10 forged replays: %s, %d verified; want reject after one spot check", v, *verified-1)
	}
	// Fresh transactions of the same senders are still verified and admitted.
	fresh := [][]byte{n.Transfer(0, 5, 1, 1), n.Transfer(1, 5, 1, 1)}
	if _, errs := mp.AddRelayed(fresh); errs[0] != nil || errs[1] != nil {
		t.Fatalf("fresh: %v", errs)
	}
	if *verified != 4 {
		t.Fatalf("verified %d signatures for 2 fresh transactions", *verified-2)
	}
}

// relay adds a relayed batch and returns the errors and
// node.validateTxBatch's verdict on it.
func relay(mp *Mempool, raws [][]byte) ([]error, string) {
	_, errs, forward := mp.AddRelayedForward(raws)
	for _, err := range errs {
		if errors.Is(err, chain.ErrBadSignature) || errors.Is(err, ErrUndecodable) {
			return errs, "reject"
		}
	}
	if !forward {
		return errs, "ignore"
	}
	return errs, "accept"
}

// An honest relay forwards a batch when anything in it is new; a forged
// transaction in it that this node refused for its own state (a nonce it
// has seen used) would pass a peer a block behind, which verifies it and
// rejects the batch, penalising the honest relay. So a batch that is
// accepted has every signature in it verified, and one forged
// transaction rejects it here first.
func TestMempoolAttackForgedTxHiddenInAnAcceptedRelayBatchIsRejected(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	behind, err := n.Gen.State()
	if err != nil {
		t.Fatal(err)
	}
	s := n.Keys[0]
	n.Block(n.Transfer(0, 5, 1, 1)) // s's nonce 0 is used here, not yet one block behind
	delete(n.Pending, s.Address())
	forged := corrupt(n.Tx(0, 1, func(tx *chain.Tx) { tx.Nonce = 0; tx.Transfer = &chain.Transfer{To: n.Keys[5].Address(), Amount: 2} }))
	carrier := n.Transfer(2, 5, 1, 1) // honest and new
	for name, st := range map[string]*chain.State{"up to date": n.St, "a block behind": behind} {
		mp := New(Config{}, st)
		errs, v := relay(mp, [][]byte{carrier, forged})
		if v != "reject" {
			t.Fatalf("%s: %s (%v), want reject", name, v, errs)
		}
	}
}

// A flood of forged transactions the screen refuses unchecked (nonces far
// ahead from keys nobody funded) is still rejected: the spot check of an
// ignored batch verifies one of them. The node spends one verification a
// message on it.
func TestMempoolAttackForgedFloodRefusedUncheckedIsStillRejected(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{}, n.St)
	verified := countVerified(t)
	var batch [][]byte
	for i := range 64 {
		k, _ := wallet.KeyFromSeed(append(make([]byte, 30), 9, byte(i)))
		tx := &chain.Tx{ChainID: chaintest.ChainID, Sender: k.Public(), Nonce: 1 << 40, Fee: 1, Transfer: &chain.Transfer{To: n.Keys[5].Address(), Amount: 1}}
		if err := tx.Sign(k); err != nil {
			t.Fatal(err)
		}
		raw, _ := tx.Encode()
		batch = append(batch, corrupt(raw))
	}
	if _, v := relay(mp, batch); v != "reject" || *verified != 1 {
		t.Fatalf("64 forged: %s after %d verifications, want reject after 1", v, *verified)
	}
}

// A key nobody funded parks a nonce gap for free. One such transaction in
// a relayed batch full of transactions the pool refuses unchecked (here
// validly signed ones whose nonces are far ahead) does not buy a
// verification of the whole batch on this node and, forwarded, on every
// other: the batch is ignored after a spot check, and the spot check
// does not push remembered signatures out of the cache. An honest batch
// of parked transactions alone (out-of-order gossip) is still forwarded.
func TestMempoolAttackFreeParkedTxBuysNoBatchOfVerifications(t *testing.T) {
	n := chaintest.NewNet(t, 6, 4)
	mp := New(Config{SigCacheSize: 4}, n.St)
	verified := countVerified(t)
	fresh := func(seed byte, nonce uint64) []byte {
		k, _ := wallet.KeyFromSeed(append(make([]byte, 31), seed))
		tx := &chain.Tx{ChainID: chaintest.ChainID, Sender: k.Public(), Nonce: nonce, Fee: 1, Transfer: &chain.Transfer{To: n.Keys[5].Address(), Amount: 1}}
		if err := tx.Sign(k); err != nil {
			t.Fatal(err)
		}
		raw, _ := tx.Encode()
		return raw
	}
	parked := fresh(250, 3)
	if errs, v := relay(mp, [][]byte{parked}); errs[0] != nil || v != "accept" || mp.Parked() != 1 {
		t.Fatalf("an honest parked batch: %v %s, parked %d", errs, v, mp.Parked())
	}
	*verified = 0
	batch := [][]byte{fresh(251, 3)}
	for i := range 200 {
		batch = append(batch, fresh(byte(i), 1<<40))
	}
	if _, v := relay(mp, batch); v != "ignore" || *verified != 2 {
		t.Fatalf("a free parked tx with 200 unchecked: %s after %d verifications, want ignore after 2 (the parked one and a spot check)", v, *verified)
	}
	for i := range 10 {
		relay(mp, [][]byte{fresh(byte(i), 1<<40)})
	}
	if !mp.SigCache().Has(chain.TxHash(parked)) {
		t.Fatal("spot checks pushed a parked transaction's signature out of the cache")
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
	_, errs := mp.AddBatch([][]byte{n.Transfer(4, 5, 1, 1), corrupt(n.Transfer(1, 5, 1, 1))})
	for i, err := range errs {
		if !errors.Is(err, ErrMempoolFull) {
			t.Fatalf("client: past the bound %d: %v, want mempool full", i, err)
		}
	}
	if *verified != bound {
		t.Fatalf("client: verified %d signatures for refused transactions", *verified-bound)
	}
	delete(n.Pending, n.Keys[4].Address())
	_, errs = mp.AddRelayed([][]byte{n.Transfer(4, 5, 1, 1), n.Transfer(5, 4, 1, 1)})
	for i, err := range errs {
		if !errors.Is(err, ErrMempoolFull) {
			t.Fatalf("relay: past the bound %d: %v, want mempool full", i, err)
		}
	}
	if *verified != bound+1 {
		t.Fatalf("relay: verified %d signatures for a refused batch, want the one spot check", *verified-bound)
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
// transactions). Its block still finds it verified: blocks ask the
// mempool for what it holds, so a block of them costs no verification.
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
	before := mp.SigCache().Verified()
	opts := chain.ExecOptions{SigCache: mp.SigCache(), Held: mp.Held}
	tmpl := chain.BlockTemplate{Height: n.St.Height() + 1, Time: n.Time + 1000, PrevHash: n.PrevHash, Proposer: n.Proposer().Address()}
	for _, name := range []string{"build", "execute"} {
		b, _, err := chain.BuildBlock(n.St, tmpl, mp.Reap(1<<20, 100), opts)
		if err != nil || len(b.Txs) != len(raws) {
			t.Fatalf("%s: block of %d: %v", name, len(b.Txs), err)
		}
		if name == "execute" {
			if _, err := chain.Execute(n.St, b, opts); err != nil {
				t.Fatal(err)
			}
		}
		if v := mp.SigCache().Verified() - before; v != 0 {
			t.Fatalf("%s: %d signatures verified again", name, v)
		}
	}
	// A transaction the mempool does not hold is verified (once).
	other := n.Transfer(4, 5, 1, 1)
	tx, _ := chain.DecodeTx(other)
	if _, err := chain.VerifyTxs([]*chain.Tx{tx}, [][32]byte{chain.TxHash(other)}, mp.SigCache()); err != nil {
		t.Fatal(err)
	}
	if v := mp.SigCache().Verified() - before; v != 1 {
		t.Fatalf("a transaction outside the mempool: %d verified, want 1", v)
	}
}
