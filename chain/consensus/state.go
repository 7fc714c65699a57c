package consensus

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bourse-net/bourse/wallet"
)

// Input is one event for State.Step, with the driver's clock.
type Input struct {
	Now   int64 // unix milliseconds; stamped on the votes this step signs
	Event Event
}

// Event is one of ReceiveProposal, ReceiveVote, Timeout, ValueReady,
// ValueValidity, NextHeight, ReceiveCommit, Wake, or nil (no event: just the
// clock).
type Event interface{ isEvent() }

// ReceiveProposal delivers a proposal from the network (or catch-up).
type ReceiveProposal struct{ Proposal *Proposal }

// ReceiveVote delivers a vote from the network (or catch-up).
type ReceiveVote struct{ Vote *Vote }

// Timeout reports that a ScheduleTimeout with the same fields expired.
type Timeout struct {
	Height uint64
	Round  int32
	Step   RoundStep
}

// ValueReady answers RequestValue: the application's value for this
// proposer's round and its id.
type ValueReady struct {
	Height  uint64
	Round   int32
	BlockID BlockID
	Value   []byte
}

// ValueValidity answers ValidateValue. Valid must be false unless BlockID is
// the application's id of Value and Value is a valid block at Height.
type ValueValidity struct {
	Height  uint64
	BlockID BlockID
	Value   []byte
	Valid   bool
}

// NextHeight starts the height after the decided one, with its validator
// set (nil: the same validators, priorities advanced with Next). Round 0
// starts after Config.TimeoutCommit.
type NextHeight struct{ Validators *ValidatorSet }

// Wake tells the process that the application has work for Height (for
// example transactions waiting): with Config.IdleWait, round 0 then starts
// as soon as the commit wait is over instead of idling. A Wake for another
// height is ignored.
type Wake struct{ Height uint64 }

// ReceiveCommit delivers a decision learned from a peer (block sync): a
// certificate for the current height and the value it commits to. The driver
// must have checked that BlockID is the application's id of Value.
type ReceiveCommit struct {
	Commit *CommitCertificate
	Value  []byte
}

func (ReceiveProposal) isEvent() {}
func (ReceiveVote) isEvent()     {}
func (Timeout) isEvent()         {}
func (ValueReady) isEvent()      {}
func (ValueValidity) isEvent()   {}
func (NextHeight) isEvent()      {}
func (ReceiveCommit) isEvent()   {}
func (Wake) isEvent()            {}

// Output is one of Broadcast, ScheduleTimeout, Persist, RequestValue,
// ValidateValue, Decide, Evidence, ProposalEquivocation, Rejected. Outputs must be carried out in
// order: a Persist precedes the Broadcast of the message it protects.
type Output interface{ isOutput() }

// Broadcast asks the driver to send a message to all validators.
type Broadcast struct{ Message Message }

// ScheduleTimeout asks for a Timeout input with the same fields after Duration.
type ScheduleTimeout struct {
	Height   uint64
	Round    int32
	Step     RoundStep
	Duration time.Duration
}

// Persist asks the driver to store the signer state durably before carrying
// out any later output of the same step.
type Persist struct{ State SignerState }

// RequestValue asks the application for a value to propose.
type RequestValue struct {
	Height uint64
	Round  int32
}

// ValidateValue asks the application whether Value (claimed id BlockID) is
// a valid block at Height; the answer is a ValueValidity input. Round,
// ValidRound and Proposer are those of the proposal that first carried the
// value (the application may bind the value to its proposer); the verdict
// is kept for the (BlockID, Value) pair for the rest of the height.
type ValidateValue struct {
	Height     uint64
	Round      int32
	ValidRound int32
	Proposer   wallet.Address
	BlockID    BlockID
	Value      []byte
}

// Decide reports the decision of a height, with the certificate that proves it.
type Decide struct {
	Height  uint64
	BlockID BlockID
	Value   []byte
	Commit  CommitCertificate
}

