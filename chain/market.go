package chain

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// MatchTx is a market.Match (the signed offer and bid, verbatim, and the
// quoted price) put into a block by its proposer. Every validator runs
// market.CheckMatch on it against the state as of the transaction's
// position in the block, then escrows and reserves; the proposer signed
// it, so a failing match makes the whole block invalid (ErrInvalidBlock).
type MatchTx = market.Match

// ResultTx is a provider's report of a finished job.
type ResultTx struct {
	JobID      market.BidID `cbor:"1,keyasint"`
	ResultHash [32]byte     `cbor:"2,keyasint"` // sha256 of the content-addressed result
	ExitCode   int32        `cbor:"3,keyasint"` // 0 completed; anything else failed
	Usage      market.Usage `cbor:"4,keyasint"`
	// Size is the result's size in bytes: what a committee member fetches
	// at most when its availability is challenged, and what prices the
	// challenge's deposit (Params.AvailDepositPerMiB). At most MaxResultSize.
	Size uint64 `cbor:"5,keyasint,omitempty"`
}

// MaxResultSize bounds ResultTx.Size (1 TiB).
const MaxResultSize = 1 << 40

func (r *ResultTx) validateBasic() error {
	if r.JobID == (market.BidID{}) {
		return errors.New("result: empty job id")
	}
	if r.Size > MaxResultSize {
		return fmt.Errorf("result: size %d exceeds %d", r.Size, uint64(MaxResultSize))
	}
	return nil
}

// BidCancel withdraws the sender's bid before it is matched. It carries
// the bid itself so the chain can check that the sender is its client.
type BidCancel struct {
	Bid market.Bid `cbor:"1,keyasint"`
}

// MatchStatus is where a match stands.
type MatchStatus uint8

// Match statuses.
const (
	MatchOpen MatchStatus = iota + 1
	MatchCompleted
	MatchFailed
	MatchTimedOut
	MatchUnavailable // the provider could not get the payload
	// MatchHeld: the result is committed; its payment is held until the
	// client acknowledges it or Match.ReleaseAt passes unchallenged.
	MatchHeld
	// MatchChallenged: the client challenged the held result; the
	// committee of the last Match.Challenges entry decides.
	MatchChallenged
	// MatchWithheld: the committee could not get the result: the
	// provider was slashed and the client refunded.
	MatchWithheld
	// MatchWrong: the referees' majority hash differs from the
	// provider's: the provider was slashed and the client refunded.
	MatchWrong
)

