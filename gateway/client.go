package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bourse-net/bourse/internal/wire"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/worker/svcwire"
)

// errNotSent wraps failures that happened before the provider could have
// read the request: any method may be sent elsewhere.
var errNotSent = errors.New("not sent")

// errRefused wraps a provider's refusal: the handler never saw the
// request (unknown lease, busy, closed).
var errRefused = errors.New("refused by provider")

// conn is one svc/1 stream kept open for sequential requests.
type conn struct {
	s    network.Stream
	br   *bufio.Reader
	buf  []byte
	used time.Time // when it last answered
}

// idleMax is how long an idle stream is kept: well under the provider's
// IdleTimeout, so a kept stream is not one the provider is closing.
const idleMax = 30 * time.Second

// client keeps idle svc/1 streams per provider and forwards requests.
type client struct {
	hs      *p2p.Host
	maxBody int
	maxIdle int

	mu   sync.Mutex
	idle map[peer.ID][]*conn
}

func newClient(hs *p2p.Host, maxBody, maxIdle int) *client {
	return &client{hs: hs, maxBody: maxBody, maxIdle: maxIdle, idle: map[peer.ID][]*conn{}}
}

func (c *client) take(ctx context.Context, p peer.ID) (*conn, error) {
	c.mu.Lock()
	for cs := c.idle[p]; len(cs) > 0; cs = c.idle[p] {
		cn := cs[len(cs)-1]
		c.idle[p] = cs[:len(cs)-1]
		if time.Since(cn.used) < idleMax {
			c.mu.Unlock()
			return cn, nil
		}
		cn.s.Close()
	}
	c.mu.Unlock()
	ctx = network.WithAllowLimitedConn(ctx, "bourse svc")
	s, err := c.hs.Libp2p().NewStream(ctx, p, c.hs.ProtocolID(wire.ProtoService))
	if err != nil {
		return nil, fmt.Errorf("%w: open stream: %v", errNotSent, err)
	}
	return &conn{s: s, br: bufio.NewReaderSize(s, 16<<10)}, nil
}

func (c *client) put(p peer.ID, cn *conn) {
	cn.used = time.Now()
	c.mu.Lock()
	if len(c.idle[p]) < c.maxIdle {
		c.idle[p] = append(c.idle[p], cn)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	cn.s.Close()
}

// drop closes every idle stream to p (after a failure, they may all be
// dead).
func (c *client) drop(p peer.ID) {
	c.mu.Lock()
	cs := c.idle[p]
	delete(c.idle, p)
	c.mu.Unlock()
	for _, cn := range cs {
		cn.s.Reset()
	}
}

func (c *client) closeAll() {
	c.mu.Lock()
	all := c.idle
	c.idle = map[peer.ID][]*conn{}
	c.mu.Unlock()
	for _, cs := range all {
		for _, cn := range cs {
			cn.s.Reset()
		}
	}
}

// forward sends one request to the replica's provider and returns its
// response and reported load. Errors wrap errNotSent or errRefused when
// the handler cannot have seen the request.
func (c *client) forward(ctx context.Context, p peer.ID, lease [32]byte, req *svcwire.Request) (*svcwire.Response, float64, error) {
	cn, err := c.take(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	if err := cn.s.SetDeadline(deadline); err != nil {
		cn.s.Reset()
		return nil, 0, fmt.Errorf("%w: %v", errNotSent, err)
	}
	cn.buf, err = appendRequestEnvelope(cn.buf[:0], lease, req, c.maxBody)
	if err != nil {
		c.put(p, cn)
		return nil, 0, fmt.Errorf("%w: %v", errNotSent, err)
	}
	stop := context.AfterFunc(ctx, func() { cn.s.Reset() })
	defer stop()
	if _, err := cn.s.Write(cn.buf); err != nil {
		cn.s.Reset()
		// A write error means the stream was dead before the request
		// could be read whole.
		return nil, 0, fmt.Errorf("%w: write: %v", errNotSent, err)
	}
	msg, err := svcwire.ReadFrame(cn.br, cn.buf, maxResponseEnvelope(c.maxBody))
	if err != nil {
		cn.s.Reset()
		return nil, 0, ctxErr(ctx, fmt.Errorf("read response: %w", err))
	}
	cn.buf = msg
	r, err := decodeResponseEnvelope(msg, c.maxBody)
	if err != nil {
		cn.s.Reset()
		return nil, 0, fmt.Errorf("bad response: %w", err)
	}
	if r.resp != nil {
		r.resp.Body = append([]byte(nil), r.resp.Body...) // cn.buf is reused
	}
	if stop() { // not reset by a late cancel: it may serve again
		c.put(p, cn)
	}
	switch r.outcome {
	case outcomeRefused:
		return nil, r.load, fmt.Errorf("%w: %s", errRefused, r.errText)
	case outcomeFailed:
		return nil, r.load, fmt.Errorf("replica failed: %s", r.errText)
	}
	return r.resp, r.load, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
