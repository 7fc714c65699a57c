// Package loadgen is the load tool behind 'bourse bench': it drives
// transfers (signed here, submitted through POST /v1/txs) or jobs (POST
// /v1/jobs) into any running network through its public API, measures
// committed/s and latency, and checks afterwards that nothing was lost or
// applied twice: every account's nonce and balance to the unit on every
// node, every job's money.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
)

// Transfers configures a transfer run.
type Transfers struct {
	// Clients are the nodes' APIs; load is spread over all of them and the
	// first one observes the blocks.
	Clients []*api.Client
	// Rate is the offered load in transactions per second over all nodes.
	Rate float64
	// Duration is how long load is offered.
	Duration time.Duration
	// Accounts is the number of fresh accounts that send (default 16 per
	// node); each is funded from a node's wallet first, and sends to the
	// next one in a ring.
	Accounts int
	// Amount moved per transfer (default 1) and Fee paid (default 1: the
	// chain's minimum fee unless a genesis raised it).
	Amount, Fee uint64
	// Batch caps the transactions of one POST /v1/txs (default and at most
	// api.MaxSubmitTxs).
	Batch int
	// Drain bounds the wait for the last commits after the load: a run
	// ends when every admitted transaction committed or none did for
	// Drain (default 30s); the rest count as lost.
	Drain time.Duration
	// Log receives progress lines; nil: none.
	Log io.Writer
}

// Latency is a distribution of submit → commit times.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// TransferReport is a transfer run's outcome.
type TransferReport struct {
	Nodes, Accounts int
	Offered         float64 // tx/s actually offered
	Submitted       int     // distinct transactions sent at least once
	Admitted        int     // accepted into a mempool
	Retried         int     // refusals (mempool full, nonce gap behind one) sent again later
	Refused         int     // refused for another reason: never retried
	Committed       int
	Lost            int // admitted, never committed
	// CommittedPerSec is Committed over the time from the first submission
	// to the last commit.
	CommittedPerSec float64
	Elapsed         time.Duration
	Latency         Latency // submission (its last sending) → the observer saw its block
	Blocks          int     // blocks that carried the run's transactions
	MaxBlockTxs     int
	// Checked is the number of account reads compared to the expectation
	// (every account on every node); Mismatches lists those that differ:
	// a transaction lost or applied twice.
	Checked    int
	Mismatches []string
}

type account struct {
	key     wallet.PrivateKey
	node    int
	start   chain.Account // nonce and balance after funding
	txs     [][]byte      // pre-signed, nonces start.Nonce...
	hashes  [][32]byte
	next    int // index of the next transaction to send
	refused bool
}

