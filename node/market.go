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
	"sync"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/worker"
	dockerx "github.com/bourse-net/bourse/worker/docker"
	execx "github.com/bourse-net/bourse/worker/exec"
	"github.com/bourse-net/bourse/worker/wasm"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits of the market service.
const (
	maxMatchesPerBlock = 256
	maxResultBytes     = 256 << 20
	bidRegossip        = 2 * time.Second
	recheckPerBlock    = 2048 // clients and providers the book re-checks against chain state per block
)

// marketService is the node's part in the exchange: the order book fed by
// the offers and bids topics, the provider's offer heartbeat and job
// execution, the proposer's matcher, and the client's jobs.
type marketService struct {
	n       *Node
	book    *market.Book
	matcher market.Matcher

	offerTopic, bidTopic *p2p.Topic
	payloads             *worker.Store // the client's payloads and fetched results
	results              *worker.Store // the provider's results
	blobs                *p2p.BlobServer
	jobStore             *jobStore
	runtime              *worker.Runtime // nil unless the node is a provider
	verify               verifier        // re-runs the client's WASM jobs on request
	checked              checkedSet      // stored payloads that passed the submit check
	modules              *modCache       // verified payloads recently run

	mu          sync.Mutex
	seq         uint64                    // offer sequence
	provJobs    map[market.BidID]*provJob // provider's jobs until they settle on chain
	provSettled provTotals                // provider's settled jobs since start
	closing     bool                      // close has begun: spawn starts nothing

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// provTotals sums the provider's settled jobs, so their records can go:
// a long-running provider keeps memory for its open jobs only.
type provTotals struct {
	byState         map[string]int
	earned, slashed uint64
}

// provJob is a job this node runs as a provider, from its start until the
// chain settles it.
type provJob struct {
	Match      market.Match
	State      string
	ResultHash [32]byte // zero until the run stored a result
}

func newMarketService(n *Node) (*marketService, error) {
	m := &marketService{n: n, provJobs: map[market.BidID]*provJob{},
		provSettled: provTotals{byState: map[string]int{}},
		modules:     newModCache(16, 512<<20)}
	var err error
	bookCfg := market.DefaultBookConfig(n.cfg.ChainID)
	bookCfg.View = func() market.ChainView { return n.drv.State().View() } // admission against the current state
	if m.book, err = market.NewBook(bookCfg); err != nil {
		return nil, err
	}
	if m.payloads, err = worker.OpenStore(filepath.Join(n.home, "payloads"), worker.StoreConfig{MaxBytes: 4 << 30, Logger: n.log}); err != nil {
		return nil, fmt.Errorf("payload store: %w", err)
	}
	if m.results, err = worker.OpenStore(filepath.Join(n.home, "results"), worker.StoreConfig{MaxBytes: 4 << 30, Logger: n.log}); err != nil {
		return nil, fmt.Errorf("result store: %w", err)
	}
	if m.blobs, err = p2p.NewBlobServer(n.host, unionSource{m.payloads, m.results}, maxResultBytes); err != nil {
		return nil, err
	}
	if m.jobStore, err = openJobStore(filepath.Join(n.home, "jobs")); err != nil {
		return nil, err
	}
	// Payloads of our own jobs survive a restart and stay served.
	for _, j := range m.jobStore.list() {
		if h, err := parseHash(j.PayloadHash); err == nil {
			m.blobs.Publish(h)
		}
	}
	if n.cfg.Provider.Enabled {
		if err := m.openRuntime(); err != nil {
			return nil, err
		}
	}
	if m.offerTopic, err = n.host.Join(p2p.TopicOffers, p2p.ValidatorFunc(m.validator(market.KindOffer))); err != nil {
		return nil, err
	}
	if m.bidTopic, err = n.host.Join(p2p.TopicBids, p2p.ValidatorFunc(m.validator(market.KindBid))); err != nil {
		return nil, err
	}
	for _, t := range []*p2p.Topic{m.offerTopic, m.bidTopic} {
		if err := n.consume(t, func(p2p.Message) {}); err != nil {
			return nil, err
		}
	}
	return m, nil
}

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
		Capacity: worker.Resources{CPU: int64(pc.CPU), MemoryMiB: int64(pc.MemoryMiB), DiskMiB: int64(pc.DiskMiB)},
		WorkDir:  filepath.Join(n.home, "work"),
		Logger:   n.log,
	}, m.results, (*payloadFetcher)(m), execs...)
	if err != nil {
		return fmt.Errorf("worker runtime: %w", err)
	}
	m.runtime = rt
	return nil
}

