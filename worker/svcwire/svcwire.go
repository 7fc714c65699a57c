// Package svcwire is the encoding of one service request and its
// response, shared by the three places that carry them: the gateway's
// libp2p protocol (gateway, svc/1), the pipe between the provider and a
// service instance's process, and the guest module itself (see Serve). It
// imports only the standard library and builds for GOOS=wasip1, so a
// service module links it.
//
// A message is a version byte followed by fields, every length
// bounded before anything is allocated:
//
//	request:  1 | method (u8 len) | target (u16 len) | headers | body (u32 len)
//	response: 1 | status (u16)    | headers | body (u32 len)
//	headers:  count (u16) | count × (name (u16 len) | value (u16 len))
//
// On a pipe, each message is preceded by its length as a big-endian
// uint32 (ReadFrame, WriteFrame).
package svcwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the first byte of every message.
const Version = 1

// Bounds every decoder enforces.
const (
	MaxMethod      = 16       // bytes of a method name
	MaxTarget      = 8 << 10  // bytes of a request target (path and query)
	MaxHeaders     = 100      // header fields per message
	MaxHeaderBytes = 64 << 10 // bytes of all header names and values
	// DefaultMaxBody is the body bound when a caller passes 0.
	DefaultMaxBody = 1 << 20
	// MaxBodyLimit is the largest body bound a caller may ask for.
	MaxBodyLimit = 16 << 20
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("svcwire: malformed message")

// ErrTooLarge is wrapped when a field or the whole message is over its bound.
var ErrTooLarge = errors.New("svcwire: message too large")

// Header is a list of header fields in order; names are kept as sent.
type Header [][2]string

// Get returns the first value of name (ASCII case-insensitive), or "".
func (h Header) Get(name string) string {
	for _, kv := range h {
		if equalFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Request is one HTTP-like request to a service.
type Request struct {
	Method string
	Target string // path and query, e.g. "/hello?x=1"
	Header Header
	Body   []byte
}

// Response is a service's answer.
type Response struct {
	Status int
	Header Header
	Body   []byte
}

// Size is the request's encoded size.
func (r *Request) Size() int {
	return 1 + 1 + len(r.Method) + 2 + len(r.Target) + headerSize(r.Header) + 4 + len(r.Body)
}

// Size is the response's encoded size.
func (r *Response) Size() int { return 1 + 2 + headerSize(r.Header) + 4 + len(r.Body) }

func headerSize(h Header) int {
	n := 2
	for _, kv := range h {
		n += 4 + len(kv[0]) + len(kv[1])
	}
	return n
}

// AppendRequest appends r's encoding to b. It refuses a request over the
// bounds (maxBody 0 means DefaultMaxBody).
func AppendRequest(b []byte, r *Request, maxBody int) ([]byte, error) {
	maxBody = bodyLimit(maxBody)
	switch {
	case len(r.Method) == 0 || len(r.Method) > MaxMethod:
		return b, fmt.Errorf("%w: method of %d bytes (1 to %d)", ErrTooLarge, len(r.Method), MaxMethod)
	case len(r.Target) > MaxTarget:
		return b, fmt.Errorf("%w: target of %d bytes, limit %d", ErrTooLarge, len(r.Target), MaxTarget)
	case len(r.Body) > maxBody:
		return b, fmt.Errorf("%w: body of %d bytes, limit %d", ErrTooLarge, len(r.Body), maxBody)
	}
	if err := checkHeader(r.Header); err != nil {
		return b, err
	}
	b = append(b, Version, byte(len(r.Method)))
	b = append(b, r.Method...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Target)))
	b = append(b, r.Target...)
	b = appendHeader(b, r.Header)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Body)))
	return append(b, r.Body...), nil
}

// AppendResponse appends r's encoding to b. It refuses a response over the
// bounds or with a status outside 100..999.
func AppendResponse(b []byte, r *Response, maxBody int) ([]byte, error) {
	maxBody = bodyLimit(maxBody)
	if r.Status < 100 || r.Status > 999 {
		return b, fmt.Errorf("%w: status %d", ErrMalformed, r.Status)
	}
	if len(r.Body) > maxBody {
		return b, fmt.Errorf("%w: body of %d bytes, limit %d", ErrTooLarge, len(r.Body), maxBody)
	}
	if err := checkHeader(r.Header); err != nil {
		return b, err
	}
	b = append(b, Version)
	b = binary.BigEndian.AppendUint16(b, uint16(r.Status))
	b = appendHeader(b, r.Header)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Body)))
	return append(b, r.Body...), nil
}

func bodyLimit(n int) int {
	if n <= 0 {
		return DefaultMaxBody
	}
	return min(n, MaxBodyLimit)
}

// MaxRequestSize is the largest encoding of a request whose body is at
// most maxBody bytes.
func MaxRequestSize(maxBody int) int {
	return 1 + 1 + MaxMethod + 2 + MaxTarget + 2 + 4*MaxHeaders + MaxHeaderBytes + 4 + bodyLimit(maxBody)
}

