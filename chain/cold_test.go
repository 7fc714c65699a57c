package chain

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/market"
)

// coldScenario settles two jobs (one acked, one released when its window
// ends) and leaves a third held.
func coldScenario(t *testing.T, n *testNet) (settled []market.BidID, held market.BidID) {
	t.Helper()
	acked := heldJob(t, n, 1, market.ExecWASM, rightHash, 1000)
	_, res := n.block(ackTx(n, sClient, acked.ID()))
	mustBody(t, res, "")
	released := heldJob(t, n, 2, market.ExecWASM, rightHash, 1000)
	for n.match(released.ID()).Status == MatchHeld {
		n.block()
	}
	return []market.BidID{acked.ID(), released.ID()}, heldJob(t, n, 3, market.ExecWASM, rightHash, 1000).ID()
}

// records is every record of st, cold ones read back.
func records(t testing.TB, st *State) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if err := st.Each(func(k string, v []byte) error {
		if len(v) == 0 {
			t.Fatalf("record %q read back empty", printableKey(k))
		}
		out[k] = bytes.Clone(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameRecords(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("%s: record %q differs", what, printableKey(k))
		}
	}
}

// A node keeps every job it ever saw in its state. With SetCold a settled
// match's value lives in the block store only: the same chain (same
// blocks, same root, same records read back, the invariants checked after
// every block through the cold reads) while the memory holds only the
// open and held matches' values. A restart (a state loaded from the
// store) drops them again.
func TestSettledMatchesAreKeptOnDiskOnly(t *testing.T) {
	hot, cold := newSettleNet(t), newSettleNet(t)
	hot.st.mu.Lock()
	hot.st.cold, hot.cold = nil, nil // every value in memory
	hot.st.mu.Unlock()
	settled, held := coldScenario(t, hot)
	coldSettled, coldHeld := coldScenario(t, cold)
	if held != coldHeld || len(settled) != len(coldSettled) {
		t.Fatal("the two nets ran different jobs")
	}
	if hot.st.Root() != cold.st.Root() || hot.st.Height() != cold.st.Height() {
		t.Fatalf("roots differ at heights %d and %d", hot.st.Height(), cold.st.Height())
	}
	want := records(t, hot.st)
	sameRecords(t, "cold state", records(t, cold.st), want)

	inMemory := func(st *State, id market.BidID) bool {
		st.mu.RLock()
		defer st.mu.RUnlock()
		return len(st.kv[pfxMatch+string(id[:])]) > 0
	}
	for _, id := range settled {
		if inMemory(cold.st, id) {
			t.Errorf("settled match %s is held in memory", id)
		}
		if !inMemory(hot.st, id) {
			t.Fatalf("without SetCold, settled match %s is not in memory", id)
		}
		reads := cold.cold.reads
		if got, want := cold.match(id), hot.match(id); got.Status != want.Status || got.Paid != want.Paid || got.SettledAt != want.SettledAt {
			t.Fatalf("match %s read back as %+v, want %+v", id, got, want)
		}
		if cold.cold.reads != reads+1 {
			t.Fatalf("reading a settled match took %d store reads, want 1", cold.cold.reads-reads)
		}
	}
	if !inMemory(cold.st, held) {
		t.Errorf("held match %s is not in memory", held)
	}

	// A restart: the state is loaded from the store's records, in key
	// order.
	l := NewStateLoader(cold.cold)
	for _, k := range slices.Sorted(maps.Keys(cold.cold.m)) {
		if err := l.Add(k, cold.cold.m[k]); err != nil {
			t.Fatal(err)
		}
	}
	loaded, err := l.State()
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Root() != hot.st.Root() {
		t.Fatal("the loaded state's root differs")
	}
	for _, id := range settled {
		if inMemory(loaded, id) {
			t.Errorf("after a restart, settled match %s is held in memory", id)
		}
	}
	sameRecords(t, "loaded state", records(t, loaded), want)
	if !inMemory(loaded, held) {
		t.Errorf("after a restart, held match %s is not in memory", held)
	}
}

// A store that lost a settled match's record: reading it is
// ErrCorruptState, and a block that touches it fails as a whole (no
// validator records a different transaction result for it).
func TestSettledMatchTheStoreLostIsCorruptState(t *testing.T) {
	n := newSettleNet(t)
	settled, _ := coldScenario(t, n)
	id := settled[0]
	// A second ack of the acked job: a failed transaction in a valid block.
	n.time += n.step
	tmpl := BlockTemplate{Height: n.st.Height() + 1, Time: n.time, PrevHash: n.prevHash, Proposer: n.proposer().Address()}
	b, _, err := BuildBlock(n.st, tmpl, [][]byte{ackTx(n, sClient, id)}, ExecOptions{})
	if err != nil || len(b.Txs) != 1 {
		t.Fatalf("build: %v (%d txs)", err, len(b.Txs))
	}
	delete(n.cold.m, pfxMatch+string(id[:]))
	if _, _, err := n.st.Match(id); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("reading the lost match: %v, want ErrCorruptState", err)
	}
	// Scans say so too, in words, rather than skip the record or fail
	// to decode it.
	for what, err := range map[string]error{
		"the invariant scan": CheckInvariants(n.st),
		"Matches":            n.st.Matches(func(Match) error { return nil }),
	} {
		if !errors.Is(err, ErrCorruptState) || !strings.Contains(fmt.Sprint(err), "held on disk only") {
			t.Fatalf("%s over the lost match: %v", what, err)
		}
	}
	if _, err := Execute(n.st, b, ExecOptions{}); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("executing a block that acks the lost match: %v, want ErrCorruptState", err)
	}
}

