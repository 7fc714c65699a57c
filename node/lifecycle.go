package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/lifecycle"
	"github.com/bourse-net/bourse/worker"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The lifecycle driver: it feeds the pure core of package lifecycle with
// committed blocks and with the outcomes of the work it asked for, and
// executes the core's actions. Nothing slow runs on the block
// subscription: fetches, runs, explanations and transactions run in
// goroutines of the service, and job records are written by the
// persister.

// step feeds one input to the core and executes its actions. Executing
// an action only starts work (or queues a write, or publishes an event):
// outcomes come back through step from the goroutine doing the work.
func (m *marketService) step(in lifecycle.Input) {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	for _, a := range m.core.Step(m.clock.Now(), in) {
		m.do(a)
	}
}

// withCore runs a read of the core's state.
func (m *marketService) withCore(f func(*lifecycle.Core)) {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	f(m.core)
}

func (m *marketService) do(a lifecycle.Action) {
	switch a := a.(type) {
	case lifecycle.Persist:
		m.persist.put(a.Job)
	case lifecycle.Publish:
		// A replica's change is also its group's: the job's followers
		// (--wait) see the group's view under the job's id, never
		// replica 0's own state (which may be a lost dissent).
		if a.Job.Spec.Replicas <= 1 {
			m.n.events.publish(eventJob(a.Job))
			return
		}
		cj, ok := m.core.Job(a.Job.ID)
		if !ok || cj.Bid == nil {
			m.n.events.publish(eventJob(a.Job))
			return
		}
		if cj.Bid.Replica > 0 {
			m.n.events.publish(eventJob(a.Job))
		}
		if j0, ok := m.core.Job(cj.Bid.GroupID().String()); ok {
			m.n.events.publish(eventJob(groupJob(j0, m.core.Job).Job))
		}
	case lifecycle.Note:
		m.n.log.Log(context.Background(), a.Level, a.Msg, "job", a.Job)
	case lifecycle.Explain:
		m.spawn(func() {
			reasons := m.explain(a.Bid, m.n.drv.State(), a.BlockTime)
			m.step(lifecycle.Explained{ID: a.ID, Reasons: reasons, Summary: summarize(reasons)})
		})
	case lifecycle.FetchResult:
		m.after(a.After, func() {
			size, err := m.fetchResult(a.ID, a.Hash, a.Peer)
			if m.ctx.Err() != nil {
				return // shutting down: not an attempt; a restart fetches again
			}
			m.step(lifecycle.ResultFetched{ID: a.ID, Attempt: a.Attempt, Size: size, Err: err})
		})
	case lifecycle.FetchPayload:
		m.after(a.After, func() {
			err := m.fetchPayload(a)
			if m.ctx.Err() != nil {
				return
			}
			m.step(lifecycle.PayloadFetched{ID: a.ID, Attempt: a.Attempt, Err: err})
		})
	case lifecycle.Run:
		if m.runtime == nil {
			m.n.log.Error("a job to run on a node without a runtime", "job", a.Match.Bid.ID().String())
			return
		}
		ctx, cancel := context.WithCancel(m.ctx)
		id := a.Match.Bid.ID()
		m.mu.Lock()
		m.runs[id] = cancel
		m.mu.Unlock()
		m.spawn(func() {
			defer func() {
				m.mu.Lock()
				delete(m.runs, id)
				m.mu.Unlock()
				cancel()
			}()
			m.runJob(ctx, a)
		})
	case lifecycle.CancelRun:
		m.mu.Lock()
		cancel := m.runs[a.ID]
		m.mu.Unlock()
		if cancel != nil {
			m.n.log.Info("stopping a run", "job", a.ID.String(), "reason", a.Reason)
			cancel()
		}
	case lifecycle.SendUnavailable:
		id := a.ID
		m.spawn(func() {
			_, _, err := m.n.txs.submit(m.ctx, func(tx *chain.Tx) { tx.PayloadUnavailable = &chain.PayloadUnavailable{JobID: id} })
			if m.ctx.Err() == nil {
				m.step(lifecycle.UnavailableSent{ID: id, Err: err})
			}
		})
	case lifecycle.SendResult:
		rt := a.Result
		m.spawn(func() {
			_, _, err := m.n.txs.submit(m.ctx, func(tx *chain.Tx) { tx.Result = &rt })
			if m.ctx.Err() == nil {
				m.step(lifecycle.ResultSent{ID: rt.JobID, Err: err})
			}
		})
	case lifecycle.SendAck:
		id := a.ID
		m.spawn(func() {
			_, _, err := m.n.txs.submit(m.ctx, func(tx *chain.Tx) { tx.Ack = &chain.AckTx{JobID: id} })
			if m.ctx.Err() == nil {
				m.step(lifecycle.AckSent{ID: id, Err: err})
			}
		})
	case lifecycle.SendChallenge:
		m.spawn(func() {
			err := m.sendChallenge(a.ID, a.Kind)
			if m.ctx.Err() == nil {
				m.step(lifecycle.ChallengeSent{ID: a.ID, Err: err})
			}
		})
	case lifecycle.SendAttest:
		m.spawn(func() {
			_, _, err := m.n.txs.submit(m.ctx, func(tx *chain.Tx) { tx.Attest = &chain.AttestTx{JobID: a.ID, ResultHash: a.Hash} })
			if m.ctx.Err() == nil {
				m.step(lifecycle.AttestSent{ID: a.ID, Err: err})
			}
		})
	case lifecycle.FetchAttest:
		m.after(a.After, func() {
			err := m.fetchAttest(a)
			if m.ctx.Err() == nil {
				m.step(lifecycle.AttestFetched{ID: a.ID, Attempt: a.Attempt, Err: err})
			}
		})
	case lifecycle.Reexecute:
		mt := a.Match
		m.spawn(func() {
			h, err := m.reexecute(mt)
			if m.ctx.Err() == nil {
				m.step(lifecycle.Reexecuted{ID: mt.Bid.ID(), Hash: h, Err: err})
			}
		})
	default:
		m.n.log.Error("unknown lifecycle action", "action", fmt.Sprintf("%T", a))
	}
}

