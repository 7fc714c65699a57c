package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// Optimistic settlement. A Result does not pay: it holds the payment
// (MatchHeld) until the client acknowledges it (AckTx), or until
// Params.ChallengeWindowMs passes without a challenge. Within the window
// the client may challenge (ChallengeTx) with a deposit:
//
//   - ChallengeUnavailable: it cannot get the result. A committee of
//     validators (stake-weighted, never the client or the provider) fetches
//     it by hash and attests (AttestTx with the committed hash). A quorum
//     of attestations ends the challenge for the provider: the deposit pays
//     the attesters, and the payment is held for a new window in which the
//     client, who can now fetch it from the attesters, may still challenge
//     it as wrong. Without a quorum by the deadline the provider is slashed
//     and the client refunded.
//   - ChallengeWrong (deterministic WASM only): the result is wrong. The
//     committee re-executes the job and votes the hash it got (AttestTx).
//     The first hash with a quorum decides: the provider's hash releases the
//     payment and the deposit pays the referees who voted it; another hash
//     slashes the provider, refunds the client (escrow and deposit) and
//     pays those referees from the slash. Referees who voted another hash
//     than the deciding one lose Params.RefereeSlashBps of their stake. No
//     quorum by the deadline releases the payment and returns the deposit.
//
// Every unsettled match (open, held, challenged) has one key in the due
// index (pfxDeadline) at dueAt: its result deadline, its release time or
// its challenge's deadline. settleDue settles what is due, earliest
// first, at most MaxTimeoutsPerBlock per block. chain/RATIONALE.md gives
// the economics.

// ChallengeKind says what a challenge disputes.
type ChallengeKind uint8

// Challenge kinds.
const (
	ChallengeUnavailable ChallengeKind = 1
	ChallengeWrong       ChallengeKind = 2
)

func (k ChallengeKind) String() string {
	switch k {
	case ChallengeUnavailable:
		return "unavailable"
	case ChallengeWrong:
		return "wrong"
	}
	return fmt.Sprintf("challenge(%d)", uint8(k))
}

// ChallengeOutcome is how a challenge ended.
type ChallengeOutcome uint8

// Challenge outcomes.
const (
	ChallengePending      ChallengeOutcome = 0
	ChallengeProviderWon  ChallengeOutcome = 1 // the challenger's deposit paid the committee (the rest to the provider)
	ChallengeClientWon    ChallengeOutcome = 2 // the provider was slashed, the client refunded
	ChallengeInconclusive ChallengeOutcome = 3 // no quorum: the payment released, the deposit returned
)