// Evidence reports an equivocation to submit on chain.
type Evidence struct{ Evidence DuplicateVoteEvidence }

// ProposalEquivocation reports two different proposals, both validly
// signed by the round's proposer, for one height and round. Only the
// first counts. There is no on-chain penalty for it (evidence is for
// double votes); the driver logs it and may penalise the peer.
type ProposalEquivocation struct{ First, Second *Proposal }

// Rejected reports an input that is invalid (bad signature, not the
// proposer, malformed): the peer that sent it may be penalised.
type Rejected struct{ Err error }

func (Broadcast) isOutput()            {}
func (ScheduleTimeout) isOutput()      {}
func (Persist) isOutput()              {}
func (RequestValue) isOutput()         {}
func (ValidateValue) isOutput()        {}
func (Decide) isOutput()               {}
func (Evidence) isOutput()             {}
func (Rejected) isOutput()             {}
func (ProposalEquivocation) isOutput() {}

type validity uint8

const (
	valUnknown validity = iota
	valPending
	valValid
	valInvalid
)

// valueKey names a value by its claimed id and the hash of its bytes, so a
// forged (id, bytes) pair cannot poison the validity of the honest one.
type valueKey struct {
	id BlockID
	h  [32]byte
}

func keyOf(id BlockID, value []byte) valueKey { return valueKey{id, sha256.Sum256(value)} }

// valueRef is the paper's (value, round) pair for lockedValue/lockedRound
// and validValue/validRound; round -1 means none.
type valueRef struct {
	round int32
	id    BlockID
	value []byte
}

var noValue = valueRef{round: -1}

// roundFlags records the paper's "for the first time" rules per round.
type roundFlags struct {
	prevoteTimeout   bool // line 34
	precommitTimeout bool // line 47
	polka            bool // line 36
}

type futureKey struct {
	proposal bool
	addr     wallet.Address
	round    int32
	typ      VoteType
}

// State is one process of the Tendermint algorithm at one height. It is not
// safe for concurrent use; the driver owns it and feeds it one input at a time.
type State struct {
	cfg       Config
	chainID   string
	key       wallet.PrivateKey
	self      wallet.Address
	validator bool

	height uint64
	round  int32
	step   RoundStep
	vs     *ValidatorSet

	proposers map[int32]wallet.Address
	locked    valueRef
	valid     valueRef
	proposals map[int32]*Proposal
	propKeys  map[int32]valueKey
	values    map[valueKey]validity
	bytesOf   map[valueKey][]byte
	book      *voteBook
	flags     map[int32]*roundFlags
	awaiting  bool // RequestValue outstanding for (height, round)
	decision  *Decide
	woken     bool // a Wake for this height arrived
	idling    bool // in the idle wait after the commit wait (Config.IdleWait)

	// The previous height's votes, kept only to catch equivocations that
	// arrive after its decision (a double precommit often completes a
	// certificate at one node and reaches the others late).
	prevBook  *voteBook
	prevRound int32 // the round it was decided in

	future    []Message // height+1 messages, verified when that height starts
	futureSet map[futureKey]struct{}

	signer  SignerState
	started bool
	now     int64
	out     []Output
}

// New creates the process for height with validator set vs. key signs votes
// and proposals; a zero key (or one outside vs) makes an observer that
// follows and decides but never signs. restored is the last persisted
// SignerState (nil on first start): at the same height the process resumes
// in the round and step it last signed, with its lock, and it will never
// sign below that point. Call Start (or Step) next.
func New(cfg Config, chainID string, key wallet.PrivateKey, height uint64, vs *ValidatorSet, restored *SignerState) (*State, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if vs == nil || vs.Size() == 0 {
		return nil, errors.New("consensus: new state: empty validator set")
	}
	if height == 0 {
		return nil, errors.New("consensus: new state: height must be at least 1")
	}
	s := &State{cfg: cfg, chainID: chainID, key: key}
	if key.Valid() {
		s.self = key.Address()
	}
	if restored != nil {
		s.signer = *restored
	}
	s.resetHeight(height, vs)
	return s, nil
}

