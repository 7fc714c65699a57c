package audit

import (
	"fmt"

	"github.com/bourse-net/bourse/chain"
)

// trace checks that every payment and refund of block b traces to its
// match: the matched escrow is the match's price-derived escrow, and each
// settlement (a result, a payload-unavailable claim, a timeout) splits
// exactly that escrow, in the amounts its event reports, with a result's
// hash recorded on the match. matches holds the escrow of every match
// opened by an audited block and not yet settled.
func trace(st *chain.State, b *chain.Block, res *chain.Result, matches map[[32]byte]open, rep *Report) error {
	h := b.Header.Height
	for i, tr := range res.TxResults {
		if len(tr.Events) == 0 {
			continue
		}
		tx, err := chain.DecodeTx(b.Txs[i])
		if err != nil {
			return fmt.Errorf("tx %d: %v", i, err)
		}
		for _, ev := range tr.Events {
			if err := traceEvent(st, h, b.Header.Time, tx, ev, matches, rep); err != nil {
				return fmt.Errorf("tx %d %x: %s %x: %w", i, tr.Hash[:8], ev.Type, ev.JobID[:8], err)
			}
		}
	}
	for _, ev := range res.Events {
		if err := traceEvent(st, h, b.Header.Time, nil, ev, matches, rep); err != nil {
			return fmt.Errorf("block event %s %x: %w", ev.Type, ev.JobID[:8], err)
		}
	}
	return nil
}

