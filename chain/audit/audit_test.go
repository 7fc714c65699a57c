package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/codec"
)

func TestAuditOfAnHonestBusyChainPasses(t *testing.T) {
	s, _, _ := sharedChain(t)
	var calls uint64
	rep, err := Run(context.Background(), s, Options{Progress: func(done, total uint64) { calls++ }})
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if !rep.OK || rep.Height != 40 || rep.Blocks != 40 || calls != 40 || rep.Commits != 40 || rep.Invariant != 40 {
		t.Fatalf("report %+v, %d progress calls", rep, calls)
	}
	st := rep.Settled
	if st.Completed == 0 || st.Failed == 0 || st.Unavailable == 0 || st.TimedOut == 0 || rep.FailedTxs == 0 {
		t.Fatalf("the chain does not exercise every settlement: %+v", rep)
	}
	if rep.Paid == 0 || rep.Refunded == 0 || rep.Burned == 0 || rep.Slashed == 0 {
		t.Fatalf("no money moved: %+v", rep)
	}
	var d *Discrepancy
	if errors.As(err, &d) {
		t.Fatal(d)
	}
}

// tampered builds a busy chain, lets tamper edit its datastore and audits
// it: the audit must fail naming want.
func tampered(t *testing.T, wantHeight uint64, wantCheck string, tamper func(t *testing.T, d ds.Batching, n *chaintest.Net)) {
	t.Helper()
	ctx := context.Background()
	s, d, n := sharedChain(t)
	tamper(t, d, n)
	s2, err := store.NewOn(d) // reopen: the store reads its metadata again
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, s2, Options{})
	var disc *Discrepancy
	if !errors.As(err, &disc) {
		t.Fatalf("audit of a tampered store: %v, want a discrepancy", err)
	}
	if disc.Height != wantHeight || disc.Check != wantCheck || rep.Failure != disc || rep.OK {
		t.Fatalf("discrepancy %v (report ok %v), want height %d check %s", disc, rep.OK, wantHeight, wantCheck)
	}
	if rep.Height != wantHeight-1 && wantCheck != CheckStoredState {
		t.Fatalf("report says audited to %d, failure at %d", rep.Height, wantHeight)
	}
	_ = s
}

func get(t *testing.T, d ds.Batching, k string) []byte {
	t.Helper()
	v, err := d.Get(context.Background(), ds.NewKey(k))
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	return v
}

func put(t *testing.T, d ds.Batching, k string, v []byte) {
	t.Helper()
	if err := d.Put(context.Background(), ds.NewKey(k), v); err != nil {
		t.Fatal(err)
	}
}

func TestAuditCatchesAForgedSignatureInAStoredCertificate(t *testing.T) {
	tampered(t, 17, CheckCommit, func(t *testing.T, d ds.Batching, _ *chaintest.Net) {
		k := fmt.Sprintf("/commits/%016x", 17)
		c, err := consensus.DecodeCommit(get(t, d, k))
		if err != nil {
			t.Fatal(err)
		}
		c.Precommits[1].Signature[5] ^= 1
		raw, _ := consensus.EncodeCommit(c)
		put(t, d, k, raw)
	})
}

func TestAuditCatchesACertificateShortOfTwoThirds(t *testing.T) {
	tampered(t, 9, CheckCommit, func(t *testing.T, d ds.Batching, _ *chaintest.Net) {
		k := fmt.Sprintf("/commits/%016x", 9)
		c, err := consensus.DecodeCommit(get(t, d, k))
		if err != nil {
			t.Fatal(err)
		}
		c.Precommits = c.Precommits[:2] // 2 of 4 equal powers
		raw, _ := consensus.EncodeCommit(c)
		put(t, d, k, raw)
	})
}

// An edited block no longer hashes to what its certificate signed.
func TestAuditCatchesAnEditedStoredBlock(t *testing.T) {
	tampered(t, 23, CheckCommit, func(t *testing.T, d ds.Batching, _ *chaintest.Net) {
		k := fmt.Sprintf("/blocks/%016x", 23)
		b, err := chain.DecodeBlock(get(t, d, k))
		if err != nil {
			t.Fatal(err)
		}
		b.Txs = b.Txs[1:]
		b.Header.TxsRoot = chain.TxsRoot(b.Txs)
		raw, _ := b.Encode()
		put(t, d, k, raw)
	})
}

// Validators that certify a block whose state root lies (here: a block
// that drops a settlement but keeps the honest root) are caught by
// re-execution, at that height.
func TestAuditCatchesACertifiedBlockWhoseStateRootLies(t *testing.T) {
	tampered(t, 31, CheckExecution, func(t *testing.T, d ds.Batching, n *chaintest.Net) {
		k := fmt.Sprintf("/blocks/%016x", 31)
		b, err := chain.DecodeBlock(get(t, d, k))
		if err != nil {
			t.Fatal(err)
		}
		b.Txs = b.Txs[1:]
		b.Header.TxsRoot = chain.TxsRoot(b.Txs)
		raw, _ := b.Encode()
		put(t, d, k, raw)
		// Re-certify it, and chain block 32 onto it, as colluding
		// validators holding every key could.
		recertify(t, d, n, 31, b.Hash())
		b32, err := chain.DecodeBlock(get(t, d, fmt.Sprintf("/blocks/%016x", 32)))
		if err != nil {
			t.Fatal(err)
		}
		b32.Header.PrevHash = b.Hash()
		b32.LastCommit = get(t, d, fmt.Sprintf("/commits/%016x", 31))
		b32.Header.LastCommitHash = sha256.Sum256(b32.LastCommit)
		raw32, _ := b32.Encode()
		put(t, d, fmt.Sprintf("/blocks/%016x", 32), raw32)
	})
}

