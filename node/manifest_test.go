package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/p2p"
)

// Attack: a job's args and env travel in a manifest the client's node
// serves, named by hash in the bid. A client that serves a manifest not
// matching that hash, one larger than market.MaxManifestSize, or none at
// all (while serving its payload honestly) cannot make the provider run
// something else, hold a large blob, or miss the chain's deadline: the
// provider's fetch fails, it declares the payload unavailable, keeps its
// collateral, and the client gets its escrow back less the burned fee.
func TestManifestAttackLyingOversizedOrWithheldEndsUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	payload := example(t, "hello")
	tn := providerNetWith(t, func(g *chain.Genesis) { g.Params.ResultGraceMs = 6000 })
	ctx := context.Background()
	c := tn.client(0)
	client := tn.nodes[0]
	lies := map[[32]byte]string{}
	specs := map[string]api.JobSpec{}
	for _, lie := range []string{"mismatch", "oversized", "withheld"} {
		spec := helloSpec()
		spec.Name, spec.Args = lie, []string{lie}
		spec.MaxPrice = 3_000_000 // three open bids within the client's balance
		spec.Timeout = api.Duration{Duration: 20 * time.Second}
		h, err := manifestOf(spec).Hash()
		must(t, err)
		lies[h], specs[lie] = lie, spec
	}
	// The client's node serves blobs itself: its payload honestly, each
	// manifest with its lie.
	h := client.host
	h.Unhandle(p2p.ProtoBlob)
	serve := func(ctx context.Context, _ peer.ID, req []byte, send func([]byte) error) error {
		if len(req) < 32 {
			return errors.New("short request")
		}
		hash := [32]byte(req[:32])
		var body []byte
		switch lies[hash] {
		case "withheld":
			return p2p.ErrBlobNotFound
		case "oversized":
			if err := send(binary.BigEndian.AppendUint64(nil, market.MaxManifestSize+1)); err != nil {
				return err
			}
			body = make([]byte, market.MaxManifestSize+1)
		case "mismatch":
			other, err := (&market.Manifest{Args: []string{"rm", "-rf", "/"}}).Encode()
			if err != nil {
				return err
			}
			body = other
			if err := send(binary.BigEndian.AppendUint64(nil, uint64(len(body)))); err != nil {
				return err
			}
		default:
			rc, _, err := client.market.payloads.Open(hash)
			if err != nil {
				return p2p.ErrBlobNotFound
			}
			body, err = io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			if err := send(binary.BigEndian.AppendUint64(nil, uint64(len(body)))); err != nil {
				return err
			}
		}
		for len(body) > 0 {
			n := min(len(body), 32<<10)
			if err := send(body[:n]); err != nil {
				return err
			}
			body = body[n:]
		}
		return nil
	}
	must(t, h.HandleStream(p2p.ProtoBlob, 32+p2p.MaxBlobCredential, serve))
	jobs := map[string]string{}
	for lie, spec := range specs {
		job, err := c.SubmitJob(ctx, spec, bytes.NewReader(payload))
		must(t, err)
		jobs[lie] = job.ID
	}
	for lie, id := range jobs {
		t.Run(lie, func(t *testing.T) {
			done := waitJob(t, c, id, 90*time.Second)
			fee := done.Escrowed * chain.DefaultUnavailableFeeBps / 10_000
			t.Logf("escrow %d, fee %d, provider said: %s", done.Escrowed, fee, done.Error)
			if done.State != api.StatePayloadUnavailable || done.Slashed != 0 || done.Refunded != done.Escrowed-fee {
				t.Fatalf("job %s: refunded %d of %d (fee %d), slashed %d: %s", done.State, done.Refunded, done.Escrowed, fee, done.Slashed, done.Error)
			}
			acc, err := c.Account(ctx, done.Provider)
			must(t, err)
			if acc.Collateral == 0 {
				t.Fatalf("provider %s lost its collateral", done.Provider)
			}
		})
	}
	// Nothing of the lies was kept by a provider.
	for _, n := range tn.nodes[1:] {
		for h := range lies {
			if n.market.foreign.Has(h) || n.market.payloads.Has(h) {
				t.Errorf("provider %s stored the manifest %x", n.Address(), h[:6])
			}
		}
		n.market.mu.Lock()
		left := len(n.market.manifests)
		n.market.mu.Unlock()
		if left != 0 {
			t.Errorf("provider %s still holds %d fetched manifests", n.Address(), left)
		}
	}
}