// unionSource serves blobs from the first store that has them.
type unionSource []*worker.Store

func (u unionSource) Open(h [32]byte) (io.ReadCloser, int64, error) {
	var err error
	for _, s := range u {
		var rc io.ReadCloser
		var size int64
		if rc, size, err = s.Open(h); err == nil {
			return rc, size, nil
		}
	}
	return nil, 0, err
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
	if id == f.n.host.ID() || f.payloads.Has(hash) {
		if b, err := f.payloads.Get(hash, size); err == nil {
			return b, nil
		}
	}
	b, err := f.n.host.FetchBlob(ctx, id, hash, size)
	if err != nil {
		return nil, err
	}
	if _, _, err := f.payloads.Put(ctx, bytes.NewReader(b)); err != nil {
		f.n.log.Warn("cache payload", "err", err)
	}
	return b, nil
}

// validator admits offers and bids into the book; the book's verdict on
// a refused one decides whether the sender is penalised.
func (m *marketService) validator(kind market.Kind) func(context.Context, peer.ID, []byte) (any, p2p.Result) {
	return func(_ context.Context, from peer.ID, data []byte) (any, p2p.Result) {
		if from == m.n.host.ID() {
			return nil, p2p.Accept // ours: already in the book
		}
		err := m.book.Add(kind, data, time.Now().UnixMilli())
		switch market.VerdictOf(err) {
		case market.Accept:
			return nil, p2p.Accept
		case market.Ignore:
			return nil, p2p.Ignore
		case market.Refuse: // unfunded or unbacked: a light, decaying penalty
			return err, p2p.Refuse
		}
		m.n.log.Debug("refused market message", "kind", kind, "err", err)
		return nil, p2p.Reject
	}
}

func (m *marketService) start(ctx context.Context) {
	m.ctx, m.cancel = context.WithCancel(ctx)
	m.resume()
	m.wg.Add(1)
	go m.loop()
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
	me := m.n.key.Address()
	var open []market.Match
	err = m.n.drv.State().Matches(func(r chain.Match) error {
		if r.Status == chain.MatchOpen && r.Match.Offer.ProviderAddress() == me {
			open = append(open, r.Match)
		}
		return nil
	})
	if err != nil {
		m.n.log.Warn("resume provider jobs", "err", err)
	}
	for _, mt := range open {
		m.n.log.Info("resuming a matched job after restart", "job", mt.Bid.ID().String())
		m.startJob(mt)
	}
}

func (m *marketService) close(ctx context.Context) {
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.wg.Wait()
	if m.runtime != nil {
		m.runtime.Close(ctx)
	}
	m.verify.close(ctx)
	m.blobs.Close()
}

// loop owns the periodic work: the offer heartbeat, pruning the book, and
// re-gossiping our open bids (a proposer that joined late has not seen
// them).
func (m *marketService) loop() {
	defer m.wg.Done()
	interval := m.n.cfg.Provider.OfferInterval.Duration
	if interval <= 0 {
		interval = 2 * time.Second
	}
	offerT := time.NewTicker(interval)
	defer offerT.Stop()
	bidT := time.NewTicker(bidRegossip)
	defer bidT.Stop()
	m.publishOffer()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-offerT.C:
			m.book.Prune(time.Now().UnixMilli())
			m.publishOffer()
		case <-bidT.C:
			m.regossipBids()
		}
	}
}

