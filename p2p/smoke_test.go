package p2p

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestTwoHostsGossip(t *testing.T) {
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	connect(t, a.Host, b.Host)
	ta, err := a.Join(TopicOffers, prefixValidator())
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Join(TopicOffers, prefixValidator())
	if err != nil {
		t.Fatal(err)
	}
	sb, err := tb.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "topic peers", func() bool { return len(ta.Peers()) == 1 })
	if err := ta.Publish(context.Background(), []byte("ok:hello")); err != nil {
		t.Fatal(err)
	}
	m := recvMessage(t, sb, 10*time.Second)
	if m.Decoded != "hello" || m.ReceivedFrom != a.ID() || m.Local {
		t.Fatalf("got %+v", m)
	}
	if err := ta.Publish(context.Background(), []byte("bad")); err == nil {
		t.Fatal("publishing a message our validator rejects succeeded")
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	key := mustKey(t)
	bad := LocalConfig()
	bad.ConnLow = 0
	tests := []struct {
		name  string
		cfg   Config
		chain string
		key   crypto.PrivKey
	}{
		{"invalid config", bad, testChain, key},
		{"empty chain id", LocalConfig(), "", key},
		{"chain id with slash", LocalConfig(), "a/b", key},
		{"nil key", LocalConfig(), testChain, nil},
	}
	for _, tc := range tests {
		if h, err := New(context.Background(), tc.cfg, tc.chain, tc.key, nil); err == nil {
			h.Close()
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
	h := newTestHost(t, nil)
	for _, name := range []string{"", "Offers", "a/b", strings.Repeat("x", 33)} {
		if _, err := h.Join(name, acceptAll); err == nil {
			t.Errorf("joined topic %q", name)
		}
	}
	if _, err := h.Join(TopicTxs, nil); err == nil {
		t.Error("joined with a nil validator")
	}
	if _, err := h.Join(TopicTxs, acceptAll); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Join(TopicTxs, acceptAll); err == nil {
		t.Error("joined the same topic twice")
	}
	for _, name := range []string{"", "/sync/1", "sync/1/", "Sync/1"} {
		if err := h.Handle(name, 10, func(context.Context, peer.ID, []byte) ([]byte, error) { return nil, nil }); err == nil {
			t.Errorf("registered protocol %q", name)
		}
	}
}

// Close stops every goroutine the host started (loops, subscription
// pumps, in-flight handlers), is idempotent, and later calls fail cleanly.
func TestCloseStopsEverything(t *testing.T) {
	boot := newTestHost(t, nil)
	cfg := LocalConfig()
	cfg.Bootstrap = []string{boot.Addrs()[0].String()}
	h, err := New(context.Background(), cfg, testChain, mustKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := h.Join(TopicConsensus, acceptAll)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan struct{})
	must(t, h.Handle(ProtoSync, 8, func(ctx context.Context, _ peer.ID, _ []byte) ([]byte, error) {
		close(blocked)
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	eventually(t, 10*time.Second, "bootstrap connection", func() bool { return len(h.Peers()) > 0 })
	// The bootstrap peer learns h's listen addresses only through
	// identify; give them to it, so its request cannot fail to dial if
	// the inbound connection is replaced meanwhile (seen once in 3 runs
	// of make test: "failed to dial: no addresses").
	connect(t, boot.Host, h)
	reqDone := make(chan error, 1)
	go func() {
		_, err := boot.Request(context.Background(), h.ID(), ProtoSync, nil, 8)
		reqDone <- err
	}()
	select {
	case <-blocked:
	case err := <-reqDone:
		t.Fatalf("request ended before reaching the handler: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the handler")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := <-sub.C; ok {
		t.Error("subscription channel still open after Close")
	}
	sub.Cancel() // no-op after Close, must not block
	if _, err := h.Join(TopicTxs, acceptAll); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close: %v", err)
	}
	if _, err := tp.Subscribe(); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
	if err := <-reqDone; err == nil {
		t.Error("request to a closing host succeeded")
	}
	boot.Close()
	checkNoHostGoroutines(t)
}

// The validator wrapper turns panics, oversized input and unknown results
// into counted rejections.
func TestValidatorWrapper(t *testing.T) {
	h := newTestHost(t, func(c *Config) { c.MaxMessageSize = 2048 })
	tests := []struct {
		name       string
		v          ValidatorFunc
		data       []byte
		want       Result
		wantReason string
	}{
		{"accept", func(context.Context, peer.ID, []byte) (any, Result) { return 1, Accept }, []byte("x"), Accept, "unspecified"},
		{"reject with reason", func(context.Context, peer.ID, []byte) (any, Result) { return Reason("bad signature"), Reject }, []byte("x"), Reject, "bad signature"},
		{"ignore with error", func(context.Context, peer.ID, []byte) (any, Result) { return errors.New("expired"), Ignore }, []byte("x"), Ignore, "expired"},
		{"panic", func(context.Context, peer.ID, []byte) (any, Result) { panic("boom") }, []byte("x"), Reject, "validator panic"},
		{"unknown result", func(context.Context, peer.ID, []byte) (any, Result) { return nil, Result(7) }, []byte("x"), Reject, "bad validator result"},
		{"oversized", func(context.Context, peer.ID, []byte) (any, Result) { return nil, Accept }, make([]byte, 2049), Reject, "oversized"},
	}
	for _, tc := range tests {
		before := metricSum(t, h.reg, "bourse_p2p_validation_total", map[string]string{"result": tc.want.String(), "reason": tc.wantReason})
		d, r := h.validate(context.Background(), tc.v, TopicBids, h.ID(), tc.data)
		if r != tc.want {
			t.Errorf("%s: result %v, want %v", tc.name, r, tc.want)
		}
		if r != Accept && d != nil {
			t.Errorf("%s: decoded %v passed along with %v", tc.name, d, r)
		}
		if got := metricSum(t, h.reg, "bourse_p2p_validation_total", map[string]string{"result": tc.want.String(), "reason": tc.wantReason}); got != before+1 {
			t.Errorf("%s: counter went %v -> %v", tc.name, before, got)
		}
	}
	// Free-form reasons cannot grow the label set without bound.
	for i := 0; i < 3*maxReasonLabels; i++ {
		h.validate(context.Background(), ValidatorFunc(func(context.Context, peer.ID, []byte) (any, Result) {
			return Reason(fmt.Sprintf("reason %d", i)), Reject
		}), TopicOffers, h.ID(), []byte("x"))
	}
	mfs, _ := h.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "bourse_p2p_validation_total" {
			n := 0
			for _, m := range mf.GetMetric() {
				if hasLabel(m, "topic", TopicOffers) {
					n++
				}
			}
			if n > maxReasonLabels+1 {
				t.Errorf("%d label sets for one topic", n)
			}
		}
	}
}
