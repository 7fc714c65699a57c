package node

import (
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/lifecycle"
)

// A job with spec.replicas = k is k client jobs, one per replica bid
// (chain/replicas.go): the bids differ only in Bid.Replica, and replica
// 0's id is the job's id. The lifecycle runs each replica as a job of its
// own; the chain holds their results until the group is decided, then
// releases the majority's (the client fetches, checks and acks those) and
// slashes the others. The API shows the group as one job (groupJob).

// replicaBid is replica i of the job whose replica 0 is b, signed by
// sign.
func replicaBid(b *market.Bid, i uint32, sign func(*market.Bid) error) (*market.Bid, error) {
	c := *b
	c.Replica, c.Sig = i, nil
	if err := sign(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// replicaIDs are the job ids of the replicas of b's group, in replica
// order.
func replicaIDs(b *market.Bid) []string {
	out := make([]string, b.Replicas)
	for i := range b.Replicas {
		c := *b
		c.Replica, c.Sig = i, nil
		id := c.ID()
		out[i] = hex.EncodeToString(id[:])
	}
	return out
}

// isReplica reports whether j is a replica other than 0 of a group: the
// API lists it inside its group's job only.
func isReplica(j *lifecycle.ClientJob) bool {
	return j.Bid != nil && j.Bid.Replicas > 1 && j.Bid.Replica > 0
}

// isGroup reports whether j is replica 0 of a group: its id is the job's,
// shown as the group (groupJob).
func isGroup(j *lifecycle.ClientJob) bool {
	return j.Bid != nil && j.Bid.Replicas > 1 && j.Bid.Replica == 0
}

// replicaProgress orders the states a replica passes through before it
// ends, so a group shows its most advanced replica's.
var replicaProgress = map[string]int{api.StateSubmitted: 0, api.StateBidding: 1, api.StateMatched: 2,
	api.StateRunning: 3, api.StateChallenged: 4, api.StateResultCommitted: 5}

// replicaEnding orders the terminal states of a group none of whose
// replicas was paid: the first state a replica ended in, in this order,
// is the group's.
var replicaEnding = []string{api.StateFailed, api.StateWrongResult, api.StateResultUnavailable, api.StateTimedOut,
	api.StatePayloadUnavailable, api.StateExpired, api.StateCancelled}

// groupJob folds the replicas of the group whose replica 0 is j0 into
// one job, read through get. The group's result is that of a replica
// the client fetched and checked after the chain decided it (paid, or
// failed by the majority's exit code): its provider, hash and bid (so
// verify and challenge act on it).
func groupJob(j0 lifecycle.ClientJob, get func(id string) (lifecycle.ClientJob, bool)) lifecycle.ClientJob {
	out := j0
	out.Escrowed, out.Paid, out.Refunded, out.Slashed = 0, 0, 0, 0
	out.Replicas = nil
	var members []lifecycle.ClientJob
	for i, id := range replicaIDs(j0.Bid) {
		j, ok := j0, true
		if i > 0 {
			j, ok = get(id)
		}
		if !ok {
			out.Replicas = append(out.Replicas, api.JobReplica{Replica: i, ID: id, State: api.StateSubmitted, Error: "not on this node"})
			continue
		}
		members = append(members, j)
		out.Escrowed += j.Escrowed
		out.Paid += j.Paid
		out.Refunded += j.Refunded
		out.Slashed += j.Slashed
		out.Replicas = append(out.Replicas, api.JobReplica{Replica: i, ID: j.ID, State: j.State, Provider: j.Provider,
			ResultHash: j.ResultHash, Paid: j.Paid, Refunded: j.Refunded, Slashed: j.Slashed, Error: j.Error})
	}
	pick := func(m lifecycle.ClientJob) {
		out.State, out.Provider, out.ProviderPeer, out.MatchID, out.MatchHeight = m.State, m.Provider, m.ProviderPeer, m.MatchID, m.MatchHeight
		out.ResultHash, out.ResultSize, out.ExitCode, out.Bid, out.BidRaw = m.ResultHash, m.ResultSize, m.ExitCode, m.Bid, m.BidRaw
		out.Error = m.Error
	}
	for _, m := range members {
		if m.State == api.StatePaid || m.State == api.StateFailed && m.ResultSize > 0 {
			pick(m)
			out.Error = groupErrors(members, m.ID)
			return out
		}
	}
	best := -1
	for i, m := range members {
		if p, ok := replicaProgress[m.State]; ok && (best < 0 || p > replicaProgress[members[best].State]) {
			best = i
		}
	}
	if best >= 0 {
		out.State, out.Error = members[best].State, groupErrors(members, "")
		return out
	}
	for _, st := range replicaEnding {
		for _, m := range members {
			if m.State == st {
				out.State, out.Error = st, groupErrors(members, "")
				return out
			}
		}
	}
	return out
}

// groupErrors joins the errors of the replicas but skip, each named.
func groupErrors(members []lifecycle.ClientJob, skip string) string {
	var parts []string
	for _, m := range members {
		if m.Error != "" && m.ID != skip {
			r := uint32(0)
			if m.Bid != nil {
				r = m.Bid.Replica
			}
			parts = append(parts, "replica "+strconv.Itoa(int(r))+": "+m.Error)
		}
	}
	return strings.Join(parts, "; ")
}