func (o ChallengeOutcome) String() string {
	switch o {
	case ChallengePending:
		return "pending"
	case ChallengeProviderWon:
		return "provider_won"
	case ChallengeClientWon:
		return "client_won"
	case ChallengeInconclusive:
		return "inconclusive"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// AckTx is the client's acknowledgement of a held result: it fetched it
// and its hash matched. It releases the payment at once.
type AckTx struct {
	JobID market.BidID `cbor:"1,keyasint"`
}

// ChallengeTx is the client's challenge of a held result. The chain
// computes the deposit (Match.ChallengeDeposit); MaxDeposit is the most
// the client agrees to lock, so a challenge never costs more than it saw.
type ChallengeTx struct {
	JobID      market.BidID  `cbor:"1,keyasint"`
	Kind       ChallengeKind `cbor:"2,keyasint"`
	MaxDeposit uint64        `cbor:"3,keyasint"`
}

func (c *ChallengeTx) validateBasic() error {
	switch {
	case c.JobID == (market.BidID{}):
		return errors.New("challenge: empty job id")
	case c.Kind != ChallengeUnavailable && c.Kind != ChallengeWrong:
		return fmt.Errorf("challenge: unknown kind %d (1 unavailable, 2 wrong)", c.Kind)
	case c.MaxDeposit == 0:
		return errors.New("challenge: zero max deposit")
	}
	return nil
}

// AttestTx is a committee member's answer to an open challenge: for an
// availability challenge, that it fetched bytes whose sha256 is
// ResultHash (which must be the committed hash); for a wrong-result
// challenge, the hash its re-execution produced.
type AttestTx struct {
	JobID      market.BidID `cbor:"1,keyasint"`
	ResultHash [32]byte     `cbor:"2,keyasint"`
}

// Challenge is one challenge of a match and its committee.
type Challenge struct {
	Kind       ChallengeKind    `cbor:"1,keyasint"`
	Challenger wallet.Address   `cbor:"2,keyasint"`
	Deposit    uint64           `cbor:"3,keyasint"`
	OpenedAt   int64            `cbor:"4,keyasint"`
	Deadline   int64            `cbor:"5,keyasint"`
	Committee  []wallet.Address `cbor:"6,keyasint"` // at most MaxCommitteeSize
	// Fee is what each member who answered with the deciding hash is
	// paid by the loser.
	Fee     uint64           `cbor:"7,keyasint"`
	Votes   []Vote           `cbor:"8,keyasint,omitempty"` // at most one per member
	Outcome ChallengeOutcome `cbor:"9,keyasint,omitempty"`
	// Hash is the deciding hash (a quorum's), zero unless decided.
	Hash [32]byte `cbor:"10,keyasint,omitempty"`
	// Slashed is the provider's collateral cut when it lost; Burned what
	// of the cut or the deposit was burned.
	Slashed uint64 `cbor:"11,keyasint,omitempty"`
	Burned  uint64 `cbor:"12,keyasint,omitempty"`
}

// Vote is a committee member's attestation.
type Vote struct {
	Member uint8    `cbor:"1,keyasint"` // index in Committee
	Hash   [32]byte `cbor:"2,keyasint"`
}

// Quorum is how many members must agree: a majority of the committee.
func (c *Challenge) Quorum() int { return len(c.Committee)/2 + 1 }

// Member is a's index in the committee, or -1.
func (c *Challenge) Member(a wallet.Address) int { return slices.Index(c.Committee, a) }

// Pending returns the match's open challenge, or nil.
func (m *Match) Pending() *Challenge {
	if m.Status != MatchChallenged || len(m.Challenges) == 0 {
		return nil
	}
	return &m.Challenges[len(m.Challenges)-1]
}

func (m *Match) challenged(k ChallengeKind) bool {
	return slices.ContainsFunc(m.Challenges, func(c Challenge) bool { return c.Kind == k })
}

// ChallengeDeposit is the deposit a challenge of kind k costs under p
// with a committee of n: for availability, the base plus the per-MiB
// price of the declared result size; for a wrong result, n times the
// job's quote (each referee re-executes the job).
func ChallengeDeposit(p Params, m *Match, k ChallengeKind, n int) uint64 {
	if k == ChallengeWrong {
		return satMulU(uint64(n), max(m.Match.Price, 1))
	}
	mib := m.ResultSize>>20 + min(m.ResultSize&(1<<20-1), 1)
	return min(p.AvailDepositBase+satMulU(mib, p.AvailDepositPerMiB), MaxSupply)
}

// dueAt is when an unsettled match must move without anyone's
// transaction: its result deadline (open), its release (held) or its
// challenge's deadline.
func dueAt(m *Match) int64 {
	switch m.Status {
	case MatchHeld:
		return m.ReleaseAt
	case MatchChallenged:
		if c := m.Pending(); c != nil {
			return c.Deadline
		}
	}
	return m.Deadline
}

// unsettled reports whether a match status still holds escrow.
func unsettled(s MatchStatus) bool { return s == MatchOpen || s == MatchHeld || s == MatchChallenged }

// putMatch writes m and moves its due-index key from old (the due time
// it was indexed at, -1 for none) to dueAt(m), or removes it once m is
// settled.
func (x *execCtx) putMatch(m *Match, old int64) {
	id := m.Match.ID()
	if old >= 0 {
		x.o.del(deadlineKey(old, id))
	}
	if unsettled(m.Status) {
		x.o.put(deadlineKey(dueAt(m), id), true)
	}
	x.o.put(pfxMatch+string(id[:]), *m)
}

func (x *execCtx) providerOf(m *Match) (Provider, wallet.Address, error) {
	a := m.Match.Offer.ProviderAddress()
	p, ok, err := x.getProvider(a)
	if err != nil {
		return p, a, err
	}
	if !ok {
		return p, a, fmt.Errorf("%w: provider %s of a match has no record", ErrCorruptState, a)
	}
	return p, a, nil
}

// hold is the Result of an open match: the run is over (reservation
// released), the payment is held until m.ReleaseAt.
func (x *execCtx) hold(m *Match, r *ResultTx, pay market.Payout) error {
	prov := m.Match.Offer.ProviderAddress()
	old := dueAt(m)
	elapsed := uint64(x.time - m.MatchedAt)
	if err := x.endRun(m, prov, func(p *Provider) {
		p.ResultMsSum += elapsed
		p.HeldJobs++
		p.HeldEarnings = addTrack(p.HeldEarnings, pay.Provider)
	}); err != nil {
		return err
	}
	// The run is over: its figures are learnt now (market.Perf), not when
	// the payment is released; a result later proven withheld or wrong
	// counts again, as a timeout (clientWins).
	outcome := market.OutcomeCompleted
	if r.ExitCode != 0 {
		outcome = market.OutcomeFailed
	}
	if err := x.observe(prov, m, outcome, pay.Provider); err != nil {
		return err
	}
	m.Status, m.ResultHash, m.ExitCode, m.ResultSize = MatchHeld, r.ResultHash, r.ExitCode, r.Size
	m.HeldPay = pay.Provider
	m.ReleaseAt = x.time + int64(x.p.ChallengeWindowMs)
	if m.Match.Bid.Replicas > 1 {
		m.Awaiting = true // until the group is decided (replicas.go)
		m.ReleaseAt = max(m.ReleaseAt, m.Match.Bid.MatchBy)
	}
	x.putMatch(m, old)
	x.events = append(x.events, Event{Type: EvHeld, Address: prov, JobID: r.JobID, Amount: pay.Provider})
	return x.replicaEnded(m)
}

// payOut settles a held or challenged match for the provider: HeldPay
// to it, the rest of the escrow to the client. old is the due time m is
// indexed at.
func (x *execCtx) payOut(m *Match, old int64) error {
	p, prov, err := x.providerOf(m)
	if err != nil {
		return err
	}
	pay := m.HeldPay
	if pay > m.Escrow {
		return fmt.Errorf("%w: match %x holds %d of an escrow of %d", ErrCorruptState, m.Match.ID(), pay, m.Escrow)
	}
	p.HeldJobs--
	p.HeldEarnings -= min(p.HeldEarnings, pay)
	p.Released = addTrack(p.Released, pay)
	ev := EvCompleted
	if m.ExitCode == 0 {
		p.Completed++
		p.PaidCompleted = addTrack(p.PaidCompleted, pay)
		m.Status = MatchCompleted
	} else {
		p.Failed++
		p.ValueFailed = addTrack(p.ValueFailed, failureWeight(&p, m.Match.Price, pay))
		m.Status, ev = MatchFailed, EvFailed
	}
	x.o.put(addrKey(pfxProvider, prov), p)
	if x.g.Escrow, err = sub(x.g.Escrow, m.Escrow); err != nil {
		return fmt.Errorf("%w: escrow pool: %v", ErrCorruptState, err)
	}
	if err := x.credit(prov, pay); err != nil {
		return err
	}
	if err := x.credit(m.Match.Bid.ClientAddress(), m.Escrow-pay); err != nil {
		return err
	}
	m.Paid, m.Refunded, m.SettledAt, m.Escrow = pay, m.Escrow-pay, x.time, 0
	x.putMatch(m, old)
	x.events = append(x.events, Event{Type: ev, Address: prov, JobID: m.Match.ID(), Amount: pay})
	return nil
}

func (x *execCtx) ack(sender wallet.Address, a *AckTx) error {
	m, ok, err := x.getMatch(a.JobID)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return fmt.Errorf("ack %s: no such match", a.JobID)
	case m.Match.Bid.ClientAddress() != sender:
		return fmt.Errorf("ack %s: %s is not the job's client", a.JobID, sender)
	case m.Status != MatchHeld:
		return fmt.Errorf("ack %s: match is %s, not held", a.JobID, m.Status)
	case m.Awaiting:
		return fmt.Errorf("ack %s: other replicas of the job are not decided yet; the majority is paid, not the first result", a.JobID)
	}
	return x.payOut(&m, dueAt(&m))
}

// committee draws up to n validators of the current set, stake-weighted
// without replacement, never one of exclude, from a seed fixed by the
// job, the kind and the height (so the proposer cannot choose it).
func (x *execCtx) committee(id market.BidID, k ChallengeKind, n int, exclude ...wallet.Address) ([]wallet.Address, error) {
	return x.committeeSeeded(id, k, n, x.height, exclude...)
}

// committeeSeeded is committee with the seed's height given: a replica
// group's referees are seeded by the height its first replica matched
// at, which no replica's timing can move.
func (x *execCtx) committeeSeeded(id market.BidID, k ChallengeKind, n int, seedHeight uint64, exclude ...wallet.Address) ([]wallet.Address, error) {
	var vals []Validator
	if _, err := getRecord(x.o, heightKey(pfxValset, x.height), &vals); err != nil {
		return nil, err
	}
	vals = slices.DeleteFunc(slices.Clone(vals), func(v Validator) bool { return slices.Contains(exclude, v.Address) || v.Power == 0 })
	var total uint64
	for _, v := range vals {
		total += v.Power // bounded by MaxTotalPower
	}
	var seed [8 + 32 + 1 + 8]byte
	copy(seed[:], "bourse/c")
	copy(seed[8:], id[:])
	seed[40] = byte(k)
	binary.BigEndian.PutUint64(seed[41:], seedHeight)
	var out []wallet.Address
	for i := 0; len(out) < n && len(vals) > 0; i++ {
		h := sha256.Sum256(append(seed[:], byte(i)))
		r, _ := bits.Mul64(binary.BigEndian.Uint64(h[:8]), total) // uniform in [0, total)
		for j, v := range vals {
			if r < v.Power {
				out = append(out, v.Address)
				total -= v.Power
				vals = slices.Delete(vals, j, j+1)
				break
			}
			r -= v.Power
		}
	}
	return out, nil
}

func (x *execCtx) challenge(sender wallet.Address, c *ChallengeTx) error {
	m, ok, err := x.getMatch(c.JobID)
	if err != nil {
		return err
	}
	client, prov := m.Match.Bid.ClientAddress(), m.Match.Offer.ProviderAddress()
	switch {
	case !ok:
		return fmt.Errorf("challenge %s: no such match", c.JobID)
	case client != sender:
		return fmt.Errorf("challenge %s: %s is not the job's client", c.JobID, sender)
	case m.Status != MatchHeld:
		return fmt.Errorf("challenge %s: match is %s, not held", c.JobID, m.Status)
	case x.time >= m.ReleaseAt:
		return fmt.Errorf("challenge %s: the challenge window ended at %d", c.JobID, m.ReleaseAt)
	case m.Awaiting:
		return fmt.Errorf("challenge %s: other replicas of the job are not decided yet; a dissenting replica is slashed without a challenge", c.JobID)
	case m.challenged(c.Kind):
		return fmt.Errorf("challenge %s: already challenged as %s", c.JobID, c.Kind)
	case c.Kind == ChallengeWrong && m.Match.Bid.Executor != market.ExecWASM:
		return fmt.Errorf("challenge %s: a %s job is not deterministic; only WASM results can be re-executed by referees", c.JobID, m.Match.Bid.Executor)
	}
	exclude := []wallet.Address{client, prov}
	if m.Match.Bid.Replicas > 1 { // nor a provider of another replica: it judged the job already
		g, err := x.getGroup(m.Match.Bid.GroupID())
		if err != nil {
			return err
		}
		exclude = append(exclude, g.Providers()...)
	}
	members, err := x.committee(c.JobID, c.Kind, int(min(x.p.CommitteeSize, MaxCommitteeSize)), exclude...)
	if err != nil {
		return err
	}
	if len(members) == 0 {
		return fmt.Errorf("challenge %s: no validator other than the client and the provider can judge it", c.JobID)
	}
	deposit := ChallengeDeposit(x.p, &m, c.Kind, len(members))
	if deposit > c.MaxDeposit {
		return fmt.Errorf("challenge %s: the deposit is %d, above the %d offered", c.JobID, deposit, c.MaxDeposit)
	}
	if err := x.debit(sender, deposit); err != nil {
		return fmt.Errorf("challenge %s: deposit: %w", c.JobID, err)
	}
	if x.g.Deposits, err = add(x.g.Deposits, deposit); err != nil {
		return err
	}
	window := int64(x.p.AttestWindowMs)
	if c.Kind == ChallengeWrong {
		window += m.Match.Bid.TimeoutMs
	}
	fee := deposit / uint64(len(members))
	if c.Kind == ChallengeWrong {
		fee = max(m.Match.Price, 1)
	}
	old := dueAt(&m)
	m.Challenges = append(m.Challenges, Challenge{Kind: c.Kind, Challenger: sender, Deposit: deposit, OpenedAt: x.time,
		Deadline: x.time + window, Committee: members, Fee: fee})
	m.Status = MatchChallenged
	x.putMatch(&m, old)
	x.events = append(x.events, Event{Type: EvChallenged, Address: sender, JobID: c.JobID, Amount: deposit})
	return nil
}

func (x *execCtx) attest(sender wallet.Address, a *AttestTx) error {
	m, ok, err := x.getMatch(a.JobID)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("attest %s: no such match", a.JobID)
	}
	c := m.Pending()
	if c == nil {
		return fmt.Errorf("attest %s: match is %s, no challenge is open", a.JobID, m.Status)
	}
	i := c.Member(sender)
	switch {
	case i < 0:
		return fmt.Errorf("attest %s: %s is not on the challenge's committee", a.JobID, sender)
	case x.time >= c.Deadline:
		return fmt.Errorf("attest %s: the committee's deadline %d passed", a.JobID, c.Deadline)
	case slices.ContainsFunc(c.Votes, func(v Vote) bool { return int(v.Member) == i }):
		return fmt.Errorf("attest %s: %s already attested", a.JobID, sender)
	case c.Kind == ChallengeUnavailable && a.ResultHash != m.ResultHash:
		return fmt.Errorf("attest %s: hash %x is not the committed result %x", a.JobID, a.ResultHash[:8], m.ResultHash[:8])
	}
	c.Votes = append(c.Votes, Vote{Member: uint8(i), Hash: a.ResultHash})
	x.events = append(x.events, Event{Type: EvAttested, Address: sender, JobID: a.JobID})
	old := dueAt(&m)
	for _, v := range c.Votes {
		if votesFor(c, v.Hash) >= c.Quorum() {
			return x.decide(&m, v.Hash, old)
		}
	}
	x.putMatch(&m, old)
	return nil
}