// after runs f in a service goroutine once d has passed on the clock. A
// timer that comes due after close has begun starts nothing (spawn).
func (m *marketService) after(d time.Duration, f func()) {
	run := func() {
		m.spawn(func() {
			if m.ctx.Err() == nil {
				f()
			}
		})
	}
	if d <= 0 {
		run()
		return
	}
	m.clock.AfterFunc(d, run)
}

// onCommit hands the core what a committed block did to jobs: it decodes
// the block's transactions and events and reads the chain's match
// records of this node's jobs, nothing more.
func (m *marketService) onCommit(c driver.Committed) {
	blk := lifecycle.Block{Height: c.Block.Header.Height, Time: c.Block.Header.Time}
	var closed []market.BidID
	for i, raw := range c.Block.Txs {
		r := c.Result.TxResults[i]
		if r.Code != 0 {
			continue
		}
		tx := c.Result.DecodedTx(i)
		if tx == nil {
			var err error
			if tx, err = chain.DecodeTx(raw); err != nil {
				m.n.log.Error("decode a committed transaction", "height", blk.Height, "index", i, "err", err)
				continue
			}
		}
		switch {
		case tx.Match != nil:
			closed = append(closed, tx.Match.Bid.ID())
		case tx.BidCancel != nil:
			closed = append(closed, tx.BidCancel.Bid.ID())
		}
		for _, ev := range r.Events {
			blk.Events = m.appendEvent(blk.Events, ev, tx.Match, blk)
		}
	}
	for _, ev := range c.Result.Events {
		blk.Events = m.appendEvent(blk.Events, ev, nil, blk)
	}
	if len(closed) > 0 {
		m.book.Close(m.clock.Now().UnixMilli(), closed...)
	}
	m.book.Recheck(recheckPerBlock) // entries whose funds or collateral are gone leave
	m.step(blk)
}

