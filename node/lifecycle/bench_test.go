package lifecycle

import (
	"fmt"
	"testing"
	"time"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
)

// A block costs the client jobs whose match-by time it passes, not every
// job the node ever submitted: the per-block cost stays flat as ended jobs
// accumulate. go test -run '^$' -bench BlockWithEndedJobs ./node/lifecycle
func BenchmarkBlockWithEndedJobs(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			c := New(Config{})
			jobs := make([]ClientJob, n)
			for i := range jobs {
				id := fmt.Sprintf("%064x", i)
				jobs[i] = ClientJob{Job: api.Job{ID: id, State: api.StatePaid}, Bid: &market.Bid{MatchBy: 1}}
			}
			now := time.UnixMilli(1_800_000_000_000)
			c.Step(now, Restore{Jobs: jobs})
			b.ResetTimer()
			for i := range b.N {
				c.Step(now, Block{Height: uint64(i) + 1, Time: now.UnixMilli()})
			}
		})
	}
}
