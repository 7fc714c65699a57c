package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bourse-net/bourse/internal/loadtest"
	"github.com/bourse-net/bourse/node/api"
)

// BenchmarkHelloJob measures, against a 4-node testnet, the latency from
// submit to paid of the hello job (p50, p99; the on-chain match and
// settlement included) and the sustained rate with jobs submitted from all
// four nodes at once (4 providers). Run:
//
//	go test -run '^$' -bench HelloJob -benchtime 200x ./e2e
func BenchmarkHelloJob(b *testing.B) {
	needBinary(b)
	n := up(b)
	spec, err := os.ReadFile(filepath.Join(helloDir, "job.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	js, err := api.ParseJobSpec(spec)
	if err != nil {
		b.Fatal(err)
	}
	payload, err := os.ReadFile(filepath.Join(helloDir, "hello.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	js.Payload = "hello.wasm"
	submit := func(ctx context.Context, c *api.Client) (api.Job, error) { return c.SubmitJobBytes(ctx, js, payload) }
	// latency: one job at a time, submit to paid (the on-chain match,
	// the run, the Result transaction and the verified fetch included).
	// throughput: 32 jobs at once, spread over the four nodes; many
	// clients polling every 5 ms would measure the polling.
	b.Run("latency", func(b *testing.B) { loadtest.Jobs(b, n.cl, 1, 5*time.Millisecond, submit) })
	b.Run("throughput", func(b *testing.B) { loadtest.Jobs(b, n.cl, 32, 25*time.Millisecond, submit) })
}
