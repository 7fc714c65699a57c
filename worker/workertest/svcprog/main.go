// Command svcprog is the service module the service tests run (built for
// wasip1/wasm). The request path picks a behaviour:
//
//	/hello        200 "hello"
//	/echo         200 with the request body, and X-Method: the method
//	/sleep?ms=N   sleeps N ms (real clock), then 200 "slept"
//	/loop         spins forever
//	/alloc        allocates memory without bound
//	/crash        panics (the module ends)
//	/exit         exits 0 (the module ends)
//	/garbage      writes garbage to stdout instead of a response frame
//	/big          answers a body one byte over the default bound
//	/pid          200 with a number unique to this instance
//
// With $DELAY_MS set, every request first sleeps that long (a slow
// replica).
package main

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bourse-net/bourse/worker/svcwire"
)

var sink [][]byte

func main() {
	id := strconv.FormatInt(time.Now().UnixNano(), 10)
	delay, _ := strconv.Atoi(os.Getenv("DELAY_MS"))
	err := svcwire.Serve(func(r *svcwire.Request) *svcwire.Response {
		time.Sleep(time.Duration(delay) * time.Millisecond)
		path, query, _ := strings.Cut(r.Target, "?")
		switch path {
		case "/hello":
			return &svcwire.Response{Status: 200, Body: []byte("hello")}
		case "/echo":
			return &svcwire.Response{Status: 200, Header: svcwire.Header{{"X-Method", r.Method}}, Body: r.Body}
		case "/sleep":
			ms, _ := strconv.Atoi(strings.TrimPrefix(query, "ms="))
			time.Sleep(time.Duration(ms) * time.Millisecond)
			return &svcwire.Response{Status: 200, Body: []byte("slept")}
		case "/loop":
			for {
			}
		case "/alloc":
			for {
				sink = append(sink, make([]byte, 1<<20))
			}
		case "/crash":
			panic("crash requested")
		case "/exit":
			os.Exit(0)
		case "/garbage":
			os.Stdout.Write([]byte("\x00\x00\x00\x05garbagegarbage"))
			return &svcwire.Response{Status: 200}
		case "/big":
			return &svcwire.Response{Status: 200, Body: make([]byte, svcwire.DefaultMaxBody+1)}
		case "/pid":
			return &svcwire.Response{Status: 200, Body: []byte(id)}
		}
		return &svcwire.Response{Status: 404, Body: []byte("no such path\n")}
	}, 0)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
