// Package loadtest drives load into Bourse and measures it: signed
// transactions into a chain (the benchmarks of chain/driver, in-memory,
// and node, over libp2p) and jobs through daemons' APIs (node in-process,
// e2e over processes). It imports chain, wallet and node/api, never
// chain/driver or node, so their own tests can use it.
package loadtest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/wallet"
)

// Transfers signs perAccount transfers of 1 from each key (nonces
// 0..perAccount-1, each to the next key), interleaved so that consecutive
// transactions come from different senders.
func Transfers(tb testing.TB, chainID string, keys []wallet.PrivateKey, perAccount int) [][]byte {
	out := make([][]byte, 0, len(keys)*perAccount)
	for n := range perAccount {
		for i, k := range keys {
			tx := &chain.Tx{ChainID: chainID, Sender: k.Public(), Nonce: uint64(n), Fee: 1,
				Transfer: &chain.Transfer{To: keys[(i+1)%len(keys)].Address(), Amount: 1}}
			if err := tx.Sign(k); err != nil {
				tb.Fatal(err)
			}
			raw, err := tx.Encode()
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, raw)
		}
	}
	return out
}

// Block is what Run needs to know of a committed block.
type Block struct {
	TxHashes [][32]byte
	Round    int32 // the consensus round that decided it
}

// Result is one load run.
type Result struct {
	Committed     int
	Elapsed       time.Duration // first submission to last commit
	Offered       float64       // tx/s actually submitted
	P50, P99, Max time.Duration // submission → commit at the observer
	Blocks        int           // blocks that carried load
	MaxBlockTxs   int
	Lost          int // never committed: no block carried one for the stall timeout
	LateRounds    int // blocks decided in round > 0 during the run
}

// Run submits txs in batches of batch at rate tx/s (0: as fast as submit
// returns) through submit(i, raws) (i numbers the batches), and waits
// until observer commits all of them, or none for within (the rest count
// as lost). A transaction's latency runs from the start of its batch's
// submission to the delivery of its block on observer.
func Run[T any](tb testing.TB, txs [][]byte, batch int, rate float64, observer <-chan T, view func(T) Block,
	submit func(i int, raws [][]byte), within time.Duration) Result {
	for len(observer) > 0 { // blocks from before the load
		<-observer
	}
	submitted := make(map[[32]byte]time.Time, len(txs))
	var mu sync.Mutex
	var lastSub time.Time
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for i := 0; i*batch < len(txs); i++ {
			if rate > 0 {
				time.Sleep(time.Until(start.Add(time.Duration(float64(i*batch) / rate * float64(time.Second)))))
			}
			raws := txs[i*batch : min((i+1)*batch, len(txs))]
			now := time.Now()
			mu.Lock()
			for _, raw := range raws {
				submitted[chain.TxHash(raw)] = now
			}
			lastSub = now
			mu.Unlock()
			submit(i, raws)
		}
	}()
	var lat []time.Duration
	var res Result
	var lastCommit time.Time
	stall := time.NewTimer(within)
	defer stall.Stop()
wait:
	for len(lat) < len(txs) {
		select {
		case c, ok := <-observer:
			if !ok {
				tb.Fatal("observer closed")
			}
			b := view(c)
			now := time.Now()
			n := 0
			mu.Lock()
			for _, h := range b.TxHashes {
				if t, ok := submitted[h]; ok {
					lat = append(lat, now.Sub(t))
					n++
				}
			}
			mu.Unlock()
			if b.Round > 0 {
				res.LateRounds++
			}
			if n > 0 {
				res.Blocks++
				stall.Reset(within)
				res.MaxBlockTxs = max(res.MaxBlockTxs, n)
				lastCommit = now
			}
		case <-stall.C:
			break wait // the rest is lost: reported, not waited for
		}
	}
	<-done
	if len(lat) == 0 {
		tb.Fatalf("none of %d transactions committed", len(txs))
	}
	res.Lost = len(txs) - len(lat)
	slices.Sort(lat)
	res.Committed = len(lat)
	res.Elapsed = lastCommit.Sub(start)
	res.P50, res.P99, res.Max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	mu.Lock()
	if span := lastSub.Sub(start); span > 0 {
		res.Offered = float64(len(txs)) / span.Seconds()
	}
	mu.Unlock()
	return res
}

// Report puts the run's figures on b.
func (r Result) Report(b *testing.B) {
	b.ReportMetric(float64(r.Committed)/r.Elapsed.Seconds(), "tx/s")
	b.ReportMetric(r.Offered, "offered-tx/s")
	b.ReportMetric(float64(r.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(r.Blocks), "blocks")
	b.ReportMetric(float64(r.MaxBlockTxs), "max-txs/block")
	b.ReportMetric(float64(r.LateRounds), "late-rounds")
	b.ReportMetric(float64(r.Lost), "lost-txs")
}

// BlockIntervals times b.N consecutive blocks on blocks (after dropping
// what is queued and waiting for a fresh one) and reports the mean, median
// and largest interval.
func BlockIntervals[T any](b *testing.B, blocks <-chan T) {
	for len(blocks) > 0 {
		<-blocks
	}
	<-blocks // align with a fresh commit
	gaps := make([]time.Duration, 0, b.N)
	last := time.Now()
	b.ResetTimer()
	for range b.N {
		<-blocks
		now := time.Now()
		gaps = append(gaps, now.Sub(last))
		last = now
	}
	b.StopTimer()
	slices.Sort(gaps)
	var total time.Duration
	for _, g := range gaps {
		total += g
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(len(gaps)), "ms/block")
	b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "p50-ms/block")
	b.ReportMetric(float64(gaps[len(gaps)-1].Microseconds())/1000, "max-ms/block")
}