// A settled match's value leaves memory one block after the block that
// settled it: the store need only hold a block by the time the next one
// is applied, so a caller that applies a block before it saves it (a
// test chain, a tool) still reads every value.
func TestSettledValueGoesColdOneBlockLater(t *testing.T) {
	n := newSettleNet(t)
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 1000)
	id := b.ID()
	key := pfxMatch + string(id[:])
	_, res := n.block(ackTx(n, sClient, b.ID()))
	mustBody(t, res, "")
	// What a store saving after Apply would not have yet.
	saved := n.cold.m[key]
	delete(n.cold.m, key)
	if m := n.match(b.ID()); m.Status != MatchCompleted {
		t.Fatalf("right after the settling block: %s", m.Status)
	}
	n.cold.m[key] = saved
	n.block()
	n.st.mu.RLock()
	v := n.st.kv[key]
	n.st.mu.RUnlock()
	if len(v) != 0 {
		t.Fatal("a block later, the settled match is still in memory")
	}
	if m := n.match(b.ID()); m.Status != MatchCompleted {
		t.Fatalf("read from the store: %s", m.Status)
	}
}

// SetCold on a state that already applied blocks keeps the values it
// holds one more Apply, like Apply does: the block that settled a match
// may not be in the store yet.
func TestSetColdAfterApplyWaitsOneBlock(t *testing.T) {
	n := newSettleNet(t)
	n.st.mu.Lock()
	n.st.cold, n.st.cooling = nil, nil
	n.st.mu.Unlock()
	store := n.cold
	n.cold = nil // the store stops hearing of blocks
	b := heldJob(t, n, 1, market.ExecWASM, rightHash, 1000)
	_, res := n.block(ackTx(n, sClient, b.ID()))
	mustBody(t, res, "")
	if err := n.st.SetCold(store); err != nil {
		t.Fatal(err)
	}
	if m := n.match(b.ID()); m.Status != MatchCompleted {
		t.Fatalf("after SetCold: %s", m.Status)
	}
	// The store catches up with the state, and the next block cools it.
	if err := n.st.Each(func(k string, v []byte) error { store.m[k] = bytes.Clone(v); return nil }); err != nil {
		t.Fatal(err)
	}
	n.cold = store
	n.block()
	id := b.ID()
	n.st.mu.RLock()
	v := n.st.kv[pfxMatch+string(id[:])]
	n.st.mu.RUnlock()
	if len(v) != 0 || n.match(id).Status != MatchCompleted {
		t.Fatal("a block after SetCold the settled match is not cold, or does not read back")
	}
}
