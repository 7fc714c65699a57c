package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/lifecycle"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/worker"
	dockerx "github.com/bourse-net/bourse/worker/docker"
	execx "github.com/bourse-net/bourse/worker/exec"
	"github.com/bourse-net/bourse/worker/wasm"
	"github.com/libp2p/go-libp2p/core/peer"
)

func (m *marketService) openRuntime() error {
	n := m.n
	pc := n.cfg.Provider
	var execs []worker.Executor
	for _, e := range pc.Executors {
		switch e {
		case "wasm":
			cache := pc.WasmCache
			if cache != "" && !filepath.IsAbs(cache) {
				cache = filepath.Join(n.home, cache)
			}
			x, err := wasm.New(context.Background(), wasm.Config{CacheDir: cache, Logger: n.log})
			if err != nil {
				return fmt.Errorf("wasm executor: %w", err)
			}
			execs = append(execs, x)
		case "docker":
			x, err := dockerx.New(dockerx.Config{})
			if err != nil {
				return fmt.Errorf("docker executor: %w", err)
			}
			execs = append(execs, x)
		case "exec":
			x, err := execx.New(execx.Config{Enabled: true, WorkDir: filepath.Join(n.home, "work", "exec"), Logger: n.log})
			if err != nil {
				return fmt.Errorf("exec executor: %w", err)
			}
			execs = append(execs, x)
		}
	}
	rt, err := worker.NewRuntime(worker.Config{
		Capacity: toWorkerResources(providerResources(pc)),
		WorkDir:  filepath.Join(n.home, "work"),
		Logger:   n.log,
	}, m.results, (*payloadFetcher)(m), execs...)
	if err != nil {
		return fmt.Errorf("worker runtime: %w", err)
	}
	m.runtime = rt
	return nil
}

// payloadFetcher fetches a job's payload from the client's node.
type payloadFetcher marketService

func (f *payloadFetcher) Fetch(ctx context.Context, hash [32]byte, size int64, from string) ([]byte, error) {
	id, err := peer.Decode(from)
	if err != nil {
		return nil, fmt.Errorf("payload peer %q: %w", from, err)
	}
	// Payloads are content addressed: one fetched before (or our own job,
	// matched to ourselves) is read locally, checked against its hash again.
	for _, st := range []*worker.Store{f.payloads, f.foreign} {
		if st.Has(hash) {
			if b, err := st.Get(hash, size); err == nil {
				return b, nil
			}
		}
	}
	cred, err := payloadCredential(ctx)
	if err != nil {
		return nil, err
	}
	// Streamed to a temporary file of the foreign store, hashed as it
	// arrives, at most the size the bid announced, counted against the
	// client's quota; kept only if it hashes to the bid's hash.
	got, _, err := f.foreign.WriteOwned(ctx, blobOwner(ctx), func(w io.Writer) error {
		_, err := f.n.host.FetchBlobWith(ctx, id, hash, cred, size, w)
		return err
	})
	if err != nil {
		return nil, err
	}
	if got != hash {
		f.foreign.Delete(got)
		return nil, fmt.Errorf("payload %x: %w", hash[:6], p2p.ErrHashMismatch)
	}
	return f.foreign.Get(hash, size)
}

// resume picks up a provider's work after a restart: results it produced
// are served again, and open matches it holds are run (their payloads are
// fetched again), so a restart does not turn into a missed deadline.
func (m *marketService) resume() {
	if m.runtime == nil {
		return
	}
	entries, err := os.ReadDir(m.results.Dir())
	if err == nil {
		for _, e := range entries {
			if h, err := parseHash(e.Name()); err == nil {
				m.blobs.Publish(h)
			}
		}
	}
	if err != nil {
		m.n.log.Error("serve the stored results", "err", err)
	}
	me := m.n.key.Address()
	var open []lifecycle.OpenMatch
	err = m.n.drv.State().Matches(func(r chain.Match) error {
		if r.Status == chain.MatchOpen && r.Match.Offer.ProviderAddress() == me {
			m.n.log.Info("resuming a matched job after restart", "job", r.Match.Bid.ID().String())
			open = append(open, lifecycle.OpenMatch{Match: r.Match, Deadline: r.Deadline, MatchedAt: r.MatchedAt})
		}
		return nil
	})
	if err != nil {
		m.n.log.Error("read the open matches to resume", "err", err)
	}
	m.step(lifecycle.Resume{Open: open})
}

