package p2p

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxReasonLabels bounds the distinct reason labels per topic so that a
// validator returning free-form text cannot grow the metric set without
// bound; later reasons are counted as "other".
const maxReasonLabels = 32

// metrics holds the host's Prometheus collectors. They are registered on
// Config.Registerer when one is given, and always returned by Collectors.
type metrics struct {
	validation    *prometheus.CounterVec   // topic, result, reason
	dropped       *prometheus.CounterVec   // topic, reason (queue full, throttled, ...)
	delivered     *prometheus.CounterVec   // topic
	undeliverable *prometheus.CounterVec   // topic: local subscriber too slow
	published     *prometheus.CounterVec   // topic, outcome
	requests      *prometheus.CounterVec   // protocol, direction, outcome
	frameErrors   *prometheus.CounterVec   // protocol, reason
	dials         *prometheus.CounterVec   // source, outcome
	peerScore     prometheus.Histogram     // sampled gossipsub scores
	peers         prometheus.GaugeFunc     // connected peers
	blobBytes     *prometheus.CounterVec   // direction
	latency       *prometheus.HistogramVec // protocol: request round trip
	inbound       *prometheus.GaugeVec     // protocol: inbound exchanges running

	mu      sync.Mutex
	reasons map[string]map[string]struct{} // topic -> seen reasons
}

func newMetrics(peerCount func() float64) *metrics {
	const ns, sub = "bourse", "p2p"
	return &metrics{
		validation: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "validation_total", Help: "Gossip messages validated, by topic, result (accept, reject, ignore) and reason."},
			[]string{"topic", "result", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "gossip_dropped_total", Help: "Gossip messages dropped before or outside validation (queue full, throttled, bad signature, ...)."},
			[]string{"topic", "reason"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "gossip_delivered_total", Help: "Validated gossip messages delivered."},
			[]string{"topic"}),
		undeliverable: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "gossip_undeliverable_total", Help: "Validated messages dropped because a local subscriber was too slow."},
			[]string{"topic"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "gossip_published_total", Help: "Messages this host published, by outcome."},
			[]string{"topic", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "Request/response exchanges by protocol, direction (in, out) and outcome."},
			[]string{"protocol", "direction", "outcome"}),
		frameErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "frame_errors_total", Help: "Malformed or oversized frames received, by protocol and reason."},
			[]string{"protocol", "reason"}),
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "discovery_dials_total", Help: "Dials to discovered peers by source (bootstrap, dht, mdns) and outcome."},
			[]string{"source", "outcome"}),
		peerScore: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "peer_score", Help: "Sampled GossipSub peer scores.",
			Buckets: []float64{-10000, -2500, -1000, -500, -100, -10, 0, 1, 10, 100}}),
		peers: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "peers", Help: "Connected peers."}, peerCount),
		blobBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "blob_bytes_total", Help: "Blob bytes served (out) and fetched and verified (in)."},
			[]string{"direction"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "request_seconds", Help: "Outbound request round trip time.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)},
			[]string{"protocol"}),
		inbound: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "inbound_requests", Help: "Inbound request/response exchanges running, by protocol."},
			[]string{"protocol"}),
		reasons: make(map[string]map[string]struct{}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.validation, m.dropped, m.delivered, m.undeliverable, m.published,
		m.requests, m.frameErrors, m.dials, m.peerScore, m.peers, m.blobBytes, m.latency, m.inbound}
}

// reasonLabel returns reason, or "other" once the topic has used
// maxReasonLabels distinct reasons.
func (m *metrics) reasonLabel(topic, reason string) string {
	if reason == "" {
		return "unspecified"
	}
	if len(reason) > 64 {
		reason = reason[:64]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.reasons[topic]
	if seen == nil {
		seen = make(map[string]struct{})
		m.reasons[topic] = seen
	}
	if _, ok := seen[reason]; ok {
		return reason
	}
	if len(seen) >= maxReasonLabels {
		return "other"
	}
	seen[reason] = struct{}{}
	return reason
}