func (s MatchStatus) String() string {
	switch s {
	case MatchOpen:
		return "open"
	case MatchCompleted:
		return "completed"
	case MatchFailed:
		return "failed"
	case MatchTimedOut:
		return "timed_out"
	case MatchUnavailable:
		return "payload_unavailable"
	case MatchHeld:
		return "held"
	case MatchChallenged:
		return "challenged"
	case MatchWithheld:
		return "withheld"
	case MatchWrong:
		return "wrong_result"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Match is the chain's record of a committed match and its settlement.
// Records stay in the state after settlement, for audit.
type Match struct {
	Match      market.Match `cbor:"1,keyasint"`
	Height     uint64       `cbor:"2,keyasint"` // block that committed it
	MatchedAt  int64        `cbor:"3,keyasint"` // that block's time
	Deadline   int64        `cbor:"4,keyasint"` // Match.ResultDeadline(MatchedAt, Params.ResultGraceMs)
	Status     MatchStatus  `cbor:"5,keyasint"`
	Escrow     uint64       `cbor:"6,keyasint"` // held while open
	ResultHash [32]byte     `cbor:"7,keyasint,omitempty"`
	ExitCode   int32        `cbor:"8,keyasint,omitempty"`
	Paid       uint64       `cbor:"9,keyasint,omitempty"`
	Refunded   uint64       `cbor:"10,keyasint,omitempty"`
	Slashed    uint64       `cbor:"11,keyasint,omitempty"`
	SettledAt  int64        `cbor:"12,keyasint,omitempty"`
	Burned     uint64       `cbor:"13,keyasint,omitempty"` // escrow burned: the unavailability fee

	// Settlement (chain/settle.go). HeldPay is what the result would pay
	// the provider (the rest of Escrow goes back to the client), held
	// while the match is MatchHeld or MatchChallenged; ReleaseAt is when
	// a held result is paid unless challenged; ResultSize is the
	// provider's ResultTx.Size. Challenges are the challenges made, at
	// most one of each kind.
	HeldPay    uint64      `cbor:"21,keyasint,omitempty"`
	ReleaseAt  int64       `cbor:"22,keyasint,omitempty"`
	ResultSize uint64      `cbor:"23,keyasint,omitempty"`
	Challenges []Challenge `cbor:"24,keyasint,omitempty"`
	// Awaiting: a replica's result (chain/replicas.go), held until its
	// group is decided; ReleaseAt is then when the group is looked at
	// again, not a release. The client can neither ack nor challenge it.
	Awaiting bool `cbor:"25,keyasint,omitempty"`
}

// Provider is a registered provider: collateral, the resources reserved by
// its open matches, and its track record.
type Provider struct {
	Collateral  uint64           `cbor:"1,keyasint"`
	Reserved    market.Resources `cbor:"2,keyasint"`
	Open        uint64           `cbor:"3,keyasint"`
	Completed   uint64           `cbor:"4,keyasint"`
	Failed      uint64           `cbor:"5,keyasint"`
	TimedOut    uint64           `cbor:"6,keyasint"`
	ResultMsSum uint64           `cbor:"7,keyasint"` // sum of match-to-result times of completed and failed jobs
	// NewestOfferSeq is the highest offer Seq of a committed Match on this
	// provider: a Match on an offer with a lower Seq is refused
	// (market.CodeSuperseded), so a provider's re-signed offer retires its
	// older ones.
	NewestOfferSeq uint64 `cbor:"8,keyasint,omitempty"`
	// The value track record behind Reputation, in base units, each
	// saturating at MaxTrackValue: what clients paid for completed jobs
	// (PaidCompleted), the weight of failed jobs (failureWeight) and the
	// quotes (Match.Price) of timed-out jobs.
	PaidCompleted uint64 `cbor:"9,keyasint,omitempty"`
	ValueFailed   uint64 `cbor:"10,keyasint,omitempty"`
	ValueTimedOut uint64 `cbor:"11,keyasint,omitempty"`
	// Unavailable counts the matches it ended with PayloadUnavailable
	// (also counted in Failed).
	Unavailable uint64 `cbor:"12,keyasint,omitempty"`
	// LeftAt is the time (unix ms) of its ProviderDeregister, 0 while it
	// is registered.
	LeftAt int64 `cbor:"13,keyasint,omitempty"`

	// Settlement record (chain/settle.go): the results whose payment is
	// held (HeldJobs, HeldEarnings), what was released to it and what
	// of its collateral was slashed (timeouts and lost challenges), and
	// the challenges against it that it won and lost. The sums saturate
	// at MaxTrackValue.
	HeldJobs       uint64 `cbor:"21,keyasint,omitempty"`
	HeldEarnings   uint64 `cbor:"22,keyasint,omitempty"`
	Released       uint64 `cbor:"23,keyasint,omitempty"`
	SlashedTotal   uint64 `cbor:"24,keyasint,omitempty"`
	ChallengesWon  uint64 `cbor:"25,keyasint,omitempty"`
	ChallengesLost uint64 `cbor:"26,keyasint,omitempty"`
}

// Leaving reports whether the provider deregistered (and has not
// registered again).
func (p Provider) Leaving() bool { return p.LeftAt != 0 }

// WithdrawableAt is when a leaving provider may withdraw its collateral,
// provided it then has no open match.
func (p Provider) WithdrawableAt(exitDelayMs uint64) int64 {
	return p.LeftAt + int64(min(exitDelayMs, MaxProviderExitDelayMs))
}

// ReputationPrior is the prior of Reputation in base units: a new provider
// counts as if it had completed ReputationPrior worth of jobs and failed
// the same worth, hence starts at 500.
const ReputationPrior = 1000

// MaxTrackValue caps each value sum of the Provider record, so that the
// reputation arithmetic cannot overflow (4·2^61 + 2·prior < 2^64).
const MaxTrackValue = 1 << 61

// Reputation is per mille, weighted by value rather than job count:
//
//	(paid + prior)·1000 / (paid + failed + 2·timed out + 2·prior)
//
// where paid is what clients paid for completed jobs, failed the summed
// failureWeight of failed jobs, timed out the quotes of jobs that missed
// their deadline, and prior is ReputationPrior. A new provider starts at
// 500; a job raises or lowers it by its worth, so many tiny jobs move it
// little, and a missed deadline counts double. See market/RATIONALE.md
// for what it resists and what it does not.
func (p Provider) Reputation() uint32 {
	good := min(p.PaidCompleted, MaxTrackValue) + ReputationPrior
	den := good + min(p.ValueFailed, MaxTrackValue) + 2*min(p.ValueTimedOut, MaxTrackValue) + ReputationPrior
	hi, lo := bits.Mul64(good, market.MaxReputation)
	q, _ := bits.Div64(hi, lo, den) // good ≤ den: the quotient is at most 1000, hi < den
	return uint32(min(q, market.MaxReputation))
}

// failureWeight is what a failed job (a Result with a non-zero exit code)
// counts against p: what the client paid for it, but at least the job's
// quote capped at p's mean paid value per completed job, itself at least
// ReputationPrior. The chain cannot tell a provider's failure from a
// client's crashing program or unservable payload, and the usage it pays
// is the provider's own report; so a provider cannot fail cheaply by
// reporting no usage, and a client cannot sink a reputation with one
// crashing bid of a huge quote: each failure weighs like one typical job.
// The floor keeps a provider from diluting its mean with tiny self-paid
// jobs (one 3-unit job would make every later failure weigh 3).
func failureWeight(p *Provider, quote, paid uint64) uint64 {
	mean := uint64(ReputationPrior)
	if p.Completed > 0 {
		mean = max(mean, min(p.PaidCompleted, MaxTrackValue)/p.Completed)
	}
	return max(paid, min(quote, mean))
}

// addTrack adds v to a value sum of the Provider record, saturating at
// MaxTrackValue.
func addTrack(sum, v uint64) uint64 {
	sum = min(sum, MaxTrackValue)
	return sum + min(v, MaxTrackValue-sum)
}

// MeanResultMs is the mean time from match to result, 0 before any result.
func (p Provider) MeanResultMs() uint64 {
	n := p.Completed + p.Failed
	if n == 0 {
		return 0
	}
	return p.ResultMsSum / n
}

// BidState records a bid that can no longer be matched.
type BidState struct {
	Cancelled bool `cbor:"1,keyasint,omitempty"`
	Matched   bool `cbor:"2,keyasint,omitempty"`
}

// chainView is market.ChainView over an overlay.
type chainView struct {
	r reader
	p Params
}

var _ market.ChainView = chainView{}

func (v chainView) Provider(a wallet.Address) (market.ProviderState, bool) {
	var p Provider
	ok, err := getRecord(v.r, addrKey(pfxProvider, a), &p)
	if err != nil || !ok || p.Leaving() {
		return market.ProviderState{}, false // a leaving provider takes no new match
	}
	var perf market.Perf
	if _, err := getRecord(v.r, addrKey(pfxPerf, a), &perf); err != nil {
		perf = market.Perf{} // unreadable figures weigh nothing; the record above was read
	}
	return market.ProviderState{Collateral: p.Collateral, Reputation: p.Reputation(), Reserved: p.Reserved, NewestOfferSeq: p.NewestOfferSeq, Perf: perf}, true
}

// observe folds a settled match into its provider's performance figures
// (market.Perf.Observe): one record read and written per settlement, so
// a block's work is bounded by its results and MaxTimeoutsPerBlock.
func (x *execCtx) observe(prov wallet.Address, m *Match, o market.Outcome, paid uint64) error {
	var p market.Perf
	if _, err := getRecord(x.o, addrKey(pfxPerf, prov), &p); err != nil {
		return err
	}
	rtt, ok := m.Match.Bid.RTTTo(prov)
	x.o.put(addrKey(pfxPerf, prov), p.Observe(o, x.time-m.MatchedAt, m.Match.Bid.TimeoutMs, m.Match.Price, paid, rtt, ok, x.time))
	return nil
}

func (v chainView) Spendable(a wallet.Address) uint64 {
	acc, err := getAccount(v.r, a)
	if err != nil {
		return 0
	}
	return acc.Balance
}

func (v chainView) BidClosed(id market.BidID) bool {
	_, ok := v.r.get(pfxBid + string(id[:]))
	return ok
}

func (v chainView) MinCollateral() uint64 { return v.p.MinProviderCollateral }

// View is the market's read-only view of the committed state, for the
// proposer's matcher.
func (s *State) View() market.ChainView { return chainView{r: s, p: s.Params()} }

func (x *execCtx) getProvider(a wallet.Address) (Provider, bool, error) {
	var p Provider
	ok, err := getRecord(x.o, addrKey(pfxProvider, a), &p)
	return p, ok, err
}

func (x *execCtx) providerRegister(a wallet.Address, amount uint64) error {
	if err := x.debit(a, amount); err != nil {
		return fmt.Errorf("provider register: %w", err)
	}
	p, _, err := x.getProvider(a)
	if err != nil {
		return err
	}
	if p.Collateral, err = add(p.Collateral, amount); err != nil {
		return fmt.Errorf("provider register: %w", err)
	}
	if p.Collateral < x.p.MinProviderCollateral {
		return fmt.Errorf("provider register: collateral %d below the minimum %d", p.Collateral, x.p.MinProviderCollateral)
	}
	p.LeftAt = 0 // registering again ends a departure
	if x.g.Collateral, err = add(x.g.Collateral, amount); err != nil {
		return err
	}
	x.o.put(addrKey(pfxProvider, a), p)
	return nil
}

func (x *execCtx) providerDeregister(a wallet.Address) error {
	p, ok, err := x.getProvider(a)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return fmt.Errorf("provider deregister: %s is not a provider", a)
	case p.Leaving():
		return fmt.Errorf("provider deregister: %s already deregistered at %d", a, p.LeftAt)
	}
	p.LeftAt = max(x.time, 1)
	x.o.put(addrKey(pfxProvider, a), p)
	x.events = append(x.events, Event{Type: EvLeaving, Address: a, Amount: uint64(p.WithdrawableAt(x.p.ProviderExitDelayMs))})
	return nil
}

func (x *execCtx) providerWithdraw(a wallet.Address) error {
	p, ok, err := x.getProvider(a)
	if err != nil {
		return err
	}
	at := p.WithdrawableAt(x.p.ProviderExitDelayMs)
	switch {
	case !ok:
		return fmt.Errorf("provider withdraw: %s is not a provider", a)
	case !p.Leaving():
		return fmt.Errorf("provider withdraw: %s is registered: send ProviderDeregister first", a)
	case p.Open > 0:
		return fmt.Errorf("provider withdraw: %d open matches must settle first", p.Open)
	case p.HeldJobs > 0:
		return fmt.Errorf("provider withdraw: %d results are held for their challenge window and must settle first", p.HeldJobs)
	case x.time < at:
		return fmt.Errorf("provider withdraw: the exit delay runs until %d (block time %d)", at, x.time)
	case p.Collateral == 0:
		return fmt.Errorf("provider withdraw: no collateral left")
	}
	amount := p.Collateral
	if x.g.Collateral, err = sub(x.g.Collateral, amount); err != nil {
		return fmt.Errorf("%w: collateral pool: %v", ErrCorruptState, err)
	}
	p.Collateral = 0
	x.o.put(addrKey(pfxProvider, a), p)
	if err := x.credit(a, amount); err != nil {
		return err
	}
	x.events = append(x.events, Event{Type: EvWithdrawn, Address: a, Amount: amount})
	return nil
}

func (x *execCtx) bidCancel(sender wallet.Address, c *BidCancel) error {
	if c.Bid.ClientAddress() != sender {
		return fmt.Errorf("bid cancel: %s is not the bid's client %s", sender, c.Bid.ClientAddress())
	}
	id := c.Bid.ID()
	key := pfxBid + string(id[:])
	var bs BidState
	if ok, err := getRecord(x.o, key, &bs); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("bid cancel %s: already matched or cancelled", id)
	}
	x.o.put(key, BidState{Cancelled: true})
	x.events = append(x.events, Event{Type: EvCancelled, Address: sender, JobID: id})
	return nil
}

