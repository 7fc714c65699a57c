package gateway

import (
	"testing"

	"github.com/bourse-net/bourse/worker/svcwire"
)

// FuzzRequestEnvelope: the provider's decoder of svc/1 requests never
// panics, and what it accepts encodes back to the same bytes.
func FuzzRequestEnvelope(f *testing.F) {
	b, _ := appendRequestEnvelope(nil, [32]byte{1}, &svcwire.Request{Method: "GET", Target: "/x",
		Header: svcwire.Header{{"A", "b"}}, Body: []byte("body")}, 0)
	f.Add(b[4:])
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		lease, req, err := decodeRequestEnvelope(b, 1<<10)
		if err != nil {
			return
		}
		again, err := appendRequestEnvelope(nil, lease, req, 1<<10)
		if err != nil || string(again[4:]) != string(b) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzResponseEnvelope: the gateway's decoder of svc/1 responses never
// panics and keeps the load within 0..1.
func FuzzResponseEnvelope(f *testing.F) {
	b, _ := appendResponseEnvelope(nil, 0.5, &svcwire.Response{Status: 200, Body: []byte("ok")}, 0)
	f.Add(b[4:])
	f.Add(appendErrorEnvelope(nil, outcomeFailed, 2, "boom")[4:])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeResponseEnvelope(b, 1<<10)
		if err != nil {
			return
		}
		if r.load < 0 || r.load > 1 || (r.outcome == outcomeOK) != (r.resp != nil) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