func (s *State) resetHeight(height uint64, vs *ValidatorSet) {
	s.height, s.round, s.step, s.vs = height, 0, StepNewHeight, vs
	_, inSet := vs.ByAddress(s.self)
	s.validator = s.key.Valid() && inSet
	s.proposers = make(map[int32]wallet.Address)
	s.locked, s.valid = noValue, noValue
	s.proposals = make(map[int32]*Proposal)
	s.propKeys = make(map[int32]valueKey)
	s.values = make(map[valueKey]validity)
	s.bytesOf = make(map[valueKey][]byte)
	s.book = newVoteBook(height, vs)
	s.flags = make(map[int32]*roundFlags)
	s.awaiting = false
	s.decision = nil
	s.woken, s.idling = false, false
	s.future, s.futureSet = nil, make(map[futureKey]struct{})
}

// Start begins the first height: round 0 at once, or, when a signer state of
// this height was restored, the restored round and step with the last signed
// message broadcast again.
func (s *State) Start(now int64) []Output {
	s.now = now
	if !s.started {
		s.start()
		s.evaluate()
	}
	return s.flush()
}

func (s *State) start() {
	s.started = true
	g := s.signer
	if g.Height != s.height || g.Step < StepPropose {
		s.startRound(0)
		return
	}
	s.round, s.step = g.Round, StepPropose
	s.locked = valueRef{g.LockedRound, g.LockedBlockID, g.LockedValue}
	s.valid = valueRef{g.ValidRound, g.ValidBlockID, g.ValidValue}
	for _, r := range []valueRef{s.locked, s.valid} {
		if r.round >= 0 {
			k := keyOf(r.id, r.value)
			s.values[k], s.bytesOf[k] = valValid, r.value
		}
	}
	s.schedule(StepPropose, s.round)
	if p := g.LastProposal; p != nil && p.Height == s.height && p.Round == s.round {
		s.emit(Broadcast{Message{Proposal: p}})
		s.acceptProposal(p, true)
	}
	for i := range g.Votes {
		v := &g.Votes[i]
		if v.Height != s.height {
			continue
		}
		s.emit(Broadcast{Message{Vote: v}})
		s.book.add(v, s.round, s.admit)
	}
	if v := g.LastVote; v != nil && v.Height == s.height && v.Round == s.round {
		s.step = v.Type.step()
	}
}

// Step feeds one input and returns what the driver must do, in order.
func (s *State) Step(in Input) []Output {
	s.now = in.Now
	if !s.started {
		s.start()
	}
	switch e := in.Event.(type) {
	case nil:
	case ReceiveProposal:
		s.onProposal(e.Proposal)
	case ReceiveVote:
		s.onVote(e.Vote)
	case Timeout:
		s.onTimeout(e)
	case ValueReady:
		s.onValueReady(e)
	case ValueValidity:
		s.onValidity(e)
	case NextHeight:
		s.onNextHeight(e)
	case ReceiveCommit:
		s.onCommit(e)
	case Wake:
		if e.Height == s.height {
			s.woken = true
		}
	default:
		s.reject(fmt.Errorf("consensus: unknown event %T", e))
	}
	s.evaluate()
	return s.flush()
}

func (s *State) flush() []Output {
	out := s.out
	s.out = nil
	return out
}

func (s *State) emit(o Output)    { s.out = append(s.out, o) }
func (s *State) reject(err error) { s.emit(Rejected{Err: err}) }
func (s *State) flagsOf(r int32) *roundFlags {
	f := s.flags[r]
	if f == nil {
		f = &roundFlags{}
		s.flags[r] = f
	}
	return f
}

// Height is the height being decided.
func (s *State) Height() uint64 { return s.height }

// Round is the current round.
func (s *State) Round() int32 { return s.round }

// RoundStep is the current step.
func (s *State) RoundStep() RoundStep { return s.step }

