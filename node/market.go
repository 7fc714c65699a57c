package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/internal/clock"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/lifecycle"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/worker"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits of the market service.
const (
	maxMatchesPerBlock = 256
	maxResultBytes     = 256 << 20
	bidRegossip        = 2 * time.Second
	recheckPerBlock    = 2048 // clients and providers the book re-checks against chain state per block
	// perClientStore is one client's quota in a provider's stores of
	// payloads it fetched and results it made: above the largest payload
	// (market.MaxPayloadSize) and result (maxResultBytes) a bid can name.
	perClientStore = 1 << 30
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
	foreign              *worker.Store // other clients' payloads this provider fetched: a quota of their own
	results              *worker.Store // the provider's results
	blobs                *p2p.BlobServer
	jobStore             *jobStore       // the client's job records on disk
	persist              *persister      // writes them off the block path
	runtime              *worker.Runtime // nil unless the node is a provider
	host                 hostLoad        // the machine's measured load, for offers
	verify               verifier        // re-runs the client's WASM jobs on request
	checked              checkedSet      // stored payloads that passed the submit check
	modules              *modCache       // verified payloads recently run

	clock clock.Clock // the lifecycle's time and timers

	// lmu serialises the lifecycle core's steps and the execution of
	// their actions, so actions take effect in the order they were made.
	lmu  sync.Mutex
	core *lifecycle.Core

	mu           sync.Mutex
	seq          uint64                              // offers signed (the low bits of an offer Seq)
	lastOfferSeq uint64                              // Seq of the last offer signed
	runs         map[market.BidID]context.CancelFunc // the provider's runs, stopped by CancelRun
	manifests    map[market.BidID]*market.Manifest   // fetched for matched jobs, taken by runJob
	closing      bool                                // close has begun: spawn starts nothing

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newMarketService(n *Node) (*marketService, error) {
	m := &marketService{n: n, clock: clock.Real(), runs: map[market.BidID]context.CancelFunc{}, manifests: map[market.BidID]*market.Manifest{},
		modules: newModCache(16, 512<<20),
		core:    lifecycle.New(lifecycle.Config{Self: n.key.Address(), Provider: n.cfg.Provider.Enabled, HoldAck: n.cfg.HoldAck})}
	var err error
	bookCfg := market.DefaultBookConfig(n.cfg.ChainID)
	bookCfg.View = func() market.ChainView { return n.drv.State().View() } // admission against the current state
	if m.book, err = market.NewBook(bookCfg); err != nil {
		return nil, err
	}
	if m.payloads, err = worker.OpenStore(filepath.Join(n.home, "payloads"), worker.StoreConfig{MaxBytes: 4 << 30, Logger: n.log}); err != nil {
		return nil, fmt.Errorf("payload store: %w", err)
	}
	// Other parties' payloads have their own store, so they can never
	// evict this node's own payloads and results; in it, and in the
	// store of the results this provider makes, each client has a quota
	// (worker.Store), so one client cannot evict another's either.
	if m.foreign, err = worker.OpenStore(filepath.Join(n.home, "foreign-payloads"), worker.StoreConfig{MaxBytes: 4 << 30, MaxBytesPerOwner: perClientStore, Logger: n.log}); err != nil {
		return nil, fmt.Errorf("foreign payload store: %w", err)
	}
	if m.results, err = worker.OpenStore(filepath.Join(n.home, "results"), worker.StoreConfig{MaxBytes: 4 << 30, MaxBytesPerOwner: perClientStore, Logger: n.log}); err != nil {
		return nil, fmt.Errorf("result store: %w", err)
	}
	if m.blobs, err = p2p.NewBlobServer(n.host, unionSource{m.payloads, m.results}, maxResultBytes); err != nil {
		return nil, err
	}
	if !n.cfg.PublicBlobs {
		m.blobs.SetAuthorizer((*blobAuth)(m)) // see blobauth.go
	}
	if m.jobStore, err = openJobStore(filepath.Join(n.home, "jobs")); err != nil {
		return nil, err
	}
	m.persist = newPersister(m.jobStore, m.persistFailed, m.logPersistFailed)
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

// validator admits offers and bids into the book; the book's verdict on
// a refused one decides whether the sender is penalised.
func (m *marketService) validator(kind market.Kind) func(context.Context, peer.ID, []byte) (any, p2p.Result) {
	return func(_ context.Context, from peer.ID, data []byte) (any, p2p.Result) {
		if from == m.n.host.ID() {
			return nil, p2p.Accept // ours: already in the book
		}
		// The book counts a bid against the peer that delivered it first
		// (its share, BookConfig.MaxBidsPerPeer).
		err := m.book.AddFrom(kind, data, from.String(), time.Now().UnixMilli())
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
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.persist.run(m.ctx)
	}()
	m.restore()
	m.resume()
	m.wg.Add(1)
	go m.loop()
}

// restore hands the core the client's jobs from disk; their payloads stay
// served.
func (m *marketService) restore() {
	jobs, err := m.jobStore.load()
	if err != nil {
		m.n.log.Error("read the job records: jobs not restored", "err", err)
	}
	for _, j := range jobs {
		public := j.Bid != nil && j.Bid.Public
		if h, err := parseHash(j.PayloadHash); err == nil {
			m.publish(h, public)
		}
		if j.Bid != nil {
			if h, ok := j.Bid.Payload.ManifestHash(); ok {
				m.publish(h, public)
			}
		}
	}
	m.step(lifecycle.Restore{Jobs: jobs})
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
			m.book.Prune(m.clock.Now().UnixMilli())
			m.publishOffer()
		case <-bidT.C:
			m.regossipBids()
		}
	}
}

func (m *marketService) regossipBids() {
	var bids []*market.Bid
	m.withCore(func(c *lifecycle.Core) { bids = c.Bidding() })
	for _, b := range bids {
		raw, err := b.Encode()
		if err != nil {
			m.n.log.Error("encode a bid to regossip", "bid", b.ID().String(), "err", err)
			continue
		}
		if err := m.bidTopic.Publish(m.ctx, raw); err != nil && m.ctx.Err() == nil {
			m.n.log.Debug("regossip bid", "bid", b.ID().String(), "err", err)
		}
	}
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
