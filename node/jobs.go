package node

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/lifecycle"
	"github.com/bourse-net/bourse/wallet"
)

// jobStore keeps the client's job records on disk (jobs/<id>.json), so
// jobs and their payloads survive a restart. The lifecycle core holds
// them in memory.
type jobStore struct {
	dir string
}

func openJobStore(dir string) (*jobStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("job store: %w", err)
	}
	return &jobStore{dir: dir}, nil
}

// load reads every record; a corrupt one is an error.
func (s *jobStore) load() ([]lifecycle.ClientJob, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("job store: %w", err)
	}
	var out []lifecycle.ClientJob
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return out, fmt.Errorf("job store: %w", err)
		}
		var j lifecycle.ClientJob
		if err := json.Unmarshal(raw, &j); err != nil {
			return out, fmt.Errorf("job store: %s is corrupt: %w", e.Name(), err)
		}
		if len(j.BidRaw) > 0 {
			if j.Bid, err = market.DecodeBid(j.BidRaw); err != nil {
				return out, fmt.Errorf("job store: %s: %w", e.Name(), err)
			}
		}
		out = append(out, j)
	}
	return out, nil
}

func (s *jobStore) save(j lifecycle.ClientJob) error {
	raw, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encode job %s: %w", j.ID, err)
	}
	p := filepath.Join(s.dir, j.ID+".json")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// persister writes job records in its own goroutine, off the block path.
// Writes of one job coalesce: the newest record queued is the one
// written. A failed write is reported to failed; after run returns,
// records are written at once by put.
type persister struct {
	store        *jobStore
	failed       func(id string, err error)
	closedFailed func(id string, err error)

	mu      sync.Mutex
	order   []string
	pending map[string]lifecycle.ClientJob
	done    bool
	wake    chan struct{}
}

func newPersister(store *jobStore, failed, closedFailed func(string, error)) *persister {
	return &persister{store: store, failed: failed, closedFailed: closedFailed, pending: map[string]lifecycle.ClientJob{}, wake: make(chan struct{}, 1)}
}

func (p *persister) put(j lifecycle.ClientJob) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		// Shutting down: written at once; the caller holds the lifecycle
		// lock, so a failure is logged and counted but not stepped.
		if err := p.store.save(j); err != nil {
			p.closedFailed(j.ID, err)
		}
		return
	}
	if _, ok := p.pending[j.ID]; !ok {
		p.order = append(p.order, j.ID)
	}
	p.pending[j.ID] = j
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run writes queued records until ctx ends, then writes what is left.
func (p *persister) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			p.mu.Lock()
			p.done = true
			p.mu.Unlock()
			p.flush()
			return
		case <-p.wake:
			p.flush()
		}
	}
}

func (p *persister) flush() {
	for {
		p.mu.Lock()
		if len(p.order) == 0 {
			p.mu.Unlock()
			return
		}
		id := p.order[0]
		p.order = p.order[1:]
		j := p.pending[id]
		delete(p.pending, id)
		p.mu.Unlock()
		if err := p.store.save(j); err != nil {
			p.failed(id, err)
		}
	}
}

// bidFor turns a job spec into a signed bid served by this node.
func (m *marketService) bidFor(spec api.JobSpec, payloadHash [32]byte, payloadSize int64) (*market.Bid, error) {
	n := m.n
	now := m.clock.Now()
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	b := &market.Bid{
		Client:     n.key.Public(),
		Nonce:      binary.BigEndian.Uint64(nonce[:]),
		Executor:   spec.Executor,
		Resources:  fromAPIResources(spec.Resources),
		MaxPrice:   spec.MaxPrice,
		MatchBy:    now.Add(spec.Deadline.Duration).UnixMilli(),
		TimeoutMs:  spec.Timeout.Milliseconds(),
		Preference: spec.Placement,
		Replicas:   uint32(max(spec.Replicas, 1)),
		Public:     spec.Visibility == api.VisibilityPublic,

		AcceptMajority: spec.AcceptMajority,
	}
	if spec.Image != "" && payloadSize == 0 {
		b.Payload = market.Payload{Image: spec.Image}
	} else {
		// For docker, an image tarball with the ID of its image.
		b.Payload = market.Payload{SHA256: payloadHash[:], Size: uint64(payloadSize), Peer: n.host.ID().String(), Image: spec.Image}
	}
	if man := manifestOf(spec); !man.Empty() {
		if err := man.Validate(); err != nil {
			return nil, api.BadRequest("%v", err)
		}
		h, err := man.Hash()
		if err != nil {
			return nil, err
		}
		b.Payload.Manifest = h[:]
		b.Payload.Peer = n.host.ID().String()
	}
	if spec.Constraints.Region != "" {
		b.Constraints.Regions = []string{spec.Constraints.Region}
	}
	placeBid(b, spec.Constraints, m.rttList(now))
	for k, v := range spec.Constraints.Labels {
		b.Constraints.Labels = append(b.Constraints.Labels, k+"="+v)
	}
	sort.Strings(b.Constraints.Labels)
	if err := b.Validate(now.UnixMilli()); err != nil {
		return nil, api.BadRequest("%v", err)
	}
	if err := b.Sign(n.cfg.ChainID, n.key); err != nil {
		return nil, err
	}
	return b, nil
}