// ValidatorSet is the current height's set.
func (s *State) ValidatorSet() *ValidatorSet { return s.vs }

// IsValidator reports whether this process signs at the current height.
func (s *State) IsValidator() bool { return s.validator }

// Locked returns the lock: round (-1 if none) and block id.
func (s *State) Locked() (int32, BlockID) { return s.locked.round, s.locked.id }

// Decision returns the decision of the current height, if made.
func (s *State) Decision() (Decide, bool) {
	if s.decision == nil {
		return Decide{}, false
	}
	return *s.decision, true
}

// Messages returns every proposal and vote held for height (the current
// one; other heights yield nil), proposals first by round, then votes by
// round, type and validator. The driver serves them to peers that missed
// them; delivering them again is idempotent.
func (s *State) Messages(height uint64) []Message {
	if height != s.height {
		return nil
	}
	var out []Message
	rounds := make([]int32, 0, len(s.proposals))
	for r := range s.proposals {
		rounds = append(rounds, r)
	}
	slices.Sort(rounds)
	for _, r := range rounds {
		out = append(out, Message{Proposal: s.proposals[r]})
	}
	for _, v := range s.book.all() {
		out = append(out, Message{Vote: &v})
	}
	return out
}

func (s *State) proposer(r int32) wallet.Address {
	a, ok := s.proposers[r]
	if !ok {
		a = s.vs.Proposer(r).Address
		s.proposers[r] = a
	}
	return a
}

func (s *State) schedule(step RoundStep, r int32) {
	s.emit(ScheduleTimeout{Height: s.height, Round: r, Step: step, Duration: s.cfg.timeout(step, r)})
}

// startRound is StartRound of lines 10-21.
func (s *State) startRound(r int32) {
	s.round, s.step, s.awaiting, s.idling = r, StepPropose, false, false // line 11-12
	// Line 21 schedules the propose timeout for non-proposers only; the
	// proposer schedules it too, so an application that never answers
	// RequestValue cannot stall it.
	s.schedule(StepPropose, r)
	if !s.validator || s.proposer(r) != s.self { // line 13
		return
	}
	if s.valid.round >= 0 { // lines 14-15
		s.propose(s.valid.id, s.valid.value, s.valid.round)
		return
	}
	s.awaiting = true // line 17: getValue(), answered by ValueReady
	s.emit(RequestValue{Height: s.height, Round: r})
}

// propose is line 19: broadcast ⟨PROPOSAL, h, round, proposal, validRound⟩.
func (s *State) propose(id BlockID, value []byte, vr int32) {
	p := s.signProposal(&Proposal{Height: s.height, Round: s.round, BlockID: id, Value: value, ValidRound: vr, Proposer: s.self})
	if p == nil {
		return
	}
	s.emit(Broadcast{Message{Proposal: p}})
	s.acceptProposal(p, true)
}

// vote signs and broadcasts a vote of the current round (lines 24/26, 30/32,
// 40, 45, 59, 63) and counts it. Observers only change step.
func (s *State) vote(t VoteType, id BlockID) {
	if !s.validator {
		return
	}
	v := s.signVote(&Vote{Type: t, Height: s.height, Round: s.round, BlockID: id, Timestamp: s.now, Validator: s.self})
	if v == nil {
		return
	}
	s.emit(Broadcast{Message{Vote: v}})
	s.book.add(v, s.round, s.admit)
}

// admit says whether a vote that conflicts with its validator's first vote
// is worth counting: it is for nil or for a value some proposal carried.
func (s *State) admit(id BlockID) bool {
	if id.IsNil() {
		return true
	}
	for k := range s.bytesOf {
		if k.id == id {
			return true
		}
	}
	return false
}

