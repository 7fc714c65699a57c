//go:build ignore

// load offers kvstore transactions to a CometBFT network through
// broadcast_tx_sync (like bourse bench transfers does through POST
// /v1/txs) and prints committed/s and submit → committed latency as seen
// by polling the first node's blocks. Standard library only.
//
//	go run scripts/cometbft/load.go -rate 2000 -duration 15s -senders 16 \
//	    -rpc 127.0.0.1:36657,127.0.0.1:36667,127.0.0.1:36677,127.0.0.1:36687
package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	rate := flag.Float64("rate", 1000, "offered tx/s over all nodes")
	dur := flag.Duration("duration", 15*time.Second, "how long to offer load")
	senders := flag.Int("senders", 16, "concurrent broadcast_tx_sync callers")
	rpcs := flag.String("rpc", "127.0.0.1:36657", "comma-separated RPC addresses; the first observes")
	flag.Parse()
	nodes := strings.Split(*rpcs, ",")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	get := func(url string, out any) error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		return json.Unmarshal(data, out)
	}
	height := func() int64 {
		var st struct {
			Result struct {
				SyncInfo struct {
					H string `json:"latest_block_height"`
				} `json:"sync_info"`
			} `json:"result"`
		}
		if err := get("http://"+nodes[0]+"/status", &st); err != nil {
			return 0
		}
		h, _ := strconv.ParseInt(st.Result.SyncInfo.H, 10, 64)
		return h
	}
	run := time.Now().UnixNano()
	var (
		mu      sync.Mutex
		sent    = map[string]time.Time{}
		seen    = map[string]time.Time{}
		refused atomic.Int64
		next    atomic.Int64
	)
	start := time.Now()
	from := height()
	stop := make(chan struct{})
	obsDone := make(chan struct{})
	var blocks, maxTxs int
	go func() { // observer
		defer close(obsDone)
		h := from + 1
		for {
			select {
			case <-stop:
				return
			default:
			}
			if height() < h {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			var b struct {
				Result struct {
					Block struct {
						Data struct {
							Txs []string `json:"txs"`
						} `json:"data"`
					} `json:"block"`
				} `json:"result"`
			}
			if err := get(fmt.Sprintf("http://%s/block?height=%d", nodes[0], h), &b); err != nil {
				continue
			}
			now := time.Now()
			txs := b.Result.Block.Data.Txs
			mu.Lock()
			for _, t := range txs {
				raw, _ := base64.StdEncoding.DecodeString(t)
				if _, ok := seen[string(raw)]; !ok {
					seen[string(raw)] = now
				}
			}
			mu.Unlock()
			if len(txs) > 0 {
				blocks++
				maxTxs = max(maxTxs, len(txs))
			}
			h++
		}
	}()
	var wg sync.WaitGroup
	for s := range *senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := nodes[s%len(nodes)]
			for {
				i := next.Add(1) - 1
				at := start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))
				if at.Sub(start) >= *dur {
					return
				}
				time.Sleep(time.Until(at))
				tx := fmt.Sprintf("b%d-%d=%d", run, i, i)
				t0 := time.Now()
				var res struct {
					Result *struct {
						Code int `json:"code"`
					} `json:"result"`
				}
				err := get(fmt.Sprintf("http://%s/broadcast_tx_sync?tx=%%22%s%%22", node, tx), &res)
				if err != nil || res.Result == nil || res.Result.Code != 0 {
					refused.Add(1)
					continue
				}
				mu.Lock()
				sent[tx] = t0
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	offeredFor := time.Since(start)
	// Wait for commits: all, or none for 20 s.
	progress, last := time.Now(), -1
	for {
		mu.Lock()
		n := 0
		for k := range sent {
			if _, ok := seen[k]; ok {
				n++
			}
		}
		total := len(sent)
		mu.Unlock()
		if n != last {
			last, progress = n, time.Now()
		}
		if n == total || time.Since(progress) > 20*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	<-obsDone
	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	var lastCommit time.Time
	for k, t := range sent {
		if c, ok := seen[k]; ok {
			lat = append(lat, c.Sub(t))
			if c.After(lastCommit) {
				lastCommit = c
			}
		}
	}
	if len(lat) == 0 {
		fmt.Println("nothing committed")
		os.Exit(1)
	}
	slices.Sort(lat)
	q := func(p int) string { return fmt.Sprintf("%.0fms", float64(lat[min(len(lat)-1, len(lat)*p/100)].Microseconds())/1000) }
	fmt.Printf("offered    %d at %.0f tx/s (%d refused)\n", len(sent)+int(refused.Load()), float64(len(sent)+int(refused.Load()))/offeredFor.Seconds(), refused.Load())
	fmt.Printf("committed  %d, %.0f tx/s over %s (%d blocks, at most %d txs in one)\n", len(lat),
		float64(len(lat))/lastCommit.Sub(start).Seconds(), lastCommit.Sub(start).Round(time.Millisecond), blocks, maxTxs)
	fmt.Printf("latency    p50 %s, p90 %s, p99 %s, max %s\n", q(50), q(90), q(99), q(100))
	fmt.Printf("lost       %d\n", len(sent)-len(lat))
}
