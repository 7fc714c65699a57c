package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	ds "github.com/ipfs/go-datastore"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

// Receipt is the stored outcome of one transaction of a block: its code
// (0 ok, 1 body failed), the reason it failed and the events it caused.
// The fee is the transaction's own (paid whether the body failed or not).
type Receipt struct {
	Code   uint32         `cbor:"1,keyasint"`
	Log    string         `cbor:"2,keyasint,omitempty"`
	Events []ReceiptEvent `cbor:"3,keyasint,omitempty"`
}

// ReceiptEvent is a chain.Event as the store keeps it.
type ReceiptEvent struct {
	Type    string         `cbor:"1,keyasint"`
	Address wallet.Address `cbor:"2,keyasint"`
	JobID   [32]byte       `cbor:"3,keyasint"`
	Amount  uint64         `cbor:"4,keyasint"`
}

// Receipts are a block's receipts, one per transaction in block order, and
// the events of the block itself (matured unbondings, timeouts).
type Receipts struct {
	Txs    []Receipt      `cbor:"1,keyasint"`
	Events []ReceiptEvent `cbor:"2,keyasint,omitempty"`
}

// Event converts back to the chain's event.
func (e ReceiptEvent) Event() chain.Event {
	return chain.Event{Type: e.Type, Address: e.Address, JobID: e.JobID, Amount: e.Amount}
}

func receiptEvents(evs []chain.Event) []ReceiptEvent {
	if len(evs) == 0 {
		return nil
	}
	out := make([]ReceiptEvent, len(evs))
	for i, e := range evs {
		out[i] = ReceiptEvent{Type: e.Type, Address: e.Address, JobID: e.JobID, Amount: e.Amount}
	}
	return out
}

// ReceiptsOf is what SaveBlock stores for res.
func ReceiptsOf(res *chain.Result) Receipts { return receiptsOf(res) }

func receiptsOf(res *chain.Result) Receipts {
	r := Receipts{Txs: make([]Receipt, len(res.TxResults)), Events: receiptEvents(res.Events)}
	for i, t := range res.TxResults {
		r.Txs[i] = Receipt{Code: t.Code, Log: t.Log, Events: receiptEvents(t.Events)}
	}
	return r
}

// receiptsDecoder bounds a block's receipts: at most one per transaction
// of a maximal block, each with a bounded log.
var receiptsDecoder = codec.MustDecoder(codec.Limits{MaxSize: 2 * chain.MaxBlockBytes, MaxNesting: 8, MaxArrayElements: 1 << 20, MaxMapPairs: 16})

// Receipts returns the receipts stored with block h. A block stored
// before receipts were kept has none: ErrNotFound.
func (s *Store) Receipts(ctx context.Context, h uint64) (Receipts, error) {
	raw, err := s.d.Get(ctx, receiptsKey(h))
	if errors.Is(err, ds.ErrNotFound) {
		return Receipts{}, fmt.Errorf("receipts of block %d: %w", h, ErrNotFound)
	}
	if err != nil {
		return Receipts{}, fmt.Errorf("receipts of block %d: %w", h, err)
	}
	var r Receipts
	if err := receiptsDecoder.UnmarshalCanonical(raw, &r); err != nil {
		return Receipts{}, fmt.Errorf("receipts of block %d: %w: %v", h, ErrCorruptStore, err)
	}
	return r, nil
}

// jobSlot is which of a job's transactions an event marks: the Match
// that opened it, or the transaction that settled it (a Result, whose
// payment is then held; a PayloadUnavailable; a cancelled bid's
// BidCancel). The release of a held payment (an Ack, a committee's
// Attest, or the block) is not linked: the Result stays the job's.
func jobSlot(ev string) string {
	switch ev {
	case chain.EvMatched:
		return "match"
	case chain.EvHeld, chain.EvUnavailable, chain.EvCancelled:
		return "settle"
	}
	return ""
}

func jobTxKey(id [32]byte, slot string) ds.Key {
	return ds.NewKey("/jobtx/" + hex.EncodeToString(id[:]) + "/" + slot)
}

// JobTxs returns the hashes of the transaction that matched job id and
// of the one that settled it by a result or a payload-unavailable claim
// (or cancelled its bid); ok reports each. A timeout is settled by its
// block, not a transaction.
func (s *Store) JobTxs(ctx context.Context, id [32]byte) (match, settle [32]byte, matchOK, settleOK bool, err error) {
	get := func(slot string) ([32]byte, bool, error) {
		v, err := s.d.Get(ctx, jobTxKey(id, slot))
		if errors.Is(err, ds.ErrNotFound) {
			return [32]byte{}, false, nil
		}
		if err != nil {
			return [32]byte{}, false, fmt.Errorf("job %x %s tx: %w", id[:8], slot, err)
		}
		if len(v) != 32 {
			return [32]byte{}, false, fmt.Errorf("job %x %s tx: %w: record of %d bytes", id[:8], slot, ErrCorruptStore, len(v))
		}
		return [32]byte(v), true, nil
	}
	if match, matchOK, err = get("match"); err != nil {
		return
	}
	settle, settleOK, err = get("settle")
	return
}