// publishOffer signs and gossips this provider's offer with its live load.
func (m *marketService) publishOffer() {
	n := m.n
	if m.runtime == nil {
		return
	}
	pc := n.cfg.Provider
	load := m.runtime.Load()
	m.mu.Lock()
	m.seq++
	seq := m.seq
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
	now := time.Now().UnixMilli()
	o := &market.Offer{
		Provider: n.key.Public(),
		PeerID:   n.host.ID().String(),
		// Seq must grow across restarts: the clock in ms, then a counter.
		Seq:       uint64(now)*16 + seq%16,
		Expires:   now + 3*pc.OfferInterval.Milliseconds(),
		Total:     market.Resources{CPU: pc.CPU, MemMiB: pc.MemoryMiB, DiskMiB: pc.DiskMiB},
		Free:      market.Resources{CPU: uint64(max(load.Free.CPU, 0)), MemMiB: uint64(max(load.Free.MemoryMiB, 0)), DiskMiB: uint64(max(load.Free.DiskMiB, 0))},
		Load:      uint32(load.Utilisation() * 1000),
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
		return
	}
	if err := m.offerTopic.Publish(m.ctx, raw); err != nil && m.ctx.Err() == nil {
		n.log.Debug("publish offer", "err", err)
	}
}

func (m *marketService) regossipBids() {
	for _, j := range m.jobStore.inState(api.StateBidding) {
		if j.bid == nil {
			continue
		}
		if raw, err := j.bid.Encode(); err == nil {
			if err := m.bidTopic.Publish(m.ctx, raw); err != nil && m.ctx.Err() == nil {
				m.n.log.Debug("regossip bid", "job", j.ID, "err", err)
			}
		}
	}
}

// proposerTxs is the proposer's matcher: it places the book's bids on its
// offers and turns each placement into a Match transaction signed by this
// node, with the nonces that follow the node's transactions already in
// the block.
func (m *marketService) proposerTxs(st *chain.State, height uint64, blockTime int64, taken [][]byte) [][]byte {
	snap := m.book.RoundSnapshot() // the matcher samples a large book
	if len(snap.Bids) == 0 || len(snap.Offers) == 0 {
		return nil
	}
	g := st.Globals()
	matches := m.matcher.Match(snap, st.View(), blockTime, g.LastBlockHash, maxMatchesPerBlock)
	if len(matches) == 0 {
		return nil
	}
	n := m.n
	acc, err := st.Account(n.key.Address())
	if err != nil {
		return nil
	}
	nonce := acc.Nonce
	for _, raw := range taken {
		if tx, err := chain.DecodeTx(raw); err == nil && tx.SenderAddress() == n.key.Address() && tx.Nonce >= nonce {
			nonce = tx.Nonce + 1
		}
	}
	out := make([][]byte, 0, len(matches))
	for i := range matches {
		tx := &chain.Tx{ChainID: n.cfg.ChainID, Sender: n.key.Public(), Nonce: nonce, Match: &matches[i]}
		if err := tx.Sign(n.key); err != nil {
			continue
		}
		raw, err := tx.Encode()
		if err != nil {
			continue
		}
		out = append(out, raw)
		nonce++
	}
	n.log.Debug("proposing matches", "height", height, "matches", len(out))
	return out
}