// publish serves a blob of a job of this client: to the matched provider
// only, or to everyone for a public job.
func (m *marketService) publish(h [32]byte, public bool) {
	if public {
		m.blobs.PublishPublic(h)
	} else {
		m.blobs.Publish(h)
	}
}

// manifestOf is the job manifest of spec: its args, and its env as
// sorted KEY=VALUE entries, so one spec has one manifest hash.
func manifestOf(spec api.JobSpec) *market.Manifest {
	man := &market.Manifest{Args: spec.Args}
	for k, v := range spec.Env {
		man.Env = append(man.Env, k+"="+v)
	}
	sort.Strings(man.Env)
	return man
}

// storeManifest stores and publishes the manifest of spec (what the bid's
// Payload.Manifest names), served like the payload to the matched
// provider only.
func (m *marketService) storeManifest(ctx context.Context, spec api.JobSpec) error {
	man := manifestOf(spec)
	if man.Empty() {
		return nil
	}
	if err := man.Validate(); err != nil {
		return api.BadRequest("%v", err)
	}
	raw, err := man.Encode()
	if err != nil {
		return err
	}
	h := sha256.Sum256(raw)
	if !m.payloads.Has(h) {
		if _, _, err := m.payloads.Put(ctx, bytes.NewReader(raw)); err != nil {
			return fmt.Errorf("store the job manifest: %w", err)
		}
	}
	m.publish(h, spec.Visibility == api.VisibilityPublic)
	return nil
}

// checkedSet remembers which stored payloads passed api.CheckPayload for
// which executor, so a client naming the same module by hash again and
// again does not have it read and parsed every time. Bounded: it forgets
// everything when full.
type checkedSet struct {
	mu sync.Mutex
	m  map[checkedKey]bool
}

type checkedKey struct {
	hash     [32]byte
	executor string
}

const maxChecked = 4096

func (c *checkedSet) has(h [32]byte, executor string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[checkedKey{h, executor}]
}

func (c *checkedSet) add(h [32]byte, executor string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxChecked {
		c.m = map[checkedKey]bool{}
	}
	c.m[checkedKey{h, executor}] = true
}

