package loadgen_test

import (
	"context"
	"fmt"
	"time"

	"github.com/bourse-net/bourse/internal/loadgen"
	"github.com/bourse-net/bourse/node/api"
)

// Offering 2,000 transfers a second for 20 s to the nodes behind clients
// (what 'bourse bench transfers --rate 2000 --duration 20s' does with the
// nodes of a testnet), then reading the verdict. Lost and Mismatches are
// empty when every admitted transfer committed exactly once.
func ExampleRunTransfers() {
	var clients []*api.Client // one per node: api.NewClient(addr, token, nil)
	if len(clients) == 0 {
		return // needs a running network
	}
	r, err := loadgen.RunTransfers(context.Background(), loadgen.Transfers{
		Clients: clients, Rate: 2000, Duration: 20 * time.Second})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%.0f tx/s committed, p50 %s, %d lost, %d mismatches\n",
		r.CommittedPerSec, r.Latency.P50, r.Lost, len(r.Mismatches))
}
