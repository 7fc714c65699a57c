// Command svc-primes is a CPU-bound service: GET /?n=N counts the primes
// below N (default 20000, at most 10,000,000) by trial division and
// answers the count. The work grows with N, which makes it the example
// for load-dependent routing and scaling.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/bourse-net/bourse/worker/svcwire"
)

func count(n int) int {
	c := 0
	for i := 2; i < n; i++ {
		prime := true
		for d := 2; d*d <= i; d++ {
			if i%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			c++
		}
	}
	return c
}

func main() {
	err := svcwire.Serve(func(r *svcwire.Request) *svcwire.Response {
		n := 20000
		if _, q, ok := strings.Cut(r.Target, "?"); ok {
			for kv := range strings.SplitSeq(q, "&") {
				if v, ok := strings.CutPrefix(kv, "n="); ok {
					x, err := strconv.Atoi(v)
					if err != nil || x < 0 || x > 10_000_000 {
						return &svcwire.Response{Status: 400, Body: []byte("n must be 0..10000000\n")}
					}
					n = x
				}
			}
		}
		return &svcwire.Response{Status: 200, Body: fmt.Appendf(nil, "%d primes below %d\n", count(n), n)}
	}, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
