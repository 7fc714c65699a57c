package svcwire_test

import (
	"bufio"
	"bytes"
	"fmt"

	"github.com/bourse-net/bourse/worker/svcwire"
)

// A service module's main is one call to Serve (here ServeIO over
// buffers): it reads framed requests and writes framed responses.
func ExampleServeIO() {
	var in, out bytes.Buffer
	msg, _ := svcwire.AppendRequest(nil, &svcwire.Request{Method: "GET", Target: "/world"}, 0)
	in.Write(svcwire.AppendFrameHeader(nil, len(msg)))
	in.Write(msg)

	hello := func(r *svcwire.Request) *svcwire.Response {
		return &svcwire.Response{Status: 200, Body: []byte("hello, " + r.Target[1:] + "!")}
	}
	if err := svcwire.ServeIO(&in, &out, hello, 0, false); err != nil {
		panic(err)
	}
	frame, _ := svcwire.ReadFrame(bufio.NewReader(&out), nil, 1<<20)
	resp, _ := svcwire.DecodeResponse(frame, 0)
	fmt.Println(resp.Status, string(resp.Body))
	// Output: 200 hello, world!
}