func votesFor(c *Challenge, h [32]byte) int {
	n := 0
	for _, v := range c.Votes {
		if v.Hash == h {
			n++
		}
	}
	return n
}

// decide ends m's pending challenge on the quorum hash h.
func (x *execCtx) decide(m *Match, h [32]byte, old int64) error {
	if m.Awaiting { // the referees of a replica tie
		return x.refereed(m, h, true)
	}
	c := m.Pending()
	c.Hash = h
	if h == m.ResultHash {
		return x.providerWins(m, old)
	}
	return x.clientWins(m, old)
}

// winners are the members who voted the deciding hash, in vote order;
// none when no quorum decided.
func winners(c *Challenge) []wallet.Address {
	if c.Outcome != ChallengeProviderWon && c.Outcome != ChallengeClientWon || votesFor(c, c.Hash) < c.Quorum() {
		return nil
	}
	var out []wallet.Address
	for _, v := range c.Votes {
		if v.Hash == c.Hash {
			out = append(out, c.Committee[v.Member])
		}
	}
	return out
}

// slashDissenters burns RefereeSlashBps of the stake of every member of
// a wrong-result committee who voted another hash than the deciding one.
func (x *execCtx) slashDissenters(c *Challenge, id market.BidID) error {
	if c.Kind != ChallengeWrong {
		return nil
	}
	for _, v := range c.Votes {
		if v.Hash == c.Hash {
			continue
		}
		a := c.Committee[v.Member]
		burned, err := x.slashStake(a, x.p.RefereeSlashBps, x.height)
		if err != nil {
			return err
		}
		x.events = append(x.events, Event{Type: EvRefereeSlashed, Address: a, JobID: id, Amount: burned})
	}
	return nil
}

