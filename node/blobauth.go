package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
	"github.com/bourse-net/bourse/worker"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Who may fetch what from this node's blob server (p2p.BlobAuthorizer),
// decided from the match on chain for the job the request names:
//
//   - a payload (or job manifest) this node's client published goes to the
//     provider its job was matched to: the request's credential is the job
//     id, the match's bid must be this node's with that payload (manifest)
//     hash, and the asking peer must be the PeerID of the matched offer
//     (which the provider signed);
//   - a result this node produced as the provider goes to the job's
//     client: the credential is the job id and the client's wallet
//     signature over (job id, result hash, asking peer id), checked with
//     the bid's client key; the match must name this node as provider and
//     the hash as its result. Binding the peer id makes a credential
//     useless to any other peer.
//
// Every other request is answered "not found". Config.PublicBlobs serves
// everything this node publishes to every peer instead.

// blobFetchMsg is the signature type of a client's result-fetch credential.
const blobFetchMsg = "blob-fetch"

// blobCred is a decoded blob request credential: a job id, then for a
// result fetch the client's signature.
type blobCred struct {
	job market.BidID
	sig []byte // empty or wallet.SigLen bytes
}

// parseBlobCred decodes job id (32 bytes) || signature (0 or 64 bytes).
func parseBlobCred(b []byte) (blobCred, error) {
	var c blobCred
	switch len(b) {
	case len(c.job), len(c.job) + wallet.SigLen:
	default:
		return c, fmt.Errorf("blob credential of %d bytes: want %d or %d", len(b), len(c.job), len(c.job)+wallet.SigLen)
	}
	copy(c.job[:], b)
	if len(b) > len(c.job) {
		c.sig = bytes.Clone(b[len(c.job):])
	}
	return c, nil
}

// resultFetchPayload is what a client signs to fetch a job's result as peer.
func resultFetchPayload(job market.BidID, hash [32]byte, as peer.ID) []byte {
	out := append(job[:len(job):len(job)], hash[:]...)
	return append(out, []byte(as)...)
}

// resultCredential is the credential this node's client sends to fetch a
// job's result.
func (m *marketService) resultCredential(job market.BidID, hash [32]byte) []byte {
	sig := m.n.key.Sign(m.n.cfg.ChainID, blobFetchMsg, resultFetchPayload(job, hash, m.n.host.ID()))
	return append(job[:len(job):len(job)], sig...)
}

// blobAuth implements p2p.BlobAuthorizer for the market service.
type blobAuth marketService

func (a *blobAuth) AuthorizeBlob(_ context.Context, from peer.ID, hash [32]byte, cred []byte) bool {
	m := (*marketService)(a)
	c, err := parseBlobCred(cred)
	if err != nil {
		return false
	}
	rec, ok, err := m.n.drv.State().Match(c.job)
	if err != nil || !ok {
		return false
	}
	mt := &rec.Match
	me := m.n.key.Address()
	if mt.Bid.ClientAddress() == me && mt.Offer.PeerID == from.String() &&
		(bytes.Equal(mt.Bid.Payload.SHA256, hash[:]) || bytes.Equal(mt.Bid.Payload.Manifest, hash[:])) {
		return true // our payload or manifest, to the provider of the job
	}
	return mt.Offer.ProviderAddress() == me && rec.ResultHash == hash && hash != ([32]byte{}) &&
		wallet.Verify(mt.Bid.Client, m.n.cfg.ChainID, blobFetchMsg, resultFetchPayload(c.job, hash, from), c.sig)
}

// blobJobKey carries, in a context, the job a payload fetch is for.
type blobJobKey struct{}

// withBlobJob marks ctx as fetching job's payload: payloadFetcher sends
// the job id as its credential.
func withBlobJob(ctx context.Context, job market.BidID) context.Context {
	return context.WithValue(ctx, blobJobKey{}, job)
}

// blobOwnerKey carries, in a context, whom a fetched payload is for.
type blobOwnerKey struct{}

// withBlobOwner marks ctx as fetching a payload for owner (the job's
// client): the foreign store counts it against that client's quota.
func withBlobOwner(ctx context.Context, owner string) context.Context {
	return context.WithValue(ctx, blobOwnerKey{}, owner)
}

// blobOwner is the owner withBlobOwner set, or "".
func blobOwner(ctx context.Context) string {
	o, _ := ctx.Value(blobOwnerKey{}).(string)
	return o
}

// payloadCredential is the credential for a payload fetch under ctx.
func payloadCredential(ctx context.Context) ([]byte, error) {
	job, ok := ctx.Value(blobJobKey{}).(market.BidID)
	if !ok {
		return nil, errors.New("payload fetch without a job: the client's node serves payloads only to the matched provider")
	}
	return job[:], nil
}

// resultOverhead is what a result holds beyond the output directory the
// bid's disk bounds: stdout and stderr (each at most worker.DefaultLogCap)
// and the tar framing of at most worker's default 10000 output entries
// plus exit_code, stdout and stderr (a header and up to a block of padding
// each, and the end-of-archive blocks).
const resultOverhead = 2*worker.DefaultLogCap + (10000+3)*1024 + 1024

// resultLimit returns a client job's id and the largest result it may
// have: the disk its bid bought plus resultOverhead, read from the match
// on chain, and never above maxResultBytes.
func (m *marketService) resultLimit(job string) (market.BidID, int64, error) {
	id, err := market.ParseBidID(job)
	if err != nil {
		return id, 0, fmt.Errorf("result limit: %w", err)
	}
	rec, ok, err := m.n.drv.State().Match(id)
	if err != nil || !ok {
		return id, 0, fmt.Errorf("result limit: no match on chain for job %s (%v)", job, err)
	}
	return id, resultCap(rec.Match.Bid.Resources.DiskMiB), nil
}

// resultCap is the largest result of a bid that bought disk MiB.
func resultCap(disk uint64) int64 {
	if disk > uint64(maxResultBytes)>>20 {
		return maxResultBytes
	}
	return min(int64(disk)<<20+resultOverhead, maxResultBytes)
}
