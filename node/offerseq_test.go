package node

import "testing"

// Attack (on an honest provider): its clock steps backwards (NTP, a VM
// restored from a snapshot) after the chain matched one of its offers.
// Offers signed by the clock alone would be older than the matched one,
// which the chain refuses as superseded: the provider would be locked out
// of matching until its clock caught up. The next Seq is always past the
// last signed and the chain's newest.
func TestOfferSeqNeverFallsBehindWhenTheClockStepsBack(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		now                        int64
		counter, last, chainNewest uint64
		want                       uint64
	}{
		{"clock ahead", 1000, 3, 100, 200, 1000*16 + 3},
		{"clock stepped back below the last signed", 10, 1, 50_000, 0, 50_001},
		{"restart with the clock behind the chain's newest", 10, 1, 0, 90_000, 90_001},
		{"the chain's newest equals the clock's seq", 1000, 0, 0, 16_000, 16_001},
		{"negative clock", -5, 7, 0, 0, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nextOfferSeq(tc.now, tc.counter, tc.last, tc.chainNewest)
			if got != tc.want {
				t.Fatalf("seq %d, want %d", got, tc.want)
			}
			if got <= tc.last || got <= tc.chainNewest {
				t.Fatalf("seq %d not past last %d and chain %d", got, tc.last, tc.chainNewest)
			}
		})
	}
}
