package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/p2p"
)

// Payload, manifest and result hashes are public (in the gossiped bid,
// on chain), yet for a private job (the default) only the matched
// provider may fetch its payload and manifest from the client's node and
// only the client its result from the provider: a third node, by the
// hashes in the bid it saw or replaying the others' credentials, is told
// "not found". A job submitted with visibility public is served to that
// same stranger. The provider keeps the client's payload apart from its
// own data, counted against the client's quota, and the result too.
func TestStrangerCannotFetchJobPayloadOrResult(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes")
	}
	payload := hello(t)
	tn := providerNet(t)
	ctx := context.Background()
	c := tn.client(0)
	job, err := c.SubmitJob(ctx, helloSpec(), bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	// A public job: the same module with a custom section appended (id 0,
	// 6 bytes: a 4-byte name and one byte), so no blob is shared with the
	// private one.
	pubPayload := append(bytes.Clone(payload), 0, 6, 4, 'p', 'u', 'b', 'x', 1)
	pubSpec := helloSpec()
	pubSpec.Name, pubSpec.Args = "public", []string{"everyone"}
	pubSpec.MaxPrice, pubSpec.Visibility = 4_000_000, "public"
	pubJob, err := c.SubmitJob(ctx, pubSpec, bytes.NewReader(pubPayload))
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, c, job.ID, 5*time.Minute)
	if done.State != "paid" || done.ResultSize == 0 {
		t.Fatalf("job ended %s (%s), result %d bytes: the client must get its result", done.State, done.Error, done.ResultSize)
	}
	pubDone := waitJob(t, c, pubJob.ID, 5*time.Minute)
	if pubDone.State != "paid" {
		logs, _ := c.JobLogs(ctx, pubJob.ID)
		t.Fatalf("public job ended %s (%s): %+v", pubDone.State, pubDone.Error, logs)
	}
	nodeOf := func(addr string) (prov, stranger *Node) {
		for i := 1; i < 4; i++ {
			if tn.nodes[i].Address().String() == addr {
				prov = tn.nodes[i]
			} else if stranger == nil {
				stranger = tn.nodes[i]
			}
		}
		if prov == nil || stranger == nil {
			t.Fatalf("provider %s is not one of the nodes", addr)
		}
		return prov, stranger
	}
	prov, stranger := nodeOf(done.Provider)
	pubProv, pubStranger := nodeOf(pubDone.Provider)
	client := tn.nodes[0]
	// What a stranger knows of a job: the bid it saw, as the chain holds it
	// once the stranger's node has the block with the result (it may be
	// a block or two behind the client's).
	bidSeen := func(by *Node, id string) (market.BidID, [32]byte, [32]byte, [32]byte) {
		jobID, err := market.ParseBidID(id)
		must(t, err)
		var rec chain.Match
		for deadline := time.Now().Add(30 * time.Second); ; {
			r, ok, err := by.drv.State().Match(jobID)
			if err == nil && ok && r.ResultHash != ([32]byte{}) {
				rec = r
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the stranger knows no match with a result for job %s: %v (known %v)", id, err, ok)
			}
			time.Sleep(20 * time.Millisecond)
		}
		man, ok := rec.Match.Bid.Payload.ManifestHash()
		if !ok {
			t.Fatalf("job %s names no manifest", id)
		}
		return jobID, [32]byte(rec.Match.Bid.Payload.SHA256), man, rec.ResultHash
	}
	jobID, payloadHash, manifestHash, resultHash := bidSeen(stranger, done.ID)
	if payloadHash != sha256.Sum256(payload) {
		t.Fatal("the bid names another payload")
	}
	_, pubPayloadHash, pubManifestHash, pubResultHash := bidSeen(pubStranger, pubDone.ID)

	fetch := func(from *Node, to *Node, hash [32]byte, cred []byte) error {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := from.host.FetchBlobWith(ctx, to.host.ID(), hash, cred, 64<<20, io.Discard)
		return err
	}
	tests := []struct {
		name     string
		from, to *Node
		hash     [32]byte
		cred     []byte
		wantErr  error
	}{
		{"provider fetches the payload with the job id", prov, client, payloadHash, jobID[:], nil},
		{"provider fetches the manifest with the job id", prov, client, manifestHash, jobID[:], nil},
		{"client fetches the result with its signature", client, prov, resultHash, client.market.resultCredential(jobID, resultHash), nil},
		{"stranger asks the client for the payload by hash", stranger, client, payloadHash, nil, p2p.ErrBlobNotFound},
		{"stranger asks the client for the manifest by hash", stranger, client, manifestHash, nil, p2p.ErrBlobNotFound},
		{"stranger names the job", stranger, client, payloadHash, jobID[:], p2p.ErrBlobNotFound},
		{"stranger names the job for the manifest", stranger, client, manifestHash, jobID[:], p2p.ErrBlobNotFound},
		{"stranger asks the provider for the result by hash", stranger, prov, resultHash, nil, p2p.ErrBlobNotFound},
		{"stranger replays the client's credential", stranger, prov, resultHash, client.market.resultCredential(jobID, resultHash), p2p.ErrBlobNotFound},
		{"stranger signs for the job with its own key", stranger, prov, resultHash, stranger.market.resultCredential(jobID, resultHash), p2p.ErrBlobNotFound},
		{"provider asks the client for the result with the job id", prov, client, resultHash, jobID[:], p2p.ErrBlobNotFound},
		// A committee member's credential opens only a challenged job's
		// blobs, to a member of its committee: this job has no challenge.
		{"stranger claims a committee seat for the result", stranger, prov, resultHash, stranger.market.memberCredential(jobID), p2p.ErrBlobNotFound},
		{"stranger claims a referee seat for the payload", stranger, client, payloadHash, stranger.market.memberCredential(jobID), p2p.ErrBlobNotFound},
		{"stranger fetches a public job's payload by hash", pubStranger, client, pubPayloadHash, nil, nil},
		{"stranger fetches a public job's manifest by hash", pubStranger, client, pubManifestHash, nil, nil},
		{"stranger fetches a public job's result by hash", pubStranger, pubProv, pubResultHash, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := fetch(tc.from, tc.to, tc.hash, tc.cred); !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	// The client's payload sits in the provider's foreign quota, not
	// among the provider's own payloads and results.
	if prov.market.payloads.Has(payloadHash) || !prov.market.foreign.Has(payloadHash) {
		t.Errorf("provider stores the client's payload in its own store (%v) / foreign store (%v)",
			prov.market.payloads.Has(payloadHash), prov.market.foreign.Has(payloadHash))
	}
	// Both count against the client's quota there, and so does the result.
	owner := client.Address().String()
	if prov != pubProv {
		if got := prov.market.foreign.OwnerUsage(owner); got != int64(len(payload)) {
			t.Errorf("the client's payload counts %d bytes against its quota, want %d", got, len(payload))
		}
		if got := prov.market.results.OwnerUsage(owner); got != done.ResultSize {
			t.Errorf("the client's result counts %d bytes against its quota, want %d", got, done.ResultSize)
		}
	}
}

// A client accepts a result up to the disk its bid bought plus the logs
// and tar framing, never more.
func TestResultLimitFollowsTheDiskTheBidBought(t *testing.T) {
	for _, tc := range []struct {
		disk uint64
		want int64
	}{
		{0, resultOverhead},
		{16, 16<<20 + resultOverhead},
		{1 << 30, maxResultBytes},
	} {
		if got := resultCap(tc.disk); got != tc.want {
			t.Errorf("disk %d MiB: limit %d, want %d", tc.disk, got, tc.want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A blob credential decodes to a job id, a committee member's key or
// none, and an empty or full-length signature (full with a key) that give
// back its bytes, or is refused.
func FuzzParseBlobCred(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Add(make([]byte, 96))
	f.Add(make([]byte, 95))
	f.Add(make([]byte, 128))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseBlobCred(b)
		if err != nil {
			return
		}
		back := c.job[:]
		if c.member != nil {
			if len(c.sig) != 64 {
				t.Fatalf("%x: a member key without a full signature", b)
			}
			back = append(back, c.member[:]...)
		}
		if len(c.sig) != 0 && len(c.sig) != 64 || !bytes.Equal(append(back, c.sig...), b) {
			t.Fatalf("%x decoded to %x + %x", b, c.job, c.sig)
		}
	})
}
