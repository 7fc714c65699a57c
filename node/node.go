package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/chain/mempool"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/p2p"
	"github.com/bourse-net/bourse/wallet"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Version of the node software, set by the CLI at build time.
var Version = "dev"

// DataDir is where the chain store lives inside the home.
const DataDir = "data"

// Options are the inputs of New besides the home's files.
type Options struct {
	// Home is the node home (config.toml, keys, genesis, data).
	Home string
	// Passphrase unlocks the wallet key named in the config.
	Passphrase string
	// Logger; nil means a text logger on stderr (and the config's log file)
	// at the config's level.
	Logger *slog.Logger
	// LogOutput receives the log when Logger is nil; nil means os.Stderr.
	LogOutput io.Writer
	// LogLevel, when set (debug, info, warn or error), overrides the
	// config's [log] level (the CLI's --log-level).
	LogLevel string
	// Config overrides config.toml when set (tests).
	Config *Config
}

// Node is one Bourse daemon: a client always, a validator when it holds
// bonded stake, a provider when its config sells capacity.
type Node struct {
	home    string
	cfg     Config
	log     *slog.Logger
	logFile *os.File
	key     wallet.PrivateKey
	genesis []byte

	reg   *prometheus.Registry
	host  *p2p.Host
	store *store.Store
	drv   *driver.Driver

	topics  map[string]*p2p.Topic
	subs    []*p2p.Subscription
	txs     *txSender
	events  *eventHub
	market  *marketService
	svc     *serviceManager
	metrics *metrics

	api   *httpapi.Server
	apiLn net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New opens a node: it reads the configuration and genesis, unlocks the
// wallet key, opens the store, starts the libp2p host and builds the chain
// driver. Nothing runs until Start.
func New(ctx context.Context, o Options) (n *Node, err error) {
	cfg := DefaultConfig()
	if o.Config != nil {
		cfg = *o.Config
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	} else {
		if cfg, err = LoadConfig(filepath.Join(o.Home, ConfigFile)); err != nil {
			return nil, err
		}
	}
	n = &Node{home: o.Home, cfg: cfg, topics: map[string]*p2p.Topic{}, reg: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			n.closeParts()
		}
	}()
	if err := n.setupLog(o); err != nil {
		return nil, err
	}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if n.key, err = Keystore(o.Home).Unlock(cfg.Wallet.Key, o.Passphrase); err != nil {
		if errors.Is(err, wallet.ErrWrongPassphrase) {
			return nil, fmt.Errorf("unlock wallet key %q: wrong passphrase (set BOURSE_PASSPHRASE or --passphrase-file)", cfg.Wallet.Key)
		}
		return nil, fmt.Errorf("unlock wallet key: %w", err)
	}
	gpath := cfg.Chain.Genesis
	if !filepath.IsAbs(gpath) {
		gpath = filepath.Join(o.Home, gpath)
	}
	if n.genesis, err = os.ReadFile(gpath); err != nil {
		return nil, fmt.Errorf("read genesis: %w (a node needs the chain's genesis.json in its home; 'bourse testnet up' writes one)", err)
	}
	g, err := chain.ParseGenesis(n.genesis)
	if err != nil {
		return nil, fmt.Errorf("genesis %s: %w", gpath, err)
	}
	if g.ChainID != cfg.ChainID {
		return nil, fmt.Errorf("genesis is for chain %q but config.toml says chain_id = %q", g.ChainID, cfg.ChainID)
	}

	if n.store, err = store.Open(filepath.Join(o.Home, DataDir)); err != nil {
		return nil, err
	}
	idKey, err := p2p.LoadIdentity(filepath.Join(o.Home, NodeKeyFile))
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	pcfg := cfg.P2P
	pcfg.Registerer = n.reg
	if n.host, err = p2p.New(ctx, pcfg, cfg.ChainID, idKey, n.log); err != nil {
		return nil, fmt.Errorf("start p2p host: %w", err)
	}
	n.txs = newTxSender(n)
	n.events = newEventHub()
	n.drv, err = driver.New(driver.Config{
		GenesisJSON: n.genesis,
		Key:         n.key,
		Logger:      n.log,
		OnEvidence:  n.submitEvidence,
		ProposerTxs: n.proposerTxs,

		CheckInvariants: n.cfg.Chain.CheckInvariants,
		Mempool:         n.cfg.Chain.mempool,
	}, n.store, (*transport)(n))
	if err != nil {
		return nil, err
	}
	if n.market, err = newMarketService(n); err != nil {
		return nil, err
	}
	if n.svc, err = newServiceManager(n); err != nil {
		return nil, err
	}
	n.metrics = newMetrics(n)
	if err := n.joinTopics(); err != nil {
		return nil, err
	}
	if err := n.host.Handle(p2p.ProtoSync, 256, func(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) {
		return n.drv.HandleSync(ctx, req)
	}); err != nil {
		return nil, err
	}
	tok, err := ReadAPIToken(o.Home)
	if err != nil {
		return nil, err
	}
	apiOpts := httpapi.Options{
		MaxUpload: int64(cfg.API.MaxUploadMiB) << 20,
		Gatherer:  n.reg,
		Logger:    n.log,
	}
	if cfg.API.TLS {
		cert, err := LoadAPICert(o.Home, cfg)
		if err != nil {
			return nil, err
		}
		apiOpts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	}
	n.api, err = httpapi.New((*backend)(n), tok, apiOpts)
	if err != nil {
		return nil, err
	}
	if n.apiLn, err = net.Listen("tcp", cfg.API.Listen); err != nil {
		return nil, fmt.Errorf("api listen %s: %w (is another daemon running with this home? change api.listen in config.toml)", cfg.API.Listen, err)
	}
	return n, nil
}

