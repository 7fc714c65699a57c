package chain

import (
	"context"
	"errors"
	"testing"
)

func TestApplyCommitted(t *testing.T) {
	ctx := context.Background()
	n := newTestNet(t, 6, 4)
	// A follower node: its own state, store and mempool.
	st, err := n.gen.State()
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemStore()
	if err := store.InitGenesis(ctx, genesisJSON(t, n.gen), st); err != nil {
		t.Fatal(err)
	}
	mp := NewMempool(MempoolConfig{}, st)
	tx := transfer(n, 0, 1, 10, 1)
	if _, err := mp.Add(tx); err != nil {
		t.Fatal(err)
	}
	b, _ := n.block(tx)
	res, err := ApplyCommitted(ctx, st, store, mp, b, []byte("cert"), ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Root() != n.st.Root() || store.Height() != 1 || mp.Has(TxHash(tx)) || res.StateRoot != b.Header.StateRoot {
		t.Fatal("follower did not reach the leader's state, store and mempool")
	}

	// A committed block whose root the follower cannot reproduce halts it,
	// and nothing is written.
	b2, _ := n.block(transfer(n, 2, 3, 10, 1))
	forged := *b2
	forged.Header.StateRoot[0] ^= 1
	rootBefore := st.Root()
	_, err = ApplyCommitted(ctx, st, store, mp, &forged, nil, ExecOptions{})
	if !errors.Is(err, ErrStateRootMismatch) {
		t.Fatalf("got %v, want ErrStateRootMismatch", err)
	}
	if st.Root() != rootBefore || store.Height() != 1 {
		t.Fatal("a divergent block changed the state or the store")
	}
	if _, err := ApplyCommitted(ctx, st, store, mp, b2, nil, ExecOptions{}); err != nil {
		t.Fatal(err)
	}
}