func recertify(t *testing.T, d ds.Batching, n *chaintest.Net, h uint64, id [32]byte) {
	k := fmt.Sprintf("/commits/%016x", h)
	c, err := consensus.DecodeCommit(get(t, d, k))
	if err != nil {
		t.Fatal(err)
	}
	c.BlockID = consensus.BlockID(id)
	for i := range c.Precommits {
		v := &c.Precommits[i]
		v.BlockID = c.BlockID
		v.Signature = n.KeyOf(v.Validator).Sign(chaintest.ChainID, consensus.MsgTypePrecommit, v.SignBytes())
	}
	raw, _ := consensus.EncodeCommit(c)
	put(t, d, k, raw)
}

// A receipt that turns a failed transaction into a successful one.
func TestAuditCatchesAStoredReceiptThatHidesAFailure(t *testing.T) {
	tampered(t, 20, CheckReceipts, func(t *testing.T, d ds.Batching, _ *chaintest.Net) {
		k := fmt.Sprintf("/receipts/%016x", 20)
		var r store.Receipts
		if err := codec.Unmarshal(get(t, d, k), &r); err != nil {
			t.Fatal(err)
		}
		hit := false
		for i := range r.Txs {
			if r.Txs[i].Code == 1 {
				r.Txs[i].Code, r.Txs[i].Log, hit = 0, "", true
			}
		}
		if !hit {
			t.Fatal("block 20 has no failed transaction")
		}
		put(t, d, k, codec.MustMarshal(r))
	})
}

// A balance edited in the stored state, with the recorded root updated to
// match the records (so the node itself would load it without noticing).
func TestAuditCatchesAStoredBalanceEditedWithItsRoot(t *testing.T) {
	tampered(t, 40, CheckStoredState, func(t *testing.T, d ds.Batching, n *chaintest.Net) {
		addr := n.Keys[firstClient].Address()
		k := "/state/" + hex.EncodeToString(append([]byte("acct/"), addr[:]...))
		var acc chain.Account
		if err := codec.Unmarshal(get(t, d, k), &acc); err != nil {
			t.Fatal(err)
		}
		acc.Balance += 1_000
		put(t, d, k, codec.MustMarshal(acc))
		s, err := store.NewOn(d)
		if err != nil {
			t.Fatal(err)
		}
		// LoadState refuses records that do not hash to the recorded
		// root: recompute it as a careful forger would.
		if _, err := s.LoadState(context.Background()); err == nil {
			t.Fatal("the forgery without its root loads")
		}
		records := map[string][]byte{}
		res, _ := d.Query(context.Background(), query.Query{Prefix: "/state/"})
		for r := range res.Next() {
			kb, _ := hex.DecodeString(strings.TrimPrefix(r.Key, "/state/"))
			records[string(kb)] = r.Value
		}
		st, err := chain.StateFromRecords(records)
		if err != nil {
			t.Fatal(err)
		}
		root := st.Root()
		put(t, d, "/meta/root", root[:])
	})
}

// Every match leads to the transaction that opened it and, once settled
// by a result or a claim, to the one that settled it.
func TestStoreLinksEveryJobToItsTransactions(t *testing.T) {
	ctx := context.Background()
	s, _, n := busyChain(t, 12)
	linked := 0
	for h := uint64(1); h <= s.Height(); h++ {
		b, _ := s.Block(ctx, h)
		for _, raw := range b.Txs {
			tx, _ := chain.DecodeTx(raw)
			var id [32]byte
			var settles bool
			switch {
			case tx.Match != nil:
				id = tx.Match.ID()
			case tx.Result != nil:
				id, settles = tx.Result.JobID, true
			case tx.PayloadUnavailable != nil:
				id, settles = tx.PayloadUnavailable.JobID, true
			default:
				continue
			}
			m, st, mok, sok, err := s.JobTxs(ctx, id)
			if err != nil || !mok {
				t.Fatalf("job %x: match tx %v %v", id[:4], mok, err)
			}
			if got := chain.TxHash(raw); settles && (!sok || st != got) || !settles && m != got {
				t.Fatalf("job %x: links %x / %x (%v), tx %x", id[:4], m[:4], st[:4], sok, got[:4])
			}
			linked++
		}
	}
	if linked < 40 {
		t.Fatalf("only %d links checked", linked)
	}
	_ = n
}

var shared struct {
	sync.Mutex
	d ds.Batching
	n *chaintest.Net
}

// sharedChain is a copy of one 40-block busy chain, built once (building
// it is most of the cost of these tests under -race).
func sharedChain(t *testing.T) (*store.Store, ds.Batching, *chaintest.Net) {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.d == nil {
		_, shared.d, shared.n = busyChain(t, 40)
	}
	ctx := context.Background()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	res, err := shared.d.Query(ctx, query.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for r := range res.Next() {
		if err := d.Put(ctx, ds.NewKey(r.Key), r.Value); err != nil {
			t.Fatal(err)
		}
	}
	s, err := store.NewOn(d)
	if err != nil {
		t.Fatal(err)
	}
	return s, d, shared.n
}
