package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/p2p"
)

// Payload and result hashes are public (in the gossiped bid, on chain),
// yet only the matched provider may fetch a job's payload from the
// client's node and only the client may fetch its result from the
// provider: a third node, by hash alone or replaying the others'
// credentials, is told "not found". The provider keeps the client's
// payload apart from its own data.
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
	done := waitJob(t, c, job.ID, 5*time.Minute)
	if done.State != "paid" || done.ResultSize == 0 {
		t.Fatalf("job ended %s (%s), result %d bytes: the client must get its result", done.State, done.Error, done.ResultSize)
	}
	var prov, stranger *Node
	for i := 1; i < 4; i++ {
		if tn.nodes[i].Address().String() == done.Provider {
			prov = tn.nodes[i]
		} else {
			stranger = tn.nodes[i]
		}
	}
	if prov == nil || stranger == nil {
		t.Fatalf("provider %s is not one of the nodes", done.Provider)
	}
	client := tn.nodes[0]
	jobID, err := market.ParseBidID(done.ID)
	must(t, err)
	payloadHash := sha256.Sum256(payload)
	resultHash, err := parseHash(done.ResultHash)
	must(t, err)

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
		{"client fetches the result with its signature", client, prov, resultHash, client.market.resultCredential(jobID, resultHash), nil},
		{"stranger asks the client for the payload by hash", stranger, client, payloadHash, nil, p2p.ErrBlobNotFound},
		{"stranger names the job", stranger, client, payloadHash, jobID[:], p2p.ErrBlobNotFound},
		{"stranger asks the provider for the result by hash", stranger, prov, resultHash, nil, p2p.ErrBlobNotFound},
		{"stranger replays the client's credential", stranger, prov, resultHash, client.market.resultCredential(jobID, resultHash), p2p.ErrBlobNotFound},
		{"stranger signs for the job with its own key", stranger, prov, resultHash, stranger.market.resultCredential(jobID, resultHash), p2p.ErrBlobNotFound},
		{"provider asks the client for the result with the job id", prov, client, resultHash, jobID[:], p2p.ErrBlobNotFound},
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