func (x *execCtx) match(m *MatchTx) error {
	id := m.ID()
	if err := market.CheckMatch(x.p.ChainID, m, chainView{r: x.o, p: x.p}, x.time); err != nil {
		return err
	}
	client, provAddr := m.Bid.ClientAddress(), m.Offer.ProviderAddress()
	escrow := m.Escrow()
	if err := x.debit(client, escrow); err != nil {
		return fmt.Errorf("match %s: escrow: %w", id, err)
	}
	var err error
	if x.g.Escrow, err = add(x.g.Escrow, escrow); err != nil {
		return fmt.Errorf("match %s: %w", id, err)
	}
	p, _, err := x.getProvider(provAddr)
	if err != nil {
		return err
	}
	if p.Reserved, err = p.Reserved.Add(m.Bid.Resources); err != nil {
		return fmt.Errorf("match %s: reserve: %w", id, err)
	}
	p.Reserved.GPUModel = ""
	p.Open++
	p.NewestOfferSeq = max(p.NewestOfferSeq, m.Offer.Seq) // CheckMatch refused a lower one
	x.o.put(addrKey(pfxProvider, provAddr), p)
	x.o.put(pfxBid+string(id[:]), BidState{Matched: true})
	rec := Match{Match: *m, Height: x.height, MatchedAt: x.time, Deadline: m.ResultDeadline(x.time, int64(x.p.ResultGraceMs)), Status: MatchOpen, Escrow: escrow}
	x.o.put(pfxMatch+string(id[:]), rec)
	x.o.put(deadlineKey(rec.Deadline, id), true) // one key per open match: see pfxDeadline
	if m.Bid.Replicas > 1 {
		if err := x.joinGroup(m); err != nil {
			return err
		}
	}
	x.events = append(x.events, Event{Type: EvMatched, Address: provAddr, JobID: id, Amount: escrow})
	return nil
}

