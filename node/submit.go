package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/chain/mempool"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/p2p"
)

// maxCommitWaiters bounds the transactions that POST /v1/txs calls with
// commit may wait for at once, over all clients: a flood of waiting calls
// is refused (503) instead of growing the waiter table.
const maxCommitWaiters = 20000

// commitWait bounds how long a submit with commit waits for the blocks.
const commitWait = 10 * time.Second

// gossipChunkBytes bounds one txs-topic message the node publishes for
// submitted transactions (max_message_size is at least 1 KiB and 1 MiB by
// default; a chunk never exceeds half of it).
const gossipChunkBytes = 512 << 10

// commitWaiters tells callers of POST /v1/txs with commit when their
// transactions commit. Its own lock, so that announcing a block never
// waits on a submission.
type commitWaiters struct {
	mu sync.Mutex
	m  map[[32]byte][]chan txOutcome
	n  int
}

// add registers one buffered channel per hash; false when that would pass
// maxCommitWaiters.
func (w *commitWaiters) add(hashes [][32]byte) ([]chan txOutcome, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n+len(hashes) > maxCommitWaiters {
		return nil, false
	}
	if w.m == nil {
		w.m = map[[32]byte][]chan txOutcome{}
	}
	out := make([]chan txOutcome, len(hashes))
	for i, h := range hashes {
		out[i] = make(chan txOutcome, 1)
		w.m[h] = append(w.m[h], out[i])
	}
	w.n += len(hashes)
	return out, true
}

// remove forgets the channels of hashes (those that were notified are gone
// already).
func (w *commitWaiters) remove(hashes [][32]byte, chs []chan txOutcome) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, h := range hashes {
		l := w.m[h]
		for j, c := range l {
			if c == chs[i] {
				l = append(l[:j], l[j+1:]...)
				w.n--
				break
			}
		}
		if len(l) == 0 {
			delete(w.m, h)
		} else {
			w.m[h] = l
		}
	}
}

// notify hands each waited-for transaction of the block its outcome.
func (w *commitWaiters) notify(c driver.Committed) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		return
	}
	for _, r := range c.Result.TxResults {
		for _, ch := range w.m[r.Hash] {
			ch <- txOutcome{hash: r.Hash, height: c.Block.Header.Height, res: r}
			w.n--
		}
		delete(w.m, r.Hash)
	}
}

// size is the number of registered waiters.
func (w *commitWaiters) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// SubmitTxs admits transactions signed elsewhere to the mempool (one
// batch signature verification), gossips the admitted ones in batches and,
// with commit, waits for their blocks.
func (b *backend) SubmitTxs(ctx context.Context, raws [][]byte, commit bool) ([]api.TxResult, error) {
	n := b.node()
	if len(raws) == 0 || len(raws) > api.MaxSubmitTxs {
		return nil, api.BadRequest("submit 1 to %d transactions, not %d", api.MaxSubmitTxs, len(raws))
	}
	hashes := make([][32]byte, len(raws))
	for i, raw := range raws {
		hashes[i] = chain.TxHash(raw)
	}
	var chs []chan txOutcome
	if commit {
		// Before the mempool sees them: a block may commit them at once.
		var ok bool
		if chs, ok = n.txs.waiters.add(hashes); !ok {
			return nil, fmt.Errorf("%w: %d transactions are already waiting for their blocks; submit without commit and follow them with GET /v1/chain/txs/{hash}",
				api.ErrUnavailable, maxCommitWaiters)
		}
		defer n.txs.waiters.remove(hashes, chs)
	}
	mp := n.drv.Mempool()
	_, errs := mp.AddBatch(raws)
	out := make([]api.TxResult, len(raws))
	var admitted [][]byte
	wait := make([]bool, len(raws))
	for i, err := range errs {
		out[i] = api.TxResult{Hash: hex.EncodeToString(hashes[i][:]), Status: api.TxPending}
		switch {
		case err == nil:
			admitted = append(admitted, raws[i])
			wait[i] = true
		case mp.Has(hashes[i]):
			// The same bytes are pending already (an earlier call, this
			// batch, or gossip): nothing more to do, still exactly once.
			wait[i] = true
		default:
			if loc, _, serr := n.store.TxByHash(ctx, hashes[i]); serr == nil {
				out[i].Status, out[i].Height = "committed", loc.Height
				continue
			}
			out[i].Status, out[i].Error = api.TxRejected, rejectReason(err)
		}
	}
	n.txs.gossipBatch(ctx, admitted)
	if !commit {
		return out, nil
	}
	wctx, cancel := context.WithTimeout(ctx, commitWait)
	defer cancel()
	for i := range raws {
		if !wait[i] {
			continue
		}
		select {
		case o := <-chs[i]:
			out[i].Height, out[i].Status = o.height, "committed"
			if o.res.Code != 0 {
				out[i].Status, out[i].Error = api.TxFailed, o.res.Log
			}
		case <-wctx.Done():
			// Still pending, unless its block was announced before the
			// waiter saw it: the store knows.
			if loc, _, err := n.store.TxByHash(ctx, hashes[i]); err == nil {
				out[i].Status, out[i].Height = "committed", loc.Height
			}
		}
	}
	return out, nil
}

// rejectReason is why the mempool refused a transaction, for the client.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, mempool.ErrMempoolFull):
		return err.Error() + ": retry later"
	case errors.Is(err, mempool.ErrNonceGap):
		return err.Error() + ": submit the sender's earlier nonces first"
	}
	return err.Error()
}

// gossipBatch publishes transactions on the txs topic in as few messages
// as their size allows.
func (s *txSender) gossipBatch(ctx context.Context, raws [][]byte) {
	t := s.n.topics[p2p.TopicTxs]
	if t == nil {
		return
	}
	for len(raws) > 0 {
		k, size := 0, 0
		for k < len(raws) && k < mempool.MaxTxBatch && (k == 0 || size+len(raws[k]) <= gossipChunkBytes) {
			size += len(raws[k]) + 8
			k++
		}
		batch, err := mempool.EncodeTxBatch(raws[:k])
		if err == nil {
			if err := t.Publish(ctx, batch); err != nil {
				s.n.log.Warn("gossip submitted transactions", "count", k, "err", err)
			}
		}
		raws = raws[k:]
	}
}
