package market

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bourse-net/bourse/wallet"
)

const testChain = "bourse-test-1"

// t0 is the "now" of most tests: some arbitrary unix ms.
const t0 int64 = 1_800_000_000_000

func testKey(t testing.TB, i int) wallet.PrivateKey {
	t.Helper()
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i)+1)
	k, err := wallet.KeyFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fakeView is a hand-written ChainView over maps, with the mutations the
// chain makes when it commits a match, for tests that play a chain.
type fakeView struct {
	providers map[wallet.Address]ProviderState
	balances  map[wallet.Address]uint64
	closed    map[BidID]bool
	groups    map[BidID][]wallet.Address // replica group → providers matched
	minColl   uint64
}

func newFakeView(minColl uint64) *fakeView {
	return &fakeView{
		providers: map[wallet.Address]ProviderState{},
		balances:  map[wallet.Address]uint64{},
		closed:    map[BidID]bool{},
		groups:    map[BidID][]wallet.Address{},
		minColl:   minColl,
	}
}

func (v *fakeView) Provider(a wallet.Address) (ProviderState, bool) {
	ps, ok := v.providers[a]
	return ps, ok
}
func (v *fakeView) Spendable(a wallet.Address) uint64 { return v.balances[a] }
func (v *fakeView) BidClosed(id BidID) bool           { return v.closed[id] }
func (v *fakeView) MinCollateral() uint64             { return v.minColl }
func (v *fakeView) ReplicaProviders(g BidID) []wallet.Address {
	return v.groups[g]
}

func (v *fakeView) clone() *fakeView {
	c := newFakeView(v.minColl)
	for k, x := range v.providers {
		c.providers[k] = x
	}
	for k, x := range v.balances {
		c.balances[k] = x
	}
	for k, x := range v.closed {
		c.closed[k] = x
	}
	for k, x := range v.groups {
		c.groups[k] = slices.Clone(x)
	}
	return c
}

// apply is what the chain does after CheckMatch accepts m.
func (v *fakeView) apply(t testing.TB, m *Match) {
	t.Helper()
	ps := v.providers[m.Offer.ProviderAddress()]
	r, err := ps.Reserved.Add(m.Bid.Resources)
	if err != nil {
		t.Fatal(err)
	}
	ps.Reserved = r
	ps.NewestOfferSeq = max(ps.NewestOfferSeq, m.Offer.Seq)
	v.providers[m.Offer.ProviderAddress()] = ps
	c := m.Bid.ClientAddress()
	if v.balances[c] < m.Escrow() {
		t.Fatalf("apply: balance %d < escrow %d", v.balances[c], m.Escrow())
	}
	v.balances[c] -= m.Escrow()
	v.closed[m.ID()] = true
	if m.Bid.Replicas > 1 {
		g := m.Bid.GroupID()
		v.groups[g] = append(v.groups[g], m.Offer.ProviderAddress())
	}
}

func baseOffer(seq uint64) Offer {
	return Offer{
		PeerID:    "12D3KooWProvider",
		Seq:       seq,
		Expires:   t0 + 60_000,
		Total:     Resources{CPU: 4000, MemMiB: 8192, DiskMiB: 10240},
		Free:      Resources{CPU: 3000, MemMiB: 6000, DiskMiB: 10000},
		Load:      250,
		Executors: []string{ExecExec, ExecWASM},
		Terms:     PriceTerms{PerCPUSecond: 10, PerGiBSecond: 2, PerJob: 100},
		Region:    "eu-west",
		Labels:    []string{"arch=amd64", "tier=gold"},
	}
}

func baseBid(nonce uint64) Bid {
	sum := sha256.Sum256([]byte("hello.wasm"))
	return Bid{
		Nonce:     nonce,
		Executor:  ExecWASM,
		Payload:   Payload{SHA256: sum[:], Size: 1234, Peer: "12D3KooWClient", Manifest: manifestHash(Manifest{Args: []string{"--n", "3"}, Env: []string{"MODE=fast"}})},
		Resources: Resources{CPU: 1000, MemMiB: 512, DiskMiB: 100},
		MaxPrice:  100_000,
		MatchBy:   t0 + 30_000,
		TimeoutMs: 60_000,
		Constraints: Constraints{
			Regions: []string{"eu-west", "us-east"},
			Labels:  []string{"arch=amd64"},
		},
		Preference: PreferCheapest,
		Near:       []string{"eu-west"},
		Replicas:   1,
	}
}

func signedOffer(t testing.TB, key wallet.PrivateKey, o Offer) *Offer {
	t.Helper()
	if err := o.Sign(testChain, key); err != nil {
		t.Fatal(err)
	}
	return &o
}