func deadlineKey(deadline int64, id market.BidID) string {
	return heightKey(pfxDeadline, uint64(max(deadline, 0))) + string(id[:])
}

func (x *execCtx) getMatch(id market.BidID) (Match, bool, error) {
	var m Match
	ok, err := getRecord(x.o, pfxMatch+string(id[:]), &m)
	return m, ok, err
}

// release ends an open match: escrow leaves the pool, the reservation is
// released, the provider's counters move.
func (x *execCtx) release(m *Match, prov wallet.Address, update func(*Provider)) error {
	if err := x.endRun(m, prov, update); err != nil {
		return err
	}
	var err error
	if x.g.Escrow, err = sub(x.g.Escrow, m.Escrow); err != nil {
		return fmt.Errorf("%w: escrow pool: %v", ErrCorruptState, err)
	}
	return nil
}

// endRun ends the run of an open match: its reservation is released, the
// provider's counters move, and it leaves the due index at its result
// deadline. The escrow stays.
func (x *execCtx) endRun(m *Match, prov wallet.Address, update func(*Provider)) error {
	p, ok, err := x.getProvider(prov)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: provider %s of an open match has no record", ErrCorruptState, prov)
	}
	if p.Reserved, err = p.Reserved.Sub(m.Match.Bid.Resources); err != nil {
		return fmt.Errorf("%w: release reservation: %v", ErrCorruptState, err)
	}
	p.Reserved.GPUModel = ""
	p.Open--
	update(&p)
	x.o.put(addrKey(pfxProvider, prov), p)
	x.o.del(deadlineKey(m.Deadline, m.Match.ID()))
	return nil
}

