package svcwire

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzDecode: the decoders of requests, responses and frames (network
// input for providers, guest output for the provider) never panic, never
// accept more than their bounds, and round-trip what they accept.
func FuzzDecode(f *testing.F) {
	req, _ := AppendRequest(nil, &Request{Method: "POST", Target: "/a?b", Header: Header{{"K", "v"}}, Body: []byte("x")}, 0)
	resp, _ := AppendResponse(nil, &Response{Status: 200, Header: Header{{"K", "v"}}, Body: []byte("y")}, 0)
	f.Add(req)
	f.Add(resp)
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeRequest(b, 64); err == nil {
			if len(r.Body) > 64 {
				t.Fatal("body over bound")
			}
			again, err := AppendRequest(nil, r, 64)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("request round trip: %v", err)
			}
		}
		if r, err := DecodeResponse(b, 64); err == nil {
			again, err := AppendResponse(nil, r, 64)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("response round trip: %v", err)
			}
		}
		if m, err := ReadFrame(bufio.NewReader(bytes.NewReader(b)), nil, 16); err == nil && len(m) > 16 {
			t.Fatal("frame over bound")
		}
	})
}

func TestServeIOAnswersBadRequests(t *testing.T) {
	var in bytes.Buffer
	in.Write(AppendFrameHeader(nil, 3))
	in.Write([]byte{9, 9, 9})
	var out bytes.Buffer
	if err := ServeIO(&in, &out, func(*Request) *Response { return nil }, 0, false); err != nil {
		t.Fatal(err)
	}
	m, err := ReadFrame(bufio.NewReader(&out), nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeResponse(m, 0)
	if err != nil || r.Status != 400 {
		t.Fatalf("%+v %v", r, err)
	}
}