func traceEvent(st *chain.State, h uint64, now int64, tx *chain.Tx, ev chain.Event, matches map[[32]byte]open, rep *Report) error {
	settles := map[string]bool{chain.EvCompleted: true, chain.EvFailed: true, chain.EvUnavailable: true, chain.EvTimedOut: true,
		chain.EvWithheld: true, chain.EvWrongResult: true}
	if ev.Type != chain.EvMatched && ev.Type != chain.EvHeld && !settles[ev.Type] {
		return nil
	}
	rec, ok, err := st.Match(ev.JobID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no match record")
	}
	prov := rec.Match.Offer.ProviderAddress()
	if ev.Address != prov {
		return fmt.Errorf("event names %s, the match's provider is %s", ev.Address, prov)
	}
	if ev.Type == chain.EvMatched {
		if tx == nil || tx.Match == nil || tx.Match.ID() != ev.JobID {
			return fmt.Errorf("not caused by the Match transaction of its job")
		}
		if esc := tx.Match.Escrow(); ev.Amount != esc || rec.Height != h {
			return fmt.Errorf("escrowed %d at height %d, the match's price gives %d at %d", ev.Amount, rec.Height, esc, h)
		}
		if _, dup := matches[ev.JobID]; dup {
			return fmt.Errorf("matched twice")
		}
		matches[ev.JobID] = open{escrow: ev.Amount, height: h}
		rep.Matches++
		return nil
	}
	o, ok := matches[ev.JobID]
	if !ok {
		return fmt.Errorf("settles a match no audited block opened (or settled already)")
	}
	if ev.Type == chain.EvHeld {
		if tx == nil || tx.Result == nil || tx.Result.JobID != ev.JobID || o.held {
			return fmt.Errorf("not caused by the first Result transaction of its job")
		}
		o.held, o.hash, o.exitCode = true, tx.Result.ResultHash, tx.Result.ExitCode
		matches[ev.JobID] = o
		return nil
	}
	delete(matches, ev.JobID)
	if rec.SettledAt != now || rec.Escrow != 0 {
		return fmt.Errorf("match record settled at %d holding %d, block time %d", rec.SettledAt, rec.Escrow, now)
	}
	split := func(parts ...uint64) error {
		var sum uint64
		for _, p := range parts {
			sum += p
		}
		if sum != o.escrow {
			return fmt.Errorf("paid %d + refunded %d + burned %d = %d, escrow of its match at height %d was %d", rec.Paid, rec.Refunded, rec.Burned, sum, o.height, o.escrow)
		}
		return nil
	}
	switch ev.Type {
	case chain.EvCompleted, chain.EvFailed:
		// A held payment is released by the client's Ack, a committee's
		// deciding Attest, or the block at the end of the window.
		if !o.held {
			return fmt.Errorf("released without a Result holding it")
		}
		if tx != nil && !(tx.Ack != nil && tx.Ack.JobID == ev.JobID) && !(tx.Attest != nil && tx.Attest.JobID == ev.JobID) {
			return fmt.Errorf("released by a %s transaction", tx.Kind())
		}
		wantStatus := chain.MatchCompleted
		if o.exitCode != 0 {
			wantStatus = chain.MatchFailed
		}
		if (ev.Type == chain.EvCompleted) != (wantStatus == chain.MatchCompleted) || rec.Status != wantStatus {
			return fmt.Errorf("exit code %d, match is %s", o.exitCode, rec.Status)
		}
		if rec.ResultHash != o.hash {
			return fmt.Errorf("match records result hash %x, the result transaction carried %x", rec.ResultHash[:8], o.hash[:8])
		}
		if rec.Paid != ev.Amount || rec.Burned != 0 || rec.Slashed != 0 {
			return fmt.Errorf("event pays %d, match record says paid %d burned %d slashed %d", ev.Amount, rec.Paid, rec.Burned, rec.Slashed)
		}
		if err := split(rec.Paid, rec.Refunded); err != nil {
			return err
		}
		if ev.Type == chain.EvCompleted {
			rep.Settled.Completed++
		} else {
			rep.Settled.Failed++
		}
	case chain.EvUnavailable:
		if tx == nil || tx.PayloadUnavailable == nil || tx.PayloadUnavailable.JobID != ev.JobID {
			return fmt.Errorf("not caused by the PayloadUnavailable transaction of its job")
		}
		if rec.Status != chain.MatchUnavailable || rec.Burned != ev.Amount || rec.Paid != 0 {
			return fmt.Errorf("event burns %d, match is %s and says burned %d paid %d", ev.Amount, rec.Status, rec.Burned, rec.Paid)
		}
		if err := split(rec.Refunded, rec.Burned); err != nil {
			return err
		}
		rep.Settled.Unavailable++
	case chain.EvWithheld, chain.EvWrongResult:
		// The provider lost a challenge: the escrow goes back whole; the
		// cut came from its collateral.
		if !o.held {
			return fmt.Errorf("a challenge decided without a Result holding the payment")
		}
		if tx != nil && !(tx.Attest != nil && tx.Attest.JobID == ev.JobID) {
			return fmt.Errorf("decided by a %s transaction", tx.Kind())
		}
		want := chain.MatchWithheld
		if ev.Type == chain.EvWrongResult {
			want = chain.MatchWrong
		}
		if rec.Status != want || rec.Slashed != ev.Amount || rec.Paid != 0 {
			return fmt.Errorf("event slashes %d, match is %s and says slashed %d paid %d", ev.Amount, rec.Status, rec.Slashed, rec.Paid)
		}
		if err := split(rec.Refunded); err != nil {
			return err
		}
		rep.Settled.Challenged++
		rep.Refunded += rec.Refunded
		rep.Slashed += rec.Slashed
		return nil // its Burned is part of the cut, not of the escrow
	case chain.EvTimedOut:
		if tx != nil {
			return fmt.Errorf("a timeout caused by a transaction")
		}
		if rec.Status != chain.MatchTimedOut || rec.Slashed != ev.Amount || rec.Paid != 0 {
			return fmt.Errorf("event slashes %d, match is %s and says slashed %d paid %d", ev.Amount, rec.Status, rec.Slashed, rec.Paid)
		}
		if err := split(rec.Refunded); err != nil {
			return err
		}
		if now < rec.Deadline {
			return fmt.Errorf("timed out at %d before its deadline %d", now, rec.Deadline)
		}
		rep.Settled.TimedOut++
	}
	rep.Paid += rec.Paid
	rep.Refunded += rec.Refunded
	rep.Burned += rec.Burned
	rep.Slashed += rec.Slashed
	return nil
}