func (x *execCtx) result(sender wallet.Address, r *ResultTx) error {
	m, ok, err := x.getMatch(r.JobID)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return fmt.Errorf("result %s: no such match", r.JobID)
	case m.Status != MatchOpen:
		return fmt.Errorf("result %s: match is %s", r.JobID, m.Status)
	case m.Match.Offer.ProviderAddress() != sender:
		return fmt.Errorf("result %s: %s is not the provider", r.JobID, sender)
	case x.time >= m.Deadline:
		return fmt.Errorf("result %s: deadline %d passed", r.JobID, m.Deadline)
	}
	pay, err := market.Settle(&m.Match, r.Usage)
	if err != nil {
		return fmt.Errorf("result %s: %w", r.JobID, err)
	}
	if pay.Provider+pay.Refund != m.Escrow {
		return fmt.Errorf("result %s: payout %d+%d does not split escrow %d", r.JobID, pay.Provider, pay.Refund, m.Escrow)
	}
	return x.hold(&m, r, pay)
}

// MaxTimeoutsPerBlock bounds the due matches (timeouts, releases of held
// results, expired challenges) one block settles, so a block's
// cost does not depend on how many matches others aimed at one deadline;
// the rest are settled by the next blocks, earliest deadline first. A
// Result for a match past its deadline is refused either way.
var MaxTimeoutsPerBlock = 1024

