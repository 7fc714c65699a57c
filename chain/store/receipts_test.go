package store

import (
	"context"
	"errors"
	"testing"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/internal/chaintest"
)

// A transaction whose body fails is committed (its fee is paid) but its
// receipt says it failed and why; one that succeeds says ok with its events.
func TestReceiptsTellAFailedBodyFromASuccessfulOne(t *testing.T) {
	ctx := context.Background()
	n := chaintest.NewNet(t, 4, 2)
	s := NewMem()
	if err := s.InitGenesis(ctx, chaintest.GenesisJSON(t, n.Gen), n.St); err != nil {
		t.Fatal(err)
	}
	ok := n.Transfer(2, 3, 10, 1)
	failed := n.Transfer(3, 2, 1<<40, 1) // more than the balance: the body fails
	b, res := n.Block(ok, failed)
	if err := s.SaveBlock(ctx, b, []byte("c"), res); err != nil {
		t.Fatal(err)
	}
	r, err := s.Receipts(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Txs) != 2 {
		t.Fatalf("%d receipts for 2 txs", len(r.Txs))
	}
	if r.Txs[0].Code != 0 || r.Txs[0].Log != "" {
		t.Fatalf("transfer within the balance: %+v", r.Txs[0])
	}
	if r.Txs[1].Code != 1 || r.Txs[1].Log == "" {
		t.Fatalf("transfer beyond the balance: %+v, want code 1 with a reason", r.Txs[1])
	}
	if _, err := s.Receipts(ctx, 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("receipts of a missing block: %v", err)
	}
	_ = chain.KindTransfer
}
