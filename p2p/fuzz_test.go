package p2p

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
)

// Frames that parse re-encode to the bytes they were read from; nothing
// panics and nothing above the cap is returned.
func FuzzReadFrame(f *testing.F) {
	var seed bytes.Buffer
	writeFrame(&seed, frameData, []byte("hello"))
	f.Add(seed.Bytes(), 16)
	f.Add([]byte{frameError, 3, 'b', 'a', 'd'}, 16)
	f.Add([]byte{frameEnd, 0}, 0)
	f.Add([]byte{frameData, 0xff, 0xff, 0xff, 0xff, 0x0f}, 1<<20)
	f.Add([]byte{9}, 1)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max < 0 || max > 1<<20 {
			return
		}
		src := bytes.NewReader(data)
		r := bufio.NewReader(src)
		kind, payload, err := readFrame(r, max)
		if err != nil {
			return
		}
		limit := max
		if kind == frameError {
			limit = maxErrorFrame
		}
		if kind == frameEnd {
			limit = 0
		}
		if len(payload) > limit {
			t.Fatalf("kind %d payload %d bytes over limit %d", kind, len(payload), limit)
		}
		var re bytes.Buffer
		if err := writeFrame(&re, kind, payload); err != nil {
			t.Fatal(err)
		}
		consumed := len(data) - src.Len() - r.Buffered()
		if !bytes.Equal(re.Bytes(), data[:consumed]) {
			// Non-minimal varints decode too; they must at least agree on
			// the payload.
			k2, p2, err := readFrame(bufio.NewReader(&re), max)
			if err != nil || k2 != kind || !bytes.Equal(p2, payload) {
				t.Fatalf("re-encoding disagrees: %v %d %q", err, k2, p2)
			}
		}
	})
}

// A streamed response reader either returns an error or delivers frames
// within the cap; it never panics.
func FuzzReadStream(f *testing.F) {
	var seed bytes.Buffer
	writeFrame(&seed, frameData, []byte("a"))
	writeFrame(&seed, frameData, []byte("bc"))
	writeFrame(&seed, frameEnd, nil)
	f.Add(seed.Bytes())
	f.Add([]byte{frameError, 2, 'n', 'o'})
	f.Add([]byte{frameData, 5, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 64
		var total int
		err := readStream(bufio.NewReader(bytes.NewReader(data)), max, func(b []byte) error {
			if len(b) > max {
				t.Fatalf("frame of %d bytes over cap", len(b))
			}
			total += len(b)
			return nil
		})
		if err == nil && total > len(data) {
			t.Fatalf("delivered %d bytes from %d input bytes", total, len(data))
		}
		_, _ = readUnary(bufio.NewReader(bytes.NewReader(data)), max)
	})
}

// The blob receiver accepts a frame sequence only if it carries exactly
// content hashing to the requested hash within the cap.
func FuzzBlobReceiver(f *testing.F) {
	content := []byte("fuzzed blob content")
	var ok bytes.Buffer
	ok.Write(binary.BigEndian.AppendUint64(nil, uint64(len(content))))
	ok.Write(content)
	f.Add(ok.Bytes(), uint8(8))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 'x'}, uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		want := sha256.Sum256(content)
		var out bytes.Buffer
		r := newBlobReceiver(want, 64, &out)
		step := int(chunk)%16 + 1
		var err error
		// The header is the first 8 bytes (or fewer), then chunks.
		frames := [][]byte{data[:min(8, len(data))]}
		for rest := data[min(8, len(data)):]; len(rest) > 0; rest = rest[min(step, len(rest)):] {
			frames = append(frames, rest[:min(step, len(rest))])
		}
		for _, fr := range frames {
			if err = r.frame(fr); err != nil {
				break
			}
		}
		if err == nil {
			err = r.finish()
		}
		if err == nil && !bytes.Equal(out.Bytes(), content) {
			t.Fatalf("accepted %q", out.Bytes())
		}
		if err != nil && !errors.Is(err, ErrBlobMalformed) && !errors.Is(err, ErrBlobTooLarge) && !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if out.Len() > 64 {
			t.Fatalf("wrote %d bytes past the 64 byte cap", out.Len())
		}
	})
}

// A blob request parses into a hash and a credential that give back the
// request, or is refused; nothing over the credential cap passes.
func FuzzParseBlobRequest(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Add(make([]byte, 32+MaxBlobCredential))
	f.Add(make([]byte, 33+MaxBlobCredential))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, req []byte) {
		hash, cred, err := parseBlobRequest(req)
		if err != nil {
			if !errors.Is(err, ErrBlobMalformed) {
				t.Fatalf("error %v is not ErrBlobMalformed", err)
			}
			return
		}
		if len(cred) > MaxBlobCredential || !bytes.Equal(append(hash[:], cred...), req) {
			t.Fatalf("request %x parsed to %x + %x", req, hash, cred)
		}
	})
}
