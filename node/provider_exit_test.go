package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
)

// A provider leaves through the API: after deregistering it takes no new
// jobs (its offer leaves the books), its status says when it may
// withdraw, and the withdrawal returns its collateral to its balance.
func TestProviderLeavesThroughTheAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	tn := providerNetWith(t, func(g *chain.Genesis) { g.Params.ProviderExitDelayMs = 0 })
	ctx := context.Background()
	c := tn.client(1)
	// Refused up front, saying why.
	if _, err := c.ProviderWithdraw(ctx); err == nil || !strings.Contains(err.Error(), "send ProviderDeregister first") {
		t.Fatalf("withdraw while registered: %v", err)
	}
	res, err := c.ProviderDeregister(ctx)
	committed(t, c, res, err)
	ps, err := c.ProviderStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ps.Registered || !ps.Leaving || ps.WithdrawableAt == nil || ps.Collateral != 5000 {
		t.Fatalf("status after deregistering: %+v", ps)
	}
	before, err := c.Account(ctx, ps.Address)
	if err != nil {
		t.Fatal(err)
	}
	res, err = c.ProviderWithdraw(ctx)
	committed(t, c, res, err)
	after, err := c.Account(ctx, ps.Address)
	if err != nil {
		t.Fatal(err)
	}
	// +5000 collateral -1 fee; the provider is also a validator and may
	// have been paid fees for proposing blocks in between.
	if after.Collateral != 0 || after.Balance < before.Balance+5000-1 {
		t.Fatalf("balance %d -> %d, collateral %d: want the 5000 collateral back (less the 1 fee)", before.Balance, after.Balance, after.Collateral)
	}
	// Its offer leaves the client's book once it expires and is not renewed.
	deadline := time.Now().Add(30 * time.Second)
	for {
		offers, err := tn.client(0).Offers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, o := range offers {
			found = found || o.Provider == ps.Address
		}
		if !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leaving provider's offer is still in the book")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