func (s *State) acceptProposal(p *Proposal, own bool) {
	k := keyOf(p.BlockID, p.Value)
	s.proposals[p.Round], s.propKeys[p.Round], s.bytesOf[k] = p, k, p.Value
	if own {
		s.values[k] = valValid
		return
	}
	if s.values[k] == valUnknown {
		s.values[k] = valPending
		s.emit(ValidateValue{Height: s.height, Round: p.Round, ValidRound: p.ValidRound, Proposer: p.Proposer, BlockID: p.BlockID, Value: p.Value})
	}
}

// maxFuture bounds the buffer of next-height messages.
func (s *State) maxFuture() int { return 4*s.vs.Size() + 16 }

func (s *State) buffer(m Message, k futureKey) {
	if _, dup := s.futureSet[k]; dup || len(s.future) >= s.maxFuture() {
		return
	}
	s.futureSet[k] = struct{}{}
	s.future = append(s.future, m)
}

func (s *State) onProposal(p *Proposal) {
	if p == nil {
		s.reject(fmt.Errorf("%w: nil proposal", ErrInvalidMessage))
		return
	}
	if err := p.ValidateBasic(); err != nil {
		s.reject(fmt.Errorf("receive proposal: %w", err))
		return
	}
	switch {
	case p.Height == s.height+1:
		s.buffer(Message{Proposal: p}, futureKey{proposal: true, round: p.Round})
		return
	case p.Height != s.height || s.step == StepDecided:
		return // stale or too far ahead: ignored
	case int64(p.Round) > int64(s.round)+1:
		return // too far ahead; catch-up delivers it again once we are there
	}
	if old := s.proposals[p.Round]; old != nil {
		// The first proposal of a round wins. A different one, validly
		// signed by the round's proposer, is its equivocation: reported,
		// never counted (its value is validated under its own bytes only
		// if a vote for it makes it matter).
		if string(old.Signature) != string(p.Signature) && p.Proposer == old.Proposer && p.Verify(s.chainID, s.vs) == nil {
			s.emit(ProposalEquivocation{First: old, Second: p})
		}
		return
	}
	if want := s.proposer(p.Round); p.Proposer != want {
		s.reject(fmt.Errorf("receive proposal %d/%d: %w: signed by %s, proposer is %s", p.Height, p.Round, ErrInvalidMessage, p.Proposer, want))
		return
	}
	if err := p.Verify(s.chainID, s.vs); err != nil {
		s.reject(fmt.Errorf("receive proposal: %w", err))
		return
	}
	s.acceptProposal(p, false)
}

func (s *State) onVote(v *Vote) {
	if v == nil {
		s.reject(fmt.Errorf("%w: nil vote", ErrInvalidMessage))
		return
	}
	if err := v.ValidateBasic(); err != nil {
		s.reject(fmt.Errorf("receive vote: %w", err))
		return
	}
	switch {
	case v.Height == s.height+1:
		s.buffer(Message{Vote: v}, futureKey{addr: v.Validator, round: v.Round, typ: v.Type})
		return
	case v.Height+1 == s.height:
		s.lateVote(v)
		return
	case v.Height != s.height || s.step == StepDecided:
		return
	}
	if s.book.inert(v, s.round, s.admit) {
		return // cannot change anything: skip the signature check
	}
	if err := v.Verify(s.chainID, s.vs); err != nil {
		s.reject(fmt.Errorf("receive vote: %w", err))
		return
	}
	if _, ev := s.book.add(v, s.round, s.admit); ev != nil {
		s.emit(Evidence{Evidence: *ev})
	}
}

// lateVote takes a vote of the previous (decided) height for evidence
// only: a validator that signed two votes there is reported even when the
// second reached this process after its decision.
func (s *State) lateVote(v *Vote) {
	b := s.prevBook
	none := func(BlockID) bool { return false }
	if b == nil || b.inert(v, s.prevRound, none) {
		return
	}
	if err := v.Verify(s.chainID, b.vs); err != nil {
		s.reject(fmt.Errorf("receive vote of the last height: %w", err))
		return
	}
	if _, ev := b.add(v, s.prevRound, none); ev != nil {
		s.emit(Evidence{Evidence: *ev})
	}
}

