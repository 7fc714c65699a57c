package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/lifecycle"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The node's part in settlement (chain/settle.go): the client challenges
// a result, a committee member fetches or re-executes one.

// challengeDeposit is the most a challenge of job id can cost now: the
// deposit with a full committee (the chain draws at most that many).
func (m *marketService) challengeDeposit(id market.BidID, kind chain.ChallengeKind) (uint64, chain.Match, error) {
	if m.n.drv == nil {
		return 0, chain.Match{}, errors.New("this node follows no chain")
	}
	st := m.n.drv.State()
	rec, ok, err := st.Match(id)
	if err != nil {
		return 0, rec, err
	}
	if !ok {
		return 0, rec, fmt.Errorf("job %s has no match on chain", id)
	}
	p := st.Params()
	return chain.ChallengeDeposit(p, &rec, kind, int(min(p.CommitteeSize, chain.MaxCommitteeSize))), rec, nil
}

// sendChallenge submits this node's challenge of job id's held result and
// waits for it to commit, returning the chain's refusal if any.
func (m *marketService) sendChallenge(id market.BidID, kind chain.ChallengeKind) error {
	deposit, rec, err := m.challengeDeposit(id, kind)
	if err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	if rec.Status != chain.MatchHeld {
		return fmt.Errorf("challenge: the job's match is %s: only a held result can be challenged", rec.Status)
	}
	_, done, err := m.n.txs.submit(m.ctx, func(tx *chain.Tx) {
		tx.Challenge = &chain.ChallengeTx{JobID: id, Kind: kind, MaxDeposit: deposit}
	})
	if err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	select {
	case o := <-done:
		if o.res.Code != 0 {
			return fmt.Errorf("challenge refused by the chain: %s", o.res.Log)
		}
		return nil
	case <-time.After(2 * time.Minute):
		return errors.New("challenge: not committed within two minutes")
	case <-m.ctx.Done():
		return m.ctx.Err()
	}
}

// fetchAttest fetches a challenged result from its provider as a
// committee member: at most its declared size (or the bid's cap), kept
// only if it hashes to the committed hash.
func (m *marketService) fetchAttest(a lifecycle.FetchAttest) error {
	if rc, _, err := m.results.Open(a.Hash); err == nil {
		rc.Close() // this node produced it (it cannot sit on its own committee, but a restart may have it)
		return nil
	}
	pid, err := peer.Decode(a.Peer)
	if err != nil {
		return fmt.Errorf("provider peer: %w", err)
	}
	limit := int64(a.Size)
	if rec, ok, err := m.n.drv.State().Match(a.ID); err == nil && ok {
		capped := resultCap(rec.Match.Bid.Resources.DiskMiB)
		if limit <= 0 || limit > capped {
			limit = capped
		}
	}
	if limit <= 0 {
		limit = maxResultBytes
	}
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	got, _, err := m.payloads.Write(ctx, func(w io.Writer) error {
		_, err := m.n.host.FetchBlobWith(ctx, pid, a.Hash, m.memberCredential(a.ID, a.Hash), limit, w)
		return err
	})
	if err != nil {
		return err
	}
	if got != a.Hash {
		m.payloads.Delete(got)
		return errors.New("the provider served bytes that do not hash to its committed result")
	}
	return nil
}

// reexecute runs a challenged WASM job again as a referee, exactly as its
// bid says (workerJob: the module, args, env, limits, the seed from the
// job id, the fake clock), fetching the payload from the client with a
// referee's credential, and returns the hash of the result it got.
func (m *marketService) reexecute(mt market.Match) ([32]byte, error) {
	if m.runtime == nil {
		return [32]byte{}, errors.New("this node runs no jobs: it cannot referee")
	}
	if mt.Bid.Executor != market.ExecWASM {
		return [32]byte{}, fmt.Errorf("a %s job is not deterministic", mt.Bid.Executor)
	}
	id := mt.Bid.ID()
	ctx, cancel := context.WithTimeout(m.ctx, time.Duration(mt.Bid.TimeoutMs)*time.Millisecond+time.Minute)
	defer cancel()
	var man *market.Manifest
	if h, named := mt.Bid.Payload.ManifestHash(); named {
		var err error
		man, err = m.fetchManifest(withRefereeCred(ctx, id, m.memberCredential(id, h)), h, mt.Bid.Payload.Peer)
		if err != nil {
			return [32]byte{}, err
		}
	}
	job := workerJob(&mt.Bid, man)
	job.Limits.Prep = time.Duration(m.n.drv.State().Params().ResultGraceMs/2) * time.Millisecond
	cred := m.memberCredential(id, job.PayloadHash)
	res, err := m.runtime.Run(withRefereeCred(ctx, id, cred), job)
	if err != nil && res == nil {
		return [32]byte{}, err
	}
	if res == nil || res.Hash == ([32]byte{}) {
		return [32]byte{}, errors.New("the re-execution produced no result")
	}
	return res.Hash, nil
}

// challengeJob is POST /v1/jobs/{id}/challenge.
func (m *marketService) challengeJob(_ context.Context, id, kind string) (api.Challenge, error) {
	j, ok := m.clientJob(id)
	if !ok || j.Bid == nil {
		return api.Challenge{}, fmt.Errorf("%w: no job %s on this node (only the job's client may challenge it)", api.ErrNotFound, id)
	}
	var k chain.ChallengeKind
	switch kind {
	case "unavailable":
		k = chain.ChallengeUnavailable
	case "wrong":
		k = chain.ChallengeWrong
	default:
		return api.Challenge{}, api.BadRequest("kind %q: want unavailable or wrong", kind)
	}
	if k == chain.ChallengeWrong && j.Bid.Executor != market.ExecWASM {
		return api.Challenge{}, api.BadRequest("job %s runs on %s: only WASM results can be re-executed by referees", id, j.Bid.Executor)
	}
	deposit, rec, err := m.challengeDeposit(j.Bid.ID(), k)
	if err != nil {
		return api.Challenge{}, err
	}
	if rec.Status != chain.MatchHeld {
		return api.Challenge{}, fmt.Errorf("%w: job %s is %s on chain: only a held result can be challenged (the node acks a result as soon as it fetched and checked it; set hold_ack = true in config.toml to keep the window open for 'bourse job verify --challenge')", api.ErrConflict, id, rec.Status)
	}
	out := api.Challenge{ID: id, Kind: kind, Deposit: deposit, Status: "committed"}
	if err := m.sendChallenge(j.Bid.ID(), k); err != nil {
		out.Status, out.Error = "failed", err.Error()
	}
	return out, nil
}
