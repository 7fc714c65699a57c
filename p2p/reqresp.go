package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/bourse-net/bourse/internal/wire"
)

// Short names of the Bourse request/response protocols (defined once, in
// internal/wire); the wire id is /bourse/<chain-id>/<name> (see ProtocolID).
const (
	ProtoSync = wire.ProtoSync // blocks with commits from a height (served by chain/driver)
	ProtoBlob = wire.ProtoBlob // content-addressed blobs (served by BlobServer)
)

// ProtocolID returns the wire protocol id of short name on this host's
// chain.
func (hs *Host) ProtocolID(name string) protocol.ID {
	return protocol.ID("/bourse/" + hs.chainID + "/" + name)
}

// validProtoName accepts "<word>/<version>" style names: 1 to 64
// characters of a-z, 0-9, '-' and '/', not starting or ending with '/'.
func validProtoName(name string) error {
	if name == "" || len(name) > 64 || name[0] == '/' || name[len(name)-1] == '/' {
		return fmt.Errorf("protocol name %q: must be 1 to 64 characters, no leading or trailing '/'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '/') {
			return fmt.Errorf("protocol name %q: only a-z, 0-9, '-' and '/' are allowed", name)
		}
	}
	return nil
}

// HandlerFunc answers one request. The returned bytes are the response;
// an error is sent to the client as a *RemoteError with its text, so it
// must not leak secrets. ctx ends at the request deadline or on Close.
type HandlerFunc func(ctx context.Context, from peer.ID, req []byte) ([]byte, error)

// StreamHandlerFunc answers one request with any number of response
// frames, each passed to send (each at most the client's frame cap).
// Returning ends the response: nil sends an end frame, an error sends an
// error frame. Each send must be accepted by the client within
// Config.RequestTimeout.
type StreamHandlerFunc func(ctx context.Context, from peer.ID, req []byte, send func([]byte) error) error

// Handle serves protocol name (e.g. ProtoSync) with a unary handler.
// Requests above maxReq bytes are refused and counted; at most
// Config.MaxInboundRequests run at once, at most Config.MaxInboundPerPeer
// of them from one peer, and further streams are reset and counted as
// "busy". The whole exchange (request, handler, response) is bounded by
// Config.RequestTimeout.
func (hs *Host) Handle(name string, maxReq int, h HandlerFunc) error {
	if h == nil {
		return fmt.Errorf("handle %s: nil handler", name)
	}
	return hs.handle(name, maxReq, func(ctx context.Context, from peer.ID, req []byte, send func([]byte) error) error {
		resp, err := h(ctx, from, req)
		if err != nil {
			return err
		}
		return send(resp)
	}, true)
}

// HandleStream serves protocol name with a streaming handler, read by
// RequestStream; see Handle for the concurrency limits. Reading the
// request and each response frame are bounded by Config.RequestTimeout,
// the whole exchange by Config.StreamTimeout.
func (hs *Host) HandleStream(name string, maxReq int, h StreamHandlerFunc) error {
	return hs.handle(name, maxReq, h, false)
}

// handle registers the stream handler. A unary response is one frame
// without end marker; a streamed one ends with an end frame.
func (hs *Host) handle(name string, maxReq int, h StreamHandlerFunc, unary bool) error {
	if err := validProtoName(name); err != nil {
		return fmt.Errorf("handle: %w", err)
	}
	if maxReq <= 0 || h == nil {
		return fmt.Errorf("handle %s: need a positive request cap and a handler", name)
	}
	lim := newInboundLimiter(hs.cfg.MaxInboundRequests, hs.cfg.MaxInboundPerPeer)
	active := hs.m.inbound.WithLabelValues(name)
	hs.h.SetStreamHandler(hs.ProtocolID(name), func(s network.Stream) {
		if !hs.enter() {
			s.Reset()
			return
		}
		defer hs.leave()
		from := s.Conn().RemotePeer()
		relayed := s.Conn().Stat().Limited
		if !lim.acquire(from, relayed) {
			hs.m.requests.WithLabelValues(name, "in", "busy").Inc()
			s.Reset()
			return
		}
		defer lim.release(from, relayed)
		active.Inc()
		defer active.Dec()
		outcome := hs.serve(s, name, maxReq, h, unary)
		hs.m.requests.WithLabelValues(name, "in", outcome).Inc()
	})
	return nil
}

// inboundLimiter is one protocol's inbound budget: at most total
// exchanges at once, at most perPeer of them from one peer, so that a
// greedy peer holding its share of slow streams leaves the rest to
// others.
//
// Exchanges over a limited (relayed, circuit v2) connection have a
// smaller budget of their own on top: at most relayedPerPeer from one
// peer and relayedTotal in all (a quarter of total). A relay carries them
// for others at its own cost and under its own data limits, and a peer
// reaching us only through relays (any number of them, for free) must
// not take the slots that direct peers sync and fetch through.
type inboundLimiter struct {
	total, perPeer               int
	relayedTotal, relayedPerPeer int

	mu        sync.Mutex
	n         int
	byPeer    map[peer.ID]int
	relayed   int
	relayedBy map[peer.ID]int
}