// onTimeout is OnTimeoutPropose (57-60), OnTimeoutPrevote (61-64),
// OnTimeoutPrecommit (65-67) and the end of the TimeoutCommit wait.
func (s *State) onTimeout(t Timeout) {
	if t.Height != s.height || t.Round != s.round {
		return
	}
	switch {
	case t.Step == StepNewHeight && s.step == StepNewHeight && !s.idling:
		s.commitWaitOver()
	case t.Step == StepIdle && s.step == StepNewHeight && s.idling:
		s.startRound(0) // nothing came: an empty block keeps time moving
	case t.Step == StepPropose && s.step == StepPropose: // line 57
		s.vote(Prevote, BlockID{})
		s.step = StepPrevote
	case t.Step == StepPrevote && s.step == StepPrevote: // line 61
		s.vote(Precommit, BlockID{})
		s.step = StepPrecommit
	case t.Step == StepPrecommit && s.step >= StepPropose && s.step <= StepPrecommit && s.round < math.MaxInt32: // line 65
		s.startRound(s.round + 1)
	}
}

func (s *State) onValueReady(e ValueReady) {
	if e.Height != s.height || e.Round != s.round || s.step != StepPropose || !s.awaiting {
		return
	}
	if e.BlockID.IsNil() {
		s.reject(fmt.Errorf("value ready %d/%d: %w: nil block id", e.Height, e.Round, ErrInvalidMessage))
		return
	}
	s.awaiting = false
	s.propose(e.BlockID, e.Value, -1) // line 19 with validRound = -1
}

func (s *State) onValidity(e ValueValidity) {
	if e.Height != s.height {
		return
	}
	k := keyOf(e.BlockID, e.Value)
	if s.values[k] != valPending {
		return
	}
	if e.Valid {
		s.values[k] = valValid
	} else {
		s.values[k] = valInvalid
	}
}

func (s *State) onNextHeight(e NextHeight) {
	if s.step != StepDecided {
		s.reject(fmt.Errorf("next height: height %d is not decided", s.height))
		return
	}
	vs := e.Validators
	if vs == nil {
		vs = s.vs.Next()
	}
	future := s.future
	prevBook, prevRound := s.book, s.decision.Commit.Round
	s.resetHeight(s.height+1, vs)
	s.prevBook, s.prevRound = prevBook, prevRound
	if s.cfg.TimeoutCommit == 0 {
		s.commitWaitOver()
	} else {
		s.emit(ScheduleTimeout{Height: s.height, Round: 0, Step: StepNewHeight, Duration: s.cfg.TimeoutCommit})
	}
	for _, m := range future {
		if m.Proposal != nil {
			s.onProposal(m.Proposal)
		} else {
			s.onVote(m.Vote)
		}
	}
}

// commitWaitOver ends StepNewHeight's commit wait: round 0 starts, unless
// the chain may idle (Config.IdleWait) and nothing calls for a block yet.
func (s *State) commitWaitOver() {
	if s.cfg.IdleWait <= 0 || s.woken || s.heard() {
		s.startRound(0)
		return
	}
	s.idling = true
	s.schedule(StepIdle, 0)
}

// heard reports whether another validator has started this height: a
// proposal or a vote of it was accepted.
func (s *State) heard() bool { return len(s.proposals) > 0 || len(s.book.rounds) > 0 }

func (s *State) onCommit(e ReceiveCommit) {
	c := e.Commit
	if c == nil {
		s.reject(fmt.Errorf("%w: nil commit", ErrInvalidMessage))
		return
	}
	if c.Height != s.height || s.step == StepDecided {
		return
	}
	if err := c.Verify(s.chainID, s.vs); err != nil {
		s.reject(fmt.Errorf("receive commit: %w", err))
		return
	}
	s.decide(c.BlockID, e.Value, *c)
}

