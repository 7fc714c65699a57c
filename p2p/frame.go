package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frames on request/response streams:
//
//	frame = kind:byte  length:uvarint  payload:length bytes
//
// kind 0 (data) carries a request or a piece of a response, kind 1 (error)
// carries the server's error text (at most maxErrorFrame bytes), kind 2
// (end) has no payload and ends a streamed response. A request is one data
// frame; a unary response is one data or error frame; a streamed response
// is data frames followed by an end or an error frame.
const (
	frameData  byte = 0
	frameError byte = 1
	frameEnd   byte = 2
)

// maxErrorFrame caps the error text a server may send.
const maxErrorFrame = 256

var (
	// ErrFrameTooLarge is returned when a frame exceeds the size cap the
	// reader was given.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrMalformedFrame is returned for frames that violate the format:
	// unknown kind, bad length prefix, truncated payload, unexpected kind.
	ErrMalformedFrame = errors.New("malformed frame")
)

// RemoteError is an error the remote handler returned, carried in an error
// frame.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return "remote: " + e.Msg }

// writeFrame writes one frame.
func writeFrame(w io.Writer, kind byte, payload []byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := binary.PutUvarint(hdr[1:], uint64(len(payload)))
	if _, err := w.Write(hdr[:1+n]); err != nil {
		return fmt.Errorf("write frame header: %w", err)
	}
	if len(payload) == 0 {
		return nil
	}
	if _, err := w.Write(payload); err != nil {
		return fmt.Errorf("write frame payload: %w", err)
	}
	return nil
}

// readFrame reads one frame whose data payload is at most max bytes. It
// never allocates more than the announced (and capped) length.
func readFrame(r *bufio.Reader, max int) (kind byte, payload []byte, err error) {
	kind, err = r.ReadByte()
	if err != nil {
		return 0, nil, err // io.EOF here means a clean end of stream
	}
	limit := uint64(max)
	switch kind {
	case frameData:
	case frameError:
		limit = maxErrorFrame
	case frameEnd:
		limit = 0
	default:
		return 0, nil, fmt.Errorf("%w: unknown kind %d", ErrMalformedFrame, kind)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: length: %w", ErrMalformedFrame, unexpectedEOF(err))
	}
	if n > limit {
		if kind == frameData {
			return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
		}
		return 0, nil, fmt.Errorf("%w: kind %d with %d bytes", ErrMalformedFrame, kind, n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("%w: payload: %w", ErrMalformedFrame, unexpectedEOF(err))
	}
	return kind, payload, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readUnary reads a unary response: one data frame (returned) or one
// error frame (returned as *RemoteError).
func readUnary(r *bufio.Reader, max int) ([]byte, error) {
	kind, payload, err := readFrame(r, max)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", unexpectedEOF(err))
	}
	switch kind {
	case frameData:
		return payload, nil
	case frameError:
		return nil, &RemoteError{Msg: string(payload)}
	}
	return nil, fmt.Errorf("read response: %w: end frame without data", ErrMalformedFrame)
}

// readStream reads a streamed response, calling recv for each data frame
// until an end frame. An error frame becomes a *RemoteError; recv's error
// stops reading and is returned as is.
func readStream(r *bufio.Reader, max int, recv func([]byte) error) error {
	for {
		kind, payload, err := readFrame(r, max)
		if err != nil {
			return fmt.Errorf("read stream: %w", unexpectedEOF(err))
		}
		switch kind {
		case frameEnd:
			return nil
		case frameError:
			return &RemoteError{Msg: string(payload)}
		}
		if err := recv(payload); err != nil {
			return err
		}
	}
}
