package chain

import (
	"fmt"
	"slices"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// k-of-n replicas. A job with Bid.Replicas = k is k bids that differ only
// in Bid.Replica and share Bid.GroupID. Each is matched (on a provider no
// other replica of the group is on: market.CodeReplica), run and held like
// a job of its own, except that its held result waits (Match.Awaiting)
// until the group is decided: every matched replica has a result or has
// settled without one (timed out, payload unavailable), and either all k
// are matched or the bids' MatchBy has passed.
//
// The group is then decided by the results' hashes (the result archive
// holds the exit code, so the hash binds it):
//
//   - all equal: every replica is held for a fresh challenge window, which
//     the client's Ack ends as for any job;
//   - any disagreement on a WASM job: referees re-execute it, as for a
//     wrong-result challenge the chain opens on the first replica with no
//     deposit, its committee excluding the client and every provider of
//     the group and seeded by the height the group's first replica matched
//     at; the first hash with a quorum decides: the replicas with it are
//     held, the others slashed (dissent: max(ChallengeSlashBps of their
//     collateral, their held pay plus the referees' fees)), each referee
//     who voted it paid its fee from the cuts, the rest burned; without a
//     quorum the majority decides as below;
//   - otherwise (a job that is not deterministic: Bid.AcceptMajority, or no
//     referee to be had): the replicas whose hash has more than half of
//     the results are held; the others are outvoted: unpaid, their escrow
//     refunded and the run counted failed, but not slashed, since honest
//     runs of such a job may differ; without a majority every result is
//     held as it is;
//   - no result at all: nothing to hold.
//
// Slashing only on the referees' evidence is what keeps a client with
// Sybil providers from outvoting, and so slashing, an honest one.
// chain/RATIONALE.md gives the economics, collusion included.

// GroupOutcome is where a replica group stands.
type GroupOutcome uint8

// Group outcomes.
const (
	GroupPending    GroupOutcome = 0 // replicas still running or being matched
	GroupMajority   GroupOutcome = 1 // the results agreed, or a majority of them (outvoted the rest)
	GroupReferees   GroupOutcome = 2 // the results disagree: referees are re-executing
	GroupRefereed   GroupOutcome = 3 // the referees' quorum decided
	GroupNoMajority GroupOutcome = 4 // a split nobody could settle: every result held as it is
	GroupNoResult   GroupOutcome = 5 // no replica returned a result
)

func (o GroupOutcome) String() string {
	switch o {
	case GroupPending:
		return "pending"
	case GroupMajority:
		return "majority"
	case GroupReferees:
		return "referees"
	case GroupRefereed:
		return "refereed"
	case GroupNoMajority:
		return "no_majority"
	case GroupNoResult:
		return "no_result"
	}
	return fmt.Sprintf("group(%d)", uint8(o))
}

// Group is the chain's record of a job run as replicas.
type Group struct {
	Replicas uint32        `cbor:"1,keyasint"`
	MatchBy  int64         `cbor:"2,keyasint"` // the bids' MatchBy: no replica is matched at or after it
	Members  []GroupMember `cbor:"3,keyasint"` // the replicas matched, in match order; at most Replicas
	Outcome  GroupOutcome  `cbor:"4,keyasint,omitempty"`
	// Hash and ExitCode are the deciding result (majority or referees').
	Hash      [32]byte `cbor:"5,keyasint,omitempty"`
	ExitCode  int32    `cbor:"6,keyasint,omitempty"`
	DecidedAt int64    `cbor:"7,keyasint,omitempty"`
	// Referee is the replica whose match carries the referees' challenge
	// of a disagreement.
	Referee market.BidID `cbor:"8,keyasint,omitempty"`
	// Height is the block that matched the first replica: it seeds the
	// referees' committee, so no replica's timing can choose it.
	Height uint64 `cbor:"9,keyasint"`
}

// GroupMember is one matched replica.
type GroupMember struct {
	Replica  uint32         `cbor:"1,keyasint"`
	JobID    market.BidID   `cbor:"2,keyasint"`
	Provider wallet.Address `cbor:"3,keyasint"`
}

// Decided reports whether the group's results were compared.
func (g *Group) Decided() bool { return g.Outcome != GroupPending && g.Outcome != GroupReferees }

// Providers are the providers of the group's matched replicas.
func (g *Group) Providers() []wallet.Address {
	out := make([]wallet.Address, len(g.Members))
	for i, m := range g.Members {
		out[i] = m.Provider
	}
	return out
}

const pfxGroup = "group/" // + group id (Bid.GroupID) → Group

func (v chainView) ReplicaProviders(id market.BidID) []wallet.Address {
	var g Group
	if ok, err := getRecord(v.r, pfxGroup+string(id[:]), &g); err != nil || !ok {
		return nil
	}
	return g.Providers()
}

// Group returns the record of a replica group (the job id of its replica 0).
func (s *State) Group(id market.BidID) (Group, bool, error) {
	var g Group
	ok, err := getRecord(s, pfxGroup+string(id[:]), &g)
	return g, ok, err
}

func (x *execCtx) getGroup(id market.BidID) (Group, error) {
	var g Group
	ok, err := getRecord(x.o, pfxGroup+string(id[:]), &g)
	if err == nil && !ok {
		err = fmt.Errorf("%w: replica group %x has no record", ErrCorruptState, id[:8])
	}
	return g, err
}

// joinGroup records a replica's match in its group, creating the group
// with its first replica. CheckMatch refused a provider already in it.
func (x *execCtx) joinGroup(m *MatchTx) error {
	id := m.Bid.GroupID()
	var g Group
	if _, err := getRecord(x.o, pfxGroup+string(id[:]), &g); err != nil {
		return err
	}
	if g.Replicas == 0 {
		g = Group{Replicas: m.Bid.Replicas, MatchBy: m.Bid.MatchBy, Height: x.height}
	}
	if g.Outcome != GroupPending || len(g.Members) >= int(g.Replicas) {
		return fmt.Errorf("%w: replica group %x is %s with %d of %d members, yet a replica matched", ErrCorruptState, id[:8], g.Outcome, len(g.Members), g.Replicas)
	}
	g.Members = append(g.Members, GroupMember{Replica: m.Bid.Replica, JobID: m.ID(), Provider: m.Offer.ProviderAddress()})
	x.o.put(pfxGroup+string(id[:]), g)
	return nil
}

// replicaEnded moves the group of m, a replica whose run just ended (its
// record written), if it has one.
func (x *execCtx) replicaEnded(m *Match) error {
	if m.Match.Bid.Replicas <= 1 {
		return nil
	}
	return x.groupProgress(m.Match.Bid.GroupID())
}

// groupDue looks again at the group of m, an awaiting replica whose
// recheck time (ReleaseAt) came: it decides the group if it can, or
// else sets the next recheck: the latest deadline of a replica still
// running, the bids' MatchBy, the referees' deadline, or the next
// millisecond, whichever is latest.
func (x *execCtx) groupDue(m *Match, old int64) error {
	gid := m.Match.Bid.GroupID()
	if err := x.groupProgress(gid); err != nil {
		return err
	}
	cur, ok, err := x.getMatch(m.Match.ID())
	if err != nil || !ok || !cur.Awaiting || cur.Status != MatchHeld {
		return err // decided (or under referees on this very replica)
	}
	g, err := x.getGroup(gid)
	if err != nil {
		return err
	}
	ms, _, err := x.groupMatches(&g)
	if err != nil {
		return err
	}
	next := max(x.time+1, g.MatchBy)
	for i := range ms {
		switch {
		case ms[i].Status == MatchOpen:
			next = max(next, ms[i].Deadline)
		case ms[i].Pending() != nil:
			next = max(next, ms[i].Pending().Deadline+1)
		}
	}
	cur.ReleaseAt = next
	x.putMatch(&cur, old)
	return nil
}

// groupMatches reads the match records of g's members, and points at
// those whose results await the group (held) among them.
func (x *execCtx) groupMatches(g *Group) (all []Match, held []*Match, err error) {
	all = make([]Match, len(g.Members))
	for i, mb := range g.Members {
		m, ok, err := x.getMatch(mb.JobID)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, fmt.Errorf("%w: replica %x has no match record", ErrCorruptState, mb.JobID[:8])
		}
		all[i] = m
	}
	for i := range all {
		if all[i].Awaiting {
			held = append(held, &all[i])
		}
	}
	return all, held, nil
}

