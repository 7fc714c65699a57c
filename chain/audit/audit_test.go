package audit

import (
	"context"
	"errors"
	"testing"
)

func TestAuditOfAnHonestBusyChainPasses(t *testing.T) {
	s, _, _ := busyChain(t, 60)
	var calls uint64
	rep, err := Run(context.Background(), s, Options{Progress: func(done, total uint64) { calls++ }})
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if !rep.OK || rep.Height != 60 || rep.Blocks != 60 || calls != 60 || rep.Commits != 60 || rep.Invariant != 60 {
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
