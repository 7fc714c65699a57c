package chain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// ApplyCommitted executes a block that consensus (or sync, after checking
// its certificate) has decided, persists it with its commit in one batch,
// then installs it in st and updates the mempool (mp may be nil). The
// order is the crash-safety contract: nothing is visible in memory before
// it is durable. A state root that differs from the header is logged at
// error level and returned wrapping ErrStateRootMismatch: the caller must
// stop the node, never continue on a divergent state.
func ApplyCommitted(ctx context.Context, st *State, store *Store, mp *Mempool, b *Block, commit []byte, opts ExecOptions) (*Result, error) {
	if mp != nil && opts.SigCache == nil {
		opts.SigCache = mp.SigCache()
	}
	opts.SkipStateRootCheck = false
	res, err := Execute(st, b, opts)
	if errors.Is(err, ErrStateRootMismatch) {
		slog.Error("HALT: state diverged from the committed chain", "height", b.Header.Height,
			"header_root", fmt.Sprintf("%x", b.Header.StateRoot), "computed_root", fmt.Sprintf("%x", res.StateRoot))
		return nil, fmt.Errorf("apply committed block %d: %w", b.Header.Height, err)
	}
	if err != nil {
		return nil, fmt.Errorf("apply committed block %d: %w", b.Header.Height, err)
	}
	if err := store.SaveBlock(ctx, b, commit, res); err != nil {
		return nil, fmt.Errorf("apply committed block %d: %w", b.Header.Height, err)
	}
	if err := st.Apply(res); err != nil {
		return nil, fmt.Errorf("apply committed block %d: %w", b.Header.Height, err)
	}
	if mp != nil {
		mp.Update(res.Height, res.TxHashes, st)
	}
	return res, nil
}