func signedBid(t testing.TB, key wallet.PrivateKey, b Bid) *Bid {
	t.Helper()
	if err := b.Sign(testChain, key); err != nil {
		t.Fatal(err)
	}
	return &b
}

// world is a randomized market: providers, clients, a chain view, and a
// book snapshot, built from one seed.
type world struct {
	view   *fakeView
	offers []*Offer
	bids   []*Bid
	now    int64
}

var (
	testRegions = []string{"eu-west", "us-east", "ap-south"}
	testLabels  = []string{"arch=amd64", "arch=arm64", "tier=gold", "ssd=yes"}
	testExecs   = [][]string{{ExecWASM}, {ExecDocker, ExecWASM}, {ExecExec, ExecWASM}, {ExecDocker}, {ExecDocker, ExecExec, ExecWASM}}
	testPrefs   = []string{PreferCheapest, PreferLeastLoaded, PreferNearest, PreferBalanced}
)

func pickSet(r *rand.Rand, all []string, p float64) []string {
	var out []string
	for _, x := range all {
		if r.Float64() < p {
			out = append(out, x)
		}
	}
	return sortedCopy(out)
}

func sortedCopy(xs []string) []string {
	out := append([]string(nil), xs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// genWorld builds a random world. sign: sign offers and bids (slow; only
// needed where CheckMatch runs). Sizes are small so capacity, balances and
// prices bind often.
func genWorld(t testing.TB, r *rand.Rand, nProviders, nClients, nBids int, sign bool) *world {
	w := &world{view: newFakeView(1000), now: t0}
	var prev *Offer // to clone: identical offers make every key tie
	for i := 0; i < nProviders; i++ {
		key := testKey(t, i)
		addr := key.Address()
		twin := prev != nil && r.IntN(3) == 0
		switch x := r.IntN(10); {
		case x == 0: // unregistered
		case x == 1:
			w.view.providers[addr] = ProviderState{Collateral: 999, Reputation: uint32(r.IntN(1001))}
		default:
			w.view.providers[addr] = ProviderState{
				Collateral: 1000 + uint64(r.IntN(5000)),
				Reputation: uint32(r.IntN(1001)),
				Reserved:   Resources{CPU: uint64(r.IntN(3)) * 500, MemMiB: uint64(r.IntN(3)) * 256},
			}
			if r.IntN(4) == 0 { // the chain matched a newer offer than some here
				ps := w.view.providers[addr]
				ps.NewestOfferSeq = uint64(1 + r.IntN(3))
				w.view.providers[addr] = ps
			}
			if r.IntN(2) == 0 { // a track record, sometimes an old one
				ps := w.view.providers[addr]
				ps.Perf = Perf{Jobs: uint64(1 + r.IntN(40)), SlowPpm: uint32(r.IntN(1_000_001)), FailPpm: uint32(r.IntN(1_000_001)),
					TimeoutPpm: uint32(r.IntN(1_000_001)), UpdatedAt: w.now - int64(r.IntN(4*PerfHalfLifeMs))}
				w.view.providers[addr] = ps
			}
		}
		nOffers := 1 + r.IntN(2) // sometimes an older offer is still around
		for s := 0; s < nOffers; s++ {
			o := Offer{
				PeerID:    fmt.Sprintf("peer-%d", i),
				Seq:       uint64(1 + r.IntN(3)),
				Expires:   w.now - 2000 + int64(r.IntN(MaxOfferTTL+4000)),
				Total:     Resources{CPU: uint64(1+r.IntN(8)) * 500, MemMiB: uint64(1+r.IntN(8)) * 256, DiskMiB: uint64(r.IntN(4)) * 1024},
				Load:      uint32(r.IntN(1001)),
				HostCPU:   uint32(r.IntN(1001) * r.IntN(2)),
				HostMem:   uint32(r.IntN(1001) * r.IntN(2)),
				Executors: testExecs[r.IntN(len(testExecs))],
				Terms: PriceTerms{
					PerCPUSecond: uint64(r.IntN(20)),
					PerGiBSecond: uint64(r.IntN(10)),
					PerJob:       uint64(r.IntN(3)) * 50,
				},
				Labels: pickSet(r, testLabels, 0.4),
			}
			if r.IntN(8) != 0 {
				o.Region = testRegions[r.IntN(len(testRegions))]
			}
			if r.IntN(4) == 0 {
				o.Total.GPUs = uint32(1 + r.IntN(2))
				o.Total.GPUModel = []string{"a100", "h100"}[r.IntN(2)]
			}
			if r.IntN(3) == 0 { // same seq twice: equal-seq tie
				o.Seq = 2
			}
			o.Free = o.Total
			o.Free.CPU /= 2
			if twin {
				o = *prev
				o.Provider, o.Sig = wallet.PublicKey{}, nil
				o.PeerID = fmt.Sprintf("peer-%d", i)
				if ps, ok := w.view.providers[prev.ProviderAddress()]; ok {
					w.view.providers[addr] = ps
				}
			}
			var op *Offer
			if sign {
				op = signedOffer(t, key, o)
			} else {
				o.Provider = key.Public()
				o.Sig = fakeSig(r)
				op = &o
			}
			w.offers = append(w.offers, op)
			prev = op
		}
	}
	var clients []wallet.PrivateKey
	for i := 0; i < nClients; i++ {
		key := testKey(t, 10_000+i)
		clients = append(clients, key)
		w.view.balances[key.Address()] = uint64(r.IntN(40_000))
	}
	if nProviders > 0 && r.IntN(2) == 0 { // a provider bidding too: never placed on its own offer
		key := testKey(t, r.IntN(nProviders))
		clients = append(clients, key)
		w.view.balances[key.Address()] = uint64(r.IntN(40_000))
	}
	for i := 0; i < nBids; i++ {
		key := clients[r.IntN(len(clients))]
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		b := Bid{
			Nonce:     uint64(r.IntN(1 << 20)),
			Executor:  []string{ExecWASM, ExecWASM, ExecDocker, ExecExec}[r.IntN(4)],
			Payload:   Payload{SHA256: sum[:], Size: 100, Peer: "client-peer"},
			Resources: Resources{CPU: uint64(1+r.IntN(6)) * 250, MemMiB: uint64(1+r.IntN(6)) * 128, DiskMiB: uint64(r.IntN(3)) * 512},
			MaxPrice:  uint64(1 + r.IntN(12_000)),
			MatchBy:   w.now - 1000 + int64(r.IntN(120_000)),
			TimeoutMs: int64(1000 * (1 + r.IntN(120))),
			Constraints: Constraints{
				Regions:       pickSet(r, testRegions, 0.25),
				Labels:        pickSet(r, testLabels, 0.12),
				MinReputation: uint32(r.IntN(4) * 200),
			},
			Preference: testPrefs[r.IntN(len(testPrefs))],
			Near:       pickSet(r, testRegions, 0.5),
			Replicas:   1,
		}
		if r.IntN(2) == 0 {
			r.Shuffle(len(b.Near), func(i, j int) { b.Near[i], b.Near[j] = b.Near[j], b.Near[i] })
		}
		if len(b.Constraints.Regions) > 0 && r.IntN(2) == 0 {
			for range b.Constraints.Regions {
				b.Constraints.RegionWeights = append(b.Constraints.RegionWeights, uint32(1+r.IntN(MaxRegionWeight)))
			}
		}
		if nProviders > 0 && r.IntN(2) == 0 { // a distance list; ties in ms are common
			seen := map[wallet.Address]bool{}
			for range 1 + r.IntN(MaxRTTEntries) {
				a := testKey(t, r.IntN(nProviders+1)).Address()
				if !seen[a] {
					seen[a] = true
					b.RTT = append(b.RTT, PeerRTT{Provider: a, Ms: uint32(r.IntN(4) * 70)})
				}
			}
			sortRTT(b.RTT)
		}
		if r.IntN(6) == 0 {
			b.Resources.GPUs = 1
			if r.IntN(2) == 0 {
				b.Resources.GPUModel = "a100"
			}
		}
		var bp *Bid
		if sign {
			bp = signedBid(t, key, b)
		} else {
			b.Client = key.Public()
			b.Sig = fakeSig(r)
			bp = &b
		}
		w.bids = append(w.bids, bp)
		if r.IntN(30) == 0 {
			w.view.closed[bp.ID()] = true
		}
		if r.IntN(40) == 0 { // a duplicate copy of the same bid
			w.bids = append(w.bids, bp)
		}
	}
	return w
}

func fakeSig(r *rand.Rand) []byte {
	s := make([]byte, wallet.SigLen)
	for i := range s {
		s[i] = byte(r.UintN(256))
	}
	return s
}

func mustAddr(t testing.TB, s string) wallet.Address {
	t.Helper()
	a, err := wallet.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sortRTT puts a distance list in its canonical order: by ms, then address.
func sortRTT(xs []PeerRTT) {
	slices.SortFunc(xs, func(a, b PeerRTT) int {
		if a.Ms != b.Ms {
			return cmp.Compare(a.Ms, b.Ms)
		}
		return bytes.Compare(a.Provider[:], b.Provider[:])
	})
}

// manifestHash is m's hash, as a bid names it.
func manifestHash(m Manifest) []byte {
	h, err := m.Hash()
	if err != nil {
		panic(err)
	}
	return h[:]
}