// onCommit follows the jobs this node is part of through a committed
// block: matches start provider work and move client jobs on; settlements
// pay; bids past their deadline expire.
func (m *marketService) onCommit(c driver.Committed) {
	now := time.Now().UnixMilli()
	blockTime := c.Block.Header.Time
	me := m.n.key.Address()
	var closed []market.BidID
	for i, raw := range c.Block.Txs {
		r := c.Result.TxResults[i]
		if r.Code != 0 {
			continue
		}
		tx, err := chain.DecodeTx(raw)
		if err != nil {
			continue
		}
		switch {
		case tx.Match != nil:
			mt := tx.Match
			id := mt.Bid.ID()
			closed = append(closed, id)
			if j := m.jobStore.get(hex.EncodeToString(id[:])); j != nil {
				m.update(j, func(j *jobRecord) {
					j.State = api.StateMatched
					j.MatchHeight = c.Block.Header.Height
					j.Provider = mt.Offer.ProviderAddress().String()
					j.MatchID = hex.EncodeToString(id[:])
					j.Escrowed = mt.Escrow()
					j.ProviderPeer = mt.Offer.PeerID
				})
			}
			if mt.Offer.ProviderAddress() == me && m.runtime != nil {
				m.startJob(*mt)
			}
		case tx.BidCancel != nil:
			closed = append(closed, tx.BidCancel.Bid.ID())
		}
		for _, ev := range r.Events {
			m.onEvent(ev, c)
		}
	}
	for _, ev := range c.Result.Events {
		m.onEvent(ev, c)
	}
	if len(closed) > 0 {
		m.book.Close(now, closed...)
	}
	m.book.Recheck(recheckPerBlock) // entries whose funds or collateral are gone leave
	// Bids that reached their match-by time without a match expire, with
	// the explanation of why no offer took them.
	for _, j := range m.jobStore.inState(api.StateBidding) {
		if j.bid != nil && blockTime >= j.bid.MatchBy {
			reasons := m.explain(j.bid, m.n.drv.State(), blockTime)
			m.update(j, func(j *jobRecord) {
				j.State = api.StateExpired
				j.Unmatched = reasons
				j.Error = "no offer matched before the deadline: " + summarize(reasons)
			})
		}
	}
}

func (m *marketService) onEvent(ev chain.Event, c driver.Committed) {
	id := hex.EncodeToString(ev.JobID[:])
	j := m.jobStore.get(id)
	if j == nil {
		m.onProviderEvent(ev)
		return
	}
	st := m.n.drv.State()
	rec, _, _ := st.Match(ev.JobID)
	switch ev.Type {
	case chain.EvCompleted, chain.EvFailed:
		m.update(j, func(j *jobRecord) {
			j.State = api.StateResultCommitted
			j.ResultHash = hex.EncodeToString(rec.ResultHash[:])
			code := int(rec.ExitCode)
			j.ExitCode = &code
			j.Paid, j.Refunded = rec.Paid, rec.Refunded
			if ev.Type == chain.EvFailed {
				j.Error = fmt.Sprintf("the job failed on the provider (exit code %d)", code)
			}
		})
		m.spawn(func() { m.fetchResult(id, rec.ResultHash, ev.Type == chain.EvFailed) })
	case chain.EvTimedOut:
		m.update(j, func(j *jobRecord) {
			j.State = api.StateTimedOut
			j.Refunded, j.Slashed = rec.Refunded, rec.Slashed
			j.Error = "the provider sent no result before the deadline: escrow refunded, provider collateral slashed"
		})
	case chain.EvCancelled:
		m.update(j, func(j *jobRecord) { j.State = api.StateCancelled })
	}
	m.onProviderEvent(ev)
}

// onProviderEvent folds a settled job of this provider into the totals and
// drops its record; the chain keeps the match and its result hash.
func (m *marketService) onProviderEvent(ev chain.Event) {
	var state string
	var earned, slashed uint64
	switch ev.Type {
	case chain.EvCompleted:
		state, earned = api.StatePaid, ev.Amount
	case chain.EvFailed:
		state, earned = api.StateFailed, ev.Amount
	case chain.EvTimedOut:
		state, slashed = api.StateTimedOut, ev.Amount
	default:
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	id := market.BidID(ev.JobID)
	if m.provJobs[id] == nil {
		return
	}
	delete(m.provJobs, id)
	t := &m.provSettled
	t.byState[state]++
	t.earned += earned
	t.slashed += slashed
}

// fetchResult downloads a settled job's result from its provider and
// checks it against the hash committed on chain before keeping it.
func (m *marketService) fetchResult(id string, hash [32]byte, failed bool) {
	j := m.jobStore.get(id)
	if j == nil {
		return
	}
	var err error
	for attempt := 0; attempt < 5 && m.ctx.Err() == nil; attempt++ {
		if err = m.fetchOnce(j, hash); err == nil {
			break
		}
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(time.Duration(attempt+1) * 300 * time.Millisecond):
		}
	}
	m.update(j, func(j *jobRecord) {
		if err != nil {
			j.Error = strings.TrimSpace(j.Error + "; result not fetched: " + err.Error())
		}
		if failed {
			j.State = api.StateFailed
		} else {
			j.State = api.StatePaid
		}
	})
}

