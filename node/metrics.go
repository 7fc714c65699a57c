package node

import (
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/lifecycle"
	"github.com/bourse-net/bourse/worker"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's own Prometheus series, served at /metrics with
// the p2p host's, Go's and the process's.
type metrics struct {
	height        prometheus.GaugeFunc
	blockInterval prometheus.Histogram
	commitRound   prometheus.Histogram
	blockTxs      prometheus.Histogram
	mempoolTxs    prometheus.GaugeFunc
	mempoolBytes  prometheus.GaugeFunc
	gossipDropped prometheus.CounterFunc
	sigsVerified  prometheus.CounterFunc
	matches       prometheus.Counter
	settlements   *prometheus.CounterVec
	jobs          *prometheus.GaugeVec
	execDuration  *prometheus.HistogramVec
	verified      *prometheus.CounterVec
	persistErrors prometheus.Counter

	lastBlockTime int64
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		height: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bourse_chain_height", Help: "Last committed block height."},
			func() float64 { return float64(n.store.Height()) }),
		blockInterval: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bourse_chain_block_interval_seconds",
			Help: "BFT time between consecutive blocks.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		commitRound: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bourse_consensus_commit_round",
			Help: "Consensus round in which each block was decided (0 is the happy path).", Buckets: []float64{0, 1, 2, 3, 5, 8}}),
		blockTxs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bourse_chain_block_txs",
			Help: "Transactions per committed block.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		mempoolTxs: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bourse_mempool_txs", Help: "Transactions waiting in the mempool."},
			func() float64 { t, _ := n.drv.Mempool().Size(); return float64(t) }),
		mempoolBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bourse_mempool_bytes", Help: "Bytes of transactions in the mempool."},
			func() float64 { _, b := n.drv.Mempool().Size(); return float64(b) }),
		gossipDropped: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bourse_consensus_gossip_dropped_total",
			Help: "Consensus messages dropped because the driver's queue was full (catch-up refetches them)."},
			func() float64 { return float64(n.drv.Dropped()) }),
		sigsVerified: prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "bourse_chain_signatures_verified_total",
			Help: "Transaction signatures this node verified, in the mempool or in blocks; about one per committed transaction when none is verified twice."},
			func() float64 { return float64(n.drv.Mempool().SigCache().Verified()) }),
		matches: prometheus.NewCounter(prometheus.CounterOpts{Name: "bourse_market_matches_total", Help: "Matches committed on chain."}),
		settlements: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bourse_market_settlements_total",
			Help: "Settled matches by outcome (completed, failed, timed_out)."}, []string{"outcome"}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bourse_jobs", Help: "This node's client jobs by state."}, []string{"state"}),
		execDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bourse_executor_duration_seconds",
			Help: "Wall time of jobs run by this provider, by executor and final state.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)},
			[]string{"executor", "state"}),
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bourse_jobs_verified_total",
			Help: "Client jobs re-run by `bourse job verify`, by whether the result hash matched the provider's (true, false)."}, []string{"match"}),
		persistErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bourse_job_persist_errors_total",
			Help: "Client job records that could not be written to disk (the job's error says so too)."}),
	}
	// Known label values start at zero, so every series the Grafana
	// dashboard (deploy/grafana) queries exists from the first scrape and
	// rate() has a baseline.
	for _, o := range []string{"completed", "failed", "timed_out"} {
		m.settlements.WithLabelValues(o)
	}
	m.verified.WithLabelValues("true")
	m.verified.WithLabelValues("false")
	if n.cfg.Provider.Enabled {
		for _, e := range n.cfg.Provider.Executors {
			for _, st := range []worker.State{worker.StateSucceeded, worker.StateFailed, worker.StateTimedOut, worker.StateOOM, worker.StateCancelled} {
				m.execDuration.WithLabelValues(e, string(st))
			}
		}
	}
	m.jobStates(nil)
	n.reg.MustRegister(m.height, m.blockInterval, m.commitRound, m.blockTxs, m.mempoolTxs, m.mempoolBytes,
		m.gossipDropped, m.sigsVerified, m.matches, m.settlements, m.jobs, m.execDuration, m.verified, m.persistErrors)
	return m
}

// observe records a committed block.
func (m *metrics) observe(c driver.Committed) {
	t := c.Block.Header.Time
	if m.lastBlockTime != 0 && t > m.lastBlockTime {
		m.blockInterval.Observe(float64(t-m.lastBlockTime) / 1000)
	}
	m.lastBlockTime = t
	if c.Commit != nil {
		m.commitRound.Observe(float64(c.Commit.Round))
	}
	m.blockTxs.Observe(float64(len(c.Block.Txs)))
	for _, r := range c.Result.TxResults {
		for _, ev := range r.Events {
			m.event(ev.Type)
		}
	}
	for _, ev := range c.Result.Events {
		m.event(ev.Type)
	}
}

func (m *metrics) event(t string) {
	switch t {
	case "matched":
		m.matches.Inc()
	case "completed", "failed", "timed_out":
		m.settlements.WithLabelValues(t).Inc()
	}
}

// jobStates refreshes the jobs-by-state gauge from the client's jobs.
// Every known state is exported, at zero when no job is in it; nil ms
// only sets those zeros.
func (m *metrics) jobStates(ms *marketService) {
	var counts map[string]int
	if ms != nil {
		ms.withCore(func(c *lifecycle.Core) { counts = c.Counts() })
	}
	m.jobs.Reset()
	for _, st := range jobStateNames {
		m.jobs.WithLabelValues(st).Set(0)
	}
	for st, c := range counts {
		m.jobs.WithLabelValues(st).Set(float64(c))
	}
}

var jobStateNames = []string{api.StateSubmitted, api.StateBidding, api.StateMatched, api.StateRunning,
	api.StateResultCommitted, api.StatePaid, api.StateExpired, api.StateFailed, api.StateTimedOut,
	api.StateCancelled, api.StateResultUnavailable, api.StatePayloadUnavailable}
