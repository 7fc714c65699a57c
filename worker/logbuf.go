package worker

import (
	"context"
	"io"
	"sync"
)

// LogBuffer captures one output stream of a job: it keeps the first Cap
// bytes, counts the rest, and lets any number of readers follow it while
// the job runs. Writes never fail, so a guest is not disturbed by the cap;
// the first write past the cap calls the overflow function once (the Runs
// table uses it to stop the job).
type LogBuffer struct {
	mu       sync.Mutex
	buf      []byte
	cap      int64
	total    int64
	closed   bool
	changed  chan struct{} // closed and replaced on every change
	overflow func()
}

// NewLogBuffer returns a buffer that keeps at most capBytes bytes and calls
// onOverflow (if not nil) once when more is written.
func NewLogBuffer(capBytes int64, onOverflow func()) *LogBuffer {
	return &LogBuffer{cap: capBytes, changed: make(chan struct{}), overflow: onOverflow}
}

// Write keeps what fits under the cap and always reports len(p) written.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return len(p), nil
	}
	room := b.cap - int64(len(b.buf))
	keep := p
	if int64(len(keep)) > room {
		keep = keep[:max(room, 0)]
	}
	wasOver := b.total > b.cap
	b.buf = append(b.buf, keep...)
	b.total += int64(len(p))
	fire := !wasOver && b.total > b.cap
	b.signalLocked()
	fn := b.overflow
	b.mu.Unlock()
	if fire && fn != nil {
		fn()
	}
	return len(p), nil
}

func (b *LogBuffer) signalLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// CloseWrite marks the stream finished: followers get io.EOF once they
// have read everything, and later writes are dropped.
func (b *LogBuffer) CloseWrite() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.signalLocked()
	}
}

// Bytes returns a copy of what was kept.
func (b *LogBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// Truncated reports whether more than the cap was written.
func (b *LogBuffer) Truncated() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total > b.cap
}

// Follow returns a reader over the kept bytes from the first one, which
// blocks for more until CloseWrite (then io.EOF) or until ctx ends (then
// ctx's error).
func (b *LogBuffer) Follow(ctx context.Context) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	return &follower{b: b, ctx: ctx, cancel: cancel}
}

type follower struct {
	b      *LogBuffer
	ctx    context.Context
	cancel context.CancelFunc
	off    int
}

func (f *follower) Read(p []byte) (int, error) {
	for {
		f.b.mu.Lock()
		if f.off < len(f.b.buf) {
			n := copy(p, f.b.buf[f.off:])
			f.off += n
			f.b.mu.Unlock()
			return n, nil
		}
		if f.b.closed {
			f.b.mu.Unlock()
			return 0, io.EOF
		}
		ch := f.b.changed
		f.b.mu.Unlock()
		select {
		case <-ch:
		case <-f.ctx.Done():
			return 0, f.ctx.Err()
		}
	}
}

func (f *follower) Close() error {
	f.cancel()
	return nil
}
