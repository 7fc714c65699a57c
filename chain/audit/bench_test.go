package audit

import (
	"context"
	"testing"
)

// BenchmarkAudit10000BusyBlocks audits a chain of 10,000 certified blocks,
// each with ~13 transactions (transfers, matches, results, claims) and
// settlements of every kind, checking the invariants at every height
// (Invariants1) or every 100 (Invariants100). It reports blocks/s.
func BenchmarkAudit10000BusyBlocks(b *testing.B) {
	s, _, _ := busyChain(b, 10_000)
	for _, every := range []uint64{1, 100} {
		b.Run(map[uint64]string{1: "Invariants1", 100: "Invariants100"}[every], func(b *testing.B) {
			for b.Loop() {
				rep, err := Run(context.Background(), s, Options{InvariantsEvery: every})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(rep.Blocks)/b.Elapsed().Seconds(), "blocks/s")
			}
		})
	}
}
