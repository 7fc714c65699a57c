package node

import (
	"testing"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/worker"
)

// A bid that reserves GPUs must run with them: the provider's worker job
// and the client's verification re-run both take the bid's full resources.
func TestWorkerJobKeepsTheBidsGPUs(t *testing.T) {
	b := &market.Bid{
		Executor:  "wasm",
		Resources: market.Resources{CPU: 2000, MemMiB: 512, DiskMiB: 64, GPUs: 2, GPUModel: "a100"},
		TimeoutMs: 1000,
	}
	got := workerJob(b, nil).Limits.Resources
	want := worker.Resources{CPU: 2000, MemoryMiB: 512, DiskMiB: 64, GPUs: 2}
	if got != want {
		t.Fatalf("worker job reserves %+v, the bid asked for %+v", got, want)
	}
}

// The API shape and the market shape carry the same four amounts both ways.
func TestAPIResourcesRoundTrip(t *testing.T) {
	r := market.Resources{CPU: 1500, MemMiB: 256, DiskMiB: 32, GPUs: 1}
	if back := fromAPIResources(toAPIResources(r)); back != r {
		t.Fatalf("round trip: %+v became %+v", r, back)
	}
	a := api.Resources{CPU: 1, Memory: 2, Disk: 3, GPUs: 4}
	if back := toAPIResources(fromAPIResources(a)); back != a {
		t.Fatalf("round trip: %+v became %+v", a, back)
	}
}

// The runtime's free capacity can dip below zero in its signed accounting;
// an offer never advertises a negative (wrapped) amount.
func TestNegativeFreeCapacityIsAdvertisedAsZero(t *testing.T) {
	got := fromWorkerResources(worker.Resources{CPU: -1, MemoryMiB: -5, DiskMiB: 7, GPUs: -1})
	if want := (market.Resources{DiskMiB: 7}); got != want {
		t.Fatalf("free %+v, want %+v", got, want)
	}
}
