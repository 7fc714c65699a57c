package p2p

import (
	"context"
	"testing"
	"time"
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
	if m.Decoded != "hello" || m.From != a.ID() || m.ReceivedFrom != a.ID() || m.Local {
		t.Fatalf("got %+v", m)
	}
	if err := ta.Publish(context.Background(), []byte("bad")); err == nil {
		t.Fatal("publishing a message our validator rejects succeeded")
	}
}
