package wasm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// A job process talks to the executor in frames on its stdout: a type
// byte, a big-endian uint32 length and that many bytes.
const (
	frameStdout = 'o' // guest stdout bytes
	frameStderr = 'e' // guest stderr bytes
	frameBegun  = 'b' // the module is compiled, the guest starts now
	frameResult = 'r' // the job's outcome: JSON of result
)

// maxFrame bounds one frame's body; the writer splits longer writes.
const maxFrame = 64 << 10

var errFrame = errors.New("bad frame from job process")

// readFrame reads one frame. A frame the executor does not know or longer
// than maxFrame is an error, never a large allocation.
func readFrame(r *bufio.Reader, buf []byte) (typ byte, body []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	typ = hdr[0]
	n := binary.BigEndian.Uint32(hdr[1:])
	switch typ {
	case frameStdout, frameStderr, frameBegun, frameResult:
	default:
		return 0, nil, fmt.Errorf("%w: type 0x%x", errFrame, typ)
	}
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", errFrame, n, maxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	body = buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", errFrame, err)
	}
	return typ, body, nil
}

// frameWriter writes frames to one stream; the guest's stdout and stderr
// share it.
type frameWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (f *frameWriter) frame(typ byte, b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for first := true; first || len(b) > 0; first = false {
		n := min(len(b), maxFrame)
		var hdr [5]byte
		hdr[0] = typ
		binary.BigEndian.PutUint32(hdr[1:], uint32(n))
		f.w.Write(hdr[:])
		f.w.Write(b[:n])
		b = b[n:]
	}
	return f.w.Flush()
}

// stream is an io.Writer sending frames of one type.
type stream struct {
	f   *frameWriter
	typ byte
}

func (s stream) Write(b []byte) (int, error) {
	if err := s.f.frame(s.typ, b); err != nil {
		return 0, err
	}
	return len(b), nil
}