// groupProgress decides the group of a replica whose run just ended, if
// it can be decided now. Callers have written their own match record.
func (x *execCtx) groupProgress(id market.BidID) error {
	g, err := x.getGroup(id)
	if err != nil || g.Outcome != GroupPending {
		return err
	}
	ms, held, err := x.groupMatches(&g)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(ms, func(m Match) bool { return m.Status == MatchOpen }) ||
		len(ms) < int(g.Replicas) && x.time < g.MatchBy {
		return nil
	}
	g.DecidedAt = x.time
	if len(held) == 0 {
		g.Outcome = GroupNoResult
		x.o.put(pfxGroup+string(id[:]), g)
		return nil
	}
	if !slices.ContainsFunc(held, func(m *Match) bool { return m.ResultHash != held[0].ResultHash }) {
		g.Outcome, g.Hash, g.ExitCode = GroupMajority, held[0].ResultHash, held[0].ExitCode
		x.o.put(pfxGroup+string(id[:]), g)
		err := x.settleGroup(held, func(*Match) bool { return true }, nil)
		return err
	}
	if held[0].Match.Bid.Executor == market.ExecWASM {
		return x.openReferees(&g, id, held)
	}
	return x.byMajority(&g, id, held)
}

// byMajority decides g without referees: the replicas whose hash has
// more than half of held are held, the others outvoted (unpaid, not
// slashed); without such a hash every result is held as it is.
func (x *execCtx) byMajority(g *Group, id market.BidID, held []*Match) error {
	var best *Match
	for _, a := range held {
		n := 0
		for _, b := range held {
			if a.ResultHash == b.ResultHash {
				n++
			}
		}
		if 2*n > len(held) {
			best = a
			break
		}
	}
	if best == nil {
		g.Outcome = GroupNoMajority
		x.o.put(pfxGroup+string(id[:]), *g)
		err := x.settleGroup(held, func(*Match) bool { return true }, nil)
		return err
	}
	g.Outcome, g.Hash, g.ExitCode = GroupMajority, best.ResultHash, best.ExitCode
	x.o.put(pfxGroup+string(id[:]), *g)
	err := x.settleGroup(held, func(m *Match) bool { return m.ResultHash == best.ResultHash }, nil)
	return err
}

