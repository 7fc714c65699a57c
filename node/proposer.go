package node

import (
	"github.com/bourse-net/bourse/chain"
)

// proposerTxs is the proposer's matcher: it places the book's bids on its
// offers and turns each placement into a Match transaction signed by this
// node, with the nonces that follow the node's transactions already in
// the block.
func (m *marketService) proposerTxs(st *chain.State, height uint64, blockTime int64, taken [][]byte) [][]byte {
	g := st.Globals()
	// The book hands over the round's sample only (the matcher would draw
	// the same from the whole book): bounded work whatever its size.
	snap := m.book.RoundSample(g.LastBlockHash, m.matcher.RoundBids())
	if len(snap.Bids) == 0 || len(snap.Offers) == 0 {
		return nil
	}
	matches := m.matcher.Match(snap, st.View(), blockTime, g.LastBlockHash, maxMatchesPerBlock)
	if len(matches) == 0 {
		return nil
	}
	n := m.n
	acc, err := st.Account(n.key.Address())
	if err != nil {
		n.log.Error("propose matches: read own account", "height", height, "err", err)
		return nil
	}
	nonce := acc.Nonce
	for _, raw := range taken {
		if tx, err := chain.DecodeTx(raw); err == nil && tx.SenderAddress() == n.key.Address() && tx.Nonce >= nonce {
			nonce = tx.Nonce + 1
		}
	}
	out := make([][]byte, 0, len(matches))
	for i := range matches {
		// A match that cannot be signed or encoded takes no nonce; the
		// failure is a local fault (key, codec), logged, never silent.
		tx := &chain.Tx{ChainID: n.cfg.ChainID, Sender: n.key.Public(), Nonce: nonce, Match: &matches[i]}
		if err := tx.Sign(n.key); err != nil {
			n.log.Error("propose matches: sign a match", "height", height, "bid", matches[i].Bid.ID().String(), "err", err)
			continue
		}
		raw, err := tx.Encode()
		if err != nil {
			n.log.Error("propose matches: encode a match", "height", height, "bid", matches[i].Bid.ID().String(), "err", err)
			continue
		}
		out = append(out, raw)
		nonce++
	}
	n.log.Debug("proposing matches", "height", height, "matches", len(out))
	return out
}
