// Command svc-hello is a service: it answers every request with
// "$GREETING, <path>!" (GREETING defaults to "hello"). It serves framed
// requests on stdin (worker/svcwire.Serve); the provider keeps it running
// and the gateway routes HTTP requests to it.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/bourse-net/bourse/worker/svcwire"
)

func main() {
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello"
	}
	hdr := svcwire.Header{{"Content-Type", "text/plain; charset=utf-8"}}
	err := svcwire.Serve(func(r *svcwire.Request) *svcwire.Response {
		who := strings.TrimPrefix(r.Target, "/")
		if i := strings.IndexByte(who, '?'); i >= 0 {
			who = who[:i]
		}
		if who == "" {
			who = "world"
		}
		return &svcwire.Response{Status: 200, Header: hdr, Body: []byte(greeting + ", " + who + "!\n")}
	}, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