// providerWins: the deposit pays each member who answered with the
// deciding hash its fee, the rest goes to the provider. An availability
// challenge returns the match to held for a new window (the client can
// now fetch the result and may still challenge it as wrong); a
// wrong-result challenge releases the payment.
func (x *execCtx) providerWins(m *Match, old int64) error {
	c := m.Pending()
	c.Outcome = ChallengeProviderWon
	if err := x.payDeposit(m, c); err != nil {
		return err
	}
	if err := x.slashDissenters(c, m.Match.ID()); err != nil {
		return err
	}
	p, prov, err := x.providerOf(m)
	if err != nil {
		return err
	}
	p.ChallengesWon++
	x.o.put(addrKey(pfxProvider, prov), p)
	x.events = append(x.events, Event{Type: EvChallengeFailed, Address: c.Challenger, JobID: m.Match.ID(), Amount: c.Deposit})
	if c.Kind == ChallengeUnavailable {
		m.Status = MatchHeld
		m.ReleaseAt = x.time + int64(x.p.ChallengeWindowMs)
		x.putMatch(m, old)
		return nil
	}
	return x.payOut(m, old)
}

// payDeposit pays c's deposit out: Fee to each winner, the rest to the
// provider.
func (x *execCtx) payDeposit(m *Match, c *Challenge) error {
	var err error
	if x.g.Deposits, err = sub(x.g.Deposits, c.Deposit); err != nil {
		return fmt.Errorf("%w: deposits: %v", ErrCorruptState, err)
	}
	left, err := x.payFees(c, c.Deposit)
	if err != nil {
		return err
	}
	return x.credit(m.Match.Offer.ProviderAddress(), left)
}