func (m *marketService) submitJob(ctx context.Context, spec api.JobSpec, payload []byte) (api.Job, error) {
	spec = spec.WithDefaults()
	var hash [32]byte
	size := int64(len(payload))
	if len(payload) == 0 && spec.PayloadSHA256 != "" {
		// Named by hash: it must be a payload this node holds.
		h, err := parseHash(spec.PayloadSHA256)
		if err != nil {
			return api.Job{}, api.BadRequest("payload_sha256: %v", err)
		}
		rc, n, err := m.payloads.Open(h)
		if err != nil {
			return api.Job{}, fmt.Errorf("%w: this daemon holds no payload %s; upload it", api.ErrNotFound, spec.PayloadSHA256)
		}
		// The store also holds fetched results and payloads uploaded for
		// other executors: check the stored bytes as an upload would be,
		// once per payload and executor (the bytes never change).
		if !m.checked.has(h, spec.Executor) {
			stored, rerr := io.ReadAll(io.LimitReader(rc, n))
			if rerr != nil {
				rc.Close()
				return api.Job{}, fmt.Errorf("read stored payload: %w", rerr)
			}
			if err := api.CheckPayload(spec.Executor, stored); err != nil {
				rc.Close()
				return api.Job{}, err
			}
			m.checked.add(h, spec.Executor)
		}
		rc.Close()
		hash, size = h, n
		m.publish(hash, spec.Visibility == api.VisibilityPublic)
	} else if len(payload) > 0 {
		hash = sha256.Sum256(payload)
		if !m.payloads.Has(hash) { // the same module again: stored already
			if _, _, err := m.payloads.Put(ctx, bytes.NewReader(payload)); err != nil {
				return api.Job{}, fmt.Errorf("store payload: %w", err)
			}
		}
		m.publish(hash, spec.Visibility == api.VisibilityPublic)
		if spec.PayloadSHA256 != "" && spec.PayloadSHA256 != hex.EncodeToString(hash[:]) {
			return api.Job{}, api.BadRequest("payload_sha256 does not match the uploaded payload")
		}
	} else if spec.Image == "" {
		return api.Job{}, api.BadRequest("the job has no payload: give a .wasm file or an image")
	}
	b, err := m.bidFor(spec, hash, size)
	if err != nil {
		return api.Job{}, err
	}
	if err := m.storeManifest(ctx, spec); err != nil {
		return api.Job{}, err
	}
	// A job of k replicas is k bids, replica 0 first (its id is the
	// job's): each is saved before any leaves, so an acknowledged job
	// survives a restart whole.
	bids := []*market.Bid{b}
	for i := uint32(1); i < b.Replicas; i++ {
		r, err := replicaBid(b, i, func(c *market.Bid) error { return c.Sign(m.n.cfg.ChainID, m.n.key) })
		if err != nil {
			return api.Job{}, err
		}
		bids = append(bids, r)
	}
	now := m.clock.Now().UTC()
	jobs := make([]lifecycle.ClientJob, len(bids))
	for i, b := range bids {
		raw, err := b.Encode()
		if err != nil {
			return api.Job{}, err
		}
		id := b.ID()
		jobs[i] = lifecycle.ClientJob{
			Job: api.Job{ID: hex.EncodeToString(id[:]), Name: spec.Name, State: api.StateBidding, Spec: spec,
				SubmittedAt: now, UpdatedAt: now, BidID: hex.EncodeToString(id[:])},
			BidRaw: raw, Bid: b,
		}
		if size > 0 {
			jobs[i].PayloadHash = hex.EncodeToString(hash[:])
		}
		if err := m.jobStore.save(jobs[i]); err != nil {
			return api.Job{}, fmt.Errorf("save job: %w", err)
		}
	}
	for i, b := range bids {
		m.step(lifecycle.Submit{Job: jobs[i]})
		if err := m.book.AddBid(b, now.UnixMilli()); err != nil && !errors.Is(err, market.ErrDuplicate) {
			return api.Job{}, api.BadRequest("bid refused: %v", err)
		}
		if err := m.bidTopic.Publish(ctx, jobs[i].BidRaw); err != nil {
			m.n.log.Debug("publish bid", "err", err)
		}
	}
	if len(bids) > 1 {
		return m.job(ctx, jobs[0].ID)
	}
	return jobs[0].Job, nil
}

func (m *marketService) dryRun(ctx context.Context, spec api.JobSpec) (api.DryRun, error) {
	spec = spec.WithDefaults()
	b, err := m.bidFor(spec, sha256.Sum256(nil), 1)
	if err != nil {
		return api.DryRun{}, err
	}
	st := m.n.drv.State()
	now := m.clock.Now().UnixMilli()
	fits := m.explain(b, st, now)
	out := api.DryRun{Spec: spec, Offers: fits}
	snap := m.book.Snapshot()
	if ms := m.matcher.Match(market.NewSnapshot(snap.Offers, []*market.Bid{b}), st.View(), now, st.Globals().LastBlockHash, 1); len(ms) == 1 {
		out.Chosen = ms[0].Offer.ID().String()
		out.Price = ms[0].Price
		out.Summary = fmt.Sprintf("would run on %s for at most %d (escrow %d)", ms[0].Offer.ProviderAddress(), ms[0].Price, b.MaxPrice)
	} else {
		out.Summary = "no offer fits now: " + summarize(fits)
	}
	return out, nil
}

