package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/p2p"
)

// maxResubmits bounds how often one of the node's transactions is signed
// again after it left the mempool without committing.
const maxResubmits = 5

// txSender signs the node's own transactions with the sender's next nonce,
// puts them in the mempool, gossips them, tells waiters when they commit,
// and re-signs a transaction that left the mempool without committing.
//
// That happens when the node, as a proposer, spent a nonce on a Match
// transaction in the same block, or when the mempool evicted it: the body
// is rebuilt with a fresh nonce, so a provider's Result is never lost.
type txSender struct {
	n *Node

	mu      sync.Mutex
	pending map[[32]byte]*pendingTx
}

type pendingTx struct {
	fill    func(*chain.Tx)
	waiters []chan txOutcome
	tries   int
}

type txOutcome struct {
	height uint64
	res    chain.TxResult
}

func newTxSender(n *Node) *txSender {
	return &txSender{n: n, pending: map[[32]byte]*pendingTx{}}
}

// submit builds a transaction from the node's account with the next nonce
// and the minimum fee, lets fill set its body, signs it, admits it to the
// mempool and gossips it.
func (s *txSender) submit(ctx context.Context, fill func(tx *chain.Tx)) ([32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hash, err := s.sendLocked(ctx, fill)
	if err != nil {
		return hash, err
	}
	s.pending[hash] = &pendingTx{fill: fill}
	return hash, nil
}

func (s *txSender) sendLocked(ctx context.Context, fill func(tx *chain.Tx)) ([32]byte, error) {
	n := s.n
	st := n.drv.State()
	nonce, err := n.drv.Mempool().NextNonce(n.key.Address())
	if err != nil {
		return [32]byte{}, fmt.Errorf("next nonce: %w", err)
	}
	tx := &chain.Tx{ChainID: n.cfg.ChainID, Sender: n.key.Public(), Nonce: nonce, Fee: st.Params().MinFee}
	fill(tx)
	if err := tx.Sign(n.key); err != nil {
		return [32]byte{}, err
	}
	raw, err := tx.Encode()
	if err != nil {
		return [32]byte{}, err
	}
	hash, err := n.drv.Mempool().Add(raw)
	if err != nil {
		return hash, fmt.Errorf("transaction refused: %w", err)
	}
	batch, err := chain.EncodeTxBatch([][]byte{raw})
	if err != nil {
		return hash, err
	}
	if t := n.topics[p2p.TopicTxs]; t != nil {
		if err := t.Publish(ctx, batch); err != nil {
			n.log.Warn("gossip transaction", "hash", fmt.Sprintf("%x", hash[:8]), "err", err)
		}
	}
	return hash, nil
}

// wait blocks until the transaction (or the one that replaced it) commits,
// or ctx ends.
func (s *txSender) wait(ctx context.Context, hash [32]byte) (txOutcome, error) {
	ch := make(chan txOutcome, 1)
	s.mu.Lock()
	if p := s.pending[hash]; p != nil {
		p.waiters = append(p.waiters, ch)
		s.mu.Unlock()
	} else {
		s.mu.Unlock()
		// Committed before we asked; the store does not keep
		// per-transaction results, so report it as included.
		if loc, _, err := s.n.store.TxByHash(ctx, hash); err == nil {
			return txOutcome{height: loc.Height, res: chain.TxResult{Hash: hash}}, nil
		}
		return txOutcome{}, fmt.Errorf("transaction %x is not pending", hash[:8])
	}
	select {
	case o := <-ch:
		return o, nil
	case <-ctx.Done():
		return txOutcome{}, ctx.Err()
	}
}

// onCommit notifies the waiters of committed transactions and re-signs the
// node's transactions that the block made stale.
func (s *txSender) onCommit(c driver.Committed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range c.Result.TxResults {
		if p := s.pending[r.Hash]; p != nil {
			for _, ch := range p.waiters {
				ch <- txOutcome{height: c.Block.Header.Height, res: r}
			}
			delete(s.pending, r.Hash)
		}
	}
	mp := s.n.drv.Mempool()
	for hash, p := range s.pending {
		if mp.Has(hash) {
			continue
		}
		delete(s.pending, hash)
		if p.tries >= maxResubmits {
			s.n.log.Warn("giving up on a transaction that keeps leaving the mempool", "hash", fmt.Sprintf("%x", hash[:8]))
			continue
		}
		nh, err := s.sendLocked(s.n.ctx, p.fill)
		if err != nil {
			s.n.log.Warn("re-sign transaction", "hash", fmt.Sprintf("%x", hash[:8]), "err", err)
			continue
		}
		p.tries++
		s.pending[nh] = p
		s.n.log.Info("transaction re-signed with a fresh nonce", "old", fmt.Sprintf("%x", hash[:8]), "new", fmt.Sprintf("%x", nh[:8]))
	}
}
