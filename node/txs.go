package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/chain/mempool"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/p2p"
)

// maxResubmits bounds how often one of the node's transactions is signed
// again after another transaction took its nonce.
const maxResubmits = 5

// txSender signs the node's own transactions with the sender's next nonce,
// puts them in the mempool, gossips them, tells waiters when they commit,
// and replaces a transaction that can no longer commit.
//
// A signed transaction takes effect at most once, and a replacement is
// signed only when the original never can. Whether it can is decided from
// committed chain state, never from the mempool or from the block being
// announced (the announcements may run several blocks behind the state):
//
//   - while the sender's account nonce is at most the transaction's, the
//     nonce is unused and the same signed bytes may still commit: they are
//     put back in the mempool and gossiped again if the mempool dropped
//     them (an eviction), and nothing is re-signed;
//   - once the account nonce has passed it, the nonce was used by exactly
//     one committed transaction: if the store indexes this transaction's
//     hash, it committed (its waiters hear of it when its block is
//     announced); if not, another transaction took the nonce (the node, as
//     a proposer, spent it on a Match, or the node signed another
//     transaction with it while this one was out of the mempool), and only
//     then is the body signed again with a fresh nonce.
type txSender struct {
	n *Node

	mu      sync.Mutex
	pending map[[32]byte]*pendingTx // by the hash of the current signature

	// waiters are the callers of POST /v1/txs with commit.
	waiters commitWaiters
}

type pendingTx struct {
	fill    func(*chain.Tx)
	raw     []byte // the signed transaction, rebroadcast as is
	hash    [32]byte
	nonce   uint64
	waiters []chan txOutcome
	tries   int
}

// txOutcome is a committed transaction: hash is the one that committed,
// which differs from the submitted one when it was replaced.
type txOutcome struct {
	hash   [32]byte
	height uint64
	res    chain.TxResult
}

func newTxSender(n *Node) *txSender {
	return &txSender{n: n, pending: map[[32]byte]*pendingTx{}}
}

// submit builds a transaction from the node's account with the next nonce
// and the minimum fee, lets fill set its body, signs it, admits it to the
// mempool and gossips it. The channel receives one outcome when it (or the
// transaction that replaced it) commits; it is buffered, so a caller that
// does not care may drop it.
func (s *txSender) submit(ctx context.Context, fill func(tx *chain.Tx)) ([32]byte, <-chan txOutcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &pendingTx{fill: fill}
	if err := s.signLocked(ctx, p); err != nil {
		return p.hash, nil, err
	}
	ch := make(chan txOutcome, 1)
	p.waiters = append(p.waiters, ch)
	s.pending[p.hash] = p
	return p.hash, ch, nil
}

// signLocked signs p's body with the sender's next nonce, admits it to the
// mempool and gossips it; it sets p's raw, hash and nonce.
func (s *txSender) signLocked(ctx context.Context, p *pendingTx) error {
	n := s.n
	st := n.drv.State()
	nonce, err := n.drv.Mempool().NextNonce(n.key.Address())
	if err != nil {
		return fmt.Errorf("next nonce: %w", err)
	}
	tx := &chain.Tx{ChainID: n.cfg.ChainID, Sender: n.key.Public(), Nonce: nonce, Fee: st.Params().MinFee}
	p.fill(tx)
	if err := tx.Sign(n.key); err != nil {
		return err
	}
	raw, err := tx.Encode()
	if err != nil {
		return err
	}
	hash, err := n.drv.Mempool().Add(raw)
	p.hash = hash
	if err != nil {
		return fmt.Errorf("transaction refused: %w", err)
	}
	p.raw, p.nonce = raw, nonce
	s.gossip(ctx, raw, hash)
	return nil
}

func (s *txSender) gossip(ctx context.Context, raw []byte, hash [32]byte) {
	batch, err := mempool.EncodeTxBatch([][]byte{raw})
	if err != nil {
		return
	}
	if t := s.n.topics[p2p.TopicTxs]; t != nil {
		if err := t.Publish(ctx, batch); err != nil {
			s.n.log.Warn("gossip transaction", "hash", fmt.Sprintf("%x", hash[:8]), "err", err)
		}
	}
}

// doneLocked tells p's waiters that o committed and forgets p.
func (s *txSender) doneLocked(p *pendingTx, o txOutcome) {
	for _, ch := range p.waiters {
		ch <- o // buffered, one outcome each
	}
	p.waiters = nil
	delete(s.pending, p.hash)
}

// onCommit notifies the waiters of the transactions the announced block
// committed, then checks the rest against committed state: it rebroadcasts
// those whose nonce is still unused and re-signs those whose nonce another
// transaction took (see txSender).
func (s *txSender) onCommit(c driver.Committed) {
	s.waiters.notify(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	height := c.Block.Header.Height
	for _, r := range c.Result.TxResults {
		if p := s.pending[r.Hash]; p != nil {
			s.doneLocked(p, txOutcome{hash: r.Hash, height: height, res: r})
		}
	}
	if len(s.pending) == 0 {
		return
	}
	n := s.n
	// The account nonce first: the driver stores a block before it applies
	// it, so every transaction below this nonce is in the store already.
	acc, err := n.drv.State().Account(n.key.Address())
	if err != nil {
		n.log.Warn("pending transactions: read account", "err", err)
		return
	}
	ps := make([]*pendingTx, 0, len(s.pending))
	for _, p := range s.pending {
		ps = append(ps, p)
	}
	// In nonce order, so rebroadcasts and replacements queue without gaps.
	slices.SortFunc(ps, func(a, b *pendingTx) int {
		if a.nonce != b.nonce {
			return cmp.Compare(a.nonce, b.nonce)
		}
		return slices.Compare(a.hash[:], b.hash[:])
	})
	mp := n.drv.Mempool()
	for _, p := range ps {
		// Unused nonce: these very bytes may still commit.
		if p.nonce >= acc.Nonce && !mp.Has(p.hash) {
			if _, err := mp.Add(p.raw); err == nil {
				s.gossip(n.ctx, p.raw, p.hash)
			}
		}
	}
	for _, p := range ps {
		if p.nonce >= acc.Nonce {
			continue
		}
		loc, _, err := n.store.TxByHash(n.ctx, p.hash)
		switch {
		case err == nil && loc.Height > height:
			continue // committed in a block still to be announced
		case err == nil:
			// Committed in a block whose announcement this subscriber
			// did not see; the store keeps no results, so report it as
			// included.
			s.doneLocked(p, txOutcome{hash: p.hash, height: loc.Height, res: chain.TxResult{Hash: p.hash}})
			continue
		case !errors.Is(err, store.ErrNotFound):
			n.log.Warn("pending transaction: look up", "hash", fmt.Sprintf("%x", p.hash[:8]), "err", err)
			continue
		}
		// Another transaction used the nonce: this one can never commit.
		old, oldNonce := p.hash, p.nonce
		delete(s.pending, old)
		if p.tries >= maxResubmits {
			n.log.Warn("giving up on a transaction whose nonce keeps being taken", "hash", fmt.Sprintf("%x", old[:8]))
			continue
		}
		p.tries++
		if err := s.signLocked(n.ctx, p); err != nil {
			n.log.Warn("re-sign transaction", "hash", fmt.Sprintf("%x", old[:8]), "err", err)
			continue
		}
		s.pending[p.hash] = p
		n.log.Info("transaction re-signed with a fresh nonce: another transaction took its nonce",
			"old", fmt.Sprintf("%x", old[:8]), "old_nonce", oldNonce, "new", fmt.Sprintf("%x", p.hash[:8]), "nonce", p.nonce)
	}
}
