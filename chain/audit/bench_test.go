package audit

import (
	"context"
	"testing"
)

// BenchmarkAudit10000BusyBlocks audits a chain of 10,000 certified blocks,
// each with ~13 transactions (transfers, matches, results, claims, a
// failing transfer every tenth) and settlements of every kind, checking
// the invariants every 1,000 heights (a full state scan at every height
// makes the audit quadratic in the chain's length: the match records
// stay). It reports blocks/s.
func BenchmarkAudit10000BusyBlocks(b *testing.B) {
	s, _, _ := busyChain(b, 10_000)
	for b.Loop() {
		rep, err := Run(context.Background(), s, Options{InvariantsEvery: 1000})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.Blocks)/b.Elapsed().Seconds(), "blocks/s")
	}
}

// BenchmarkAudit1000BusyBlocksInvariantsEveryHeight is the default of
// 'bourse chain audit' on a shorter chain.
func BenchmarkAudit1000BusyBlocksInvariantsEveryHeight(b *testing.B) {
	s, _, _ := busyChain(b, 1000)
	for b.Loop() {
		rep, err := Run(context.Background(), s, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.Blocks)/b.Elapsed().Seconds(), "blocks/s")
	}
}
