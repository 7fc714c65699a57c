package gateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bourse-net/bourse/internal/wire"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/svcwire"
)

// ProviderConfig bounds what peers may hold on a provider's svc/1
// handler. Zero values are the defaults.
type ProviderConfig struct {
	// MaxStreams caps open svc/1 streams from all peers (default 1024);
	// MaxStreamsPerPeer from one peer (default 128). A stream over
	// either is reset at once, so one greedy peer cannot take the
	// budget of the others.
	MaxStreams        int
	MaxStreamsPerPeer int
	// IdleTimeout is how long a stream may wait between requests
	// (default 2 minutes); FrameTimeout how long one request frame may
	// take to arrive once begun, and one response to be written
	// (default 10 s), so a peer trickling bytes holds its slot no longer.
	IdleTimeout  time.Duration
	FrameTimeout time.Duration
	// MaxBody bounds request bodies this provider accepts (default
	// svcwire.DefaultMaxBody).
	MaxBody int
	Logger  *slog.Logger
}

func (c *ProviderConfig) setDefaults() {
	if c.MaxStreams <= 0 {
		c.MaxStreams = 1024
	}
	if c.MaxStreamsPerPeer <= 0 {
		c.MaxStreamsPerPeer = 128
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.FrameTimeout <= 0 {
		c.FrameTimeout = 10 * time.Second
	}
	if c.MaxBody <= 0 {
		c.MaxBody = svcwire.DefaultMaxBody
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ProviderHandler serves svc/1 on a provider: it reads request envelopes
// from gateways' streams and answers each with the replica's response.
type ProviderHandler struct {
	hs     *p2p.Host
	cfg    ProviderConfig
	lookup func(lease [32]byte) (*worker.Service, bool)
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	streams map[network.Stream]peer.ID
	perPeer map[peer.ID]int

	requests, refusedStreams, badFrames, unknownLease atomic.Uint64
}

// ProviderStats are the handler's counters.
type ProviderStats struct {
	Streams        int    `json:"streams"`         // open now
	Requests       uint64 `json:"requests"`        // answered (any outcome)
	RefusedStreams uint64 `json:"refused_streams"` // reset: over the stream budget
	BadFrames      uint64 `json:"bad_frames"`      // malformed or oversized: stream reset
	UnknownLease   uint64 `json:"unknown_lease"`   // requests for a lease not served here
}

// NewProviderHandler serves svc/1 on hs; lookup returns the running
// replica of a lease (false if this provider does not serve it).
func NewProviderHandler(hs *p2p.Host, lookup func(lease [32]byte) (*worker.Service, bool), cfg ProviderConfig) (*ProviderHandler, error) {
	if hs == nil || lookup == nil {
		return nil, errors.New("new provider handler: need a host and a lookup")
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	h := &ProviderHandler{hs: hs, cfg: cfg, lookup: lookup, ctx: ctx, cancel: cancel,
		streams: map[network.Stream]peer.ID{}, perPeer: map[peer.ID]int{}}
	hs.Libp2p().SetStreamHandler(hs.ProtocolID(wire.ProtoService), h.handleStream)
	return h, nil
}

// Stats returns the handler's counters.
func (h *ProviderHandler) Stats() ProviderStats {
	h.mu.Lock()
	n := len(h.streams)
	h.mu.Unlock()
	return ProviderStats{Streams: n, Requests: h.requests.Load(), RefusedStreams: h.refusedStreams.Load(),
		BadFrames: h.badFrames.Load(), UnknownLease: h.unknownLease.Load()}
}

// Close stops serving svc/1, resets every open stream and waits for
// their handlers.
func (h *ProviderHandler) Close() {
	h.hs.Libp2p().RemoveStreamHandler(h.hs.ProtocolID(wire.ProtoService))
	h.mu.Lock()
	h.closed = true
	for s := range h.streams {
		s.Reset()
	}
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

func (h *ProviderHandler) admit(s network.Stream) bool {
	from := s.Conn().RemotePeer()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.streams) >= h.cfg.MaxStreams || h.perPeer[from] >= h.cfg.MaxStreamsPerPeer {
		return false
	}
	h.streams[s] = from
	h.perPeer[from]++
	h.wg.Add(1)
	return true
}

func (h *ProviderHandler) leave(s network.Stream) {
	h.mu.Lock()
	from := h.streams[s]
	delete(h.streams, s)
	if h.perPeer[from]--; h.perPeer[from] <= 0 {
		delete(h.perPeer, from)
	}
	h.mu.Unlock()
	h.wg.Done()
}

// handleStream serves one stream's requests in order until the peer
// closes it, idles past IdleTimeout or sends a bad frame.
func (h *ProviderHandler) handleStream(s network.Stream) {
	if !h.admit(s) {
		h.refusedStreams.Add(1)
		s.Reset()
		return
	}
	defer h.leave(s)
	br := bufio.NewReaderSize(s, 16<<10)
	var in, out []byte
	maxIn := maxRequestEnvelope(h.cfg.MaxBody)
	for {
		msg, err := readFrameDeadline(s, br, in, maxIn, h.cfg.IdleTimeout, h.cfg.FrameTimeout)
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.Close()
				return
			}
			if errors.Is(err, svcwire.ErrTooLarge) {
				h.badFrames.Add(1)
			}
			s.Reset()
			return
		}
		in = msg
		lease, req, err := decodeRequestEnvelope(msg, h.cfg.MaxBody)
		if err != nil {
			h.badFrames.Add(1)
			h.cfg.Logger.Debug("bad svc request", "from", s.Conn().RemotePeer().ShortString(), "err", err)
			s.Reset()
			return
		}
		out = h.answer(out[:0], lease, req)
		h.requests.Add(1)
		if err := s.SetWriteDeadline(time.Now().Add(h.cfg.FrameTimeout)); err != nil {
			s.Reset()
			return
		}
		if _, err := s.Write(out); err != nil {
			s.Reset()
			return
		}
	}
}

// answer runs one request and appends its framed response envelope.
func (h *ProviderHandler) answer(b []byte, lease [32]byte, req *svcwire.Request) []byte {
	svc, ok := h.lookup(lease)
	if !ok {
		h.unknownLease.Add(1)
		return appendErrorEnvelope(b, outcomeRefused, 1, fmt.Sprintf("lease %x is not served here", lease[:6]))
	}
	resp, err := svc.Handle(h.ctx, req)
	load := svc.Load()
	if err != nil {
		outcome := byte(outcomeFailed)
		if errors.Is(err, worker.ErrServiceBusy) || errors.Is(err, worker.ErrServiceClosed) {
			outcome = outcomeRefused
		}
		return appendErrorEnvelope(b, outcome, load, err.Error())
	}
	out, err := appendResponseEnvelope(b, load, resp, h.cfg.MaxBody)
	if err != nil {
		return appendErrorEnvelope(b, outcomeFailed, load, "response refused: "+err.Error())
	}
	return out
}

// readFrameDeadline reads one frame: its length within idle, the rest
// within frame of the length.
func readFrameDeadline(s network.Stream, br *bufio.Reader, buf []byte, max int, idle, frame time.Duration) ([]byte, error) {
	if err := s.SetReadDeadline(time.Now().Add(idle)); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > max {
		return nil, fmt.Errorf("%w: frame of %d bytes, limit %d", svcwire.ErrTooLarge, n, max)
	}
	if err := s.SetReadDeadline(time.Now().Add(frame)); err != nil {
		return nil, err
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(br, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}