// appendEvent adds a chain event to the block's input if it concerns a
// job of this node, with the chain's record of the match.
func (m *marketService) appendEvent(evs []lifecycle.Event, ev chain.Event, mt *market.Match, blk lifecycle.Block) []lifecycle.Event {
	var kind lifecycle.EventKind
	switch ev.Type {
	case chain.EvMatched:
		kind = lifecycle.Matched
	case chain.EvHeld, chain.EvMajority:
		// The result committed, its payment held: the client fetches it
		// (Completed or Failed by its exit code, read below). A replica's
		// result is fetched once its group is decided (EvMajority): the
		// EvHeld of a replica awaiting it is for its provider only.
		kind = lifecycle.Completed
	case chain.EvCompleted, chain.EvFailed:
		kind = lifecycle.Released
	case chain.EvChallenged:
		kind = lifecycle.Challenged
	case chain.EvChallengeFailed:
		kind = lifecycle.ChallengeFailed
	case chain.EvWithheld:
		kind = lifecycle.Withheld
	case chain.EvWrongResult:
		kind = lifecycle.WrongResult
	case chain.EvTimedOut:
		kind = lifecycle.TimedOut
	case chain.EvCancelled:
		kind = lifecycle.Cancelled
	case chain.EvUnavailable:
		kind = lifecycle.Unavailable
	default:
		return evs
	}
	id := market.BidID(ev.JobID)
	var ours bool
	m.withCore(func(c *lifecycle.Core) { _, ours = c.Job(id.String()) })
	me := m.n.key.Address()
	if ev.Type == chain.EvMajority && !ours {
		return evs // the provider's result is held already
	}
	settlement := kind == lifecycle.Released || kind == lifecycle.Withheld || kind == lifecycle.WrongResult || kind == lifecycle.ChallengeFailed
	if !ours && !(kind == lifecycle.Matched && ev.Address == me) && kind != lifecycle.Completed && kind != lifecycle.Failed &&
		kind != lifecycle.TimedOut && kind != lifecycle.Unavailable && kind != lifecycle.Challenged && !settlement {
		return evs
	}
	out := lifecycle.Event{Kind: kind, JobID: id, Height: blk.Height, Amount: ev.Amount}
	if !ours && settlement && ev.Address != me && kind != lifecycle.ChallengeFailed {
		return evs // another provider's settlement
	}
	if !ours && kind != lifecycle.Matched && kind != lifecycle.Challenged && !settlement && !(ev.Type == chain.EvHeld && ev.Address == me) {
		// A settlement of some job: the provider side needs only the
		// amount, and ignores jobs it does not hold.
		return append(evs, out)
	}
	rec, ok, err := m.n.drv.State().Match(ev.JobID)
	if ev.Type == chain.EvHeld && ours && ok && rec.Awaiting {
		return evs // a replica: fetched once its group is decided (EvMajority)
	}
	switch {
	case err != nil:
		m.n.log.Error("read a match record", "job", id.String(), "err", err)
		out.Err = err.Error()
	case !ok:
		out.Err = "the chain has no record of the match"
	}
	if kind == lifecycle.Matched {
		switch {
		case ok:
			out.Match, out.Deadline, out.MatchedAt = &rec.Match, rec.Deadline, rec.MatchedAt
		case mt != nil && mt.Bid.ID() == id:
			out.Match, out.MatchedAt = mt, blk.Time
			out.Deadline = mt.ResultDeadline(blk.Time, int64(m.n.drv.State().Params().ResultGraceMs))
		default:
			m.n.log.Error("a match without its record", "job", id.String())
			return evs
		}
		out.Err = ""
	}
	out.ResultHash, out.ExitCode = rec.ResultHash, rec.ExitCode
	out.Paid, out.Refunded, out.Slashed, out.Burned = rec.Paid, rec.Refunded, rec.Slashed, rec.Burned
	out.Provider, out.HeldPay = rec.Match.Offer.ProviderAddress(), rec.HeldPay
	if ev.Type == chain.EvHeld || ev.Type == chain.EvMajority {
		if rec.ExitCode != 0 {
			out.Kind = lifecycle.Failed
		}
		out.Paid, out.Refunded = rec.HeldPay, rec.Escrow-min(rec.Escrow, rec.HeldPay)
	}
	if n := len(rec.Challenges); n > 0 {
		c := rec.Challenges[n-1]
		out.Challenge = &lifecycle.ChallengeInfo{Kind: c.Kind, Committee: c.Committee, ProviderPeer: rec.Match.Offer.PeerID, Size: rec.ResultSize}
		if kind == lifecycle.Challenged {
			out.Match = &rec.Match
		}
	}
	return append(evs, out)
}

// fetchResult downloads a settled job's result from its provider and
// checks it against the hash committed on chain before keeping it.
func (m *marketService) fetchResult(job string, hash [32]byte, from string) (int64, error) {
	// Results are content addressed: the same result fetched before, or
	// one this node produced as the provider, is already here. Not for a
	// replica: each replica's provider must serve it, so one that copied
	// another's hash from the chain without running the job (it cannot
	// fetch a private job's result) fails the fetch and is challenged.
	var replica bool
	m.withCore(func(c *lifecycle.Core) {
		j, ok := c.Job(job)
		replica = ok && j.Bid != nil && j.Bid.Replicas > 1
	})
	for _, st := range []*worker.Store{m.payloads, m.results} {
		if replica {
			break
		}
		if rc, size, err := st.Open(hash); err == nil {
			rc.Close()
			return size, nil
		}
	}
	pid, err := peer.Decode(from)
	if err != nil {
		return 0, fmt.Errorf("provider peer: %w", err)
	}
	jobID, limit, err := m.resultLimit(job)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	// Streamed to a temporary file and hashed as it arrives (both by the
	// fetch and by the store), kept only if it hashes to the chain's hash.
	got, size, err := m.payloads.Write(ctx, func(w io.Writer) error {
		_, err := m.n.host.FetchBlobWith(ctx, pid, hash, m.resultCredential(jobID, hash), limit, w)
		return err
	})
	if err != nil {
		return 0, err
	}
	if got != hash {
		m.payloads.Delete(got)
		return 0, errors.New("result does not match the hash committed on chain")
	}
	return size, nil
}

// persistFailed reports a job record the persister could not write: at
// error level, on the metric, and on the job itself.
func (m *marketService) persistFailed(id string, err error) {
	m.logPersistFailed(id, err)
	m.step(lifecycle.PersistFailed{ID: id, Err: err})
}

func (m *marketService) logPersistFailed(id string, err error) {
	m.n.log.Error("save a job record: memory and disk differ", "job", id, "err", err)
	if m.n.metrics != nil {
		m.n.metrics.persistErrors.Inc()
	}
}