// payFees pays each member who voted c's deciding hash its fee out of
// from, as far as it goes, and returns what is left.
func (x *execCtx) payFees(c *Challenge, from uint64) (uint64, error) {
	for _, w := range winners(c) {
		f := min(c.Fee, from)
		from -= f
		if err := x.credit(w, f); err != nil {
			return 0, err
		}
	}
	return from, nil
}

// slashHeld takes a held match's provider's loss: max(ChallengeSlashBps
// of its collateral, the held pay plus fees), capped by its collateral.
// The held pay is no longer its, the job counts like a missed deadline,
// update adds what else the record counts, and the escrow leaves the
// pool; the caller pays out or burns the cut and refunds the client.
func (x *execCtx) slashHeld(m *Match, fees uint64, update func(*Provider)) (uint64, wallet.Address, error) {
	p, prov, err := x.providerOf(m)
	if err != nil {
		return 0, prov, err
	}
	floor, _ := add(m.HeldPay, fees)
	cut := min(p.Collateral, max(mulBps(p.Collateral, x.p.ChallengeSlashBps), floor))
	p.Collateral -= cut
	p.HeldJobs--
	p.HeldEarnings -= min(p.HeldEarnings, m.HeldPay)
	p.SlashedTotal = addTrack(p.SlashedTotal, cut)
	p.TimedOut++ // withholding or lying counts like a missed deadline
	p.ValueTimedOut = addTrack(p.ValueTimedOut, m.Match.Price)
	update(&p)
	x.o.put(addrKey(pfxProvider, prov), p)
	if err := x.observe(prov, m, market.OutcomeTimedOut, 0); err != nil {
		return 0, prov, err
	}
	x.g.Collateral -= cut
	if x.g.Escrow, err = sub(x.g.Escrow, m.Escrow); err != nil {
		return 0, prov, fmt.Errorf("%w: escrow pool: %v", ErrCorruptState, err)
	}
	return cut, prov, nil
}