// RelayedPerPeer is how many inbound exchanges of one protocol a peer may
// hold at once over relayed connections.
const RelayedPerPeer = 2

func newInboundLimiter(total, perPeer int) *inboundLimiter {
	return &inboundLimiter{total: total, perPeer: perPeer, relayedTotal: max(1, total/4), relayedPerPeer: min(perPeer, RelayedPerPeer),
		byPeer: make(map[peer.ID]int), relayedBy: make(map[peer.ID]int)}
}

// acquire takes a slot for p (arriving over a relayed connection if
// relayed), or reports false when p or everybody is at the cap.
func (l *inboundLimiter) acquire(p peer.ID, relayed bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.total || l.byPeer[p] >= l.perPeer {
		return false
	}
	if relayed && (l.relayed >= l.relayedTotal || l.relayedBy[p] >= l.relayedPerPeer) {
		return false
	}
	l.n++
	l.byPeer[p]++
	if relayed {
		l.relayed++
		l.relayedBy[p]++
	}
	return true
}

// release returns a slot acquire gave p.
func (l *inboundLimiter) release(p peer.ID, relayed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if l.byPeer[p]--; l.byPeer[p] <= 0 {
		delete(l.byPeer, p)
	}
	if relayed {
		l.relayed--
		if l.relayedBy[p]--; l.relayedBy[p] <= 0 {
			delete(l.relayedBy, p)
		}
	}
}

// Unhandle stops serving protocol name.
func (hs *Host) Unhandle(name string) { hs.h.RemoveStreamHandler(hs.ProtocolID(name)) }

// serve runs one inbound exchange and returns its outcome label.
func (hs *Host) serve(s network.Stream, name string, maxReq int, h StreamHandlerFunc, unary bool) (outcome string) {
	timeout := time.Duration(hs.cfg.RequestTimeout)
	// One deadline for the whole exchange, and a deadline per step (the
	// request, each response frame) that never goes past it: a peer that
	// answers just in time at every step still cannot hold the slot longer.
	start := time.Now()
	end := start.Add(timeout)
	if !unary {
		end = start.Add(time.Duration(hs.cfg.StreamTimeout))
	}
	step := func() time.Time {
		if d := time.Now().Add(timeout); d.Before(end) {
			return d
		}
		return end
	}
	ctx, cancel := context.WithDeadline(hs.ctx, end)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.Reset() }) // Close interrupts blocked I/O
	defer stop()
	defer func() {
		if p := recover(); p != nil {
			hs.log.Error("request handler panicked", "protocol", name, "from", s.Conn().RemotePeer().ShortString(), "panic", p)
			s.Reset()
			outcome = "panic"
		}
	}()

	if err := s.SetReadDeadline(step()); err != nil {
		s.Reset()
		return "error"
	}
	br := bufio.NewReader(io.LimitReader(s, int64(maxReq)+1+10)) // one frame: kind, uvarint, payload
	kind, req, err := readFrame(br, maxReq)
	if err == nil && kind != frameData {
		err = fmt.Errorf("%w: request kind %d", ErrMalformedFrame, kind)
	}
	if err != nil {
		reason := "malformed"
		if errors.Is(err, ErrFrameTooLarge) {
			reason = "too large"
		}
		hs.m.frameErrors.WithLabelValues(name, reason).Inc()
		hs.log.Debug("bad request frame", "protocol", name, "from", s.Conn().RemotePeer().ShortString(), "err", err)
		s.Reset()
		return "bad request"
	}

	from := s.Conn().RemotePeer()
	bw := bufio.NewWriter(s)
	send := func(b []byte) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if err := s.SetWriteDeadline(step()); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if err := writeFrame(bw, frameData, b); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		return nil
	}
	herr := h(ctx, from, req, send)
	if ctx.Err() != nil || !time.Now().Before(end) {
		// Out of time (or closing): no room left to send the outcome. A
		// send cut by its write deadline at the end can return before the
		// context's own timer fires: that is the timeout too.
		s.Reset()
		return "timeout"
	}
	if err := s.SetWriteDeadline(step()); err != nil {
		s.Reset()
		return "error"
	}
	switch {
	case herr != nil:
		msg := herr.Error()
		if len(msg) > maxErrorFrame {
			msg = msg[:maxErrorFrame]
		}
		err = writeFrame(bw, frameError, []byte(msg))
		outcome = "handler error"
	case !unary:
		err = writeFrame(bw, frameEnd, nil)
		outcome = "ok"
	default:
		outcome = "ok"
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		s.Reset()
		return "write error"
	}
	s.Close()
	return outcome
}

