package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/codec"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestRequestResponse(t *testing.T) {
	server := newTestHost(t, nil)
	client := newTestHost(t, nil)
	connect(t, client.Host, server.Host)
	const echo, fail, big = "echo/1", "fail/1", "big/1"
	must(t, server.Handle(echo, 64, func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
		if from != client.ID() {
			return nil, fmt.Errorf("from %s", from)
		}
		return append([]byte("echo:"), req...), nil
	}))
	must(t, server.Handle(fail, 64, func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
		return nil, errors.New(strings.Repeat("x", 1000)) // longer than an error frame
	}))
	must(t, server.Handle(big, 64, func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
		return make([]byte, 1000), nil
	}))
	tests := []struct {
		name     string
		proto    string
		req      []byte
		maxResp  int
		want     []byte
		wantErr  func(error) bool
		serverFE string // frame error the server counts, if any
	}{
		{name: "echo", proto: echo, req: []byte("hi"), maxResp: 100, want: []byte("echo:hi")},
		{name: "empty request", proto: echo, req: nil, maxResp: 100, want: []byte("echo:")},
		{name: "handler error arrives capped", proto: fail, req: []byte("x"), maxResp: 100, wantErr: func(err error) bool {
			var re *RemoteError
			return errors.As(err, &re) && len(re.Msg) == maxErrorFrame
		}},
		{name: "response over client cap", proto: big, req: nil, maxResp: 999, wantErr: func(err error) bool { return errors.Is(err, ErrFrameTooLarge) }},
		{name: "response at client cap", proto: big, req: nil, maxResp: 1000, want: make([]byte, 1000)},
		{name: "request over server cap", proto: echo, req: make([]byte, 65), maxResp: 100, wantErr: func(err error) bool { return err != nil }, serverFE: "too large"},
		{name: "unknown protocol", proto: "nope/1", req: nil, maxResp: 100, wantErr: func(err error) bool { return err != nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := metricSum(t, server.reg, "bourse_p2p_frame_errors_total", map[string]string{"reason": tc.serverFE})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := client.Request(ctx, server.ID(), tc.proto, tc.req, tc.maxResp)
			if tc.wantErr != nil {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("err = %v, want a matching error", err)
				}
			} else if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes %.32q, %v; want %d bytes %.32q", len(got), got, err, len(tc.want), tc.want)
			}
			if tc.serverFE != "" {
				eventually(t, 5*time.Second, "server to count the bad frame", func() bool {
					return metricSum(t, server.reg, "bourse_p2p_frame_errors_total", map[string]string{"reason": tc.serverFE}) == before+1
				})
			}
		})
	}
}

// Raw garbage on a protocol stream is refused and counted; the server
// keeps serving.
func TestMalformedRequestFrames(t *testing.T) {
	server := newTestHost(t, nil)
	client := newTestHost(t, nil)
	connect(t, client.Host, server.Host)
	must(t, server.Handle(ProtoSync, 64, func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) { return req, nil }))
	tests := []struct {
		name   string
		raw    []byte
		reason string
	}{
		{"unknown kind", []byte{7, 1, 0}, "malformed"},
		{"end frame as request", []byte{frameEnd, 0}, "malformed"},
		{"truncated payload", []byte{frameData, 10, 1, 2}, "malformed"},
		{"huge length", []byte{frameData, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, "too large"},
		{"bad varint", []byte{frameData, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "malformed"},
		{"empty stream", nil, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := metricSum(t, server.reg, "bourse_p2p_frame_errors_total", map[string]string{"protocol": ProtoSync, "reason": tc.reason})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := client.Libp2p().NewStream(ctx, server.ID(), server.ProtocolID(ProtoSync))
			if err != nil {
				t.Fatal(err)
			}
			s.Write(tc.raw)
			s.CloseWrite()
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := s.Read(make([]byte, 16)); err == nil {
				t.Errorf("server answered %d bytes to garbage", n)
			}
			s.Reset()
			eventually(t, 5*time.Second, "server to count the frame error", func() bool {
				return metricSum(t, server.reg, "bourse_p2p_frame_errors_total", map[string]string{"protocol": ProtoSync, "reason": tc.reason}) == before+1
			})
		})
	}
	got, err := client.Request(context.Background(), server.ID(), ProtoSync, []byte("still up"), 64)
	if err != nil || string(got) != "still up" {
		t.Fatalf("after garbage: %q %v", got, err)
	}
}

