package consensus

import (
	"errors"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

// net is a perfect in-process network: every broadcast reaches every other
// node in order, the application answers at once and says every value is
// valid, timeouts never fire. Used by the benchmarks and by tests that need
// a real decided height.
type net struct {
	tb      testing.TB
	states  []*State
	queue   []netMsg
	now     int64
	decided []Decide // per node, the last decision
	counter int
}

type netMsg struct {
	to int
	ev Event
}

func newNet(tb testing.TB, cfg Config, keys []wallet.PrivateKey, vs *ValidatorSet) *net {
	n := &net{tb: tb, decided: make([]Decide, len(keys))}
	for _, k := range keys {
		st, err := New(cfg, testChain, k, 1, vs, nil)
		if err != nil {
			tb.Fatal(err)
		}
		n.states = append(n.states, st)
	}
	for i, st := range n.states {
		n.handle(i, st.Start(n.now))
	}
	return n
}

func (n *net) handle(i int, out []Output) {
	for _, o := range out {
		switch o := o.(type) {
		case Broadcast:
			for j := range n.states {
				if j != i {
					n.queue = append(n.queue, netMsg{j, msgEvent(o.Message)})
				}
			}
		case RequestValue:
			n.counter++
			v := []byte{byte(o.Height), byte(o.Height >> 8), byte(o.Height >> 16), byte(n.counter), byte(n.counter >> 8)}
			n.queue = append(n.queue, netMsg{i, ValueReady{Height: o.Height, Round: o.Round, BlockID: idOf(v), Value: v}})
		case ValidateValue:
			n.queue = append(n.queue, netMsg{i, ValueValidity{Height: o.Height, BlockID: o.BlockID, Value: o.Value, Valid: idOf(o.Value) == o.BlockID}})
		case Decide:
			n.decided[i] = o
			n.queue = append(n.queue, netMsg{i, NextHeight{}})
		case Rejected:
			n.tb.Fatalf("node %d rejected: %v", i, o.Err)
		}
	}
}

// runUntil delivers messages until every node decided height h.
func (n *net) runUntil(h uint64) {
	for {
		done := true
		for _, d := range n.decided {
			done = done && d.Height >= h
		}
		if done {
			return
		}
		if len(n.queue) == 0 {
			n.tb.Fatalf("network went quiet before height %d", h)
		}
		m := n.queue[0]
		n.queue = n.queue[1:]
		n.now++
		n.handle(m.to, n.states[m.to].Step(Input{Now: n.now, Event: m.ev}))
	}
}

func instantConfig() Config {
	c := fastConfig()
	c.TimeoutCommit = 0
	return c
}

func TestPerfectNetworkAgrees(t *testing.T) {
	keys, vs := testValidators(t, 3, 1, 4, 1, 5, 9, 2)
	n := newNet(t, instantConfig(), keys, vs)
	for h := uint64(1); h <= 10; h++ {
		n.runUntil(h)
		for i, d := range n.decided {
			if d.BlockID != n.decided[0].BlockID {
				t.Fatalf("height %d: node %d decided %s, node 0 %s", h, i, d.BlockID, n.decided[0].BlockID)
			}
			if err := d.Commit.Verify(testChain, n.states[i].ValidatorSet()); err != nil {
				t.Fatalf("height %d node %d: %v", h, i, err)
			}
		}
	}
}

// An observer (no key) fed a height's messages decides the same value, and
// feeding the same messages again changes nothing: Messages serves catch-up.
func TestObserverCatchesUpFromMessages(t *testing.T) {
	keys, vs := testValidators(t, 1, 1, 1, 1)
	cfg := instantConfig()
	cfg.TimeoutCommit = 1 // keep the nodes at height 1 after the decision
	n := newNet(t, cfg, keys, vs)
	n.runUntil(1)
	msgs := n.states[2].Messages(1)
	if len(msgs) == 0 || n.states[2].Messages(2) != nil {
		t.Fatalf("Messages(1) = %d messages, Messages(2) = %v", len(msgs), n.states[2].Messages(2))
	}
	obs, err := New(cfg, testChain, wallet.PrivateKey{}, 1, vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	var decided *Decide
	feed := func() (outs []Output) {
		outs = append(outs, obs.Start(0)...)
		for _, m := range msgs {
			for _, o := range obs.Step(Input{Event: msgEvent(m)}) {
				switch o := o.(type) {
				case ValidateValue:
					outs = append(outs, obs.Step(Input{Event: ValueValidity{Height: o.Height, BlockID: o.BlockID, Value: o.Value, Valid: true}})...)
				case Broadcast, Persist:
					t.Fatalf("observer produced %T", o)
				default:
					outs = append(outs, o)
				}
			}
		}
		return outs
	}
	for _, o := range feed() {
		if d, ok := o.(Decide); ok {
			decided = &d
		}
	}
	if decided == nil || decided.BlockID != n.decided[2].BlockID {
		t.Fatalf("observer decided %v, validators %s", decided, n.decided[2].BlockID)
	}
	if again := feed(); len(again) != 0 {
		t.Fatalf("replaying messages produced %d outputs, want none", len(again))
	}
}

func TestReceiveCommit(t *testing.T) {
	keys, vs := testValidators(t, 1, 1, 1, 1)
	n := newNet(t, instantConfig(), keys, vs)
	n.runUntil(1)
	d := n.decided[0]
	obs, _ := New(instantConfig(), testChain, wallet.PrivateKey{}, 1, vs, nil)
	obs.Start(0)
	short := d.Commit
	short.Precommits = short.Precommits[:2]
	out := obs.Step(Input{Event: ReceiveCommit{Commit: &short, Value: d.Value}})
	if len(out) != 1 || !errors.Is(out[0].(Rejected).Err, ErrInsufficientPower) {
		t.Fatalf("short certificate: %v", out)
	}
	if out := obs.Step(Input{Event: NextHeight{}}); len(out) != 1 {
		t.Fatalf("NextHeight before a decision: %v", out)
	}
	out = obs.Step(Input{Event: ReceiveCommit{Commit: &d.Commit, Value: d.Value}})
	if got, ok := out[0].(Decide); len(out) != 1 || !ok || got.BlockID != d.BlockID {
		t.Fatalf("good certificate: %v", out)
	}
}

func TestNewRejectsBadArguments(t *testing.T) {
	_, vs := testValidators(t, 1)
	bad := DefaultConfig()
	bad.TimeoutPropose = 0
	for name, f := range map[string]func() error{
		"config":   func() error { _, err := New(bad, testChain, wallet.PrivateKey{}, 1, vs, nil); return err },
		"height 0": func() error { _, err := New(DefaultConfig(), testChain, wallet.PrivateKey{}, 0, vs, nil); return err },
		"no set":   func() error { _, err := New(DefaultConfig(), testChain, wallet.PrivateKey{}, 1, nil, nil); return err },
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSignerStateRoundTrip(t *testing.T) {
	keys, vs := testValidators(t, 1, 1, 1, 1)
	n := newNet(t, instantConfig(), keys, vs)
	n.runUntil(2)
	s := n.states[0].SignerState()
	b, err := EncodeSignerState(&s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSignerState(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Height != s.Height || got.Step != s.Step || len(got.Votes) != len(s.Votes) || !got.LastVote.sameContent(s.LastVote) {
		t.Fatalf("round trip: %+v != %+v", got, s)
	}
}

func benchmarkDecisions(b *testing.B, n int) {
	powers := make([]uint64, n)
	for i := range powers {
		powers[i] = uint64(1 + i%3)
	}
	keys, vs := testValidators(b, powers...)
	nw := newNet(b, instantConfig(), keys, vs)
	b.ResetTimer()
	for i := range b.N {
		nw.runUntil(uint64(i + 1))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkDecisions4 and BenchmarkDecisions100: heights decided per second
// by N in-process validators on a perfect network. Every validator checks
// every signature, so the cost grows with N².
func BenchmarkDecisions4(b *testing.B)   { benchmarkDecisions(b, 4) }
func BenchmarkDecisions100(b *testing.B) { benchmarkDecisions(b, 100) }