// openRequest opens a stream to p for protocol name, sends req and returns
// the stream ready for reading with the deadline set.
//
// The stream may run over a limited (relayed, circuit v2) connection: a
// provider behind a NAT is reached only that way until hole punching
// gives a direct one, and it must still answer sync, blob and result
// requests. The relay's own data and time limits still apply.
func (hs *Host) openRequest(ctx context.Context, p peer.ID, name string, req []byte) (network.Stream, error) {
	ctx = network.WithAllowLimitedConn(ctx, "bourse "+name)
	s, err := hs.h.NewStream(ctx, p, hs.ProtocolID(name))
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	deadline := time.Now().Add(time.Duration(hs.cfg.RequestTimeout))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.SetDeadline(deadline); err != nil {
		s.Reset()
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	bw := bufio.NewWriter(s)
	if err := writeFrame(bw, frameData, req); err == nil {
		err = bw.Flush()
	}
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("send request: %w", err)
	}
	// The request is flushed; a server that already answered and closed its
	// read side makes CloseWrite fail harmlessly, so its error is ignored.
	_ = s.CloseWrite()
	return s, nil
}

// Request sends req to p on protocol name and returns the response, at
// most maxResp bytes. The exchange ends at ctx's deadline or after
// Config.RequestTimeout, whichever is first. A handler error arrives as a
// *RemoteError.
func (hs *Host) Request(ctx context.Context, p peer.ID, name string, req []byte, maxResp int) ([]byte, error) {
	start := time.Now()
	resp, err := hs.request(ctx, p, name, req, maxResp)
	hs.countRequest(name, start, err)
	if err != nil {
		return nil, fmt.Errorf("request %s from %s: %w", name, p.ShortString(), err)
	}
	return resp, nil
}

func (hs *Host) request(ctx context.Context, p peer.ID, name string, req []byte, maxResp int) ([]byte, error) {
	s, err := hs.openRequest(ctx, p, name, req)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	resp, err := readUnary(bufio.NewReader(s), maxResp)
	if err != nil {
		s.Reset()
		hs.countFrameError(name, err)
		return nil, ctxErr(ctx, err)
	}
	s.Close()
	return resp, nil
}

// RequestStream sends req to p on protocol name and calls recv for each
// response frame (each at most maxFrame bytes) until the server ends the
// stream. Every frame must arrive within Config.RequestTimeout of the
// previous one, and all of them before ctx's deadline. recv's error
// aborts the stream and is returned wrapped.
func (hs *Host) RequestStream(ctx context.Context, p peer.ID, name string, req []byte, maxFrame int, recv func([]byte) error) error {
	start := time.Now()
	err := hs.requestStream(ctx, p, name, req, maxFrame, recv)
	hs.countRequest(name, start, err)
	if err != nil {
		return fmt.Errorf("request stream %s from %s: %w", name, p.ShortString(), err)
	}
	return nil
}

func (hs *Host) requestStream(ctx context.Context, p peer.ID, name string, req []byte, maxFrame int, recv func([]byte) error) error {
	s, err := hs.openRequest(ctx, p, name, req)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	var recvErr error
	err = readStream(bufio.NewReader(s), maxFrame, func(b []byte) error {
		if recvErr = recv(b); recvErr != nil {
			return recvErr
		}
		next := time.Now().Add(time.Duration(hs.cfg.RequestTimeout))
		if d, ok := ctx.Deadline(); ok && d.Before(next) {
			next = d
		}
		return s.SetReadDeadline(next)
	})
	if err != nil {
		s.Reset()
		if recvErr == nil {
			hs.countFrameError(name, err)
		}
		return ctxErr(ctx, err)
	}
	s.Close()
	return nil
}

// ctxErr prefers the context's error when it ended the exchange, so that
// callers can match context.DeadlineExceeded.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

func (hs *Host) countRequest(name string, start time.Time, err error) {
	outcome := "ok"
	var re *RemoteError
	switch {
	case err == nil:
		hs.m.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	case errors.As(err, &re):
		outcome = "remote error"
	case errors.Is(err, context.DeadlineExceeded):
		outcome = "timeout"
	default:
		outcome = "error"
	}
	hs.m.requests.WithLabelValues(name, "out", outcome).Inc()
}

func (hs *Host) countFrameError(name string, err error) {
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		hs.m.frameErrors.WithLabelValues(name, "too large").Inc()
	case errors.Is(err, ErrMalformedFrame):
		hs.m.frameErrors.WithLabelValues(name, "malformed").Inc()
	}
}
