package node

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
)

// A spec's weighted regions become the bid's sorted regions with their
// weights, Near heaviest first; min_reputation and the RTT list are
// carried; the result validates.
func TestPlaceBidCarriesRegionsWeightsReputationAndRTT(t *testing.T) {
	b := &market.Bid{}
	rtt := []market.PeerRTT{{Provider: wallet.Address{1}, Ms: 3}, {Provider: wallet.Address{2}, Ms: 40}}
	placeBid(b, api.Constraints{Regions: map[string]uint32{"us-east": 1, "eu-west": 3, "ap-south": 3}, MinReputation: 700}, rtt)
	if !slices.Equal(b.Constraints.Regions, []string{"ap-south", "eu-west", "us-east"}) ||
		!slices.Equal(b.Constraints.RegionWeights, []uint32{3, 3, 1}) ||
		!slices.Equal(b.Near, []string{"ap-south", "eu-west", "us-east"}) ||
		b.Constraints.MinReputation != 700 || !slices.Equal(b.RTT, rtt) {
		t.Fatalf("bid %+v near %v rtt %v", b.Constraints, b.Near, b.RTT)
	}
	// A single region stays as it was.
	b = &market.Bid{Constraints: market.Constraints{Regions: []string{"eu-west"}}}
	placeBid(b, api.Constraints{Region: "eu-west"}, nil)
	if !slices.Equal(b.Constraints.Regions, []string{"eu-west"}) || b.Constraints.RegionWeights != nil || b.RTT != nil {
		t.Fatalf("single region: %+v", b.Constraints)
	}
	// Shown back in the API's shape.
	c := bidConstraints(market.Constraints{Regions: []string{"a", "b"}, RegionWeights: []uint32{2, 5}, MinReputation: 10})
	if c.Region != "" || c.Regions["a"] != 2 || c.Regions["b"] != 5 || c.MinReputation != 10 {
		t.Fatalf("shown as %+v", c)
	}
}

// The host's load from /proc: CPU over the interval between samples,
// memory from MemAvailable; garbage or a missing /proc reports nothing.
func TestHostLoadFromProc(t *testing.T) {
	dir := t.TempDir()
	write := func(stat, meminfo string) {
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "meminfo"), []byte(meminfo), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mem := "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\n"
	// user nice system idle iowait irq softirq
	write("cpu  100 0 100 700 100 0 0\ncpu0 1 2 3 4 5\n", mem)
	h := &hostLoad{root: dir}
	cpu, m, ok := h.sample()
	if !ok || cpu != 200 || m != 750 { // since boot: 200 busy of 1000
		t.Fatalf("first sample cpu %d mem %d ok %v", cpu, m, ok)
	}
	write("cpu  700 0 100 800 100 0 0\n", mem) // +600 busy, +100 idle
	if cpu, _, _ = h.sample(); cpu != 857 {
		t.Fatalf("second sample cpu %d, want 857", cpu)
	}
	for _, bad := range []string{"", "cpu  x 1 2 3 4\n", "intr 1 2 3\n", "cpu  18446744073709551615 1 0 0 0\n"} {
		write(bad, mem)
		if _, _, ok := (&hostLoad{root: dir}).sample(); ok {
			t.Errorf("stat %q accepted", bad)
		}
	}
	write("cpu  1 1 1 1 1\n", "MemTotal: 5 kB\n")
	if _, _, ok := (&hostLoad{root: dir}).sample(); ok {
		t.Error("meminfo without MemAvailable accepted")
	}
	if _, _, ok := (&hostLoad{root: filepath.Join(dir, "missing")}).sample(); ok {
		t.Error("missing /proc accepted")
	}
	if _, err := os.Stat("/proc/stat"); err == nil {
		if cpu, m, ok := (&hostLoad{}).sample(); !ok || cpu > 1000 || m > 1000 {
			t.Fatalf("this host: cpu %d mem %d ok %v", cpu, m, ok)
		}
	}
}
