package node

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
)

// submitNet is a one-validator node whose genesis funds the keys the test
// signs with, as a client signing elsewhere would.
type submitNet struct {
	t    *testing.T
	tn   *testNet
	c    *api.Client
	keys []wallet.PrivateKey
	fee  uint64
}

const submitFunds = 10_000_000

func newSubmitNet(t *testing.T, keys int) *submitNet {
	t.Helper()
	return newSubmitNetWith(t, keys, nil)
}

// newSubmitNetWith is newSubmitNet with the node's config edited.
func newSubmitNetWith(t *testing.T, keys int, edit func(int, *Config)) *submitNet {
	t.Helper()
	sn := &submitNet{t: t}
	for i := range keys {
		sn.keys = append(sn.keys, mustKey(t, byte(0xA0+i)))
	}
	sn.tn = newTestNetGenesis(t, 1, func(g *chain.Genesis) {
		for _, k := range sn.keys {
			g.Accounts = append(g.Accounts, chain.GenesisAccount{Address: k.Address(), Balance: submitFunds})
		}
	}, edit)
	sn.tn.startAll()
	sn.tn.waitHeight(1, 30*time.Second)
	sn.c = sn.tn.client(0)
	sn.fee = sn.tn.genesis.Params.MinFee
	return sn
}

// transfer signs a transfer of amount from key k with nonce to addr.
func (sn *submitNet) transfer(k wallet.PrivateKey, chainID string, nonce uint64, to wallet.Address, amount uint64) []byte {
	sn.t.Helper()
	tx := &chain.Tx{ChainID: chainID, Sender: k.Public(), Nonce: nonce, Fee: sn.fee,
		Transfer: &chain.Transfer{To: to, Amount: amount}}
	if err := tx.Sign(k); err != nil {
		sn.t.Fatal(err)
	}
	raw, err := tx.Encode()
	if err != nil {
		sn.t.Fatal(err)
	}
	return raw
}

// account is k's account as the node's committed state has it.
func (sn *submitNet) account(a wallet.Address) chain.Account {
	sn.t.Helper()
	acc, err := sn.tn.nodes[0].drv.State().Account(a)
	if err != nil {
		sn.t.Fatal(err)
	}
	return acc
}