// publishOffer signs and gossips this provider's offer with its live load.
func (m *marketService) publishOffer() {
	n := m.n
	if m.runtime == nil {
		return
	}
	pc := n.cfg.Provider
	load := m.runtime.Load()
	// The host's own measurement beside the runtime's reservations: work
	// the runtime does not know of shows (placement takes the larger).
	hostCPU, hostMem, _ := m.host.sample()
	now := m.clock.Now().UnixMilli()
	var chainNewest uint64
	if p, ok, err := n.drv.State().Provider(n.key.Address()); err == nil && ok {
		if p.Leaving() {
			return // deregistered: no new jobs
		}
		chainNewest = p.NewestOfferSeq
	}
	m.mu.Lock()
	m.seq++
	seq := nextOfferSeq(now, m.seq, m.lastOfferSeq, chainNewest)
	m.lastOfferSeq = seq
	m.mu.Unlock()
	labels := make([]string, 0, len(pc.Labels))
	for k, v := range pc.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	execs := []string{}
	for _, k := range m.runtime.Executors(m.ctx) {
		execs = append(execs, string(k))
	}
	sort.Strings(execs)
	o := &market.Offer{
		Provider:  n.key.Public(),
		PeerID:    n.host.ID().String(),
		Seq:       seq,
		Expires:   now + 3*pc.OfferInterval.Milliseconds(),
		Total:     providerResources(pc),
		Free:      fromWorkerResources(load.Free),
		Load:      uint32(load.Utilisation() * 1000),
		HostCPU:   hostCPU,
		HostMem:   hostMem,
		Executors: execs,
		Terms:     market.PriceTerms{PerCPUSecond: pc.PricePerCPUSecond, PerGiBSecond: pc.PricePerGiBSecond, PerJob: pc.PricePerJob},
		Region:    pc.Region,
		Labels:    labels,
	}
	if len(o.Executors) == 0 {
		return
	}
	if err := o.Sign(n.cfg.ChainID, n.key); err != nil {
		n.log.Warn("sign offer", "err", err)
		return
	}
	if err := m.book.AddOffer(o, now); err != nil && !errors.Is(err, market.ErrDuplicate) {
		n.log.Warn("own offer refused", "err", err)
		return
	}
	raw, err := o.Encode()
	if err != nil {
		n.log.Error("encode own offer", "err", err)
		return
	}
	if err := m.offerTopic.Publish(m.ctx, raw); err != nil && m.ctx.Err() == nil {
		n.log.Debug("publish offer", "err", err)
	}
}

// nextOfferSeq is the Seq of the provider's next offer: the clock in ms,
// then a counter, so it grows across restarts; and never at or below the
// last one this node signed nor the newest the chain has matched, so a
// clock that steps backwards cannot make its offers superseded (the chain
// refuses a Match on an offer older than one it matched).
func nextOfferSeq(nowMs int64, counter, last, chainNewest uint64) uint64 {
	return max(uint64(max(nowMs, 0))*16+counter%16, last+1, chainNewest+1)
}

// workerJob is the job a bid describes, as a provider runs it (and as a
// client re-runs it to verify the result): the same inputs, limits and
// seed, so a WASM job gives the same result hash.
//
// man is the job's manifest (its args and env), checked against the bid's
// hash; nil for a bid that names none.
func workerJob(b *market.Bid, man *market.Manifest) *worker.Job {
	id := b.ID()
	if man == nil {
		man = &market.Manifest{}
	}
	job := &worker.Job{
		ID:       worker.JobID(id),
		Executor: worker.Kind(b.Executor),
		Image:    b.Payload.Image,
		Args:     man.Args,
		Env:      map[string]string{},
		Limits: worker.Limits{
			Resources: toWorkerResources(b.Resources),
			Timeout:   time.Duration(b.TimeoutMs) * time.Millisecond,
		},
		Seed:  seedOf(id),
		Owner: b.ClientAddress().String(),
	}
	if len(b.Payload.SHA256) == 32 {
		job.PayloadHash = [32]byte(b.Payload.SHA256)
		job.PayloadSize = int64(b.Payload.Size)
		job.PayloadFrom = b.Payload.Peer
	}
	for _, kv := range man.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			job.Env[k] = v
		}
	}
	return job
}

// fetchPayload gets a matched job's manifest (checked against its hash,
// kept for runJob) and payload (checked against its hash, into the module
// cache, where runJob finds it).
func (m *marketService) fetchPayload(a lifecycle.FetchPayload) error {
	if m.runtime == nil {
		return errors.New("this node runs no jobs")
	}
	ctx := m.ctx
	if a.Deadline > 0 {
		// The whole fetch ends by the payload's deadline, however the
		// client paces its frames (the lifecycle then declares the payload
		// unavailable rather than let the chain slash this provider).
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.UnixMilli(a.Deadline))
		defer cancel()
	}
	ctx = withBlobOwner(withBlobJob(ctx, a.ID), a.Client.String())
	if a.Manifest != ([32]byte{}) {
		man, err := m.fetchManifest(ctx, a.Manifest, a.From)
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.manifests[a.ID] = man
		m.mu.Unlock()
	}
	if a.Hash == ([32]byte{}) {
		return nil
	}
	if _, ok := m.modules.get(a.Hash); ok {
		return nil
	}
	b, err := m.runtime.FetchPayload(ctx, a.Hash, a.Size, a.From)
	if err != nil {
		m.takeManifest(a.ID) // fetched again with the next attempt
		return err
	}
	m.modules.put(a.Hash, b)
	return nil
}

