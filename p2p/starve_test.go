package p2p

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// holdStreams opens n streams from greedy to server on protocol name and
// sends each the first byte of a request frame and nothing more, the
// cheapest way to hold a serving slot. It returns once the server has
// either taken or refused every one of them.
func holdStreams(t *testing.T, greedy, server *testHost, name string, n int) []network.Stream {
	t.Helper()
	busy := func() float64 {
		return metricSum(t, server.reg, "bourse_p2p_requests_total", map[string]string{"protocol": name, "direction": "in", "outcome": "busy"})
	}
	before := busy()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var held []network.Stream
	for i := 0; i < n; i++ {
		s, err := greedy.Libp2p().NewStream(ctx, server.ID(), server.ProtocolID(name))
		if err != nil {
			t.Fatalf("greedy stream %d: %v", i, err)
		}
		s.Write([]byte{frameData}) // refused streams fail later, on their own
		held = append(held, s)
	}
	t.Cleanup(func() {
		for _, s := range held {
			s.Reset()
		}
	})
	eventually(t, 20*time.Second, fmt.Sprintf("server to take or refuse the %d greedy %s streams", n, name), func() bool {
		return metricSum(t, server.reg, "bourse_p2p_inbound_requests", map[string]string{"protocol": name})+busy()-before == float64(n)
	})
	return held
}

// One peer opening the whole inbound budget of slow streams on the blob
// and the sync protocols (one byte each, never a full request) gets
// MaxInboundPerPeer of them served and the rest refused; another peer's
// blob fetch and block sync still go through while it holds them.
func TestGreedyPeerCannotStarveOthersFetchAndSync(t *testing.T) {
	server := newTestHost(t, nil)
	greedy := newTestHost(t, nil)
	honest := newTestHost(t, nil)
	connect(t, greedy.Host, server.Host)
	connect(t, honest.Host, server.Host)
	cfg := server.cfg

	var store MemBlobSource
	blob := bytes.Repeat([]byte("payload "), 40_000) // several frames
	hash := store.Add(blob)
	srv, err := NewBlobServer(server.Host, &store, 1<<20)
	must(t, err)
	srv.Publish(hash)
	must(t, server.HandleStream(ProtoSync, 64, func(ctx context.Context, from peer.ID, req []byte, send func([]byte) error) error {
		for h := 0; h < 3; h++ {
			if err := send([]byte{byte(h)}); err != nil {
				return err
			}
		}
		return nil
	}))

	for _, name := range []string{ProtoBlob, ProtoSync} {
		holdStreams(t, greedy, server, name, cfg.MaxInboundRequests)
		if got := metricSum(t, server.reg, "bourse_p2p_inbound_requests", map[string]string{"protocol": name}); got != float64(cfg.MaxInboundPerPeer) {
			t.Errorf("%s: the greedy peer holds %v streams, want max_inbound_per_peer = %d", name, got, cfg.MaxInboundPerPeer)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got, err := honest.FetchBlob(ctx, server.ID(), hash, 1<<20)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("honest fetch while a greedy peer holds its streams: %d bytes, %v", len(got), err)
	}
	var blocks int
	if err := honest.RequestStream(ctx, server.ID(), ProtoSync, []byte("from 0"), 16, func([]byte) error { blocks++; return nil }); err != nil || blocks != 3 {
		t.Fatalf("honest sync while a greedy peer holds its streams: %d blocks, %v", blocks, err)
	}
}

// A peer that takes every frame just in time cannot keep a streamed
// exchange (and its serving slot) beyond StreamTimeout.
func TestSlowReaderIsCutOffAtStreamTimeout(t *testing.T) {
	server := newTestHost(t, func(c *Config) {
		c.RequestTimeout = Duration(time.Second)
		c.StreamTimeout = Duration(time.Second)
	})
	client := newTestHost(t, nil)
	connect(t, client.Host, server.Host)
	handlerErr := make(chan error, 1)
	must(t, server.HandleStream(ProtoSync, 64, func(ctx context.Context, from peer.ID, req []byte, send func([]byte) error) error {
		for { // an endless response, each frame taken promptly
			if err := send([]byte("block")); err != nil {
				handlerErr <- err
				return err
			}
			select {
			case <-ctx.Done():
				handlerErr <- ctx.Err()
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var frames int
	err := client.RequestStream(ctx, server.ID(), ProtoSync, []byte("all"), 16, func([]byte) error { frames++; return nil })
	if err == nil || ctx.Err() != nil {
		t.Fatalf("endless stream: err %v after %d frames, ctx %v; want the server to cut it off", err, frames, ctx.Err())
	}
	select {
	case err := <-handlerErr:
		if err == nil {
			t.Fatal("handler stopped without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler still running after the stream was cut off")
	}
	eventually(t, 5*time.Second, "the slot to be released", func() bool {
		return metricSum(t, server.reg, "bourse_p2p_inbound_requests", map[string]string{"protocol": ProtoSync}) == 0
	})
	if got := metricSum(t, server.reg, "bourse_p2p_requests_total", map[string]string{"protocol": ProtoSync, "direction": "in", "outcome": "timeout"}); got != 1 {
		t.Errorf("timeout count = %v, want 1", got)
	}
}
