package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/wasm"
)

// verifier re-runs a client's settled WASM jobs on the client's own node,
// one at a time, in a runtime of its own (a client need not be a
// provider), so the client can check a provider's result without trusting
// it: a WASM job is deterministic, and an honest provider's result hash
// equals the re-run's.
type verifier struct {
	mu     sync.Mutex // one verification at a time; guards the rest
	rt     *worker.Runtime
	n      uint64 // verifications so far: each run gets a fresh runtime job id
	closed bool
}

func (v *verifier) runtime(m *marketService) (*worker.Runtime, error) {
	if v.closed || m.ctx.Err() != nil {
		return nil, fmt.Errorf("%w: the node is shutting down", api.ErrUnavailable)
	}
	if v.rt != nil {
		return v.rt, nil
	}
	dir := filepath.Join(m.n.home, "verify")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cache := m.n.cfg.Provider.WasmCache // compiled modules are shared with the provider side
	if cache != "" && !filepath.IsAbs(cache) {
		cache = filepath.Join(m.n.home, cache)
	}
	x, err := wasm.New(context.Background(), wasm.Config{CacheDir: cache, Logger: m.n.log})
	if err != nil {
		return nil, fmt.Errorf("wasm executor: %w", err)
	}
	store, err := worker.OpenStore(filepath.Join(dir, "results"), worker.StoreConfig{MaxCount: 8, Logger: m.n.log})
	if err != nil {
		_ = x.Close(context.Background())
		return nil, err
	}
	rt, err := worker.NewRuntime(worker.Config{
		// The bid's own limits bound the run; the runtime sells nothing.
		Capacity: worker.Resources{CPU: 1 << 40, MemoryMiB: 1 << 40, DiskMiB: 1 << 40, GPUs: 1 << 20},
		WorkDir:  filepath.Join(dir, "work"),
		Logger:   m.n.log.With("component", "verify"),
	}, store, nil, x)
	if err != nil {
		_ = x.Close(context.Background())
		return nil, err
	}
	v.rt = rt
	return rt, nil
}

func (v *verifier) close(ctx context.Context) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	if v.rt != nil {
		_ = v.rt.Close(ctx)
		v.rt = nil
	}
}

// verifyJob re-runs job id (a job this node submitted, settled on chain)
// and compares the result with the provider's.
func (m *marketService) verifyJob(ctx context.Context, id string) (api.Verification, error) {
	j, ok := m.clientJob(id)
	if !ok {
		return api.Verification{}, fmt.Errorf("%w: no job %s on this node (a job is verified on the node that submitted it: it holds the bid and the payload)", api.ErrNotFound, id)
	}
	b := j.Bid
	if b == nil {
		return api.Verification{}, fmt.Errorf("%w: job %s has no bid yet", api.ErrConflict, id)
	}
	if b.Executor != market.ExecWASM {
		return api.Verification{}, api.BadRequest("job %s runs on %s: only WASM jobs are deterministic (fake clock, seeded randomness), so only they can be verified by running them again", id, b.Executor)
	}
	rec, ok, err := m.n.drv.State().Match(b.ID())
	if err != nil {
		return api.Verification{}, err
	}
	if !ok || rec.ResultHash == ([32]byte{}) {
		return api.Verification{}, fmt.Errorf("%w: job %s has no result on chain yet (state %s)", api.ErrConflict, id, j.State)
	}
	var man *market.Manifest
	if h, ok := b.Payload.ManifestHash(); ok {
		raw, err := m.payloads.Get(h, market.MaxManifestSize)
		if err != nil {
			return api.Verification{}, fmt.Errorf("%w: the manifest of job %s is no longer stored here", api.ErrConflict, id)
		}
		if man, err = market.DecodeManifest(raw); err != nil {
			return api.Verification{}, fmt.Errorf("stored manifest of job %s: %w", id, err)
		}
	}
	job := workerJob(b, man)
	job.PayloadFrom = ""                 // the payload is ours
	job.Limits.Prep = job.Limits.Timeout // no chain deadline to meet here
	rc, _, err := m.payloads.Open(job.PayloadHash)
	if err != nil {
		return api.Verification{}, fmt.Errorf("%w: the payload of job %s is no longer stored here", api.ErrConflict, id)
	}
	job.Payload, err = io.ReadAll(io.LimitReader(rc, int64(b.Payload.Size)+1))
	rc.Close()
	if err != nil {
		return api.Verification{}, fmt.Errorf("read payload: %w", err)
	}
	if sha256.Sum256(job.Payload) != job.PayloadHash {
		return api.Verification{}, errors.New("stored payload does not match its hash")
	}
	job.PayloadVerified = true

	// The re-run ends with the request or with the node.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)()

	v := &m.verify
	v.mu.Lock()
	defer v.mu.Unlock()
	rt, err := v.runtime(m)
	if err != nil {
		return api.Verification{}, fmt.Errorf("verifier: %w", err)
	}
	// The runtime remembers finished jobs by id: give each run its own.
	// The result does not depend on the id (the seed comes from the bid).
	v.n++
	job.ID = worker.JobID(sha256.Sum256(fmt.Appendf(nil, "verify/%x/%d", b.ID(), v.n)))
	res, err := rt.Run(ctx, job)
	if err != nil {
		// Run stops waiting when ctx ends; the job must stop too before
		// the next verification may start.
		if cerr := rt.Cancel(context.Background(), job.ID); cerr == nil {
			_, _ = rt.Wait(context.Background(), job.ID)
		}
		return api.Verification{}, fmt.Errorf("re-run job %s: %w", id, err)
	}
	// Keep nothing: the result is the provider's to serve, and ours was
	// only for the comparison.
	rt.Store().Delete(res.Hash)
	out := api.Verification{
		ID: id, ChainHash: hex.EncodeToString(rec.ResultHash[:]), LocalHash: hex.EncodeToString(res.Hash[:]),
		ChainExitCode: int(rec.ExitCode), LocalExitCode: res.ExitCode, LocalState: string(res.State),
		Provider: rec.Match.Offer.ProviderAddress().String(), WallMs: res.Usage.WallMillis,
	}
	out.Match = res.Hash == rec.ResultHash
	if m.n.metrics != nil {
		m.n.metrics.verified.WithLabelValues(strconv.FormatBool(out.Match)).Inc()
	}
	m.n.log.Info("job verified", "job", id[:12], "match", out.Match, "wall_ms", out.WallMs)
	return out, nil
}
