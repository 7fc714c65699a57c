// Package mempool holds the transactions waiting for a block, checked
// against the committed chain.State. Safe for concurrent use.
//
// New(cfg, st): Add/AddBatch check size, canonical decoding,
// signature (batched), chain id, nonce (the sender's next, queued without
// gaps), fee and balance, and run the sender's next transaction on a
// scratch state; refusals wrap chain.ErrInvalidTx (reject, penalise the peer),
// ErrTxKnown (ignore), ErrNonceGap or ErrMempoolFull. Reap(maxBytes,
// maxTxs) picks by fee across senders and by nonce within one. Update
// drops what a block committed or invalidated. EncodeTxBatch and
// DecodeTxBatch are the txs gossip payload: many transactions per message.
//
// May import: chain, codec, wallet.
package mempool