func (s *State) decide(id BlockID, value []byte, cert CommitCertificate) {
	d := Decide{Height: s.height, BlockID: id, Value: value, Commit: cert}
	s.decision, s.step = &d, StepDecided
	s.emit(d)
}

// validValue returns the bytes of a value with this id that the application
// (or our own proposal) found valid.
func (s *State) validValue(id BlockID) ([]byte, bool) {
	for k, st := range s.values {
		if k.id == id && st == valValid {
			return s.bytesOf[k], true
		}
	}
	return nil, false
}

// evaluate applies the paper's upon-rules until none fires.
func (s *State) evaluate() {
	for s.started && s.step != StepDecided && s.evalOnce() {
	}
}

// evalOnce fires at most one state-changing rule and reports whether it did.
func (s *State) evalOnce() bool {
	// Lines 49-54: a value with precommits from more than 2/3 in any round is decided.
	for _, r := range s.book.sortedRounds() {
		id, ok := s.book.twoThirdsMajority(r, Precommit)
		if !ok || id.IsNil() {
			continue
		}
		if value, ok := s.validValue(id); ok {
			s.decide(id, value, CommitCertificate{Height: s.height, Round: r, BlockID: id, Precommits: s.book.votesFor(r, Precommit, id)})
			return false
		}
	}
	// Lines 55-56: messages of a higher round from more than 1/3 skip to it.
	skip := int32(-1)
	for r := range s.book.rounds {
		if r > s.round && r > skip && s.book.oneThirdAny(r) {
			skip = r
		}
	}
	if skip >= 0 {
		s.startRound(skip)
		return true
	}
	if s.step == StepNewHeight {
		if s.idling && (s.woken || s.heard()) {
			s.startRound(0) // work came, or another validator has begun
			return true
		}
		return false
	}
	if s.step == StepPropose {
		if p := s.proposals[s.round]; p != nil {
			st := s.values[s.propKeys[s.round]]
			known := st == valValid || st == valInvalid
			switch {
			case p.ValidRound == -1 && known: // lines 22-27
				if st == valValid && (s.locked.round == -1 || s.locked.id == p.BlockID) {
					s.vote(Prevote, p.BlockID)
				} else {
					s.vote(Prevote, BlockID{})
				}
				s.step = StepPrevote
				return true
			case p.ValidRound >= 0 && known && s.book.twoThirdsFor(p.ValidRound, Prevote, p.BlockID): // lines 28-33
				if st == valValid && (s.locked.round <= p.ValidRound || s.locked.id == p.BlockID) {
					s.vote(Prevote, p.BlockID)
				} else {
					s.vote(Prevote, BlockID{})
				}
				s.step = StepPrevote
				return true
			}
		}
	}
	f := s.flagsOf(s.round)
	if s.step == StepPrevote && !f.prevoteTimeout && s.book.twoThirdsAny(s.round, Prevote) { // lines 34-35
		f.prevoteTimeout = true
		s.schedule(StepPrevote, s.round)
	}
	if s.step >= StepPrevote && !f.polka { // lines 36-43
		if p := s.proposals[s.round]; p != nil && s.values[s.propKeys[s.round]] == valValid &&
			s.book.twoThirdsFor(s.round, Prevote, p.BlockID) {
			f.polka = true
			ref := valueRef{s.round, p.BlockID, p.Value}
			s.valid = ref // lines 42-43 (set first so the persisted state carries it)
			if s.step == StepPrevote {
				s.locked = ref // lines 38-39
				s.vote(Precommit, p.BlockID)
				s.step = StepPrecommit
			}
			return true
		}
	}
	if s.step == StepPrevote && s.book.twoThirdsFor(s.round, Prevote, BlockID{}) { // lines 44-46
		s.vote(Precommit, BlockID{})
		s.step = StepPrecommit
		return true
	}
	if !f.precommitTimeout && s.book.twoThirdsAny(s.round, Precommit) { // lines 47-48
		f.precommitTimeout = true
		s.schedule(StepPrecommit, s.round)
	}
	return false
}
