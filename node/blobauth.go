package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/bourse-net/bourse/chain"
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
//   - a challenged job's result goes to the members of its committee, and
//     a wrong-result-challenged job's payload to its referees: the
//     credential is the job id, the member's public key and its signature
//     over (job id, hash, asking peer id); the key's address must sit on a
//     committee of the job's challenges (chain/settle.go).
//
// Every other request is answered "not found". Config.PublicBlobs serves
// everything this node publishes to every peer instead.

// blobFetchMsg is the signature type of a client's result-fetch credential.
const blobFetchMsg = "blob-fetch"

// blobCred is a decoded blob request credential: a job id, then for a
// result fetch the client's signature.
type blobCred struct {
	job    market.BidID
	member *wallet.PublicKey // a committee member's key, or nil
	sig    []byte            // empty or wallet.SigLen bytes
}

// parseBlobCred decodes job id (32 bytes) || [member key (32 bytes)] ||
// signature (0 or 64 bytes; 64 with a member key).
func parseBlobCred(b []byte) (blobCred, error) {
	var c blobCred
	n := len(c.job)
	switch len(b) {
	case n, n + wallet.SigLen:
	case n + len(wallet.PublicKey{}) + wallet.SigLen:
		var pk wallet.PublicKey
		copy(pk[:], b[n:])
		c.member = &pk
		b = append(b[:n:n], b[n+len(pk):]...)
	default:
		return c, fmt.Errorf("blob credential of %d bytes: want %d, %d or %d", len(b), n, n+wallet.SigLen, n+len(wallet.PublicKey{})+wallet.SigLen)
	}
	copy(c.job[:], b)
	if len(b) > len(c.job) {
		c.sig = bytes.Clone(b[len(c.job):])
	}
	return c, nil
}

// memberCredential is the credential this node sends, as a member of a
// challenge's committee, to fetch hash (the result, or a referee's
// payload) for job.
func (m *marketService) memberCredential(job market.BidID, hash [32]byte) []byte {
	sig := m.n.key.Sign(m.n.cfg.ChainID, blobFetchMsg, resultFetchPayload(job, hash, m.n.host.ID()))
	pk := m.n.key.Public()
	out := append(job[:len(job):len(job)], pk[:]...)
	return append(out, sig...)
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
	if err != nil {
		return false
	}
	if !ok {
		return a.authorizeModule(from, hash, c)
	}
	mt := &rec.Match
	me := m.n.key.Address()
	if c.member != nil {
		if !wallet.Verify(*c.member, m.n.cfg.ChainID, blobFetchMsg, resultFetchPayload(c.job, hash, from), c.sig) {
			return false
		}
		for _, ch := range rec.Challenges {
			if ch.Member(c.member.Address()) < 0 {
				continue
			}
			if mt.Offer.ProviderAddress() == me && rec.ResultHash == hash && hash != ([32]byte{}) && lieMode(m.n.cfg.Moniker) != "withhold" {
				return true // the result, to a committee member
			}
			if ch.Kind == chain.ChallengeWrong && mt.Bid.ClientAddress() == me &&
				(bytes.Equal(mt.Bid.Payload.SHA256, hash[:]) || bytes.Equal(mt.Bid.Payload.Manifest, hash[:])) {
				return true // the payload or manifest, to a referee
			}
		}
		return false
	}
	if mt.Bid.ClientAddress() == me && mt.Offer.PeerID == from.String() &&
		(bytes.Equal(mt.Bid.Payload.SHA256, hash[:]) || bytes.Equal(mt.Bid.Payload.Manifest, hash[:])) {
		return true // our payload or manifest, to the provider of the job
	}
	if lieMode(m.n.cfg.Moniker) == "withhold" && mt.Offer.ProviderAddress() == me {
		return false // test hook: a provider that withholds its results
	}
	return mt.Offer.ProviderAddress() == me && rec.ResultHash == hash && hash != ([32]byte{}) &&
		wallet.Verify(mt.Bid.Client, m.n.cfg.ChainID, blobFetchMsg, resultFetchPayload(c.job, hash, from), c.sig)
}

// authorizeModule: a service's module goes to the provider of one of its
// leases (the credential is the lease id; the asking peer must be the
// lease's offer's PeerID), when this node owns the service.
func (a *blobAuth) authorizeModule(from peer.ID, hash [32]byte, c blobCred) bool {
	m := (*marketService)(a)
	st := m.n.drv.State()
	l, ok, err := st.Lease(chain.LeaseID(c.job))
	if err != nil || !ok || l.Status != chain.LeaseActive || l.Offer.PeerID != from.String() {
		return false
	}
	v, ok, err := st.Service(l.Service)
	return err == nil && ok && v.OwnerAddress() == m.n.key.Address() && bytes.Equal(v.Spec.Payload.SHA256, hash[:])
}

// blobJobKey carries, in a context, the job a payload fetch is for;
// blobCredKey a referee's member credential for it.
type (
	blobJobKey  struct{}
	blobCredKey struct{}
)

// withRefereeCred marks ctx as a referee's re-execution of job: its
// payload fetch sends cred.
func withRefereeCred(ctx context.Context, job market.BidID, cred []byte) context.Context {
	return context.WithValue(withBlobJob(ctx, job), blobCredKey{}, cred)
}

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
	if cred, ok := ctx.Value(blobCredKey{}).([]byte); ok {
		return cred, nil
	}
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
