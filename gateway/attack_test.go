package gateway

import (
	"testing"
	"time"
)

// TestGatewayAttackSlowReplicaGetsLowTrafficShare: a hostile (or far)
// provider answers every request just under the timeout. On a service
// with light traffic, fewer requests a second than it has replicas, every
// replica is "not picked for probeEvery" at almost every request, so the
// probe rule, not the cost, chooses, and the slow replica gets its round
// robin share of the real requests instead of a probe now and then.
func TestGatewayAttackSlowReplicaGetsLowTrafficShare(t *testing.T) {
	g := &Gateway{now: time.Now, replicas: map[[32]byte]*replicaState{}}
	fast := &replicaState{lease: [32]byte{1}}
	slow := &replicaState{lease: [32]byte{2}}
	now := time.Unix(1_000_000, 0)
	fast.succeeded(2*time.Millisecond, 0, now)
	slow.succeeded(5*time.Second, 0, now)
	const n = 200
	slowPicks := 0
	for range n {
		now = now.Add(600 * time.Millisecond) // under 2 requests a second
		c := g.pick([]*replicaState{fast, slow}, map[*replicaState]bool{}, now)
		if c == slow {
			slowPicks++
			slow.succeeded(5*time.Second, 0, now)
		} else {
			fast.succeeded(2*time.Millisecond, 0, now)
		}
	}
	if slowPicks > n/10 {
		t.Fatalf("the replica answering in 5 s got %d of %d requests (the other answers in 2 ms)", slowPicks, n)
	}
}