// MaxResponseSize is the largest encoding of a response whose body is at
// most maxBody bytes.
func MaxResponseSize(maxBody int) int {
	return 1 + 2 + 2 + 4*MaxHeaders + MaxHeaderBytes + 4 + bodyLimit(maxBody)
}

func checkHeader(h Header) error {
	if len(h) > MaxHeaders {
		return fmt.Errorf("%w: %d header fields, limit %d", ErrTooLarge, len(h), MaxHeaders)
	}
	n := 0
	for _, kv := range h {
		if len(kv[0]) == 0 || len(kv[0]) > 0xffff || len(kv[1]) > 0xffff {
			return fmt.Errorf("%w: header field %q", ErrMalformed, trunc(kv[0]))
		}
		n += len(kv[0]) + len(kv[1])
	}
	if n > MaxHeaderBytes {
		return fmt.Errorf("%w: %d header bytes, limit %d", ErrTooLarge, n, MaxHeaderBytes)
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

func appendHeader(b []byte, h Header) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(h)))
	for _, kv := range h {
		b = binary.BigEndian.AppendUint16(b, uint16(len(kv[0])))
		b = append(b, kv[0]...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(kv[1])))
		b = append(b, kv[1]...)
	}
	return b
}

// decoder reads fields from a message, failing once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail(fmt.Errorf("%w: %s: %d bytes announced, %d left", ErrMalformed, what, n, len(d.b)))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(what string) int {
	v := d.take(1, what)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (d *decoder) u16(what string) int {
	v := d.take(2, what)
	if v == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(v))
}

func (d *decoder) u32(what string) int {
	v := d.take(4, what)
	if v == nil {
		return 0
	}
	return int(binary.BigEndian.Uint32(v))
}

func (d *decoder) version() {
	if v := d.u8("version"); d.err == nil && v != Version {
		d.fail(fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, Version))
	}
}

func (d *decoder) header() Header {
	n := d.u16("header count")
	if n > MaxHeaders {
		d.fail(fmt.Errorf("%w: %d header fields, limit %d", ErrTooLarge, n, MaxHeaders))
		return nil
	}
	if n == 0 || d.err != nil {
		return nil
	}
	h := make(Header, 0, n)
	total := 0
	for range n {
		k := d.take(d.u16("header name length"), "header name")
		v := d.take(d.u16("header value length"), "header value")
		if d.err != nil {
			return nil
		}
		if len(k) == 0 {
			d.fail(fmt.Errorf("%w: empty header name", ErrMalformed))
			return nil
		}
		if total += len(k) + len(v); total > MaxHeaderBytes {
			d.fail(fmt.Errorf("%w: header bytes over %d", ErrTooLarge, MaxHeaderBytes))
			return nil
		}
		h = append(h, [2]string{string(k), string(v)})
	}
	return h
}

func (d *decoder) body(maxBody int) []byte {
	n := d.u32("body length")
	if d.err == nil && n > bodyLimit(maxBody) {
		d.fail(fmt.Errorf("%w: body of %d bytes, limit %d", ErrTooLarge, n, bodyLimit(maxBody)))
	}
	return d.take(n, "body")
}

func (d *decoder) end() {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Errorf("%w: %d bytes after the message", ErrMalformed, len(d.b)))
	}
}

// DecodeRequest decodes one request. The body aliases b.
func DecodeRequest(b []byte, maxBody int) (*Request, error) {
	d := decoder{b: b}
	d.version()
	m := d.take(d.u8("method length"), "method")
	if d.err == nil && (len(m) == 0 || len(m) > MaxMethod) {
		d.fail(fmt.Errorf("%w: method of %d bytes (1 to %d)", ErrMalformed, len(m), MaxMethod))
	}
	tl := d.u16("target length")
	if d.err == nil && tl > MaxTarget {
		d.fail(fmt.Errorf("%w: target of %d bytes, limit %d", ErrTooLarge, tl, MaxTarget))
	}
	t := d.take(tl, "target")
	h := d.header()
	body := d.body(maxBody)
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return &Request{Method: string(m), Target: string(t), Header: h, Body: body}, nil
}

// DecodeResponse decodes one response. The body aliases b.
func DecodeResponse(b []byte, maxBody int) (*Response, error) {
	d := decoder{b: b}
	d.version()
	st := d.u16("status")
	if d.err == nil && (st < 100 || st > 999) {
		d.fail(fmt.Errorf("%w: status %d", ErrMalformed, st))
	}
	h := d.header()
	body := d.body(maxBody)
	d.end()
	if d.err != nil {
		return nil, d.err
	}
	return &Response{Status: st, Header: h, Body: body}, nil
}

// ReadFrame reads one length-prefixed message of at most max bytes into
// buf (grown if needed) and returns it. A longer announcement is
// ErrTooLarge before anything is read or allocated.
func ReadFrame(r *bufio.Reader, buf []byte, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n > max {
		return nil, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrTooLarge, n, max)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// AppendFrameHeader appends the length prefix of an n-byte message.
func AppendFrameHeader(b []byte, n int) []byte { return binary.BigEndian.AppendUint32(b, uint32(n)) }
