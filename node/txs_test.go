package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/wallet"
)

// soloTransport is the network of a single validator: nobody to talk to.
type soloTransport struct{}

func (soloTransport) Broadcast(context.Context, string, []byte) error { return nil }
func (soloTransport) Peers() []string                                 { return nil }
func (soloTransport) Request(context.Context, string, string, []byte, int) ([]byte, error) {
	return nil, errors.New("no peers")
}

// soloSender is a txSender on a one-validator chain whose driver makes
// blocks on its own. The test holds the block announcements (ch) and hands
// them to onCommit itself, as late as it likes: the node's forwardCommits
// does the same on its own schedule.
type soloSender struct {
	t  *testing.T
	n  *Node
	s  *txSender
	ch <-chan driver.Committed
}

func newSoloSender(t *testing.T) *soloSender {
	t.Helper()
	k := mustKey(t, 41)
	g := chain.Genesis{
		ChainID: "txs-test", GenesisTime: time.Now().UnixMilli() - 1000,
		Accounts:   []chain.GenesisAccount{{Address: k.Address(), Balance: 1_000_000}},
		Validators: []chain.GenesisValidator{{Address: k.Address(), PubKey: chain.HexKey(k.Public()), Stake: 100}},
		Timeouts: chain.Timeouts{ProposeMs: 200, ProposeDeltaMs: 50, PrevoteMs: 50, PrevoteDeltaMs: 25,
			PrecommitMs: 50, PrecommitDeltaMs: 25, CommitMs: 10},
		Params: chain.DefaultParams(),
	}
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	store := store.NewMem()
	drv, err := driver.New(driver.Config{GenesisJSON: raw, Key: k}, store, soloTransport{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: Config{ChainID: g.ChainID}, key: k, store: store, drv: drv, ctx: ctx,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ch, unsub := drv.SubscribeAll(1024)
	drv.Start(ctx)
	t.Cleanup(func() {
		unsub()
		cancel()
		drv.Close()
	})
	return &soloSender{t: t, n: n, s: newTxSender(n), ch: ch}
}

// next is the next block announcement the test holds back.
func (ss *soloSender) next() driver.Committed {
	ss.t.Helper()
	select {
	case c, ok := <-ss.ch:
		if !ok {
			ss.t.Fatal("driver stopped")
		}
		return c
	case <-time.After(30 * time.Second):
		ss.t.Fatalf("no block in 30 s (driver: %v)", ss.n.drv.Err())
	}
	panic("unreachable")
}

// holdUntil collects announcements until one commits hash, then `after`
// more, so the state is that many blocks ahead of the announcement that
// carries the transaction.
func (ss *soloSender) holdUntil(hash [32]byte, after int) (held []driver.Committed, at uint64) {
	ss.t.Helper()
	for at == 0 || after > 0 {
		c := ss.next()
		held = append(held, c)
		if at != 0 {
			after--
			continue
		}
		for _, r := range c.Result.TxResults {
			if r.Hash == hash {
				at = c.Block.Header.Height
			}
		}
	}
	return held, at
}

func (ss *soloSender) account(a wallet.Address) chain.Account {
	ss.t.Helper()
	acc, err := ss.n.drv.State().Account(a)
	if err != nil {
		ss.t.Fatal(err)
	}
	return acc
}

// sign is a transfer from the node's key with the given nonce, built by
// hand (not through the txSender).
func (ss *soloSender) sign(nonce uint64, to wallet.Address, amount uint64) ([]byte, [32]byte) {
	ss.t.Helper()
	tx := &chain.Tx{ChainID: ss.n.cfg.ChainID, Sender: ss.n.key.Public(), Nonce: nonce, Fee: 1,
		Transfer: &chain.Transfer{To: to, Amount: amount}}
	if err := tx.Sign(ss.n.key); err != nil {
		ss.t.Fatal(err)
	}
	raw, err := tx.Encode()
	if err != nil {
		ss.t.Fatal(err)
	}
	return raw, chain.TxHash(raw)
}

func noOutcome(t *testing.T, done <-chan txOutcome, when string) {
	t.Helper()
	select {
	case o := <-done:
		t.Fatalf("%s: outcome %x at height %d", when, o.hash[:8], o.height)
	default:
	}
}

// TestTxSenderLaggingSubscriberDoesNotResignCommittedTx is the bug of
// issue 12 at the smallest scale: the driver drops a committed transaction
// from the mempool before it announces the block, and the node's
// subscriber reads announcements on its own schedule. Here it is several
// blocks behind: it is handed the announcements of the blocks before the
// transaction's while the transaction has already committed and left the
// mempool. Nothing may be re-signed (the old code signed the transfer again
// and both copies paid); the waiter hears once, of the transaction that
// committed.
func TestTxSenderLaggingSubscriberDoesNotResignCommittedTx(t *testing.T) {
	ss := newSoloSender(t)
	first := ss.next() // a block before the transaction's
	to := mustKey(t, 42).Address()
	hash, done, err := ss.s.submit(context.Background(), func(tx *chain.Tx) {
		tx.Transfer = &chain.Transfer{To: to, Amount: 700}
	})
	if err != nil {
		t.Fatal(err)
	}
	held, at := ss.holdUntil(hash, 2)
	held = append([]driver.Committed{first}, held...)
	if ss.n.drv.Mempool().Has(hash) {
		t.Fatal("the committed transaction is still in the mempool")
	}
	for _, c := range held {
		if c.Block.Header.Height == at {
			noOutcome(t, done, "before its block was announced")
		}
		ss.s.onCommit(c)
		if txs, _ := ss.n.drv.Mempool().Size(); txs != 0 {
			t.Fatalf("after the announcement of block %d (tx in %d): %d transactions in the mempool, a re-signed copy", c.Block.Header.Height, at, txs)
		}
	}
	select {
	case o := <-done:
		if o.hash != hash || o.height != at || o.res.Code != 0 {
			t.Fatalf("outcome %x at %d code %d, want %x at %d", o.hash[:8], o.height, o.res.Code, hash[:8], at)
		}
	default:
		t.Fatal("no outcome after the transaction's block was announced")
	}
	// A few more blocks, delivered on time: still paid once.
	for range 3 {
		ss.s.onCommit(ss.next())
	}
	noOutcome(t, done, "later")
	if acc := ss.account(ss.n.key.Address()); acc.Nonce != 1 {
		t.Fatalf("sender nonce %d after one transfer", acc.Nonce)
	}
	if acc := ss.account(to); acc.Balance != 700 {
		t.Fatalf("receiver balance %d, want 700", acc.Balance)
	}
	if len(ss.s.pending) != 0 {
		t.Fatalf("%d transactions still pending", len(ss.s.pending))
	}
}

// TestTxSenderRebroadcastsEvictedTxWithItsOwnNonce: a pending transaction
// the mempool no longer holds (evicted) while its nonce is unused is put
// back as the same signed bytes, not signed again, and commits once.
func TestTxSenderRebroadcastsEvictedTxWithItsOwnNonce(t *testing.T) {
	ss := newSoloSender(t)
	to := mustKey(t, 43).Address()
	fill := func(tx *chain.Tx) { tx.Transfer = &chain.Transfer{To: to, Amount: 500} }
	raw, hash := ss.sign(0, to, 500)
	done := make(chan txOutcome, 1)
	// Signed and gossiped, then evicted: pending here, in no mempool.
	ss.s.mu.Lock()
	ss.s.pending[hash] = &pendingTx{fill: fill, raw: raw, hash: hash, nonce: 0, waiters: []chan txOutcome{done}}
	ss.s.mu.Unlock()
	for {
		c := ss.next()
		ss.s.onCommit(c)
		select {
		case o := <-done:
			if o.hash != hash {
				t.Fatalf("committed %x, want the original %x", o.hash[:8], hash[:8])
			}
			for range 2 {
				ss.s.onCommit(ss.next())
			}
			noOutcome(t, done, "later")
			if acc := ss.account(ss.n.key.Address()); acc.Nonce != 1 {
				t.Fatalf("sender nonce %d, want 1", acc.Nonce)
			}
			if acc := ss.account(to); acc.Balance != 500 {
				t.Fatalf("receiver balance %d, want 500", acc.Balance)
			}
			return
		default:
		}
		if c.Block.Header.Height > 50 {
			t.Fatal("the evicted transaction did not commit in 50 blocks")
		}
	}
}

// TestTxSenderResignsOnlyWhenAnotherTxTookTheNonce: when a different
// transaction commits at a pending transaction's nonce (a proposer's Match,
// or a copy signed while it was out of the mempool), the original can never
// commit, and only then is it signed again; the waiter hears once, of the
// replacement's hash, and the original is not on chain.
func TestTxSenderResignsOnlyWhenAnotherTxTookTheNonce(t *testing.T) {
	ss := newSoloSender(t)
	to := mustKey(t, 44).Address()
	other := mustKey(t, 45).Address()
	fill := func(tx *chain.Tx) { tx.Transfer = &chain.Transfer{To: to, Amount: 300} }
	raw, hash := ss.sign(0, to, 300)
	otherRaw, otherHash := ss.sign(0, other, 9) // same nonce, another body
	done := make(chan txOutcome, 1)
	ss.s.mu.Lock()
	ss.s.pending[hash] = &pendingTx{fill: fill, raw: raw, hash: hash, nonce: 0, waiters: []chan txOutcome{done}}
	if _, err := ss.n.drv.Mempool().Add(otherRaw); err != nil {
		t.Fatal(err)
	}
	ss.s.mu.Unlock()
	var o txOutcome
	for got := false; !got; {
		c := ss.next()
		ss.s.onCommit(c)
		select {
		case o = <-done:
			got = true
		default:
		}
		if c.Block.Header.Height > 50 {
			t.Fatal("no replacement committed in 50 blocks")
		}
	}
	if o.hash == hash || o.hash == otherHash {
		t.Fatalf("outcome names %x, want the replacement", o.hash[:8])
	}
	if _, _, err := ss.n.store.TxByHash(context.Background(), hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the replaced original is on chain (%v)", err)
	}
	loc, rawR, err := ss.n.store.TxByHash(context.Background(), o.hash)
	if err != nil || loc.Height != o.height {
		t.Fatalf("replacement %x at %d: %+v %v", o.hash[:8], o.height, loc, err)
	}
	if tx, err := chain.DecodeTx(rawR); err != nil || tx.Nonce != 1 || tx.Transfer == nil || tx.Transfer.To != to || tx.Transfer.Amount != 300 {
		t.Fatalf("replacement %+v (%v)", tx, err)
	}
	for range 2 {
		ss.s.onCommit(ss.next())
	}
	noOutcome(t, done, "later")
	if acc := ss.account(ss.n.key.Address()); acc.Nonce != 2 {
		t.Fatalf("sender nonce %d, want 2 (the other transaction and the replacement)", acc.Nonce)
	}
	if acc := ss.account(to); acc.Balance != 300 {
		t.Fatalf("receiver balance %d, want 300: paid once", acc.Balance)
	}
	if len(ss.s.pending) != 0 {
		t.Fatalf("%d transactions still pending", len(ss.s.pending))
	}
}
