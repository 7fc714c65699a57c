package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/bourse-net/bourse/worker/svcwire"
)

// On a svc/1 stream, the gateway sends request envelopes and the provider
// answers each with a response envelope, in order, each framed as
// svcwire frames (a big-endian uint32 length, then the message):
//
//	request envelope:  version (1) | lease id (32) | svcwire request
//	response envelope: version (1) | outcome (1) | load (float32, 0..1) | svcwire response, or an error text
//
// Outcomes say whether the handler may have seen the request, which is
// what decides whether a gateway may send a non-idempotent request again.
const envVersion = 1

// Outcomes of a response envelope.
const (
	outcomeOK      = 0 // a response follows
	outcomeRefused = 1 // the request never reached a handler (unknown lease, busy, closed): safe to resend
	outcomeFailed  = 2 // the handler may have seen it (timeout, crash)
)

// maxErrText bounds an error text in a response envelope.
const maxErrText = 512

var errEnvelope = errors.New("gateway: malformed envelope")

// appendRequestEnvelope appends the framed request envelope to b.
func appendRequestEnvelope(b []byte, lease [32]byte, req *svcwire.Request, maxBody int) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, envVersion)
	b = append(b, lease[:]...)
	b, err := svcwire.AppendRequest(b, req, maxBody)
	if err != nil {
		return b[:start], err
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

// decodeRequestEnvelope decodes one request envelope (without its frame
// length). The request's body aliases b.
func decodeRequestEnvelope(b []byte, maxBody int) (lease [32]byte, req *svcwire.Request, err error) {
	if len(b) < 1+32 {
		return lease, nil, fmt.Errorf("%w: %d bytes", errEnvelope, len(b))
	}
	if b[0] != envVersion {
		return lease, nil, fmt.Errorf("%w: version %d", errEnvelope, b[0])
	}
	copy(lease[:], b[1:33])
	req, err = svcwire.DecodeRequest(b[33:], maxBody)
	return lease, req, err
}

// maxRequestEnvelope is the largest request envelope for maxBody.
func maxRequestEnvelope(maxBody int) int { return 1 + 32 + svcwire.MaxRequestSize(maxBody) }

// maxResponseEnvelope is the largest response envelope for maxBody.
func maxResponseEnvelope(maxBody int) int { return 1 + 1 + 4 + svcwire.MaxResponseSize(maxBody) }

// appendResponseEnvelope appends a framed OK envelope to b.
func appendResponseEnvelope(b []byte, load float64, resp *svcwire.Response, maxBody int) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, envVersion, outcomeOK)
	b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(load)))
	b, err := svcwire.AppendResponse(b, resp, maxBody)
	if err != nil {
		return b[:start], err
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

// appendErrorEnvelope appends a framed refused or failed envelope to b.
func appendErrorEnvelope(b []byte, outcome byte, load float64, msg string) []byte {
	if len(msg) > maxErrText {
		msg = msg[:maxErrText]
	}
	b = binary.BigEndian.AppendUint32(b, uint32(1+1+4+len(msg)))
	b = append(b, envVersion, outcome)
	b = binary.BigEndian.AppendUint32(b, math.Float32bits(float32(load)))
	return append(b, msg...)
}

// response is a decoded response envelope.
type response struct {
	outcome byte
	load    float64
	resp    *svcwire.Response
	errText string
}

// decodeResponseEnvelope decodes one response envelope (without its
// frame length). A load outside 0..1 is clamped; NaN is 1.
func decodeResponseEnvelope(b []byte, maxBody int) (response, error) {
	if len(b) < 6 {
		return response{}, fmt.Errorf("%w: %d bytes", errEnvelope, len(b))
	}
	if b[0] != envVersion {
		return response{}, fmt.Errorf("%w: version %d", errEnvelope, b[0])
	}
	load := float64(math.Float32frombits(binary.BigEndian.Uint32(b[2:6])))
	switch {
	case math.IsNaN(load) || load > 1:
		load = 1
	case load < 0:
		load = 0
	}
	r := response{outcome: b[1], load: load}
	switch r.outcome {
	case outcomeOK:
		resp, err := svcwire.DecodeResponse(b[6:], maxBody)
		if err != nil {
			return response{}, err
		}
		r.resp = resp
	case outcomeRefused, outcomeFailed:
		if len(b)-6 > maxErrText {
			return response{}, fmt.Errorf("%w: error text of %d bytes", errEnvelope, len(b)-6)
		}
		r.errText = string(b[6:])
	default:
		return response{}, fmt.Errorf("%w: outcome %d", errEnvelope, r.outcome)
	}
	return r, nil
}
