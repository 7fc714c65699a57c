package chain

import (
	"strings"
	"testing"
)

// Attack: a validator unbonds one unit in every block. Each unbond is a
// separate entry (one per maturity height) and slashing visits every entry
// of the offender, so after a window's worth of blocks (1,000,000 by
// default) each Evidence transaction against it would read and rewrite a
// million records, and a handful of double-signed heights would stall
// every node. As Cosmos bounds unbonding entries per delegation, an
// account holds at most MaxUnbondingEntries pending unbondings: the next
// one is refused until the earliest matures, and a second unbond in the
// same block still merges into that block's entry.
func TestUnbondingEveryBlockCannotGrowTheEntriesSlashingVisits(t *testing.T) {
	g := testGenesis(6, 4)
	g.Params.UnbondingBlocks = 3 * MaxUnbondingEntries
	n := newTestNetFrom(t, g, 4)
	const v = 3
	unbond := func() []byte { return n.tx(v, 1, func(tx *Tx) { tx.Unbond = &Unbond{Amount: 1} }) }
	for i := range MaxUnbondingEntries {
		_, res := n.block(unbond())
		if res.TxResults[0].Code != 0 {
			t.Fatalf("unbond %d of %d refused: %s", i+1, MaxUnbondingEntries, res.TxResults[0].Log)
		}
	}
	// At the bound: a new entry is refused with a reason, and the stake
	// stays bonded (only the fee is paid).
	stakeBefore := stakeOf(t, n, v)
	_, res := n.block(unbond())
	if res.TxResults[0].Code == 0 {
		t.Fatalf("unbond %d accepted: an account can grow the entries its slashing visits without bound", MaxUnbondingEntries+1)
	}
	if !strings.Contains(res.TxResults[0].Log, "pending unbondings") {
		t.Fatalf("refused for another reason: %s", res.TxResults[0].Log)
	}
	if got := stakeOf(t, n, v); got != stakeBefore {
		t.Fatalf("refused unbond moved stake: %d → %d", stakeBefore, got)
	}
	// Once the earliest matures, unbonding works again; two unbonds in one
	// block make one entry, so the second is not refused at the bound.
	for n.st.Height() < 1+g.Params.UnbondingBlocks+2 {
		n.block()
	}
	_, res = n.block(unbond(), unbond())
	for i, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatalf("unbond %d in the block after the earliest matured refused: %s", i, tr.Log)
		}
	}
	entries := 0
	n.st.scan(addrKey(pfxUnbondBy, n.keys[v].Address()), "", func(string, []byte) bool { entries++; return true })
	if entries > MaxUnbondingEntries {
		t.Fatalf("%d pending entries, bound %d", entries, MaxUnbondingEntries)
	}
}

func stakeOf(t *testing.T, n *testNet, i int) uint64 {
	t.Helper()
	st, _, err := getStake(n.st, n.keys[i].Address())
	if err != nil {
		t.Fatal(err)
	}
	return st.Amount
}

func TestUnbondingOfSumsTheAccountsEntriesOnly(t *testing.T) {
	n := newTestNet(t, 6, 4)
	n.block(n.tx(0, 1, func(tx *Tx) { tx.Unbond = &Unbond{Amount: 300} }))
	n.block(n.tx(0, 1, func(tx *Tx) { tx.Unbond = &Unbond{Amount: 200} }), n.tx(1, 1, func(tx *Tx) { tx.Unbond = &Unbond{Amount: 7} }))
	if got, err := n.st.UnbondingOf(n.keys[0].Address()); err != nil || got != 500 {
		t.Fatalf("unbonding of 0: %d, %v; want 500", got, err)
	}
	if got, err := n.st.UnbondingOf(n.keys[2].Address()); err != nil || got != 0 {
		t.Fatalf("unbonding of 2: %d, %v; want 0", got, err)
	}
}
