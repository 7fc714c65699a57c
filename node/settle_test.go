package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/node/api"
)

// A spec's replicas above 1 was accepted and silently run once; until
// k-of-n placement exists it is refused, saying why.
func TestReplicasAboveOneAreRefusedNotRunOnce(t *testing.T) {
	m, _, _ := lifecycleMarket(t, t.TempDir())
	_, err := m.bidFor(api.JobSpec{Executor: "wasm", Replicas: 3}, [32]byte{1}, 10)
	if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), "replicas: 3: k-of-n placement") {
		t.Fatalf("replicas 3: %v", err)
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
