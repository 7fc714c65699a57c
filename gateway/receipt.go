package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/bourse-net/bourse/wallet"
)

// ReceiptMsgType is the signature domain of usage receipts
// (wallet.Sign's msgType).
const ReceiptMsgType = "bourse/svc-usage/1"

// UsageReceipt is a gateway's signed account of what it sent one replica
// during one period: what the chain settles in aggregate (never a
// transaction per request). Period is the caller's period number (see
// Gateway.Receipts); counts are of this gateway's requests only.
type UsageReceipt struct {
	LeaseID   [32]byte         `json:"lease_id"`
	Period    uint64           `json:"period"`
	Gateway   wallet.PublicKey `json:"gateway"`
	Requests  uint64           `json:"requests"`
	Errors    uint64           `json:"errors"`
	BytesIn   uint64           `json:"bytes_in"`
	BytesOut  uint64           `json:"bytes_out"`
	P50Micros uint64           `json:"p50_us"`
	P99Micros uint64           `json:"p99_us"`
	Sig       []byte           `json:"sig"`
}

// SignBytes is the receipt's signed payload: every field but Sig, in
// order, fixed width.
func (r *UsageReceipt) SignBytes() []byte {
	b := make([]byte, 0, 32+8+32+8*6)
	b = append(b, r.LeaseID[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Period)
	b = append(b, r.Gateway[:]...)
	for _, v := range []uint64{r.Requests, r.Errors, r.BytesIn, r.BytesOut, r.P50Micros, r.P99Micros} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// Sign sets Gateway to k's public key and signs the receipt.
func (r *UsageReceipt) Sign(k wallet.PrivateKey, chainID string) {
	r.Gateway = k.Public()
	r.Sig = k.Sign(chainID, ReceiptMsgType, r.SignBytes())
}

// Verify checks the receipt's signature by its Gateway key and that its
// counts are coherent.
func (r *UsageReceipt) Verify(chainID string) error {
	if r.Errors > r.Requests {
		return fmt.Errorf("usage receipt: %d errors of %d requests", r.Errors, r.Requests)
	}
	if r.P50Micros > r.P99Micros {
		return errors.New("usage receipt: p50 above p99")
	}
	if !wallet.Verify(r.Gateway, chainID, ReceiptMsgType, r.SignBytes(), r.Sig) {
		return errors.New("usage receipt: bad signature")
	}
	return nil
}

// Receipts cuts the usage of every replica since the previous call into
// receipts for period, signed with Config.Key (unsigned if the key is not
// set), sorted by lease id. Replicas with no request since the last cut
// get none. The caller decides what a period is (svclease: the lease's
// billing period) and aggregates receipts on chain.
func (g *Gateway) Receipts(period uint64) []UsageReceipt {
	g.mu.Lock()
	sts := make([]*replicaState, 0, len(g.replicas))
	for _, st := range g.replicas {
		sts = append(sts, st)
	}
	g.mu.Unlock()
	var out []UsageReceipt
	for _, st := range sts {
		st.mu.Lock()
		u := &st.usage
		if u.requests == 0 {
			st.mu.Unlock()
			continue
		}
		s := u.lat.Summary()
		r := UsageReceipt{LeaseID: st.lease, Period: period, Requests: u.requests, Errors: u.errors,
			BytesIn: u.bytesIn, BytesOut: u.bytesOut,
			P50Micros: uint64(s.P50.Microseconds()), P99Micros: uint64(s.P99.Microseconds())}
		st.usage = usage{}
		st.mu.Unlock()
		if g.cfg.Key.Valid() {
			r.Sign(g.cfg.Key, g.cfg.ChainID)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].LeaseID[:]) < string(out[j].LeaseID[:]) })
	return out
}