// waitNonce polls until a's account nonce is want, then checks the whole
// state's invariants (supply, escrow) and that the nonce stays there for a
// few more blocks (nothing applied twice later).
func (sn *submitNet) waitNonce(a wallet.Address, want uint64) {
	sn.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for sn.account(a).Nonce < want {
		if time.Now().After(deadline) {
			sn.t.Fatalf("nonce of %s is %d, want %d", a, sn.account(a).Nonce, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h := sn.tn.nodes[0].store.Height()
	sn.tn.waitHeight(h+3, 30*time.Second)
	if got := sn.account(a).Nonce; got != want {
		sn.t.Fatalf("nonce of %s is %d, want %d", a, got, want)
	}
	if err := chain.CheckInvariants(sn.tn.nodes[0].drv.State()); err != nil {
		sn.t.Fatal(err)
	}
}

func statuses(rs []api.TxResult) map[string]int {
	m := map[string]int{}
	for _, r := range rs {
		m[r.Status]++
	}
	return m
}

// Transactions signed by the client are admitted without waiting for a
// block, then commit; with commit the call answers with their heights;
// balances move by exactly what was sent plus fees.
func TestSubmitTxsAdmitsSignedTransfersAndCanWaitForTheirBlocks(t *testing.T) {
	sn := newSubmitNet(t, 2)
	ctx := context.Background()
	a, b := sn.keys[0], sn.keys[1]
	var batch [][]byte
	for n := range uint64(50) {
		batch = append(batch, sn.transfer(a, sn.tn.chainID, n, b.Address(), 3))
	}
	rs, err := sn.c.SubmitTxs(ctx, batch, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Status != api.TxPending && r.Status != "committed" {
			t.Fatalf("tx %d: %+v", i, r)
		}
		if want := chain.TxHash(batch[i]); r.Hash != hex.EncodeToString(want[:]) {
			t.Fatalf("tx %d: hash %s", i, r.Hash)
		}
	}
	// Waiting for commit: the answer carries the height.
	rs, err = sn.c.SubmitTxs(ctx, [][]byte{sn.transfer(a, sn.tn.chainID, 50, b.Address(), 3)}, true)
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Status != "committed" || rs[0].Height == 0 {
		t.Fatalf("with commit: %+v", rs[0])
	}
	sn.waitNonce(a.Address(), 51)
	if got, want := sn.account(a.Address()).Balance, uint64(submitFunds-51*(3+sn.fee)); got != want {
		t.Fatalf("sender balance %d, want %d", got, want)
	}
	if got, want := sn.account(b.Address()).Balance, uint64(submitFunds+51*3); got != want {
		t.Fatalf("receiver balance %d, want %d", got, want)
	}
}

// Garbage in a batch is rejected with a reason and does not stop the
// honest transactions next to it; a transaction signed for another chain
// is rejected as such; a bad signature is rejected.
func TestSubmitTxsAttackGarbageAndWrongChainAreRejectedOthersCommit(t *testing.T) {
	sn := newSubmitNet(t, 2)
	ctx := context.Background()
	a, b := sn.keys[0], sn.keys[1]
	good0 := sn.transfer(a, sn.tn.chainID, 0, b.Address(), 7)
	wrongChain := sn.transfer(b, "other-chain", 0, a.Address(), 7)
	badTx, err := chain.DecodeTx(sn.transfer(b, sn.tn.chainID, 0, a.Address(), 7))
	if err != nil {
		t.Fatal(err)
	}
	badTx.Sig[5] ^= 0xff
	badSig, err := badTx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	good1 := sn.transfer(a, sn.tn.chainID, 1, b.Address(), 7)
	rs, err := sn.c.SubmitTxs(ctx, [][]byte{good0, {0xde, 0xad, 0xbe, 0xef}, wrongChain, badSig, good1}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{api.TxPending, api.TxRejected, api.TxRejected, api.TxRejected, api.TxPending}
	for i, r := range rs {
		if r.Status != want[i] && !(want[i] == api.TxPending && r.Status == "committed") {
			t.Fatalf("tx %d: %+v, want %s", i, r, want[i])
		}
	}
	if !strings.Contains(rs[2].Error, "chain id") {
		t.Fatalf("wrong chain id refused with %q", rs[2].Error)
	}
	if !strings.Contains(rs[3].Error, "signature") {
		t.Fatalf("bad signature refused with %q", rs[3].Error)
	}
	sn.waitNonce(a.Address(), 2)
	if got := sn.account(b.Address()); got.Nonce != 0 || got.Balance != submitFunds+14 {
		t.Fatalf("b: %+v, want nonce 0 and balance %d", got, submitFunds+14)
	}
}

// The same signed transaction twice in one batch, again in a later batch
// while it is pending, and again after it committed: every answer names
// it, and it is applied exactly once.
func TestSubmitTxsAttackDuplicatesInAndAcrossBatchesApplyOnce(t *testing.T) {
	sn := newSubmitNet(t, 2)
	ctx := context.Background()
	a, b := sn.keys[0], sn.keys[1]
	var txs [][]byte
	for n := range uint64(20) {
		txs = append(txs, sn.transfer(a, sn.tn.chainID, n, b.Address(), 11))
	}
	batch := append(append([][]byte{}, txs...), txs...) // each twice
	batch = append(batch, txs[5], txs[5])
	for round := range 3 {
		rs, err := sn.c.SubmitTxs(ctx, batch, false)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rs {
			if r.Status != api.TxPending && r.Status != "committed" {
				t.Fatalf("round %d, tx %d: %+v", round, i, r)
			}
		}
	}
	sn.waitNonce(a.Address(), 20)
	// After commit, resubmitting says committed and changes nothing.
	rs, err := sn.c.SubmitTxs(ctx, batch, true)
	if err != nil {
		t.Fatal(err)
	}
	if s := statuses(rs); s["committed"] != len(batch) {
		t.Fatalf("resubmitted after commit: %v", s)
	}
	sn.waitNonce(a.Address(), 20)
	if got, want := sn.account(a.Address()).Balance, uint64(submitFunds-20*(11+sn.fee)); got != want {
		t.Fatalf("sender balance %d, want %d (applied more than once?)", got, want)
	}
	if got, want := sn.account(b.Address()).Balance, uint64(submitFunds+20*11); got != want {
		t.Fatalf("receiver balance %d, want %d", got, want)
	}
}

// A batch of exactly MaxSubmitTxs is taken whole; one more is refused
// before the node decodes a transaction.
func TestSubmitTxsAttackOversizedBatchRefusedAtTheBound(t *testing.T) {
	sn := newSubmitNet(t, 4)
	ctx := context.Background()
	var batch [][]byte
	per := api.MaxSubmitTxs / len(sn.keys)
	for n := range per {
		for i, k := range sn.keys {
			batch = append(batch, sn.transfer(k, sn.tn.chainID, uint64(n), sn.keys[(i+1)%len(sn.keys)].Address(), 1))
		}
	}
	if len(batch) != api.MaxSubmitTxs {
		t.Fatalf("made %d", len(batch))
	}
	rs, err := sn.c.SubmitTxs(ctx, batch, false)
	if err != nil {
		t.Fatal(err)
	}
	if s := statuses(rs); s[api.TxRejected] != 0 {
		t.Fatalf("at the bound: %v, e.g. %+v", s, rs[0])
	}
	_, err = sn.c.SubmitTxs(ctx, append(batch, batch[0]), false)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeBadRequest || !strings.Contains(err.Error(), "more than 1000") {
		t.Fatalf("one past the bound: %v", err)
	}
	for _, k := range sn.keys {
		sn.waitNonce(k.Address(), uint64(per))
		if got := sn.account(k.Address()).Balance; got != submitFunds-uint64(per)*sn.fee {
			t.Fatalf("%s balance %d", k.Address(), got)
		}
	}
}

// One client floods: thousands of transactions from one sender, in
// batches, without waiting. The node holds at most the per-sender bound of
// them, refuses the rest with a reason, keeps committing another client's
// transactions, and what it admitted commits exactly once. The bound is
// 100 here, a tenth of a batch: a batch is admitted under one lock, so
// each batch overflows it however fast the chain commits (with the default
// 1,000, one batch's worth, a fast machine committed each batch before the
// next arrived and nothing was ever refused).
func TestSubmitTxsAttackFloodFromOneClientStaysBounded(t *testing.T) {
	const bound = 100
	sn := newSubmitNetWith(t, 2, func(_ int, c *Config) { c.Chain.mempool.MaxPerSender = bound })
	ctx := context.Background()
	flooder, honest := sn.keys[0], sn.keys[1]
	const total = 3000
	var txs [][]byte
	for n := range uint64(total) {
		txs = append(txs, sn.transfer(flooder, sn.tn.chainID, n, honest.Address(), 1))
	}
	mp := sn.tn.nodes[0].drv.Mempool()
	admitted, refused := 0, 0
	for i := 0; i < total; i += api.MaxSubmitTxs {
		rs, err := sn.c.SubmitTxs(ctx, txs[i:i+api.MaxSubmitTxs], false)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			switch r.Status {
			case api.TxPending, "committed":
				if refused > 0 {
					t.Fatalf("admitted %s after a refusal: a nonce gap", r.Hash)
				}
				admitted++
			case api.TxRejected:
				if !strings.Contains(r.Error, "mempool full") && !strings.Contains(r.Error, "nonce gap") {
					t.Fatalf("refused with %q", r.Error)
				}
				refused++
			}
		}
		if n, _ := mp.Size(); n > bound {
			t.Fatalf("mempool holds %d of one sender's transactions, bound %d", n, bound)
		}
	}
	if refused == 0 {
		t.Fatalf("all %d admitted: the per-sender bound did not apply", total)
	}
	// The honest client is served meanwhile.
	rs, err := sn.c.SubmitTxs(ctx, [][]byte{sn.transfer(honest, sn.tn.chainID, 0, flooder.Address(), 5)}, true)
	if err != nil || rs[0].Status != "committed" {
		t.Fatalf("honest transfer during the flood: %+v %v", rs, err)
	}
	sn.waitNonce(flooder.Address(), uint64(admitted))
	if got, want := sn.account(flooder.Address()).Balance, uint64(submitFunds-admitted*int(1+sn.fee)+5); got != want {
		t.Fatalf("flooder balance %d, want %d", got, want)
	}
	if n := sn.tn.nodes[0].txs.waiters.size(); n != 0 {
		t.Fatalf("%d commit waiters left", n)
	}
}

// The waiters of calls with commit are bounded over all clients: at the
// bound a call is taken, past it refused, and finished calls free their
// places.
func TestSubmitTxsAttackCommitWaitersBoundedAtTheBound(t *testing.T) {
	var w commitWaiters
	hashes := make([][32]byte, maxCommitWaiters)
	for i := range hashes {
		hashes[i][0], hashes[i][1], hashes[i][2] = byte(i), byte(i>>8), byte(i>>16)
	}
	chs, ok := w.add(hashes)
	if !ok {
		t.Fatal("refused at the bound")
	}
	if _, ok := w.add(hashes[:1]); ok {
		t.Fatal("taken past the bound")
	}
	w.remove(hashes, chs)
	if w.size() != 0 || len(w.m) != 0 {
		t.Fatalf("left %d waiters, %d hashes", w.size(), len(w.m))
	}
	if _, ok := w.add(hashes[:1]); !ok {
		t.Fatal("refused after the others left")
	}
}