func (n *Node) setupLog(o Options) error {
	if o.Logger != nil {
		n.log = o.Logger
		return nil
	}
	level := n.cfg.Log.Level
	if o.LogLevel != "" {
		level = o.LogLevel
	}
	var lvl slog.Level
	switch level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	out := o.LogOutput
	if out == nil {
		out = os.Stderr
	}
	if n.cfg.Log.File != "" {
		p := n.cfg.Log.File
		if !filepath.IsAbs(p) {
			p = filepath.Join(o.Home, p)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		n.logFile = f
		out = io.MultiWriter(out, f)
	}
	n.log = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: lvl}))
	return nil
}

// Start runs the node's loops and the API. It writes daemon.pid.
func (n *Node) Start(ctx context.Context) error {
	n.ctx, n.cancel = context.WithCancel(ctx)
	if err := writePID(n.home); err != nil {
		return err
	}
	n.drv.Start(n.ctx)
	n.market.start(n.ctx)
	n.svc.start(n.ctx)
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.forwardCommits()
	}()
	go func() {
		defer n.wg.Done()
		trimMemory(n.ctx)
	}()
	go func() {
		defer n.wg.Done()
		if err := n.api.Serve(n.ctx, n.apiLn); err != nil && n.ctx.Err() == nil {
			n.log.Error("api stopped", "err", err)
		}
	}()
	n.log.Info("node started", "chain", n.cfg.ChainID, "height", n.drv.Height()-1, "peer", n.host.ID(),
		"address", n.key.Address(), "api", n.apiLn.Addr(), "roles", strings.Join(n.roles(), ","))
	return nil
}

// Run starts the node and blocks until ctx ends or the chain halts, then
// shuts down gracefully.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(ctx); err != nil {
		n.Close(context.Background())
		return err
	}
	halted := make(chan struct{})
	go func() {
		for n.ctx.Err() == nil && n.drv.Err() == nil {
			select {
			case <-n.ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		close(halted)
	}()
	<-halted
	n.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(sctx); err != nil {
		return err
	}
	return n.drv.Err()
}

// Close stops taking work, finishes or hands back running jobs, stops the
// chain, flushes the store and closes the host. Safe to call twice.
func (n *Node) Close(ctx context.Context) error {
	n.closeOnce.Do(func() {
		if n.cancel != nil {
			n.cancel()
		}
		if n.svc != nil {
			n.svc.close()
		}
		if n.market != nil {
			n.market.close(ctx)
		}
		if n.drv != nil {
			if err := n.drv.Close(); err != nil {
				n.closeErr = err
			}
		}
		for _, s := range n.subs {
			s.Cancel()
		}
		n.wg.Wait()
		n.closeParts()
		os.Remove(filepath.Join(n.home, PIDFile))
	})
	return n.closeErr
}

func (n *Node) closeParts() {
	if n.apiLn != nil {
		n.apiLn.Close()
	}
	if n.host != nil {
		n.host.Close()
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil && n.closeErr == nil {
			n.closeErr = err
		}
	}
	if n.logFile != nil {
		n.logFile.Close()
	}
}

func writePID(home string) error {
	p := filepath.Join(home, PIDFile)
	if b, err := os.ReadFile(p); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && processAlive(pid) && pid != os.Getpid() {
			return fmt.Errorf("a daemon (pid %d) is already running with home %s; stop it first", pid, home)
		}
	}
	return os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

// roles the node plays now.
func (n *Node) roles() []string {
	r := []string{"client"}
	if _, ok := n.drv.Validators().ByAddress(n.key.Address()); ok {
		r = append(r, "validator")
	}
	if n.cfg.Provider.Enabled {
		r = append(r, "provider")
	}
	return r
}

// Address is the node's wallet address.
func (n *Node) Address() wallet.Address { return n.key.Address() }

// Host is the node's libp2p host.
func (n *Node) Host() *p2p.Host { return n.host }

// Driver is the node's chain driver.
func (n *Node) Driver() *driver.Driver { return n.drv }

// APIAddr is where the HTTP API listens.
func (n *Node) APIAddr() string { return n.apiLn.Addr().String() }

// transport adapts the libp2p host to the driver.
type transport Node

func (t *transport) Broadcast(ctx context.Context, topic string, data []byte) error {
	tp := t.topics[topic]
	if tp == nil {
		return fmt.Errorf("topic %s not joined", topic)
	}
	return tp.Publish(ctx, data)
}

func (t *transport) Peers() []string {
	ps := t.host.Peers()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID.String()
	}
	return out
}

