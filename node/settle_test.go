package node

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/lifecycle"
	"github.com/bourse-net/bourse/wallet"
)

// A spec's replicas above 1 was once accepted and silently run once; it
// is now k bids (chain/replicas.go), and a non-deterministic job needs
// accept_majority.
func TestReplicasBecomeABidOfThatManyReplicas(t *testing.T) {
	k, err := wallet.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := &market.Bid{Executor: "wasm", Replicas: 3, MaxPrice: 10, Preference: "cheapest", TimeoutMs: 1000, MatchBy: 2, Payload: market.Payload{SHA256: make([]byte, 32), Size: 1, Peer: "p"}, Resources: market.Resources{CPU: 100, MemMiB: 64}}
	sign := func(c *market.Bid) error { return c.Sign("c", k) }
	if err := sign(b); err != nil {
		t.Fatal(err)
	}
	ids := replicaIDs(b)
	for i := uint32(1); i < 3; i++ {
		r, err := replicaBid(b, i, sign)
		if err != nil || r.Validate(1) != nil || r.Verify("c") != nil || r.ID().String() != ids[i] || r.GroupID() != b.ID() {
			t.Fatalf("replica %d: %v %v", i, err, r.Validate(1))
		}
	}
	if ids[0] != b.ID().String() || ids[1] == ids[2] {
		t.Fatalf("replica ids %v", ids)
	}
	spec := api.JobSpec{Executor: "docker", Image: "sha256:" + strings.Repeat("ab", 32), Replicas: 3, MaxPrice: 10}.WithDefaults()
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "accept_majority") {
		t.Fatalf("docker replicas without accept_majority: %v", err)
	}
	spec.AcceptMajority = true
	if err := spec.Validate(); err != nil {
		t.Fatalf("docker replicas with accept_majority: %v", err)
	}
	spec.Replicas = 1
	if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), "replicas > 1") {
		t.Fatalf("accept_majority on one replica: %v", err)
	}
}

// A job of replicas shows as one: the state and result of the replica
// the client fetched after the chain decided, sums of the money, each
// replica listed; a replica that lost never becomes the job's result.
func TestGroupJobShowsTheDecidedReplica(t *testing.T) {
	base := &market.Bid{Executor: "wasm", Replicas: 3, MaxPrice: 10, Preference: "cheapest", TimeoutMs: 1000, MatchBy: 1}
	ids := replicaIDs(base)
	mk := func(i uint32, state, provider, hash string, paid, slashed uint64) lifecycle.ClientJob {
		b := *base
		b.Replica = i
		return lifecycle.ClientJob{Job: api.Job{ID: ids[i], State: state, Provider: provider, ResultHash: hash, Paid: paid, Slashed: slashed, Escrowed: 10, ResultSize: 5}, Bid: &b}
	}
	for _, c := range []struct {
		name      string
		members   []lifecycle.ClientJob
		state     string
		provider  string
		paid      uint64
		replicaOK bool
	}{
		{"all running", []lifecycle.ClientJob{mk(0, api.StateRunning, "p0", "", 0, 0), mk(1, api.StateMatched, "p1", "", 0, 0), mk(2, api.StateBidding, "", "", 0, 0)},
			api.StateRunning, "", 0, true},
		{"liar first, majority paid", []lifecycle.ClientJob{mk(0, api.StateWrongResult, "p0", "bad", 0, 7), mk(1, api.StatePaid, "p1", "good", 4, 0), mk(2, api.StatePaid, "p2", "good", 4, 0)},
			api.StatePaid, "p1", 8, true},
		{"decided, being fetched", []lifecycle.ClientJob{mk(0, api.StateWrongResult, "p0", "bad", 0, 7), mk(1, api.StateResultCommitted, "p1", "good", 4, 0), mk(2, api.StateTimedOut, "p2", "", 0, 3)},
			api.StateResultCommitted, "", 4, true},
		{"nothing came back", []lifecycle.ClientJob{mk(0, api.StateTimedOut, "p0", "", 0, 3), mk(1, api.StateExpired, "", "", 0, 0), mk(2, api.StateTimedOut, "p2", "", 0, 3)},
			api.StateTimedOut, "", 0, true},
		{"a replica not on this node", []lifecycle.ClientJob{mk(0, api.StatePaid, "p0", "good", 4, 0)},
			api.StatePaid, "p0", 4, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			byID := map[string]lifecycle.ClientJob{}
			for _, m := range c.members {
				byID[m.ID] = m
			}
			get := func(id string) (lifecycle.ClientJob, bool) { j, ok := byID[id]; return j, ok }
			j0, _ := get(ids[0])
			g := groupJob(j0, get)
			if g.ID != ids[0] || g.State != c.state || g.Paid != c.paid || c.provider != "" && g.Provider != c.provider || len(g.Replicas) != 3 {
				t.Fatalf("group %s state %s provider %s paid %d replicas %d; want %s %s %d", g.ID, g.State, g.Provider, g.Paid, len(g.Replicas), c.state, c.provider, c.paid)
			}
			if c.state == api.StatePaid && g.ResultHash != "good" {
				t.Fatalf("the job's result is %q, not the majority's", g.ResultHash)
			}
			if !c.replicaOK && g.Replicas[1].Error == "" {
				t.Fatal("a replica missing from this node is not said to be")
			}
		})
	}
}

// A committee member's blob credential is the job id, its key and its
// signature; anything else of that length class is refused.
func TestMemberBlobCredentialParses(t *testing.T) {
	raw := make([]byte, 32+32+64)
	raw[0], raw[32], raw[64] = 1, 2, 3
	c, err := parseBlobCred(raw)
	if err != nil || c.member == nil || c.member[0] != 2 || c.job[0] != 1 || len(c.sig) != 64 || c.sig[0] != 3 {
		t.Fatalf("member credential: %+v %v", c, err)
	}
	for _, n := range []int{0, 31, 33, 32 + 32, 32 + 64 + 1, 32 + 32 + 64 + 1} {
		if _, err := parseBlobCred(make([]byte, n)); err == nil {
			t.Fatalf("credential of %d bytes accepted", n)
		}
	}
}