func (m *marketService) fetchOnce(j *jobRecord, hash [32]byte) error {
	if hash == ([32]byte{}) {
		return errors.New("the provider stored no result")
	}
	// Results are content addressed: the same result fetched before, or
	// one this node produced as the provider, is already here.
	for _, st := range []*worker.Store{m.payloads, m.results} {
		if rc, size, err := st.Open(hash); err == nil {
			rc.Close()
			m.update(j, func(j *jobRecord) { j.ResultSize = size })
			return nil
		}
	}
	pid, err := peer.Decode(j.ProviderPeer)
	if err != nil {
		return fmt.Errorf("provider peer: %w", err)
	}
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	data, err := m.n.host.FetchBlob(ctx, pid, hash, maxResultBytes)
	if err != nil {
		return err
	}
	got, size, err := m.payloads.Put(ctx, strings.NewReader(string(data)))
	if err != nil {
		return err
	}
	if got != hash {
		return errors.New("result does not match the hash committed on chain")
	}
	m.update(j, func(j *jobRecord) { j.ResultSize = size })
	return nil
}

// startJob runs a job matched to this provider and posts its Result.
func (m *marketService) startJob(mt market.Match) {
	id := mt.Bid.ID()
	m.mu.Lock()
	if m.provJobs[id] != nil {
		m.mu.Unlock()
		return
	}
	m.provJobs[id] = &provJob{Match: mt, State: api.StateRunning}
	m.mu.Unlock()
	m.spawn(func() { m.runJob(mt) })
}

// spawn runs f in a goroutine the service waits for on close, unless the
// service is closing: commits keep arriving while it closes, and a
// goroutine added after close began waiting would be neither waited for
// nor given a live context.
func (m *marketService) spawn(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// workerJob is the job a bid describes, as a provider runs it (and as a
// client re-runs it to verify the result): the same inputs, limits and
// seed, so a WASM job gives the same result hash.
func workerJob(b *market.Bid) *worker.Job {
	id := b.ID()
	job := &worker.Job{
		ID:       worker.JobID(id),
		Executor: worker.Kind(b.Executor),
		Image:    b.Payload.Image,
		Args:     b.Args,
		Env:      map[string]string{},
		Limits: worker.Limits{
			Resources: worker.Resources{CPU: int64(b.Resources.CPU), MemoryMiB: int64(b.Resources.MemMiB), DiskMiB: int64(b.Resources.DiskMiB)},
			Timeout:   time.Duration(b.TimeoutMs) * time.Millisecond,
		},
		Seed: seedOf(id),
	}
	if len(b.Payload.SHA256) == 32 {
		job.PayloadHash = [32]byte(b.Payload.SHA256)
		job.PayloadSize = int64(b.Payload.Size)
		job.PayloadFrom = b.Payload.Peer
	}
	for _, kv := range b.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			job.Env[k] = v
		}
	}
	return job
}

