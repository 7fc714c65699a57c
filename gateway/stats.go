package gateway

import (
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/bourse-net/bourse/internal/latency"
)

// ReplicaStats is what this gateway measured of one replica since it
// first routed to it.
type ReplicaStats struct {
	LeaseID     [32]byte        `json:"lease_id"`
	Provider    peer.ID         `json:"provider"`
	Requests    uint64          `json:"requests"`
	Errors      uint64          `json:"errors"`
	BytesIn     uint64          `json:"bytes_in"`
	BytesOut    uint64          `json:"bytes_out"`
	Latency     latency.Summary `json:"latency"`     // of answered requests, through the gateway
	Share       float64         `json:"share"`       // of the service's requests, 0..1
	Load        float64         `json:"load"`        // last reported by the provider
	Outstanding int64           `json:"outstanding"` // requests in flight now
	// LatencyEWMA is the recent latency (exponentially weighted, 30% per
	// answer) through this gateway: what the choice and elasticity use.
	LatencyEWMA time.Duration `json:"latency_ewma_ns"`
	Down        bool          `json:"down"` // avoided after a failure
}

// ServiceStats is the distribution of a service's requests over its
// replicas as this gateway routed them.
type ServiceStats struct {
	Service  string         `json:"service"`
	Requests uint64         `json:"requests"`
	Errors   uint64         `json:"errors"`
	Fairness float64        `json:"fairness"` // Jain's index over the replicas' request counts
	Replicas []ReplicaStats `json:"replicas"`
}

// Jain returns Jain's fairness index of xs: (Σx)² / (n·Σx²), 1 when all
// are equal, 1/n when one has everything. It is 1 for no values or all
// zeros.
func Jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// Stats returns the statistics of service's replicas this gateway has
// routed to, sorted by lease id.
func (g *Gateway) Stats(service string) ServiceStats {
	g.mu.Lock()
	var sts []*replicaState
	for _, st := range g.replicas {
		if st.service == service {
			sts = append(sts, st)
		}
	}
	g.mu.Unlock()
	sort.Slice(sts, func(i, j int) bool { return string(sts[i].lease[:]) < string(sts[j].lease[:]) })
	out := ServiceStats{Service: service, Fairness: 1}
	counts := make([]float64, len(sts))
	now := g.now()
	for i, st := range sts {
		rs := ReplicaStats{LeaseID: st.lease, Provider: st.provider, Requests: st.requests.Load(),
			Errors: st.errors.Load(), BytesIn: st.bytesIn.Load(), BytesOut: st.bytesOut.Load(),
			Latency: st.lat.Summary(), Outstanding: st.outstanding.Load()}
		st.mu.Lock()
		rs.Load, rs.Down, rs.LatencyEWMA = st.load, now.Before(st.downUntil), st.ewma
		st.mu.Unlock()
		out.Requests += rs.Requests
		out.Errors += rs.Errors
		counts[i] = float64(rs.Requests)
		out.Replicas = append(out.Replicas, rs)
	}
	for i := range out.Replicas {
		if out.Requests > 0 {
			out.Replicas[i].Share = counts[i] / float64(out.Requests)
		}
	}
	if len(counts) > 0 {
		out.Fairness = Jain(counts)
	}
	return out
}

// AllStats returns Stats of every service this gateway has routed to.
func (g *Gateway) AllStats() []ServiceStats {
	var out []ServiceStats
	for _, name := range g.Services() {
		out = append(out, g.Stats(name))
	}
	return out
}

// Services lists the services this gateway has routed to.
func (g *Gateway) Services() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, st := range g.replicas {
		if !seen[st.service] {
			seen[st.service] = true
			out = append(out, st.service)
		}
	}
	sort.Strings(out)
	return out
}

// Forget drops what the gateway knows of a lease (after it ended), once
// its usage has been cut into a receipt.
func (g *Gateway) Forget(lease [32]byte) {
	g.mu.Lock()
	delete(g.replicas, lease)
	g.mu.Unlock()
}
