package svcwire

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// Handler answers one request inside a service module.
type Handler func(*Request) *Response

// ServeEnv names the environment variable that selects the one-shot
// model: set to "oneshot", Serve answers the single request on stdin and
// returns. Otherwise (the default, and what the provider runs) it serves
// requests in a loop.
const ServeEnv = "BOURSE_SVC_MODE"

// Serve is the request loop of a service module (GOOS=wasip1): it reads
// framed requests on stdin and writes one framed response to stdout for
// each, in order, until stdin ends. maxBody bounds request and response
// bodies (0: DefaultMaxBody). A handler that returns nil answers 500; one
// that panics ends the module, and the provider replaces the instance.
// Logs belong on stderr: stdout carries the frames.
func Serve(h Handler, maxBody int) error {
	return ServeIO(os.Stdin, os.Stdout, h, maxBody, os.Getenv(ServeEnv) == "oneshot")
}

// ServeIO is Serve over any streams; oneshot answers one request.
func ServeIO(in io.Reader, out io.Writer, h Handler, maxBody int, oneshot bool) error {
	br := bufio.NewReaderSize(in, 64<<10)
	var buf, resp []byte
	for {
		msg, err := ReadFrame(br, buf, MaxRequestSize(maxBody))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("serve: read request: %w", err)
		}
		buf = msg
		req, err := DecodeRequest(msg, maxBody)
		var r *Response
		if err != nil {
			r = &Response{Status: 400, Body: []byte(err.Error() + "\n")}
		} else if r = h(req); r == nil {
			r = &Response{Status: 500, Body: []byte("handler returned no response\n")}
		}
		resp = append(resp[:0], 0, 0, 0, 0)
		resp, err = AppendResponse(resp, r, maxBody)
		if err != nil {
			resp = resp[:4]
			resp, _ = AppendResponse(resp, &Response{Status: 500, Body: []byte(err.Error() + "\n")}, maxBody)
		}
		AppendFrameHeader(resp[:0], len(resp)-4)
		// One write per response: the provider reads it whole.
		if _, err := out.Write(resp); err != nil {
			return fmt.Errorf("serve: write response: %w", err)
		}
		if oneshot {
			return nil
		}
	}
}