// PayloadUnavailable is a provider's statement, before a match's deadline,
// that it could not get the job's payload from the client. The match
// ends without a slash: the client gets its escrow back less
// Params.UnavailableFeeBps, which is burned (neither party profits from
// the claim); the provider is paid nothing, and its record counts the job
// as failed with the weight of a failure (so claiming it is never cheaper
// for a provider's reputation than reporting a failed run), plus an
// Unavailable count anyone can see. chain/RATIONALE.md says why.
type PayloadUnavailable struct {
	JobID market.BidID `cbor:"1,keyasint"`
}

func (x *execCtx) payloadUnavailable(sender wallet.Address, u *PayloadUnavailable) error {
	m, ok, err := x.getMatch(u.JobID)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return fmt.Errorf("payload unavailable %s: no such match", u.JobID)
	case m.Status != MatchOpen:
		return fmt.Errorf("payload unavailable %s: match is %s", u.JobID, m.Status)
	case m.Match.Offer.ProviderAddress() != sender:
		return fmt.Errorf("payload unavailable %s: %s is not the provider", u.JobID, sender)
	case x.time >= m.Deadline:
		return fmt.Errorf("payload unavailable %s: deadline %d passed", u.JobID, m.Deadline)
	}
	fee := mulBps(m.Escrow, x.p.UnavailableFeeBps)
	elapsed := uint64(x.time - m.MatchedAt)
	if err := x.release(&m, sender, func(p *Provider) {
		p.Failed++
		p.Unavailable++
		p.ResultMsSum += elapsed
		p.ValueFailed = addTrack(p.ValueFailed, failureWeight(p, m.Match.Price, 0))
	}); err != nil {
		return fmt.Errorf("payload unavailable %s: %w", u.JobID, err)
	}
	if x.g.Burned, err = add(x.g.Burned, fee); err != nil {
		return err
	}
	if err := x.credit(m.Match.Bid.ClientAddress(), m.Escrow-fee); err != nil {
		return err
	}
	if err := x.observe(sender, &m, market.OutcomeFailed, 0); err != nil {
		return err
	}
	m.Status, m.Refunded, m.Burned, m.SettledAt, m.Escrow = MatchUnavailable, m.Escrow-fee, fee, x.time, 0
	x.o.put(pfxMatch+string(u.JobID[:]), m)
	x.events = append(x.events, Event{Type: EvUnavailable, Address: sender, JobID: u.JobID, Amount: fee})
	return x.replicaEnded(&m)
}

func (x *execCtx) timeout(m *Match) error {
	prov := m.Match.Offer.ProviderAddress()
	var cut uint64
	if err := x.release(m, prov, func(p *Provider) {
		p.TimedOut++
		p.ValueTimedOut = addTrack(p.ValueTimedOut, m.Match.Price)
		cut = mulBps(p.Collateral, x.p.TimeoutSlashBps)
		p.Collateral -= cut
		p.SlashedTotal = addTrack(p.SlashedTotal, cut)
	}); err != nil {
		return err
	}
	x.g.Collateral -= cut
	var err error
	if x.g.Burned, err = add(x.g.Burned, cut); err != nil {
		return err
	}
	if err := x.credit(m.Match.Bid.ClientAddress(), m.Escrow); err != nil {
		return err
	}
	if err := x.observe(prov, m, market.OutcomeTimedOut, 0); err != nil {
		return err
	}
	m.Status, m.Refunded, m.Slashed, m.SettledAt, m.Escrow = MatchTimedOut, m.Escrow, cut, x.time, 0
	id := m.Match.ID()
	x.o.put(pfxMatch+string(id[:]), *m)
	x.events = append(x.events, Event{Type: EvTimedOut, Address: prov, JobID: id, Amount: cut})
	return x.replicaEnded(m)
}
