package node

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/p2p"
)

// Attack: a client withholds its payload from the provider it was matched
// to — silent (it takes the request and never answers) or drip-feeding
// (one byte every 200 ms, so no frame deadline ever fires) — to keep the
// provider's fetch alive past the chain's deadline: the provider would be
// slashed and the client refunded in full, for free. Now the fetch ends
// half the grace period after the match, the provider declares the
// payload unavailable on chain, keeps its collateral, and the client gets
// its escrow back less the burned fee.
func TestWithholdingClientCannotGetProviderSlashed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	for _, tc := range []struct {
		name  string
		serve p2p.StreamHandlerFunc
	}{
		{"silent", func(ctx context.Context, _ peer.ID, _ []byte, _ func([]byte) error) error {
			<-ctx.Done()
			return ctx.Err()
		}},
		{"drip-feeding", func(ctx context.Context, _ peer.ID, _ []byte, send func([]byte) error) error {
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
				if err := send([]byte{0}); err != nil {
					return err
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := example(t, "hello")
			tn := providerNetWith(t, func(g *chain.Genesis) { g.Params.ResultGraceMs = 6000 })
			ctx := context.Background()
			c := tn.client(0)
			// The client's node serves its blobs with the withholding handler.
			h := tn.nodes[0].host
			h.Unhandle(p2p.ProtoBlob)
			if err := h.HandleStream(p2p.ProtoBlob, 32+p2p.MaxBlobCredential, tc.serve); err != nil {
				t.Fatal(err)
			}
			spec := helloSpec()
			spec.Timeout = api.Duration{Duration: 20 * time.Second}
			job, err := c.SubmitJob(ctx, spec, bytes.NewReader(payload))
			if err != nil {
				t.Fatal(err)
			}
			j := waitState(t, c, job.ID, api.StateBidding, 30*time.Second)
			if j.State != api.StateMatched {
				t.Fatalf("job is %s, want matched", j.State)
			}
			before, err := c.Account(ctx, j.Provider)
			if err != nil {
				t.Fatal(err)
			}
			done := waitJob(t, c, job.ID, 60*time.Second)
			fee := done.Escrowed * chain.DefaultUnavailableFeeBps / 10_000
			t.Logf("escrow %d, fee %d, provider said: %s", done.Escrowed, fee, done.Error)
			if done.State != api.StatePayloadUnavailable || done.Slashed != 0 || done.Refunded != done.Escrowed-fee {
				t.Fatalf("job %s: refunded %d of %d (fee %d), slashed %d: %s", done.State, done.Refunded, done.Escrowed, fee, done.Slashed, done.Error)
			}
			after, err := c.Account(ctx, j.Provider)
			if err != nil {
				t.Fatal(err)
			}
			if after.Collateral != before.Collateral {
				t.Fatalf("provider collateral %d -> %d", before.Collateral, after.Collateral)
			}
		})
	}
}