// fetchManifest gets a job's manifest from the client's node (or this
// node's own store, for a job of its own): at most market.MaxManifestSize
// bytes, hashing to hash, and valid.
func (m *marketService) fetchManifest(ctx context.Context, hash [32]byte, from string) (*market.Manifest, error) {
	short := hex.EncodeToString(hash[:6])
	var raw []byte
	if m.payloads.Has(hash) {
		raw, _ = m.payloads.Get(hash, market.MaxManifestSize)
	}
	if raw == nil {
		id, err := peer.Decode(from)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: peer %q: %w", short, from, err)
		}
		cred, err := payloadCredential(ctx)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if _, err := m.n.host.FetchBlobWith(ctx, id, hash, cred, market.MaxManifestSize, &buf); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		raw = buf.Bytes()
	}
	man, err := market.DecodeManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("manifest %s from %s: %w", short, from, err)
	}
	return man, nil
}

// takeManifest returns (and forgets) the manifest fetched for job id.
func (m *marketService) takeManifest(id market.BidID) *market.Manifest {
	m.mu.Lock()
	defer m.mu.Unlock()
	man := m.manifests[id]
	delete(m.manifests, id)
	return man
}

// runJob runs a job matched to this provider and reports the Result to
// send; ctx ends when the core stops the run.
func (m *marketService) runJob(ctx context.Context, a lifecycle.Run) {
	n := m.n
	id := a.Match.Bid.ID()
	man := m.takeManifest(id)
	if _, named := a.Match.Bid.Payload.ManifestHash(); named && man == nil {
		// The lifecycle runs a job only after its fetch succeeded.
		m.step(lifecycle.RunFinished{Result: chain.ResultTx{JobID: id, ExitCode: 1}, Err: errors.New("the job's manifest was not fetched")})
		return
	}
	job := workerJob(&a.Match.Bid, man)
	// A cold compile is not the client's time, but the result must still
	// reach the chain before the deadline (timeout + grace from the match).
	job.Limits.Prep = time.Duration(n.drv.State().Params().ResultGraceMs/2) * time.Millisecond
	if job.PayloadHash != ([32]byte{}) {
		// Fetched by FetchPayload (and hash-checked); if it is not in the
		// cache any more, the runtime fetches it again.
		if b, ok := m.modules.get(job.PayloadHash); ok {
			job.Payload, job.PayloadVerified = b, true
		}
	}
	res, err := m.runtime.Run(withBlobJob(ctx, id), job)
	if m.ctx.Err() != nil {
		return // shutting down: the chain settles the match by its deadline
	}
	rt := chain.ResultTx{JobID: id, ExitCode: 1}
	if res != nil {
		err = nil
		rt.ResultHash = res.Hash
		rt.ExitCode = int32(res.ExitCode)
		rt.Size = uint64(max(res.Size, 0)) // what a committee member fetches at most
		if lieMode(n.cfg.Moniker) == "wrong" && res.Hash != ([32]byte{}) {
			// Test hook: commit and serve other bytes than the run's.
			if h, size, err := m.results.Write(ctx, func(w io.Writer) error {
				rc, _, err := m.results.Open(res.Hash)
				if err != nil {
					return err
				}
				defer rc.Close()
				if _, err := io.Copy(w, rc); err != nil {
					return err
				}
				_, err = w.Write(make([]byte, 1024)) // an extra tar block: still a valid archive, another hash
				return err
			}); err == nil {
				res.Hash, rt.ResultHash, rt.Size = h, h, uint64(size)
			}
		}
		if res.State != worker.StateSucceeded && rt.ExitCode == 0 {
			rt.ExitCode = 1
		}
		rt.Usage = market.Usage{CPUMs: uint64(res.Usage.CPUMillis), MemMiBMs: uint64(res.Usage.MemoryMiBSeconds) * 1000}
		if res.Hash != ([32]byte{}) {
			m.publish(res.Hash, a.Match.Bid.Public) // a public job's result to everyone
		}
		if n.metrics != nil {
			n.metrics.execDuration.WithLabelValues(string(res.Executor), string(res.State)).Observe(float64(res.Usage.WallMillis) / 1000)
		}
	}
	m.step(lifecycle.RunFinished{Result: rt, Err: err})
}

func seedOf(id market.BidID) uint64 {
	var s uint64
	for _, b := range id[:8] {
		s = s<<8 | uint64(b)
	}
	return s
}
