package worker

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
)

func TestLogBuffer(t *testing.T) {
	var overflows int
	b := NewLogBuffer(10, func() { overflows++ })
	ctx := context.Background()
	r := b.Follow(ctx)
	var got []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, _ = io.ReadAll(r)
	}()
	for _, s := range []string{"hello", " wor", "ld and more", "!"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	b.CloseWrite()
	wg.Wait()
	if string(got) != "hello worl" || string(b.Bytes()) != "hello worl" || !b.Truncated() || overflows != 1 {
		t.Fatalf("follow %q, bytes %q, truncated %v, overflows %d", got, b.Bytes(), b.Truncated(), overflows)
	}
	// A follower stops when its ctx ends.
	b2 := NewLogBuffer(10, nil)
	cctx, cancel := context.WithCancel(ctx)
	r2 := b2.Follow(cctx)
	cancel()
	if _, err := r2.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v", err)
	}
}

func TestParseJobID(t *testing.T) {
	id := JobID{0xab, 0xcd}
	got, err := ParseJobID(id.String())
	if err != nil || got != id {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 66)} {
		if _, err := ParseJobID(bad); err == nil {
			t.Errorf("ParseJobID(%q) accepted", bad)
		}
	}
}

func FuzzParseJobID(f *testing.F) {
	f.Add(JobID{1, 2, 3}.String())
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseJobID(s)
		if err == nil && id.String() != strings.ToLower(s) {
			t.Fatalf("ParseJobID(%q) = %s", s, id)
		}
	})
}

// fakeFetcher answers with a function field, so tests inject faults.
type fakeFetcher struct {
	fetch func(ctx context.Context, hash [32]byte, size int64, from string) ([]byte, error)
}

func (f fakeFetcher) Fetch(ctx context.Context, hash [32]byte, size int64, from string) ([]byte, error) {
	return f.fetch(ctx, hash, size, from)
}

func TestFetchPayload(t *testing.T) {
	good := []byte("module bytes")
	h := sha256.Sum256(good)
	serve := func(b []byte, err error) fakeFetcher {
		return fakeFetcher{func(context.Context, [32]byte, int64, string) ([]byte, error) { return b, err }}
	}
	cases := []struct {
		name string
		f    fakeFetcher
		size int64
		max  int64
		want error
	}{
		{"good", serve(good, nil), int64(len(good)), 100, nil},
		{"over the cap", serve(good, nil), int64(len(good)), 5, ErrPayloadTooLarge},
		{"negative size", serve(good, nil), -1, 100, ErrPayloadTooLarge},
		{"wrong bytes", serve([]byte("module bytez"), nil), int64(len(good)), 100, ErrPayloadHash},
		{"wrong length", serve(append(good, 'x'), nil), int64(len(good)), 100, ErrPayloadHash},
		{"peer error", serve(nil, ErrNotFound), int64(len(good)), 100, ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := FetchPayload(context.Background(), c.f, h, c.size, "peer", c.max)
			if c.want == nil {
				if err != nil || string(b) != string(good) {
					t.Fatalf("= %q, %v", b, err)
				}
				return
			}
			if !errors.Is(err, c.want) || b != nil {
				t.Fatalf("= %q, %v; want %v", b, err, c.want)
			}
		})
	}
}

func TestJobErrorSentinels(t *testing.T) {
	cases := []struct {
		state State
		is    []error
		isNot []error
	}{
		{StateTimedOut, []error{ErrTimeout, context.DeadlineExceeded}, []error{ErrOutOfMemory, ErrCancelled, ErrJobFailed}},
		{StateOOM, []error{ErrOutOfMemory}, []error{ErrTimeout, ErrCancelled, ErrJobFailed}},
		{StateCancelled, []error{ErrCancelled, context.Canceled}, []error{ErrTimeout, ErrOutOfMemory}},
		{StateFailed, []error{ErrJobFailed}, []error{ErrTimeout, ErrOutOfMemory, ErrCancelled}},
	}
	for _, c := range cases {
		err := (&Exit{State: c.state, Reason: "r"}).Err(JobID{})
		for _, s := range c.is {
			if !errors.Is(err, s) {
				t.Errorf("%s: not %v", c.state, s)
			}
		}
		for _, s := range c.isNot {
			if errors.Is(err, s) {
				t.Errorf("%s: matches %v", c.state, s)
			}
		}
	}
	if (&Exit{State: StateSucceeded}).Err(JobID{}) != nil {
		t.Error("success has an error")
	}
}
