package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/chain/store"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/wallet"
)

// backend is the node as the HTTP API sees it.
type backend Node

var _ httpapi.Backend = (*backend)(nil)

func (b *backend) node() *Node { return (*Node)(b) }

func (b *backend) Status(ctx context.Context) (api.Status, error) {
	n := b.node()
	s := api.Status{
		ChainID:  n.cfg.ChainID,
		Moniker:  n.cfg.Moniker,
		PeerID:   n.host.ID().String(),
		Peers:    len(n.host.Peers()),
		Address:  n.key.Address().String(),
		Roles:    n.roles(),
		Versions: api.Versions{Node: Version, API: api.Version, Protocol: "bourse/2"},
	}
	// Height, hash and time from one stored block, so they agree.
	if h := n.store.Height(); h > 0 {
		blk, err := n.store.Block(ctx, h)
		if err != nil {
			return s, err
		}
		hash := blk.Hash()
		s.Height, s.LatestBlockHash = h, hex.EncodeToString(hash[:])
		s.LatestBlockTime = time.UnixMilli(blk.Header.Time).UTC()
		// Behind when the last block is older than a few block intervals.
		s.Syncing = time.Since(s.LatestBlockTime) > 10*time.Second
	}
	return s, nil
}

func (b *backend) Block(ctx context.Context, height uint64) (api.Block, error) {
	n := b.node()
	if height == 0 || height > n.store.Height() {
		return api.Block{}, fmt.Errorf("%w: no block at height %d (the chain is at %d)", api.ErrNotFound, height, n.store.Height())
	}
	blk, err := n.store.Block(ctx, height)
	if err != nil {
		return api.Block{}, err
	}
	var cert *consensus.CommitCertificate
	if raw, err := n.store.Commit(ctx, height); err == nil {
		cert, _ = consensus.DecodeCommit(raw)
	}
	return blockView(blk, cert, nil), nil
}

func (b *backend) LatestBlock(ctx context.Context) (api.Block, error) {
	h := b.node().store.Height()
	if h == 0 {
		return api.Block{}, fmt.Errorf("%w: no block yet", api.ErrNotFound)
	}
	return b.Block(ctx, h)
}

// blockView is the API form of a block.
// res, when it is the block's execution, spares decoding its transactions.
func blockView(blk *chain.Block, cert *consensus.CommitCertificate, res *chain.Result) api.Block {
	h := blk.Hash()
	out := api.Block{
		Height:    blk.Header.Height,
		Hash:      hex.EncodeToString(h[:]),
		PrevHash:  hex.EncodeToString(blk.Header.PrevHash[:]),
		Time:      time.UnixMilli(blk.Header.Time).UTC(),
		Proposer:  blk.Header.Proposer.String(),
		StateRoot: hex.EncodeToString(blk.Header.StateRoot[:]),
		TxCount:   len(blk.Txs),
		Txs:       make([]api.TxSummary, 0, len(blk.Txs)),
	}
	if cert != nil && cert.Round >= 0 {
		out.Round = uint32(cert.Round)
	}
	for i, raw := range blk.Txs {
		var hash [32]byte
		if res != nil && i < len(res.TxHashes) {
			hash = res.TxHashes[i]
		} else {
			hash = chain.TxHash(raw)
		}
		sum := api.TxSummary{Hash: hex.EncodeToString(hash[:])}
		tx := res.DecodedTx(i)
		if tx == nil {
			tx, _ = chain.DecodeTx(raw)
		}
		if tx != nil {
			sum.Type = txType(tx)
			sum.From = tx.SenderAddress().String()
		}
		out.Txs = append(out.Txs, sum)
	}
	return out
}

func txType(tx *chain.Tx) string {
	if k := tx.Kind(); k != chain.KindInvalid {
		return k.String()
	}
	return "unknown"
}

func txBody(tx *chain.Tx) any {
	switch {
	case tx.Transfer != nil:
		return tx.Transfer
	case tx.Bond != nil:
		return tx.Bond
	case tx.Unbond != nil:
		return tx.Unbond
	case tx.ProviderRegister != nil:
		return tx.ProviderRegister
	case tx.BidCancel != nil:
		return tx.BidCancel
	case tx.Match != nil:
		return tx.Match
	case tx.Result != nil:
		return tx.Result
	case tx.Evidence != nil:
		return tx.Evidence
	case tx.PayloadUnavailable != nil:
		return tx.PayloadUnavailable
	case tx.ProviderDeregister != nil:
		return tx.ProviderDeregister
	case tx.ProviderWithdraw != nil:
		return tx.ProviderWithdraw
	}
	return nil
}