func (m *marketService) runJob(mt market.Match) {
	n := m.n
	id := mt.Bid.ID()
	job := workerJob(&mt.Bid)
	// A cold compile is not the client's time, but the result must still
	// reach the chain before the deadline (timeout + grace from the match).
	job.Limits.Prep = time.Duration(n.drv.State().Params().ResultGraceMs/2) * time.Millisecond
	// The payload comes from the client's node; right after a start the
	// connection may not be up yet, so retry a few times before failing.
	if b, ok := m.modules.get(job.PayloadHash); ok && job.PayloadHash != ([32]byte{}) {
		job.Payload, job.PayloadVerified = b, true
	} else if job.PayloadHash != ([32]byte{}) {
		var err error
		for attempt := 0; attempt < 6 && m.ctx.Err() == nil; attempt++ {
			if job.Payload, err = m.runtime.FetchPayload(m.ctx, job.PayloadHash, job.PayloadSize, job.PayloadFrom); err == nil {
				// FetchPayload checked the hash.
				job.PayloadVerified = true
				m.modules.put(job.PayloadHash, job.Payload)
				break
			}
			select {
			case <-m.ctx.Done():
			case <-time.After(time.Duration(attempt+1) * 250 * time.Millisecond):
			}
		}
		if err != nil {
			n.log.Warn("payload fetch failed", "job", hex.EncodeToString(id[:8]), "err", err)
		}
	}
	res, err := m.runtime.Run(m.ctx, job)
	if m.ctx.Err() != nil {
		return // shutting down: the chain settles the match by its deadline
	}
	rt := chain.ResultTx{JobID: id, ExitCode: 1}
	if err != nil && res == nil {
		n.log.Warn("job could not run", "job", hex.EncodeToString(id[:8]), "err", err)
	}
	if res != nil {
		rt.ResultHash = res.Hash
		rt.ExitCode = int32(res.ExitCode)
		if res.State != worker.StateSucceeded && rt.ExitCode == 0 {
			rt.ExitCode = 1
		}
		rt.Usage = market.Usage{CPUMs: uint64(res.Usage.CPUMillis), MemMiBMs: uint64(res.Usage.MemoryMiBSeconds) * 1000}
		if res.Hash != ([32]byte{}) {
			m.blobs.Publish(res.Hash)
		}
	}
	m.mu.Lock()
	if pj := m.provJobs[id]; pj != nil {
		pj.State = api.StateResultCommitted
		if res != nil {
			pj.ResultHash = res.Hash
		}
	}
	m.mu.Unlock()
	if res != nil && n.metrics != nil {
		n.metrics.execDuration.WithLabelValues(string(res.Executor), string(res.State)).Observe(float64(res.Usage.WallMillis) / 1000)
	}
	if _, _, err := n.txs.submit(m.ctx, func(tx *chain.Tx) { tx.Result = &rt }); err != nil {
		n.log.Warn("submit result", "job", hex.EncodeToString(id[:8]), "err", err)
	}
}

func seedOf(id market.BidID) uint64 {
	var s uint64
	for _, b := range id[:8] {
		s = s<<8 | uint64(b)
	}
	return s
}

// explain turns the matcher's reasons into the API's per-offer fits.
func (m *marketService) explain(b *market.Bid, st *chain.State, blockTime int64) []api.OfferFit {
	var out []api.OfferFit
	for _, r := range m.matcher.Explain(b, m.book.Snapshot(), st.View(), blockTime) {
		f := api.OfferFit{Fits: r.Fits, Price: r.Price}
		if r.Offer != (market.OfferID{}) {
			f.OfferID = r.Offer.String()
			f.Provider = r.Offer.Provider.String()
		}
		for _, fl := range r.Failures {
			f.Reasons = append(f.Reasons, fmt.Sprintf("%s: %s", fl.Code, fl.Detail))
		}
		out = append(out, f)
	}
	return out
}

func summarize(fits []api.OfferFit) string {
	if len(fits) == 0 {
		return "no provider offers capacity right now ('bourse market offers' lists them)"
	}
	var parts []string
	for _, f := range fits {
		who := f.Provider
		if who == "" {
			who = "bid"
		}
		if !f.Fits {
			parts = append(parts, who+": "+strings.Join(f.Reasons, ", "))
		}
	}
	if len(parts) == 0 {
		return "offers fit but no block matched it in time"
	}
	return strings.Join(parts, "; ")
}

func parseHash(s string) ([32]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return [32]byte{}, errors.New("hash must be 64 hex digits")
	}
	return [32]byte(b), nil
}