// clientWins: the provider loses max(ChallengeSlashBps of its
// collateral, the held pay plus the committee's fees), capped by its
// collateral; the client gets its escrow and deposit back; the members
// who answered with the deciding hash are paid their fee from the cut,
// and the rest of the cut is burned.
func (x *execCtx) clientWins(m *Match, old int64) error {
	c := m.Pending()
	c.Outcome = ChallengeClientWon
	cut, prov, err := x.slashHeld(m, satMulU(uint64(len(c.Committee)), c.Fee), func(p *Provider) { p.ChallengesLost++ })
	if err != nil {
		return err
	}
	left, err := x.payFees(c, cut)
	if err != nil {
		return err
	}
	if x.g.Burned, err = add(x.g.Burned, left); err != nil {
		return err
	}
	if err := x.slashDissenters(c, m.Match.ID()); err != nil {
		return err
	}
	if x.g.Deposits, err = sub(x.g.Deposits, c.Deposit); err != nil {
		return fmt.Errorf("%w: deposits: %v", ErrCorruptState, err)
	}
	client := m.Match.Bid.ClientAddress()
	refund, _ := add(m.Escrow, c.Deposit)
	if err := x.credit(client, refund); err != nil {
		return err
	}
	c.Slashed, c.Burned = cut, left
	ev, st := EvWithheld, MatchWithheld
	if c.Kind == ChallengeWrong {
		ev, st = EvWrongResult, MatchWrong
	}
	m.Status, m.Refunded, m.Slashed, m.Burned, m.SettledAt, m.Escrow = st, m.Escrow, cut, left, x.time, 0
	x.putMatch(m, old)
	x.events = append(x.events, Event{Type: ev, Address: prov, JobID: m.Match.ID(), Amount: cut})
	return nil
}