func (b *backend) Tx(ctx context.Context, hash string) (api.Tx, error) {
	n := b.node()
	raw, err := hex.DecodeString(hash)
	if err != nil || len(raw) != 32 {
		return api.Tx{}, api.BadRequest("transaction hash must be 64 hex digits")
	}
	loc, txRaw, err := n.store.TxByHash(ctx, [32]byte(raw))
	if errors.Is(err, store.ErrNotFound) {
		if n.drv.Mempool().Has([32]byte(raw)) {
			return api.Tx{Hash: hash, Status: api.TxPending}, nil
		}
		return api.Tx{}, fmt.Errorf("%w: transaction %s is not on chain", api.ErrNotFound, hash)
	}
	if err != nil {
		return api.Tx{}, err
	}
	tx, err := chain.DecodeTx(txRaw)
	if err != nil {
		return api.Tx{}, err
	}
	body, _ := json.Marshal(txBody(tx))
	out := api.Tx{
		Hash: hash, Type: txType(tx), Height: loc.Height, Index: int(loc.Index),
		From: tx.SenderAddress().String(), Nonce: tx.Nonce, Fee: tx.Fee, Status: api.TxUnknown, Body: body,
	}
	rs, err := n.store.Receipts(ctx, loc.Height)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return api.Tx{}, err
	case int(loc.Index) >= len(rs.Txs):
		return api.Tx{}, fmt.Errorf("tx %s: block %d has %d receipts: %w", hash, loc.Height, len(rs.Txs), store.ErrCorruptStore)
	default:
		r := rs.Txs[loc.Index]
		out.Status, out.Log = api.TxOK, r.Log
		if r.Code != 0 {
			out.Status = api.TxFailed
		}
		for _, e := range r.Events {
			out.Events = append(out.Events, txEvent(e.Event()))
		}
	}
	return out, nil
}

func txEvent(e chain.Event) api.TxEvent {
	out := api.TxEvent{Type: e.Type, Address: e.Address.String(), Amount: e.Amount}
	if e.JobID != ([32]byte{}) {
		out.JobID = hex.EncodeToString(e.JobID[:])
	}
	return out
}

func (b *backend) Validators(ctx context.Context) ([]api.Validator, error) {
	n := b.node()
	vs := n.drv.Validators()
	stakes, err := n.drv.State().Stakes()
	if err != nil {
		return nil, err
	}
	bonded := map[wallet.Address]uint64{}
	for _, s := range stakes {
		bonded[s.Address] = s.Amount
	}
	out := []api.Validator{}
	for _, v := range vs.Validators() {
		out = append(out, api.Validator{Address: v.Address.String(), PubKey: hex.EncodeToString(v.PubKey[:]),
			Stake: bonded[v.Address], Power: v.Power})
	}
	return out, nil
}

func (b *backend) Account(ctx context.Context, addr wallet.Address) (api.Account, error) {
	st := b.node().drv.State()
	acc, err := st.Account(addr)
	if err != nil {
		return api.Account{}, err
	}
	out := api.Account{Address: addr.String(), Balance: acc.Balance, Nonce: acc.Nonce}
	stakes, err := st.Stakes()
	if err != nil {
		return api.Account{}, err
	}
	for _, s := range stakes {
		if s.Address == addr {
			out.Bonded = s.Amount
		}
	}
	if p, ok, err := st.Provider(addr); err == nil && ok {
		out.Provider, out.Collateral = true, p.Collateral
	}
	if out.Unbonding, err = st.UnbondingOf(addr); err != nil {
		return api.Account{}, err
	}
	return out, nil
}