func (t *transport) Request(ctx context.Context, p, proto string, req []byte, maxResp int) ([]byte, error) {
	id, err := peer.Decode(p)
	if err != nil {
		return nil, err
	}
	return t.host.Request(ctx, id, proto, req, maxResp)
}

// joinTopics joins the gossip topics with their validators and starts the
// consumers that carry accepted messages to their owners.
func (n *Node) joinTopics() error {
	cons, err := n.host.Join(p2p.TopicConsensus, p2p.ValidatorFunc(func(_ context.Context, _ peer.ID, data []byte) (any, p2p.Result) {
		m, v, _ := n.drv.ValidateGossip(data)
		switch v {
		case driver.Accept:
			return m, p2p.Accept
		case driver.Ignore:
			return nil, p2p.Ignore
		}
		return nil, p2p.Reject
	}))
	if err != nil {
		return err
	}
	n.topics[p2p.TopicConsensus] = cons
	txs, err := n.host.Join(p2p.TopicTxs, p2p.ValidatorFunc(n.validateTxBatch))
	if err != nil {
		return err
	}
	n.topics[p2p.TopicTxs] = txs
	if err := n.consume(cons, func(m p2p.Message) {
		if cm, ok := m.Decoded.(consensus.Message); ok && !m.Local {
			n.drv.HandleGossip(cm)
		}
	}); err != nil {
		return err
	}
	// Transactions enter the mempool in the validator; the subscription
	// only keeps the topic's mesh alive for this node.
	return n.consume(txs, func(p2p.Message) {})
}

// consume subscribes to a topic and hands every message to f on a
// goroutine owned by the node.
func (n *Node) consume(t *p2p.Topic, f func(p2p.Message)) error {
	sub, err := t.Subscribe()
	if err != nil {
		return err
	}
	n.subs = append(n.subs, sub)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for m := range sub.C {
			f(m)
		}
	}()
	return nil
}

// validateTxBatch admits a batch of transactions from gossip into the
// mempool: Accept (forward) when the mempool says the batch may travel
// on (something new, every signature checked; see
// Mempool.AddRelayedForward), Ignore otherwise (known, or stale against
// this node's state: an honest relay may be a block behind), Reject when
// the batch or a transaction in it is malformed or badly signed, which no
// state can make valid.
func (n *Node) validateTxBatch(_ context.Context, from peer.ID, data []byte) (any, p2p.Result) {
	raws, err := mempool.DecodeTxBatch(data)
	if err != nil || len(raws) == 0 {
		return nil, p2p.Reject
	}
	if from == n.host.ID() {
		return nil, p2p.Accept // our own: already in the mempool
	}
	// One decode per transaction: the mempool's. A relay may see one
	// sender's batches out of nonce order; the mempool parks the later
	// ones until the gap fills.
	_, errs, forward := n.drv.Mempool().AddRelayedForward(raws)
	for _, err := range errs {
		if errors.Is(err, chain.ErrBadSignature) || errors.Is(err, mempool.ErrUndecodable) {
			return nil, p2p.Reject
		}
	}
	if !forward {
		return nil, p2p.Ignore
	}
	return nil, p2p.Accept
}

func (n *Node) submitEvidence(ev consensus.DuplicateVoteEvidence) {
	raw, err := consensus.EncodeEvidence(&ev)
	if err != nil {
		return
	}
	if _, _, err := n.txs.submit(n.ctx, func(tx *chain.Tx) { tx.Evidence = &chain.EvidenceTx{Data: raw} }); err != nil {
		n.log.Warn("submit evidence", "err", err)
	}
}

func (n *Node) proposerTxs(st *chain.State, height uint64, blockTime int64, taken [][]byte) [][]byte {
	txs := n.market.proposerTxs(st, height, blockTime, taken)
	return append(txs, n.svc.proposerTxs(st, height, blockTime, append(taken[:len(taken):len(taken)], txs...))...)
}

// forwardCommits turns committed blocks into API events and hands them to
// the market service.
func (n *Node) forwardCommits() {
	ch, cancel := n.drv.SubscribeAll(1024)
	defer cancel()
	for {
		select {
		case <-n.ctx.Done():
			return
		case c, ok := <-ch:
			if !ok {
				return
			}
			n.txs.onCommit(c)
			n.metrics.observe(c)
			n.market.onCommit(c)
			n.svc.onCommit(c)
			n.metrics.jobStates(n.market)
			if n.events.listened() {
				n.events.publish(eventBlock(blockView(c.Block, c.Commit, c.Result)))
			}
		}
	}
}
