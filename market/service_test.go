package market

import (
	"crypto/sha256"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

func serviceOffer(t *testing.T, p int, cpu uint64, perCPU uint64, load uint32) *Offer {
	t.Helper()
	o := &Offer{PeerID: "peer", Seq: 1, Expires: t0 + 60_000, Total: Resources{CPU: cpu, MemMiB: 4096},
		Free: Resources{CPU: cpu, MemMiB: 4096}, Load: load, Executors: []string{ExecWASM},
		Terms: PriceTerms{PerCPUSecond: perCPU, PerGiBSecond: 1, PerJob: 1}}
	if err := o.Sign(testChain, testKey(t, p)); err != nil {
		t.Fatal(err)
	}
	return o
}

func serviceNeed(t *testing.T) Bid {
	sum := sha256.Sum256([]byte("m"))
	return Bid{Client: testKey(t, 0).Public(), Executor: ExecWASM, Payload: Payload{SHA256: sum[:], Size: 1, Peer: "p"},
		Resources: Resources{CPU: 1000, MemMiB: 128}, MaxPrice: 1000, MatchBy: t0 + 1, TimeoutMs: 2000,
		Preference: PreferCheapest, Replicas: 1}
}

// Replicas spread over providers before any provider takes a second one,
// even when a single cheapest provider could take them all; the chain's
// reservations and the call's own placements both count; the output does
// not depend on the order of the offers.
func TestPlaceReplicasSpreadsAndRespectsCapacity(t *testing.T) {
	v := newFakeView(100)
	cheap, mid, dear := serviceOffer(t, 1, 8000, 1, 0), serviceOffer(t, 2, 2000, 2, 0), serviceOffer(t, 3, 1000, 3, 0)
	for _, o := range []*Offer{cheap, mid, dear} {
		v.providers[o.ProviderAddress()] = ProviderState{Collateral: 100, Reputation: 500}
	}
	// The dear provider is full on chain.
	v.providers[dear.ProviderAddress()] = ProviderState{Collateral: 100, Reputation: 500, Reserved: Resources{CPU: 1000}}
	need := ReplicaNeed{Service: [32]byte{1}, Need: serviceNeed(t), Count: 4}
	got := PlaceReplicas([]ReplicaNeed{need}, []*Offer{dear, mid, cheap}, v, t0, 10)
	var order []int
	for _, p := range got {
		switch p.Offer {
		case cheap:
			order = append(order, 1)
		case mid:
			order = append(order, 2)
		case dear:
			order = append(order, 3)
		}
	}
	// cheap, then mid (spread; dear is full on chain), then cheap again
	// for both (every candidate hosts one: the cheapest wins).
	want := []int{1, 2, 1, 1}
	if len(order) != len(want) {
		t.Fatalf("placed on %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("placed on %v, want %v", order, want)
		}
	}
	again := PlaceReplicas([]ReplicaNeed{need}, []*Offer{cheap, mid, dear}, v, t0, 10)
	for i := range got {
		if again[i].Offer != got[i].Offer || again[i].Price != got[i].Price {
			t.Fatal("placement depends on the order of the offers")
		}
	}
	if n := len(PlaceReplicas([]ReplicaNeed{need}, []*Offer{cheap, mid}, v, t0, 2)); n != 2 {
		t.Fatalf("max 2 placed %d", n)
	}
	// Hosting providers are avoided while another can take the replica.
	need.Count, need.Hosting = 1, []wallet.Address{cheap.ProviderAddress()}
	if p := PlaceReplicas([]ReplicaNeed{need}, []*Offer{cheap, mid}, v, t0, 1); len(p) != 1 || p[0].Offer != mid {
		t.Fatal("a replacement went to a provider already hosting the service")
	}
}

func TestCheckPlacementRefusesWhatCheckMatchRefuses(t *testing.T) {
	v := newFakeView(100)
	o := serviceOffer(t, 1, 1000, 1, 0)
	need := serviceNeed(t)
	if _, err := CheckPlacement(testChain, o, &need, v, t0); CodeOf(err) != CodeCollateral {
		t.Fatalf("unregistered provider: %v", err)
	}
	v.providers[o.ProviderAddress()] = ProviderState{Collateral: 100, Reputation: 500}
	price, err := CheckPlacement(testChain, o, &need, v, t0)
	if err != nil || price == 0 {
		t.Fatalf("valid placement: %d %v", price, err)
	}
	need.MaxPrice = price - 1
	if _, err := CheckPlacement(testChain, o, &need, v, t0); CodeOf(err) != CodePrice {
		t.Fatalf("price above the ceiling: %v", err)
	}
	need.MaxPrice = 1000
	o.Load = 7 // signature no longer covers the offer
	if _, err := CheckPlacement(testChain, o, &need, v, t0); CodeOf(err) != CodeSignature {
		t.Fatalf("tampered offer: %v", err)
	}
}