// expire ends a challenge at its deadline without a quorum: an
// availability challenge is lost by the provider (it did not serve
// enough of the committee); a wrong-result challenge is inconclusive:
// the payment is released and the deposit returned.
func (x *execCtx) expire(m *Match) error {
	if m.Awaiting { // the referees of a replica tie found no quorum
		return x.refereed(m, [32]byte{}, false)
	}
	c := m.Pending()
	old := dueAt(m)
	if c.Kind == ChallengeUnavailable {
		return x.clientWins(m, old)
	}
	c.Outcome = ChallengeInconclusive
	var err error
	if x.g.Deposits, err = sub(x.g.Deposits, c.Deposit); err != nil {
		return fmt.Errorf("%w: deposits: %v", ErrCorruptState, err)
	}
	if err := x.credit(c.Challenger, c.Deposit); err != nil {
		return err
	}
	return x.payOut(m, old)
}

// settleDue settles the unsettled matches due at or before the block
// time, earliest first, at most MaxTimeoutsPerBlock: open matches time
// out, held results are paid, challenges past their deadline expire.
func (x *execCtx) settleDue() error {
	type due struct {
		at int64
		id market.BidID
	}
	var todo []due
	var err error
	x.o.scan(pfxDeadline, "", func(k string, _ []byte) bool {
		if len(k) != len(pfxDeadline)+8+len(market.BidID{}) {
			err = fmt.Errorf("%w: deadline key %q", ErrCorruptState, printableKey(k))
			return false
		}
		d := due{at: int64(binary.BigEndian.Uint64([]byte(k[len(pfxDeadline) : len(pfxDeadline)+8])))}
		if d.at > x.time {
			return false
		}
		copy(d.id[:], k[len(pfxDeadline)+8:])
		todo = append(todo, d)
		return len(todo) < MaxTimeoutsPerBlock
	})
	if err != nil {
		return err
	}
	for _, d := range todo {
		if _, ok := x.o.get(deadlineKey(d.at, d.id)); !ok {
			continue // moved by an earlier settlement of this block (a replica's group)
		}
		m, ok, err := x.getMatch(d.id)
		if err != nil {
			return err
		}
		if !ok || !unsettled(m.Status) || max(dueAt(&m), 0) != d.at {
			return fmt.Errorf("%w: due index lists %x at %d, which is not unsettled and due then", ErrCorruptState, d.id[:8], d.at)
		}
		switch m.Status {
		case MatchOpen:
			err = x.timeout(&m)
		case MatchHeld:
			if m.Awaiting {
				err = x.groupDue(&m, d.at)
			} else {
				err = x.payOut(&m, d.at)
			}
		case MatchChallenged:
			err = x.expire(&m)
		}
		if err != nil {
			return fmt.Errorf("settle %s (%s): %w", d.id, m.Status, err)
		}
	}
	return nil
}