// syncReq and syncBlock stand in for the chain's sync messages.
type syncReq struct {
	From uint64 `cbor:"1,keyasint"`
	To   uint64 `cbor:"2,keyasint"`
}

type syncBlock struct {
	Height uint64 `cbor:"1,keyasint"`
	Data   []byte `cbor:"2,keyasint"`
}

// The sync protocol streams a range of blocks, one frame each, in order,
// under the caller's deadline; a stalled server runs into the deadline.
func TestSyncStreamsRangeUnderDeadline(t *testing.T) {
	server := newTestHost(t, nil)
	client := newTestHost(t, nil)
	connect(t, client.Host, server.Host)
	const stallAt = 1000
	handlerDone := make(chan struct{}, 1)
	must(t, server.HandleStream(ProtoSync, 64, func(ctx context.Context, from peer.ID, req []byte, send func([]byte) error) error {
		var r syncReq
		if err := codec.Unmarshal(req, &r); err != nil {
			return fmt.Errorf("decode sync request: %w", err)
		}
		if r.To < r.From || r.To-r.From > 500 {
			return errors.New("bad range")
		}
		for h := r.From; h <= r.To; h++ {
			if h == stallAt {
				<-ctx.Done() // a server that stops talking
				handlerDone <- struct{}{}
				return ctx.Err()
			}
			if err := send(codec.MustMarshal(syncBlock{Height: h, Data: bytes.Repeat([]byte{byte(h)}, 100)})); err != nil {
				return err
			}
		}
		return nil
	}))
	fetch := func(ctx context.Context, from, to uint64) ([]uint64, error) {
		var heights []uint64
		err := client.RequestStream(ctx, server.ID(), ProtoSync, codec.MustMarshal(syncReq{from, to}), 1024, func(b []byte) error {
			var blk syncBlock
			if err := codec.Unmarshal(b, &blk); err != nil {
				return err
			}
			heights = append(heights, blk.Height)
			return nil
		})
		return heights, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	heights, err := fetch(ctx, 10, 309)
	cancel()
	if err != nil {
		t.Fatalf("sync 10..309: %v", err)
	}
	if len(heights) != 300 {
		t.Fatalf("got %d blocks, want 300", len(heights))
	}
	for i, h := range heights {
		if h != uint64(10+i) {
			t.Fatalf("block %d has height %d, want %d", i, h, 10+i)
		}
	}

	_, err = fetch(context.Background(), 5, 1)
	var re *RemoteError
	if !errors.As(err, &re) || re.Msg != "bad range" {
		t.Fatalf("bad range: err = %v", err)
	}

	// Long enough that, on a loaded machine, the request reaches the
	// handler and its three blocks arrive before the deadline.
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	heights, err = fetch(ctx, stallAt-3, stallAt+3)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled sync: err = %v, want deadline exceeded", err)
	}
	if len(heights) != 3 {
		t.Errorf("stalled sync delivered %d blocks before the stall, want 3", len(heights))
	}
	// Close ends the stalled handler, and waits for it.
	server.Close()
	select {
	case <-handlerDone:
	default:
		t.Fatal("Close returned while the handler was still running")
	}
}

// Beyond MaxInboundRequests concurrent requests, streams are refused.
func TestInboundRequestCap(t *testing.T) {
	server := newTestHost(t, func(c *Config) { c.MaxInboundRequests, c.MaxInboundPerPeer = 1, 1 })
	client := newTestHost(t, nil)
	connect(t, client.Host, server.Host)
	entered, release := make(chan struct{}, 2), make(chan struct{})
	must(t, server.Handle(ProtoBlob, 8, func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []byte("done"), nil
	}))
	first := make(chan error, 1)
	go func() {
		_, err := client.Request(context.Background(), server.ID(), ProtoBlob, nil, 8)
		first <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("first request never reached the handler")
	}
	if _, err := client.Request(context.Background(), server.ID(), ProtoBlob, nil, 8); err == nil {
		t.Error("second concurrent request was served past the cap of 1")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first request: %v", err)
	}
	if got := metricSum(t, server.reg, "bourse_p2p_requests_total", map[string]string{"direction": "in", "outcome": "busy"}); got != 1 {
		t.Errorf("busy count = %v, want 1", got)
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