func (m *marketService) jobs(ctx context.Context, f api.JobFilter) ([]api.Job, error) {
	out := []api.Job{}
	var all []lifecycle.ClientJob
	m.withCore(func(c *lifecycle.Core) {
		all = c.Jobs()
		for i := range all {
			if isGroup(&all[i]) {
				all[i] = groupJob(all[i], c.Job)
			}
		}
	})
	for _, j := range all {
		if isReplica(&j) {
			continue // shown inside its group's job
		}
		if f.State != "" && j.State != f.State {
			continue
		}
		out = append(out, j.Job)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// clientJob returns a copy of the client job id.
// A job of several replicas is its group's view (groupJob).
func (m *marketService) clientJob(id string) (j lifecycle.ClientJob, ok bool) {
	m.withCore(func(c *lifecycle.Core) {
		if j, ok = c.Job(id); ok && isGroup(&j) {
			j = groupJob(j, c.Job)
		}
	})
	return j, ok
}

func (m *marketService) job(ctx context.Context, id string) (api.Job, error) {
	if j, ok := m.clientJob(id); ok {
		return j.Job, nil
	}
	return api.Job{}, fmt.Errorf("%w: no job %s on this node ('bourse job list' shows them)", api.ErrNotFound, id)
}

// resultBlob finds a job's result: fetched by the client, or produced here.
func (m *marketService) resultBlob(id string) ([32]byte, error) {
	if j, ok := m.clientJob(id); ok {
		if j.ResultHash == "" {
			return [32]byte{}, fmt.Errorf("%w: job %s has no result yet (state %s)", api.ErrConflict, id, j.State)
		}
		return parseHash(j.ResultHash)
	}
	raw, err := hex.DecodeString(id)
	if err == nil && len(raw) == 32 {
		var h [32]byte
		var ok bool
		m.withCore(func(c *lifecycle.Core) { h, ok = c.ProviderResult(market.BidID(raw)) })
		if ok {
			return h, nil
		}
		// A settled job's record is gone; the chain has its result hash.
		if rec, ok, err := m.n.drv.State().Match([32]byte(raw)); err == nil && ok && rec.ResultHash != ([32]byte{}) {
			return rec.ResultHash, nil
		}
	}
	return [32]byte{}, fmt.Errorf("%w: no job %s on this node", api.ErrNotFound, id)
}

func (m *marketService) jobResult(ctx context.Context, id string) (io.ReadCloser, api.ResultInfo, error) {
	h, err := m.resultBlob(id)
	if err != nil {
		return nil, api.ResultInfo{}, err
	}
	rc, size, err := unionSource{m.payloads, m.results}.Open(h)
	if err != nil {
		return nil, api.ResultInfo{}, fmt.Errorf("%w: the result of %s is not here yet (it is fetched from the provider after settlement)", api.ErrConflict, id)
	}
	return rc, api.ResultInfo{Size: size, Hash: hex.EncodeToString(h[:])}, nil
}

// jobLogs reads stdout and stderr out of the job's packed result.
func (m *marketService) jobLogs(ctx context.Context, id string) (api.JobLogs, error) {
	rc, _, err := m.jobResult(ctx, id)
	if err != nil {
		return api.JobLogs{}, err
	}
	defer rc.Close()
	out := api.JobLogs{ID: id}
	tr := tar.NewReader(io.LimitReader(rc, maxResultBytes))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, fmt.Errorf("read result: %w", err)
		}
		const capLogs = 4 << 20
		switch h.Name {
		case "stdout", "stderr":
			b, err := io.ReadAll(io.LimitReader(tr, capLogs+1))
			if err != nil {
				return out, err
			}
			if len(b) > capLogs {
				b, out.Truncated = b[:capLogs], true
			}
			if h.Name == "stdout" {
				out.Stdout = string(b)
			} else {
				out.Stderr = string(b)
			}
		}
	}
	return out, nil
}