// sendTx submits one of the node's transactions and waits briefly for it
// to commit, so the answer usually says "committed".
func (b *backend) sendTx(ctx context.Context, fill func(*chain.Tx)) (api.TxResult, error) {
	n := b.node()
	hash, done, err := n.txs.submit(ctx, fill)
	if err != nil {
		return api.TxResult{}, api.BadRequest("%v", err)
	}
	out := api.TxResult{Hash: hex.EncodeToString(hash[:]), Status: "pending"}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var o txOutcome
	select {
	case o = <-done:
	case <-wctx.Done():
		return out, nil // still pending; the client can follow it with chain tx
	}
	// The transaction that committed: a replacement when another
	// transaction took the submitted one's nonce.
	out.Hash = hex.EncodeToString(o.hash[:])
	out.Height, out.Status = o.height, "committed"
	if o.res.Code != 0 {
		out.Status, out.Error = "failed", o.res.Log
	}
	return out, nil
}

func (b *backend) Send(ctx context.Context, to wallet.Address, amount uint64) (api.TxResult, error) {
	return b.sendTx(ctx, func(tx *chain.Tx) { tx.Transfer = &chain.Transfer{To: to, Amount: amount} })
}

func (b *backend) ProviderRegister(ctx context.Context, collateral uint64) (api.TxResult, error) {
	return b.sendTx(ctx, func(tx *chain.Tx) { tx.ProviderRegister = &chain.ProviderRegister{Collateral: collateral} })
}

func (b *backend) ProviderDeregister(ctx context.Context) (api.TxResult, error) {
	return b.sendTx(ctx, func(tx *chain.Tx) { tx.ProviderDeregister = &chain.ProviderDeregister{} })
}

func (b *backend) ProviderWithdraw(ctx context.Context) (api.TxResult, error) {
	return b.sendTx(ctx, func(tx *chain.Tx) { tx.ProviderWithdraw = &chain.ProviderWithdraw{} })
}

func (b *backend) Bond(ctx context.Context, amount uint64) (api.TxResult, error) {
	return b.sendTx(ctx, func(tx *chain.Tx) { tx.Bond = &chain.Bond{Amount: amount} })
}

func (b *backend) Unbond(ctx context.Context, amount uint64) (api.TxResult, error) {
	return b.sendTx(ctx, func(tx *chain.Tx) { tx.Unbond = &chain.Unbond{Amount: amount} })
}

func (b *backend) Subscribe(ctx context.Context) <-chan api.Event {
	return b.node().events.subscribe(ctx)
}

// The market, job and provider resources are served by the market service.

func (b *backend) Offers(ctx context.Context) ([]api.Offer, error) { return b.market.offers(ctx) }
func (b *backend) Bids(ctx context.Context) ([]api.Bid, error)     { return b.market.bids(ctx) }
func (b *backend) Matches(ctx context.Context, f api.MatchFilter) ([]api.Match, error) {
	return b.market.matches(ctx, f)
}
func (b *backend) Match(ctx context.Context, id string) (api.Match, error) {
	return b.market.match(ctx, id)
}
func (b *backend) MarketStats(ctx context.Context, from, to uint64) (api.MarketStats, error) {
	return b.market.stats(ctx, from, to)
}
func (b *backend) SubmitJob(ctx context.Context, spec api.JobSpec, payload []byte) (api.Job, error) {
	return b.market.submitJob(ctx, spec, payload)
}
func (b *backend) DryRun(ctx context.Context, spec api.JobSpec) (api.DryRun, error) {
	return b.market.dryRun(ctx, spec)
}
func (b *backend) Jobs(ctx context.Context, f api.JobFilter) ([]api.Job, error) {
	return b.market.jobs(ctx, f)
}
func (b *backend) Job(ctx context.Context, id string) (api.Job, error) { return b.market.job(ctx, id) }
func (b *backend) JobLogs(ctx context.Context, id string) (api.JobLogs, error) {
	return b.market.jobLogs(ctx, id)
}
func (b *backend) JobResult(ctx context.Context, id string) (io.ReadCloser, api.ResultInfo, error) {
	return b.market.jobResult(ctx, id)
}
func (b *backend) CancelJob(ctx context.Context, id string) (api.Job, error) {
	return b.market.cancelJob(ctx, id)
}
func (b *backend) VerifyJob(ctx context.Context, id string) (api.Verification, error) {
	return b.market.verifyJob(ctx, id)
}
func (b *backend) ChallengeJob(ctx context.Context, id, kind string) (api.Challenge, error) {
	return b.market.challengeJob(ctx, id, kind)
}
func (b *backend) ProviderStatus(ctx context.Context) (api.ProviderStatus, error) {
	return b.market.providerStatus(ctx)
}