// settleGroup ends the wait of held replicas: those win accepts are held
// for a fresh challenge window (the client may now fetch and ack them);
// the others lose, their escrow refunded. With r (the referees' decided
// challenge) a loser is slashed (dissent), each member who voted the
// deciding hash is paid its fee from the cuts, and those who voted
// another are slashed; without referees a loser is only outvoted. What
// of the cuts is left after the fees is burned.
func (x *execCtx) settleGroup(held []*Match, win func(*Match) bool, r *referees) error {
	var c *Challenge
	if r != nil {
		c = &r.c
	}
	var pool uint64
	for _, m := range held {
		old := dueAt(m)
		m.Awaiting = false
		if win(m) {
			if m.Status == MatchChallenged { // the referees' challenge was on this replica
				m.Status = MatchHeld
			}
			m.ReleaseAt = x.time + int64(x.p.ChallengeWindowMs)
			x.putMatch(m, old)
			x.events = append(x.events, Event{Type: EvMajority, Address: m.Match.Offer.ProviderAddress(), JobID: m.Match.ID(), Amount: m.HeldPay})
			continue
		}
		if c == nil {
			if err := x.outvote(m, old); err != nil {
				return err
			}
			continue
		}
		cut, err := x.dissent(m, old, satMulU(uint64(len(c.Committee)), c.Fee))
		if err != nil {
			return err
		}
		if pool, err = add(pool, cut); err != nil {
			return err
		}
	}
	if c == nil {
		return nil // nothing was cut
	}
	left, err := x.payFees(c, pool)
	if err != nil {
		return err
	}
	if err := x.slashDissenters(c, r.job); err != nil {
		return err
	}
	x.g.Burned, err = add(x.g.Burned, left)
	return err
}

// dissent settles a held replica whose result lost to the referees'
// deciding hash: its provider is slashed as by a lost challenge
// (slashHeld; the caller pays the fees from the cut and burns the rest),
// and the client gets the replica's escrow back.
func (x *execCtx) dissent(m *Match, old int64, fees uint64) (uint64, error) {
	cut, prov, err := x.slashHeld(m, fees, func(*Provider) {})
	if err != nil {
		return 0, err
	}
	if err := x.credit(m.Match.Bid.ClientAddress(), m.Escrow); err != nil {
		return 0, err
	}
	m.Status, m.Refunded, m.Slashed, m.SettledAt, m.Escrow = MatchWrong, m.Escrow, cut, x.time, 0
	x.putMatch(m, old)
	x.events = append(x.events, Event{Type: EvWrongResult, Address: prov, JobID: m.Match.ID(), Amount: cut})
	return cut, nil
}