func (m *marketService) cancelJob(ctx context.Context, id string) (api.Job, error) {
	j, ok := m.clientJob(id)
	if !ok {
		return api.Job{}, fmt.Errorf("%w: no job %s on this node", api.ErrNotFound, id)
	}
	if j.Bid == nil || len(j.Replicas) == 0 && j.State != api.StateBidding {
		return j.Job, fmt.Errorf("%w: job %s is %s; only a job waiting for a match can be cancelled", api.ErrConflict, id, j.State)
	}
	// Every replica still waiting for a match is cancelled; the matched
	// ones run on.
	ids := []string{id}
	if len(j.Replicas) > 0 {
		ids = ids[:0]
		for _, r := range j.Replicas {
			if r.State == api.StateBidding {
				ids = append(ids, r.ID)
			}
		}
		if len(ids) == 0 {
			return j.Job, fmt.Errorf("%w: no replica of job %s is waiting for a match; only those can be cancelled", api.ErrConflict, id)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, rid := range ids {
		var rj lifecycle.ClientJob
		var ok bool
		m.withCore(func(c *lifecycle.Core) { rj, ok = c.Job(rid) }) // the replica itself, not its group's view
		if !ok || rj.Bid == nil {
			continue
		}
		bid := *rj.Bid
		_, done, err := m.n.txs.submit(ctx, func(tx *chain.Tx) { tx.BidCancel = &chain.BidCancel{Bid: bid} })
		if err != nil {
			return j.Job, api.BadRequest("cancel: %v", err)
		}
		select {
		case <-done:
			m.step(lifecycle.CancelConfirmed{ID: rid})
		case <-wctx.Done():
		}
	}
	return m.job(ctx, id)
}

func offerView(o *market.Offer) api.Offer {
	labels := map[string]string{}
	for _, kv := range o.Labels {
		k, v, _ := strings.Cut(kv, "=")
		labels[k] = v
	}
	return api.Offer{
		ID: o.ID().String(), Provider: o.ProviderAddress().String(), PeerID: o.PeerID,
		Capacity: toAPIResources(o.Total), Free: toAPIResources(o.Free), Load: float64(o.Load) / 1000,
		Prices: api.Prices{PerCPUSecond: o.Terms.PerCPUSecond, PerGiBSecond: o.Terms.PerGiBSecond, PerJob: o.Terms.PerJob},
		Region: o.Region, Labels: labels, Executors: o.Executors, Expires: time.UnixMilli(o.Expires).UTC(),
	}
}

func (m *marketService) offers(ctx context.Context) ([]api.Offer, error) {
	out := []api.Offer{}
	for _, o := range m.book.Snapshot().Offers {
		out = append(out, offerView(o))
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Provider < out[b].Provider })
	return out, nil
}

func (m *marketService) bids(ctx context.Context) ([]api.Bid, error) {
	out := []api.Bid{}
	for _, b := range m.book.Snapshot().Bids {
		id := b.ID()
		v := api.Bid{ID: hex.EncodeToString(id[:]), Client: b.ClientAddress().String(), Executor: b.Executor,
			Resources: toAPIResources(b.Resources), MaxPrice: b.MaxPrice, Deadline: time.UnixMilli(b.MatchBy).UTC(),
			Placement: b.Preference, Constraints: bidConstraints(b.Constraints)}
		if len(b.Payload.SHA256) > 0 {
			v.PayloadHash = hex.EncodeToString(b.Payload.SHA256)
		}
		out = append(out, v)
	}
	return out, nil
}

// matchRecords scans committed blocks from..to (newest first) for Match
// transactions and returns the chain's record of each.
func (m *marketService) matchRecords(ctx context.Context, from, to uint64, limit int) ([]chain.Match, error) {
	st := m.n.drv.State()
	top := m.n.store.Height()
	if to == 0 || to > top {
		to = top
	}
	if from == 0 {
		from = 1
	}
	var out []chain.Match
	for h := to; h >= from && h > 0; h-- {
		b, err := m.n.store.Block(ctx, h)
		if err != nil {
			return nil, err
		}
		for i := len(b.Txs) - 1; i >= 0; i-- {
			tx, err := chain.DecodeTx(b.Txs[i])
			if err != nil || tx.Match == nil {
				continue
			}
			if rec, ok, err := st.Match(tx.Match.Bid.ID()); err == nil && ok && rec.Height == h {
				out = append(out, rec)
			}
		}
		// A page ends at a height boundary, so the next page starts at
		// the height below the last one returned.
		if limit > 0 && len(out) >= limit {
			return out, nil
		}
	}
	return out, nil
}

func statusName(s chain.MatchStatus) string { return s.String() }

func (m *marketService) matches(ctx context.Context, f api.MatchFilter) ([]api.Match, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = api.DefaultMatchPage
	}
	recs, err := m.matchRecords(ctx, f.FromHeight, f.ToHeight, limit)
	if err != nil {
		return nil, err
	}
	out := []api.Match{}
	for _, r := range recs {
		v, err := m.matchView(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// match is one match by its id (the job's bid id).
func (m *marketService) match(ctx context.Context, id string) (api.Match, error) {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != 32 {
		return api.Match{}, api.BadRequest("match id must be 64 hex digits")
	}
	r, ok, err := m.n.drv.State().Match([32]byte(raw))
	if err != nil {
		return api.Match{}, err
	}
	if !ok {
		return api.Match{}, fmt.Errorf("%w: no match %s on chain", api.ErrNotFound, id)
	}
	return m.matchView(ctx, r)
}

func (m *marketService) matchView(ctx context.Context, r chain.Match) (api.Match, error) {
	id := r.Match.Bid.ID()
	v := api.Match{
		ID: hex.EncodeToString(id[:]), BidID: hex.EncodeToString(id[:]), OfferID: r.Match.Offer.ID().String(),
		Client: r.Match.Bid.ClientAddress().String(), Provider: r.Match.Offer.ProviderAddress().String(),
		Price: r.Match.Price, Escrow: r.Match.Escrow(), Height: r.Height, Deadline: time.UnixMilli(r.Deadline).UTC(), State: statusName(r.Status),
	}
	if r.ResultHash != ([32]byte{}) {
		v.ResultHash = hex.EncodeToString(r.ResultHash[:])
	}
	mt, st, mok, sok, err := m.n.store.JobTxs(ctx, id)
	if err != nil {
		return api.Match{}, err
	}
	if mok {
		v.MatchTx = hex.EncodeToString(mt[:])
	}
	if sok {
		v.SettleTx = hex.EncodeToString(st[:])
	}
	return v, nil
}

func (m *marketService) stats(ctx context.Context, from, to uint64) (api.MarketStats, error) {
	recs, err := m.matchRecords(ctx, from, to, 0)
	if err != nil {
		return api.MarketStats{}, err
	}
	top := m.n.store.Height()
	if to == 0 || to > top {
		to = top
	}
	if from == 0 {
		from = 1
	}
	var records []market.MatchRecord
	out := api.MarketStats{FromHeight: from, ToHeight: to}
	slashed := map[wallet.Address]uint64{}
	type settleStats struct{ held, won, lost uint64 }
	settle := map[wallet.Address]*settleStats{}
	for _, r := range recs {
		ps := settle[r.Match.Offer.ProviderAddress()]
		if ps == nil {
			ps = &settleStats{}
			settle[r.Match.Offer.ProviderAddress()] = ps
		}
		if r.Status == chain.MatchHeld || r.Status == chain.MatchChallenged {
			ps.held += r.HeldPay
			out.Held += r.HeldPay
		}
		for _, c := range r.Challenges {
			switch c.Outcome {
			case chain.ChallengeProviderWon:
				ps.won++
				out.ChallengesWon++
			case chain.ChallengeClientWon:
				ps.lost++
				out.ChallengesLost++
			}
		}
		out.Slashed += r.Slashed
		outcome := market.OutcomeOpen
		switch r.Status {
		case chain.MatchCompleted:
			outcome = market.OutcomeCompleted
		case chain.MatchFailed:
			outcome = market.OutcomeFailed
		case chain.MatchTimedOut:
			outcome = market.OutcomeTimedOut
		}
		p := r.Match.Offer.ProviderAddress()
		slashed[p] += r.Slashed
		records = append(records, market.MatchRecord{Provider: p, Height: r.Height, MatchedAt: r.MatchedAt,
			SettledAt: r.SettledAt, Resources: r.Match.Bid.Resources, Price: r.Match.Price, Paid: r.Paid, Outcome: outcome})
		out.Matches++
		out.Volume += r.Paid
	}
	if out.Matches > 0 {
		out.AvgPrice = out.Volume / out.Matches
	}
	capacity := map[wallet.Address]market.Resources{}
	for _, o := range m.book.Snapshot().Offers {
		capacity[o.ProviderAddress()] = o.Total
	}
	w := market.StatsWindow{From: from, To: to}
	if b, err := m.n.store.Block(ctx, from); err == nil {
		w.FromTime = b.Header.Time
	}
	if b, err := m.n.store.Block(ctx, to); err == nil {
		w.ToTime = b.Header.Time
	}
	s := market.ComputeStats(records, capacity, w)
	out.Fairness = s.Fairness
	for _, p := range s.Providers {
		ps := api.ProviderStats{Address: p.Provider.String(), Matches: p.Assigned, Completed: p.Completed, Failed: p.Failed,
			TimedOut: p.TimedOut, Earned: p.Earnings, Slashed: slashed[p.Provider], Utilization: p.Utilisation}
		if s := settle[p.Provider]; s != nil {
			ps.Held, ps.ChallengesWon, ps.ChallengesLost = s.held, s.won, s.lost
		}
		ps.Reputation, ps.Performance = m.providerFigures(p.Provider)
		if out.Matches > 0 {
			ps.Share = float64(p.Assigned) / float64(out.Matches)
		}
		out.Providers = append(out.Providers, ps)
	}
	return out, nil
}

func (m *marketService) providerStatus(ctx context.Context) (api.ProviderStatus, error) {
	n := m.n
	if m.runtime == nil {
		return api.ProviderStatus{}, fmt.Errorf("%w: this node sells no capacity: set [provider] enabled = true in config.toml and restart", api.ErrUnavailable)
	}
	pc := n.cfg.Provider
	load := m.runtime.Load()
	out := api.ProviderStatus{
		Address:  n.key.Address().String(),
		Capacity: toAPIResources(providerResources(pc)),
		Free:     toAPIResources(fromWorkerResources(load.Free)),
		Running:  load.Running,
		Jobs:     map[string]int{},
	}
	for _, k := range m.runtime.Executors(ctx) {
		out.Executors = append(out.Executors, string(k))
	}
	st := n.drv.State()
	if p, ok, err := st.Provider(n.key.Address()); err == nil && ok {
		out.Registered, out.Collateral, out.OpenMatches = !p.Leaving(), p.Collateral, p.Open
		out.Held, out.HeldJobs, out.Released, out.SlashedTotal = p.HeldEarnings, p.HeldJobs, p.Released, p.SlashedTotal
		out.ChallengesWon, out.ChallengesLost = p.ChallengesWon, p.ChallengesLost
		out.Reputation, out.Performance = m.providerFigures(n.key.Address())
		if p.Leaving() {
			at := time.UnixMilli(p.WithdrawableAt(st.Params().ProviderExitDelayMs)).UTC()
			out.Leaving, out.WithdrawableAt = true, &at
		}
	}
	if o, ok := m.book.Offer(n.key.Address()); ok {
		v := offerView(o)
		out.Offer = &v
	}
	m.withCore(func(c *lifecycle.Core) { out.Jobs, out.Earned, out.Slashed = c.ProviderJobs() })
	return out, nil
}

// bidConstraints shows a bid's constraints in the API's shape: its region
// (several, any of, comma-separated: a hand-built bid may name more than
// the one a spec takes) and its labels.
func bidConstraints(c market.Constraints) api.Constraints {
	out := api.Constraints{Region: strings.Join(c.Regions, ","), MinReputation: c.MinReputation}
	if len(c.RegionWeights) == len(c.Regions) && len(c.Regions) > 0 {
		out.Region, out.Regions = "", map[string]uint32{}
		for i, r := range c.Regions {
			out.Regions[r] = c.RegionWeights[i]
		}
	}
	for _, kv := range c.Labels {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if out.Labels == nil {
				out.Labels = map[string]string{}
			}
			out.Labels[k] = v
		}
	}
	return out
}
