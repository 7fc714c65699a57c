package wasm

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadFrame: whatever a job process writes on its stdout gives frames
// or an error, never a panic or an allocation past maxFrame.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("o\x00\x00\x00\x02hi"))
	f.Add([]byte("r\x00\x00\x00\x02{}b\x00\x00\x00\x00"))
	f.Add([]byte("o\xff\xff\xff\xff"))
	f.Add([]byte("x\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			typ, body, err := readFrame(r, nil)
			if err != nil {
				return
			}
			if len(body) > maxFrame {
				t.Fatalf("frame of %d bytes", len(body))
			}
			if typ == frameResult {
				_, _ = decodeResult(body)
			}
		}
	})
}
