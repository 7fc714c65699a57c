package api

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func streamOf(s string) *EventStream {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 1024), maxEventSize)
	return &EventStream{body: io.NopCloser(nil), sc: sc}
}

func TestEventStreamParsing(t *testing.T) {
	in := ": hello\n\n" +
		"id: 1\nevent: block\ndata: {\"type\":\"block\",\"block\":{\"height\":5,\"hash\":\"aa\"}}\n\n" +
		": keep-alive\n\n" +
		"event: job\ndata: {\"type\":\"job\",\ndata: \"job\":{\"id\":\"j\",\"state\":\"paid\"}}\n\n"
	s := streamOf(in)
	ev, err := s.Next()
	if err != nil || ev.Type != EventBlock || ev.Block.Height != 5 || ev.Block.Hash != "aa" {
		t.Fatalf("first: %+v %v", ev, err)
	}
	ev, err = s.Next()
	if err != nil || ev.Type != EventJob || ev.Job.ID != "j" || ev.Job.State != StatePaid {
		t.Fatalf("multi-line data: %+v %v", ev, err)
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	if _, err := streamOf("data: {nope\n\n").Next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("garbage event: %v", err)
	}
}

func TestNewClientAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:7700":         "127.0.0.1:7700",
		"http://127.0.0.1:7700/": "127.0.0.1:7700",
		"localhost:1":            "localhost:1",
	} {
		c, err := NewClient(in, "t", nil)
		if err != nil || c.Addr() != want {
			t.Errorf("NewClient(%q) = %v, %v", in, c, err)
		}
	}
	for _, bad := range []string{"", "ftp://x:1", "http://"} {
		if _, err := NewClient(bad, "t", nil); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
}

// FuzzEventStream: any byte stream from the daemon yields events, an error
// or EOF, and never panics or loops.
func FuzzEventStream(f *testing.F) {
	f.Add([]byte("data: {\"type\":\"block\"}\n\n"))
	f.Add([]byte(": c\n\ndata: \ndata: {}\n\n"))
	f.Add([]byte("data:{\"type\":\"job\",\"job\":{\"id\":1}}\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := streamOf(string(data))
		for i := 0; i <= bytes.Count(data, []byte("\n"))+1; i++ {
			if _, err := s.Next(); err != nil {
				return
			}
		}
		t.Fatalf("more events than lines in %q", data)
	})
}
