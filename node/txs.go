package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/p2p"
)

// txSender signs the node's own transactions with consecutive nonces, puts
// them in the mempool, gossips them and tells waiters when they commit.
type txSender struct {
	n *Node

	mu      sync.Mutex
	next    uint64 // next nonce to use; below the account's nonce it is stale
	waiters map[[32]byte][]chan txOutcome
}

type txOutcome struct {
	height uint64
	res    chain.TxResult
}

func newTxSender(n *Node) *txSender {
	return &txSender{n: n, waiters: map[[32]byte][]chan txOutcome{}}
}

// submit builds a transaction from the node's account with the next nonce
// and the minimum fee, lets fill set its body, signs it, admits it to the
// mempool and gossips it.
func (s *txSender) submit(ctx context.Context, fill func(tx *chain.Tx)) ([32]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	st := n.drv.State()
	acc, err := st.Account(n.key.Address())
	if err != nil {
		return [32]byte{}, fmt.Errorf("read account: %w", err)
	}
	for attempt := 0; ; attempt++ {
		nonce := max(acc.Nonce, s.next)
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
			if attempt == 0 && s.next > acc.Nonce {
				// A transaction of ours left the mempool without
				// committing (evicted): restart from the chain's nonce.
				s.next = 0
				continue
			}
			return [32]byte{}, fmt.Errorf("transaction refused: %w", err)
		}
		s.next = nonce + 1
		batch, err := chain.EncodeTxBatch([][]byte{raw})
		if err != nil {
			return hash, err
		}
		if t := n.topics[p2p.TopicTxs]; t != nil {
			if err := t.Publish(ctx, batch); err != nil {
				n.log.Warn("gossip transaction", "hash", fmt.Sprintf("%x", hash), "err", err)
			}
		}
		return hash, nil
	}
}

// wait blocks until the transaction commits or ctx ends.
func (s *txSender) wait(ctx context.Context, hash [32]byte) (txOutcome, error) {
	ch := make(chan txOutcome, 1)
	s.mu.Lock()
	s.waiters[hash] = append(s.waiters[hash], ch)
	s.mu.Unlock()
	// It may have committed before we registered; the store does not keep
	// per-transaction results, so report it as included.
	if loc, _, err := s.n.store.TxByHash(ctx, hash); err == nil {
		s.drop(hash, ch)
		return txOutcome{height: loc.Height, res: chain.TxResult{Hash: hash}}, nil
	}
	select {
	case o := <-ch:
		return o, nil
	case <-ctx.Done():
		s.drop(hash, ch)
		return txOutcome{}, ctx.Err()
	}
}

func (s *txSender) drop(hash [32]byte, ch chan txOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waiters[hash]
	for i, w := range ws {
		if w == ch {
			s.waiters[hash] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(s.waiters[hash]) == 0 {
		delete(s.waiters, hash)
	}
}

func (s *txSender) onCommit(c driver.Committed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range c.Result.TxResults {
		for _, ch := range s.waiters[r.Hash] {
			ch <- txOutcome{height: c.Block.Header.Height, res: r}
		}
		delete(s.waiters, r.Hash)
	}
}