// outvote settles a held replica whose result lost to the majority of
// its group without referees: it is not paid, its escrow goes back to the
// client, and the run counts as failed on the provider's record (with a
// failure's weight); its collateral is untouched.
func (x *execCtx) outvote(m *Match, old int64) error {
	p, prov, err := x.providerOf(m)
	if err != nil {
		return err
	}
	p.HeldJobs--
	p.HeldEarnings -= min(p.HeldEarnings, m.HeldPay)
	p.Failed++
	p.ValueFailed = addTrack(p.ValueFailed, failureWeight(&p, m.Match.Price, 0))
	x.o.put(addrKey(pfxProvider, prov), p)
	if err := x.observe(prov, m, market.OutcomeFailed, 0); err != nil {
		return err
	}
	if x.g.Escrow, err = sub(x.g.Escrow, m.Escrow); err != nil {
		return fmt.Errorf("%w: escrow pool: %v", ErrCorruptState, err)
	}
	if err := x.credit(m.Match.Bid.ClientAddress(), m.Escrow); err != nil {
		return err
	}
	m.Status, m.Refunded, m.SettledAt, m.Escrow = MatchWrong, m.Escrow, x.time, 0
	x.putMatch(m, old)
	x.events = append(x.events, Event{Type: EvWrongResult, Address: prov, JobID: m.Match.ID()})
	return nil
}

// openReferees puts a disagreement before referees: a wrong-result
// challenge with no deposit on the first held replica, its committee
// drawn from the validators that are neither the client nor any of the
// group's providers, seeded by the height the first replica matched at.
// The other held replicas wait for its deadline. With nobody to judge,
// the majority decides.
func (x *execCtx) openReferees(g *Group, id market.BidID, held []*Match) error {
	first := held[0]
	exclude := append(g.Providers(), first.Match.Bid.ClientAddress())
	jid := first.Match.ID()
	members, err := x.committeeSeeded(id, ChallengeWrong, int(min(x.p.CommitteeSize, MaxCommitteeSize)), g.Height, exclude...)
	if err != nil {
		return err
	}
	if len(members) == 0 {
		return x.byMajority(g, id, held)
	}
	deadline := x.time + int64(x.p.AttestWindowMs) + first.Match.Bid.TimeoutMs
	old := dueAt(first)
	first.Challenges = append(first.Challenges, Challenge{Kind: ChallengeWrong, OpenedAt: x.time, Deadline: deadline,
		Committee: members, Fee: max(first.Match.Price, 1)})
	first.Status = MatchChallenged
	x.putMatch(first, old)
	for _, m := range held[1:] { // recheck after the referees' deadline
		old := dueAt(m)
		m.ReleaseAt = deadline + 1
		x.putMatch(m, old)
	}
	g.Outcome, g.Referee = GroupReferees, jid
	x.o.put(pfxGroup+string(id[:]), *g)
	x.events = append(x.events, Event{Type: EvChallenged, JobID: jid})
	return nil
}

// refereed ends the referees' challenge of a group on m: decided on hash
// h (a quorum's), or, with decided false, expired without a quorum (the
// majority decides, without slashing).
func (x *execCtx) refereed(m *Match, h [32]byte, decided bool) error {
	c := m.Pending()
	gid := m.Match.Bid.GroupID()
	g, err := x.getGroup(gid)
	if err != nil {
		return err
	}
	if g.Outcome != GroupReferees || g.Referee != m.Match.ID() {
		return fmt.Errorf("%w: replica %x carries a referee challenge its group %x does not name", ErrCorruptState, m.Match.ID(), gid[:8])
	}
	// m is re-read among the members below: write it first.
	if decided {
		c.Hash = h
		c.Outcome = ChallengeClientWon
		if m.ResultHash == h {
			c.Outcome = ChallengeProviderWon
		}
	} else {
		c.Outcome = ChallengeInconclusive
	}
	x.putMatch(m, dueAt(m))
	_, held, err := x.groupMatches(&g)
	if err != nil {
		return err
	}
	g.DecidedAt = x.time
	if !decided {
		return x.byMajority(&g, gid, held)
	}
	g.Outcome, g.Hash = GroupRefereed, h
	for _, hm := range held {
		if hm.ResultHash == h {
			g.ExitCode = hm.ExitCode
		}
	}
	x.o.put(pfxGroup+string(gid[:]), g)
	err = x.settleGroup(held, func(hm *Match) bool { return hm.ResultHash == h }, &referees{c: *c, job: m.Match.ID()})
	return err
}

// referees is the decided referee challenge of a group, for settleGroup.
type referees struct {
	c   Challenge
	job market.BidID
}