func (c *Transfers) defaults() error {
	if len(c.Clients) == 0 {
		return errors.New("no nodes")
	}
	if c.Rate <= 0 || c.Duration <= 0 {
		return errors.New("rate and duration must be positive")
	}
	if c.Accounts <= 0 {
		c.Accounts = 16 * len(c.Clients)
	}
	if c.Amount == 0 {
		c.Amount = 1
	}
	if c.Fee == 0 {
		c.Fee = 1
	}
	if c.Batch <= 0 || c.Batch > api.MaxSubmitTxs {
		c.Batch = api.MaxSubmitTxs
	}
	if c.Drain <= 0 {
		c.Drain = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// RunTransfers funds fresh accounts, offers transfers between them at
// c.Rate for c.Duration, waits for the commits and checks every account on
// every node.
func RunTransfers(ctx context.Context, c Transfers) (*TransferReport, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	st, err := c.Clients[0].Status(ctx)
	if err != nil {
		return nil, err
	}
	chainID := st.ChainID
	n := len(c.Clients)
	total := int(c.Rate*c.Duration.Seconds()) + 1
	perAccount := total/c.Accounts + 2
	accs := make([]*account, c.Accounts)
	for i := range accs {
		seed := make([]byte, 32)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		k, err := wallet.KeyFromSeed(seed)
		if err != nil {
			return nil, err
		}
		accs[i] = &account{key: k, node: i % n}
	}
	fund := uint64(perAccount) * (c.Amount + c.Fee) * 2
	fmt.Fprintf(c.Log, "funding %d accounts with %d each from the nodes' wallets\n", len(accs), fund)
	if err := fundAccounts(ctx, c.Clients, accs, fund); err != nil {
		return nil, err
	}
	for _, a := range accs {
		acc, err := c.Clients[0].Account(ctx, a.key.Address().String())
		if err != nil {
			return nil, err
		}
		a.start = chain.Account{Balance: acc.Balance, Nonce: acc.Nonce}
	}
	fmt.Fprintf(c.Log, "signing %d transfers\n", perAccount*len(accs))
	if err := presign(accs, chainID, perAccount, c.Amount, c.Fee); err != nil {
		return nil, err
	}

	obs, err := observe(ctx, c.Clients[0])
	if err != nil {
		return nil, err
	}
	defer obs.stop()

	r := &TransferReport{Nodes: n, Accounts: len(accs)}
	var (
		mu       sync.Mutex
		sentAt   = map[[32]byte]time.Time{}
		admitted = map[[32]byte]bool{}
		offered  int
	)
	fmt.Fprintf(c.Log, "offering %.0f tx/s for %s to %d nodes\n", c.Rate, c.Duration, n)
	start := time.Now()
	obs.since(start)
	var wg sync.WaitGroup
	var sendErr error
	for node := range n {
		var mine []*account
		for _, a := range accs {
			if a.node == node {
				mine = append(mine, a)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rate := c.Rate / float64(n)
			issued, rr := 0, 0
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				el := time.Since(start)
				if el >= c.Duration || ctx.Err() != nil {
					return
				}
				due := min(int(el.Seconds()*rate)-issued, c.Batch)
				var batch [][]byte
				var from []*account
				var idxs []int
				for k := 0; len(batch) < due && k < len(mine)*perAccount; k++ {
					a := mine[rr%len(mine)]
					rr++
					if a.refused || a.next >= len(a.txs) {
						continue
					}
					batch, from, idxs = append(batch, a.txs[a.next]), append(from, a), append(idxs, a.next)
					a.next++
				}
				if len(batch) > 0 {
					now := time.Now()
					res, err := c.Clients[node].SubmitTxs(ctx, batch, false)
					if err != nil {
						mu.Lock()
						sendErr = fmt.Errorf("node %d: %w", node, err)
						mu.Unlock()
						return
					}
					issued += len(batch)
					// Roll each account back to its first refusal that
					// may pass later.
					back := map[*account]int{}
					mu.Lock()
					for i, rs := range res {
						a := from[i]
						idx := idxs[i]
						h := a.hashes[idx]
						if _, ok := sentAt[h]; !ok {
							offered++
						}
						switch rs.Status {
						case api.TxPending, "committed", api.TxFailed:
							sentAt[h] = now
							admitted[h] = true
						default:
							if strings.Contains(rs.Error, "mempool full") || strings.Contains(rs.Error, "nonce gap") {
								if b, ok := back[a]; !ok || idx < b {
									back[a] = idx
								}
								r.Retried++
							} else {
								r.Refused++
								if !a.refused {
									fmt.Fprintf(c.Log, "refused: %s\n", rs.Error)
								}
								a.refused = true
								if b, ok := back[a]; !ok || idx < b {
									back[a] = idx
								}
							}
						}
					}
					mu.Unlock()
					for a, idx := range back {
						a.next = idx
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	lastSub := time.Now()
	if sendErr != nil {
		return nil, sendErr
	}
	mu.Lock()
	r.Submitted, r.Admitted = offered, len(admitted)
	want := make(map[[32]byte]time.Time, len(admitted))
	for h := range admitted {
		want[h] = sentAt[h]
	}
	mu.Unlock()
	r.Offered = float64(r.Submitted) / lastSub.Sub(start).Seconds()
	fmt.Fprintf(c.Log, "offered %d (%.0f tx/s), admitted %d; waiting for the commits\n", r.Submitted, r.Offered, r.Admitted)

	lat, lastCommit, blocks, maxTxs, err := obs.wait(ctx, want, c.Drain)
	if err != nil {
		return nil, err
	}
	r.Committed, r.Lost, r.Blocks, r.MaxBlockTxs = len(lat), len(want)-len(lat), blocks, maxTxs
	if len(lat) > 0 {
		r.Elapsed = lastCommit.Sub(start)
		r.CommittedPerSec = float64(len(lat)) / r.Elapsed.Seconds()
		r.Latency = latencyOf(lat)
	}
	fmt.Fprintf(c.Log, "checking %d accounts on %d nodes\n", len(accs), n)
	r.Checked, r.Mismatches, err = checkAccounts(ctx, c.Clients, accs, admitted, c.Amount, c.Fee, obs.height())
	return r, err
}

func latencyOf(lat []time.Duration) Latency {
	slices.Sort(lat)
	q := func(p int) time.Duration { return lat[min(len(lat)-1, len(lat)*p/100)] }
	return Latency{P50: q(50), P90: q(90), P99: q(99), Max: lat[len(lat)-1]}
}

// fundAccounts sends fund to every account from its node's wallet, a few
// sends at a time per node, and waits until all committed.
func fundAccounts(ctx context.Context, clients []*api.Client, accs []*account, fund uint64) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(accs))
	for node, cl := range clients {
		sem := make(chan struct{}, 16)
		for _, a := range accs {
			if a.node != node {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				res, err := cl.Send(ctx, a.key.Address().String(), fund)
				if err == nil {
					err = waitCommitted(ctx, cl, res)
				}
				if err != nil {
					errs <- fmt.Errorf("fund %s from node %d: %w", a.key.Address(), node, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	// Every node has applied the funding before the load starts.
	h := uint64(0)
	for _, cl := range clients {
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		h = max(h, st.Height)
	}
	return waitHeight(ctx, clients, h, time.Minute)
}

func waitCommitted(ctx context.Context, cl *api.Client, res api.TxResult) error {
	deadline := time.Now().Add(time.Minute)
	for res.Status == api.TxPending {
		tx, err := cl.Tx(ctx, res.Hash)
		if err == nil && tx.Height > 0 {
			if tx.Status == api.TxFailed {
				return fmt.Errorf("transaction %s failed: %s", res.Hash, tx.Log)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("transaction %s not committed in a minute", res.Hash)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if res.Status != "committed" {
		return fmt.Errorf("transaction %s: %s %s", res.Hash, res.Status, res.Error)
	}
	return nil
}

func waitHeight(ctx context.Context, clients []*api.Client, h uint64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for i, cl := range clients {
		for {
			st, err := cl.Status(ctx)
			if err != nil {
				return err
			}
			if st.Height >= h {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %d at height %d, want %d", i, st.Height, h)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// presign signs every account's transfers, on all cores.
func presign(accs []*account, chainID string, per int, amount, fee uint64) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(accs))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, a := range accs {
		to := accs[(i+1)%len(accs)].key.Address()
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for j := range per {
				tx := &chain.Tx{ChainID: chainID, Sender: a.key.Public(), Nonce: a.start.Nonce + uint64(j), Fee: fee,
					Transfer: &chain.Transfer{To: to, Amount: amount}}
				if err := tx.Sign(a.key); err != nil {
					errs <- err
					return
				}
				raw, err := tx.Encode()
				if err != nil {
					errs <- err
					return
				}
				a.txs, a.hashes = append(a.txs, raw), append(a.hashes, chain.TxHash(raw))
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// checkAccounts compares every account on every node with what the
// admitted transactions must have done: nonce advanced by the number the
// account had admitted, balance down by those times amount plus fee and up
// by what its predecessor in the ring had admitted times amount.
func checkAccounts(ctx context.Context, clients []*api.Client, accs []*account, admitted map[[32]byte]bool,
	amount, fee uint64, height uint64) (int, []string, error) {
	if err := waitHeight(ctx, clients, height, time.Minute); err != nil {
		return 0, nil, err
	}
	sent := make([]uint64, len(accs))
	for i, a := range accs {
		for _, h := range a.hashes {
			if admitted[h] {
				sent[i]++
			}
		}
	}
	checked := 0
	var bad []string
	for i, a := range accs {
		recv := sent[(i+len(accs)-1)%len(accs)]
		wantNonce := a.start.Nonce + sent[i]
		wantBal := a.start.Balance - sent[i]*(amount+fee) + recv*amount
		for node, cl := range clients {
			acc, err := cl.Account(ctx, a.key.Address().String())
			if err != nil {
				return checked, bad, err
			}
			checked++
			if acc.Nonce != wantNonce || acc.Balance != wantBal {
				bad = append(bad, fmt.Sprintf("node %d, account %s: nonce %d balance %d, want nonce %d balance %d",
					node, a.key.Address(), acc.Nonce, acc.Balance, wantNonce, wantBal))
			}
		}
	}
	return checked, bad, nil
}

// observer follows one node's blocks: the event stream for speed, block
// reads for any height the stream skipped.
type observer struct {
	cl     *api.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	seen   map[[32]byte]time.Time // tx hash → when its block was seen
	blocks map[uint64]int         // height → transactions (after since)
	top    uint64
	from   time.Time
	err    error
}

func observe(ctx context.Context, cl *api.Client) (*observer, error) {
	st, err := cl.Status(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	es, err := cl.Events(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	o := &observer{cl: cl, cancel: cancel, done: make(chan struct{}), seen: map[[32]byte]time.Time{},
		blocks: map[uint64]int{}, top: st.Height}
	go func() {
		defer close(o.done)
		defer es.Close()
		for {
			ev, err := es.Next()
			if err != nil {
				if ctx.Err() == nil {
					o.mu.Lock()
					o.err = fmt.Errorf("event stream: %w", err)
					o.mu.Unlock()
				}
				return
			}
			if ev.Type != api.EventBlock || ev.Block == nil {
				continue
			}
			now := time.Now()
			o.mu.Lock()
			top := o.top
			o.mu.Unlock()
			// Heights the stream skipped (it drops for slow readers).
			for h := top + 1; h < ev.Block.Height; h++ {
				b, err := cl.Block(ctx, h)
				if err != nil {
					continue
				}
				o.record(b, time.Now())
			}
			o.record(*ev.Block, now)
		}
	}()
	return o, nil
}

func (o *observer) since(t time.Time) {
	o.mu.Lock()
	o.from = t
	o.mu.Unlock()
}

func (o *observer) record(b api.Block, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if b.Height <= o.top && o.blocks[b.Height] != 0 {
		return
	}
	o.top = max(o.top, b.Height)
	for _, t := range b.Txs {
		raw, err := hex.DecodeString(t.Hash)
		if err != nil || len(raw) != 32 {
			continue
		}
		h := [32]byte(raw)
		if _, ok := o.seen[h]; !ok {
			o.seen[h] = at
		}
	}
	if !o.from.IsZero() {
		o.blocks[b.Height] = len(b.Txs)
	}
}

func (o *observer) height() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.top
}

// wait returns the latencies of want's transactions that commit, waiting
// until all did or none for drain.
func (o *observer) wait(ctx context.Context, want map[[32]byte]time.Time, drain time.Duration) (
	lat []time.Duration, last time.Time, blocks, maxTxs int, err error) {
	got := map[[32]byte]bool{}
	progress := time.Now()
	for {
		o.mu.Lock()
		for h, sent := range want {
			if got[h] {
				continue
			}
			if at, ok := o.seen[h]; ok {
				got[h] = true
				lat = append(lat, at.Sub(sent))
				if at.After(last) {
					last = at
				}
				progress = time.Now()
			}
		}
		err = o.err
		o.mu.Unlock()
		if err != nil || len(got) == len(want) || time.Since(progress) > drain {
			break
		}
		select {
		case <-ctx.Done():
			return nil, last, 0, 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	o.mu.Lock()
	for _, k := range o.blocks {
		if k > 0 {
			blocks++
			maxTxs = max(maxTxs, k)
		}
	}
	o.mu.Unlock()
	return lat, last, blocks, maxTxs, err
}

func (o *observer) stop() {
	o.cancel()
	<-o.done
}
