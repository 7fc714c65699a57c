package consensus

import (
	"bytes"
	"container/heap"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bourse-net/bourse/wallet"
)

var (
	flagSeed  = flag.Int64("seed", -1, "replay one simulation seed (all configurations)")
	flagSeeds = flag.Int("sim.seeds", 0, "seeds per simulation configuration (default 50, 6 under -race; BOURSE_LONG=1: 1000; or BOURSE_SIM_SEEDS=N)")
)

// simSeeds is the list of seeds a TestSim runs.
func simSeeds(t *testing.T) []uint64 {
	if *flagSeed >= 0 {
		return []uint64{uint64(*flagSeed)}
	}
	n := 50
	if raceBuild {
		n = 6
	}
	if os.Getenv("BOURSE_LONG") != "" {
		n = 1000
	}
	if v, err := strconv.Atoi(os.Getenv("BOURSE_SIM_SEEDS")); err == nil && v > 0 {
		n = v
	}
	if *flagSeeds > 0 {
		n = *flagSeeds
	}
	if testing.Short() {
		n = min(n, 10)
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = uint64(i) + 1
	}
	return seeds
}

var simTrace = os.Getenv("BOURSE_SIM_TRACE") != ""

type simConfig struct {
	powers    []uint64
	byzantine int  // index of the equivocating validator, -1 for none
	faults    bool // partitions, crashes, loss
	// idle runs the nodes with Config.IdleWait: after each decision a node
	// gets a Wake (work arrived at it) only with some probability, and
	// late, so heights start by Wake, by hearing another validator, or by
	// the idle wait's end.
	idle bool
}

// The simulated world. Time is in milliseconds of a simulated clock starting
// at simEpoch; nothing reads the real clock.
const (
	simEpoch   = 1_700_000_000_000
	chaosEnd   = 3_000  // faults stop here: partitions heal, crashed nodes restart
	liveBound  = 30_000 // after chaosEnd every correct node decides 2 more heights within this
	liveTarget = 2
	catchupMs  = 250
)

type evKind int

const (
	evDeliver evKind = iota
	evTimeout
	evApp     // ValueReady / ValueValidity
	evNext    // NextHeight after the block is applied
	evCatchup // ask a peer for what we missed
	evCrash
	evRestart
	evPartition
	evHeal
)

type simEvent struct {
	at    int64
	seq   uint64
	node  int
	epoch int // node incarnation the event belongs to (timers, app answers)
	kind  evKind
	ev    Event
	side  []bool // evPartition
}

type eventQueue []*simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type hrt struct {
	h uint64
	r int32
	t VoteType
}

type simNode struct {
	idx       int
	key       wallet.PrivateKey
	st        *State
	up        bool
	epoch     int
	persisted *SignerState
	decided   []Decide // the block store: survives crashes
	byz       bool
	signed    map[hrt]BlockID          // every vote this validator ever broadcast
	proposed  map[[2]int64]BlockID     // every proposal (h, r) it ever broadcast
	shadow    map[evidenceKey]BlockID  // first vote delivered per (validator, round, type) at shadowH
	shadowH   uint64                   // height the shadow describes
	reported  map[evidenceKey]struct{} // evidence this incarnation emitted at shadowH
}

type sim struct {
	t        *testing.T
	seed     uint64
	cfg      simConfig
	rng      *rand.Rand
	now      int64
	seq      uint64
	q        eventQueue
	nodes    []*simNode
	sets     []*ValidatorSet // sets[h] for height h (index 0 unused)
	loss     float64
	dup      float64
	maxDelay int64
	side     []bool // partition: nodes on different sides cannot talk; nil when healed
	decided  map[uint64]BlockID
	proposed map[BlockID][]byte
	evidence int
	steps    int
	idled    int // idle waits begun
	failed   string
}

func (s *sim) fail(format string, args ...any) {
	if s.failed == "" {
		s.failed = fmt.Sprintf("t=%dms: ", s.now) + fmt.Sprintf(format, args...)
	}
}

func (s *sim) push(e *simEvent) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

// simIdleWait is Config.IdleWait in the idle simulations.
const simIdleWait = 150

func (s *sim) consensusConfig() Config {
	c := fastConfig()
	if s.cfg.idle {
		c.IdleWait = simIdleWait * time.Millisecond
	}
	return c
}

func (s *sim) setAt(h uint64) *ValidatorSet {
	for uint64(len(s.sets)) <= h {
		s.sets = append(s.sets, s.sets[len(s.sets)-1].Next())
	}
	return s.sets[h]
}

func (s *sim) chaos() bool { return s.cfg.faults && s.now < chaosEnd }

func (s *sim) linked(a, b int) bool { return s.side == nil || s.side[a] == s.side[b] }

// send puts m on the wire from a to b: lost, duplicated, delayed (which
// reorders) as the current network allows.
func (s *sim) send(a, b int, ev Event) {
	if !s.linked(a, b) || s.rng.Float64() < s.loss {
		return
	}
	copies := 1
	if s.rng.Float64() < s.dup {
		copies = 2
	}
	for range copies {
		s.push(&simEvent{at: s.now + 1 + s.rng.Int64N(s.maxDelay), node: b, kind: evDeliver, ev: ev})
	}
}

func msgEvent(m Message) Event {
	if m.Proposal != nil {
		return ReceiveProposal{m.Proposal}
	}
	return ReceiveVote{m.Vote}
}

func newSim(t *testing.T, seed uint64, cfg simConfig) *sim {
	s := &sim{t: t, seed: seed, cfg: cfg, rng: rand.New(rand.NewPCG(seed, 0x5eed)), decided: map[uint64]BlockID{}, proposed: map[BlockID][]byte{}}
	keys, vs := testValidators(t, cfg.powers...)
	s.sets = []*ValidatorSet{nil, vs}
	s.maxDelay = 2 + s.rng.Int64N(30)
	if cfg.faults {
		s.loss = s.rng.Float64() * 0.3
		s.dup = 0.1
	}
	for i, k := range keys {
		n := &simNode{idx: i, key: k, byz: i == cfg.byzantine, signed: map[hrt]BlockID{}, proposed: map[[2]int64]BlockID{}}
		s.nodes = append(s.nodes, n)
		s.restart(n)
	}
	if cfg.faults {
		s.planFaults()
	}
	return s
}

// planFaults schedules partitions and crashes inside [0, chaosEnd).
func (s *sim) planFaults() {
	n := len(s.nodes)
	for at := int64(s.rng.IntN(500)); at < chaosEnd; at += 300 + s.rng.Int64N(900) {
		side := make([]bool, n)
		for i := range side {
			side[i] = s.rng.IntN(2) == 0
		}
		s.push(&simEvent{at: at, kind: evPartition, side: side})
		s.push(&simEvent{at: min(at+100+s.rng.Int64N(700), chaosEnd), kind: evHeal})
	}
	for range s.rng.IntN(n + 1) {
		i := s.rng.IntN(n)
		if s.nodes[i].byz {
			continue
		}
		at := s.rng.Int64N(chaosEnd)
		s.push(&simEvent{at: at, node: i, kind: evCrash})
	}
	s.push(&simEvent{at: chaosEnd, kind: evHeal})
}

// restart builds the node's state from what survived: its block store and
// its last persisted signer state.
func (s *sim) restart(n *simNode) {
	h := uint64(len(n.decided)) + 1
	st, err := New(s.consensusConfig(), testChain, n.key, h, s.setAt(h), n.persisted)
	if err != nil {
		s.t.Fatalf("seed %d: new state: %v", s.seed, err)
	}
	n.st, n.up = st, true
	n.epoch++
	if simTrace {
		s.t.Logf("t=%d node %d RESTART at height %d persisted=%+v", s.now, n.idx, h, n.persisted)
	}
	n.shadow, n.shadowH, n.reported = map[evidenceKey]BlockID{}, h, map[evidenceKey]struct{}{}
	s.handle(n, st.Start(simEpoch+s.now), nil)
	s.push(&simEvent{at: s.now + 1 + s.rng.Int64N(catchupMs), node: n.idx, epoch: n.epoch, kind: evCatchup})
}

func (s *sim) crash(n *simNode) {
	if simTrace {
		s.t.Logf("t=%d node %d CRASH", s.now, n.idx)
	}
	n.up, n.st = false, nil
	n.epoch++
	s.push(&simEvent{at: s.now + 50 + s.rng.Int64N(800), node: n.idx, kind: evRestart})
}

// step feeds one event to a node and carries out its outputs.
func (s *sim) step(n *simNode, ev Event) {
	if n.shadowH != n.st.Height() {
		n.shadow, n.shadowH, n.reported = map[evidenceKey]BlockID{}, n.st.Height(), map[evidenceKey]struct{}{}
	}
	// The evidence invariant: a vote that conflicts with one this node
	// already holds must turn into evidence now (unless already reported).
	var mustReport *evidenceKey
	var shadowKey evidenceKey
	rv, isVote := ev.(ReceiveVote)
	watch := isVote && rv.Vote.Height == n.st.Height() && n.st.RoundStep() != StepDecided && rv.Vote.Round <= n.st.Round()+1
	if watch {
		shadowKey = evidenceKey{rv.Vote.Validator, rv.Vote.Round, rv.Vote.Type}
		if id, ok := n.shadow[shadowKey]; ok && id != rv.Vote.BlockID {
			if _, done := n.reported[shadowKey]; !done {
				mustReport = &shadowKey
			}
		}
	}
	s.steps++
	out := n.st.Step(Input{Now: simEpoch + s.now, Event: ev})
	if simTrace {
		s.t.Logf("t=%d node %d at %d/%d %s <- %s => (%d) %s", s.now, n.idx, n.st.Height(), n.st.Round(), n.st.RoundStep(), describeEvent(ev)+fmt.Sprintf(" [signer %d/%d/%s valid=%v]", n.st.signer.Height, n.st.signer.Round, n.st.signer.Step, n.st.validator), len(out), describeOutputs(out))
	}
	if watch {
		if _, ok := n.shadow[shadowKey]; !ok {
			n.shadow[shadowKey] = rv.Vote.BlockID
		}
	}
	s.handle(n, out, mustReport)
}

func (s *sim) handle(n *simNode, out []Output, mustReport *evidenceKey) {
	// Crash in the middle of carrying out the outputs, sometimes: what was
	// done before the crash point stays done, the rest is lost.
	crashAt := -1
	if s.chaos() && !n.byz && len(out) > 0 && s.rng.IntN(200) == 0 {
		crashAt = s.rng.IntN(len(out))
	}
	h := n.st.Height()
	for i, o := range out {
		if i == crashAt {
			s.crash(n)
			return
		}
		switch o := o.(type) {
		case Persist:
			st := o.State
			n.persisted = &st
		case Broadcast:
			s.broadcast(n, o.Message)
		case ScheduleTimeout:
			if o.Step == StepIdle {
				s.idled++
			}
			s.push(&simEvent{at: s.now + o.Duration.Milliseconds(), node: n.idx, epoch: n.epoch, kind: evTimeout,
				ev: Timeout{Height: o.Height, Round: o.Round, Step: o.Step}})
		case RequestValue:
			value := fmt.Appendf(nil, "block h=%d r=%d by=%d #%d", o.Height, o.Round, n.idx, s.rng.Uint32())
			if s.rng.IntN(10) == 0 {
				value = append([]byte("bad:"), value...) // the application will refuse it
			}
			s.push(&simEvent{at: s.now + 1 + s.rng.Int64N(5), node: n.idx, epoch: n.epoch, kind: evApp,
				ev: ValueReady{Height: o.Height, Round: o.Round, BlockID: idOf(value), Value: value}})
		case ValidateValue:
			s.push(&simEvent{at: s.now + 1 + s.rng.Int64N(5), node: n.idx, epoch: n.epoch, kind: evApp,
				ev: ValueValidity{Height: o.Height, BlockID: o.BlockID, Value: o.Value, Valid: appValid(o.BlockID, o.Value)}})
		case Decide:
			s.onDecide(n, o)
		case Evidence:
			s.evidence++
			if err := o.Evidence.Verify(testChain, s.setAt(o.Evidence.A.Height)); err != nil {
				s.fail("node %d: evidence does not verify: %v", n.idx, err)
			}
			if o.Evidence.A.Validator != s.nodes[max(s.cfg.byzantine, 0)].key.Address() || s.cfg.byzantine < 0 {
				s.fail("node %d: evidence against correct validator %s", n.idx, o.Evidence.A.Validator)
			}
			k := evidenceKey{o.Evidence.A.Validator, o.Evidence.A.Round, o.Evidence.A.Type}
			if o.Evidence.A.Height == n.shadowH {
				n.reported[k] = struct{}{}
			}
			if mustReport != nil && k == *mustReport {
				mustReport = nil
			}
		case ProposalEquivocation:
			if s.cfg.byzantine < 0 || o.First.Proposer != s.nodes[s.cfg.byzantine].key.Address() {
				s.fail("node %d: proposal equivocation reported against correct validator %s", n.idx, o.First.Proposer)
			}
		case Rejected:
			s.fail("node %d rejected an input no one forged: %v", n.idx, o.Err)
		}
	}
	if mustReport != nil {
		s.fail("node %d at height %d: conflicting vote by %s round %d %s produced no evidence", n.idx, h, mustReport.val, mustReport.round, mustReport.typ)
	}
}

func appValid(id BlockID, value []byte) bool {
	return !bytes.HasPrefix(value, []byte("bad:")) && idOf(value) == id
}

// broadcast checks the double-sign and persist-first invariants for what a
// correct node signs, and sends it; the byzantine node equivocates.
func (s *sim) broadcast(n *simNode, m Message) {
	if v := m.Vote; v != nil {
		k := hrt{v.Height, v.Round, v.Type}
		if old, ok := n.signed[k]; ok && old != v.BlockID {
			s.fail("node %d signed two %ss at %d/%d: %s and %s", n.idx, v.Type, v.Height, v.Round, old, v.BlockID)
		}
		n.signed[k] = v.BlockID
		if p := n.persisted; p == nil || !slices.ContainsFunc(p.Votes, func(x Vote) bool { return x.sameContent(v) }) {
			s.fail("node %d broadcast %s before persisting it", n.idx, v)
		}
	}
	if p := m.Proposal; p != nil {
		k := [2]int64{int64(p.Height), int64(p.Round)}
		if old, ok := n.proposed[k]; ok && old != p.BlockID {
			s.fail("node %d signed two proposals at %d/%d", n.idx, p.Height, p.Round)
		}
		n.proposed[k] = p.BlockID
		if pp := n.persisted; pp == nil || pp.LastProposal == nil || !bytes.Equal(pp.LastProposal.Signature, p.Signature) {
			s.fail("node %d broadcast a proposal before persisting it", n.idx)
		}
		s.proposed[p.BlockID] = p.Value
	}
	others := make([]int, 0, len(s.nodes)-1)
	for i := range s.nodes {
		if i != n.idx {
			others = append(others, i)
		}
	}
	if !n.byz {
		for _, i := range others {
			s.send(n.idx, i, msgEvent(m))
		}
		return
	}
	// Equivocate: a conflicting twin of every message. Either the two go to
	// different halves (and both to one node), or the real one goes to a
	// single node and the twin to all others, the split that tempts one
	// node to decide while the rest move on (what locks are for).
	twin := s.twin(n, m)
	s.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	split := len(others) / 2
	if s.rng.IntN(2) == 0 {
		split = 1
	}
	for j, i := range others {
		if j < split {
			s.send(n.idx, i, msgEvent(m))
		} else {
			s.send(n.idx, i, msgEvent(twin))
		}
	}
	s.send(n.idx, others[0], msgEvent(twin))
}

func (s *sim) twin(n *simNode, m Message) Message {
	if v := m.Vote; v != nil {
		id := BlockID{}
		if v.BlockID.IsNil() {
			id = idOf(fmt.Appendf(nil, "evil %d", s.rng.Uint32()))
		}
		return Message{Vote: signVote(n.key, v.Type, v.Height, v.Round, id, v.Timestamp)}
	}
	p := m.Proposal
	value := fmt.Appendf(nil, "byzantine twin h=%d r=%d #%d", p.Height, p.Round, s.rng.Uint32())
	tw := signProposal(n.key, p.Height, p.Round, value, -1)
	s.proposed[tw.BlockID] = tw.Value
	return Message{Proposal: tw}
}

func (s *sim) onDecide(n *simNode, d Decide) {
	if err := d.Commit.Verify(testChain, s.setAt(d.Height)); err != nil {
		s.fail("node %d: commit certificate for height %d does not verify: %v", n.idx, d.Height, err)
	}
	if d.Commit.BlockID != d.BlockID || d.Commit.Height != d.Height {
		s.fail("node %d: certificate is for %d/%s, decision %d/%s", n.idx, d.Commit.Height, d.Commit.BlockID, d.Height, d.BlockID)
	}
	if d.Height != uint64(len(n.decided))+1 {
		s.fail("node %d decided height %d after %d heights", n.idx, d.Height, len(n.decided))
	}
	if !n.byz {
		if id, ok := s.decided[d.Height]; ok && id != d.BlockID {
			s.fail("agreement: node %d decided %s at height %d, another correct node %s", n.idx, d.BlockID, d.Height, id)
		}
		s.decided[d.Height] = d.BlockID
		if v, ok := s.proposed[d.BlockID]; !ok || !bytes.Equal(v, d.Value) || !appValid(d.BlockID, d.Value) {
			s.fail("validity: node %d decided %q at height %d, not a valid proposed value", n.idx, d.Value, d.Height)
		}
	}
	n.decided = append(n.decided, d)
	s.push(&simEvent{at: s.now + 1, node: n.idx, epoch: n.epoch, kind: evNext})
}

// catchup: ask one reachable peer for what it has at our height, or for
// the decision of our height if it is past it.
func (s *sim) catchup(n *simNode) {
	s.push(&simEvent{at: s.now + catchupMs/2 + s.rng.Int64N(catchupMs), node: n.idx, epoch: n.epoch, kind: evCatchup})
	j := s.rng.IntN(len(s.nodes))
	p := s.nodes[j]
	if j == n.idx || !p.up || !s.linked(n.idx, j) {
		return
	}
	h := n.st.Height()
	if uint64(len(p.decided)) >= h {
		d := p.decided[h-1]
		s.send(j, n.idx, ReceiveCommit{Commit: &d.Commit, Value: d.Value})
		return
	}
	for _, m := range p.st.Messages(h) {
		s.send(j, n.idx, msgEvent(m))
	}
}

// dump describes every node, for failure messages.
func (s *sim) dump() string {
	var b bytes.Buffer
	for _, n := range s.nodes {
		fmt.Fprintf(&b, "node %d byz=%v up=%v decided=%d", n.idx, n.byz, n.up, len(n.decided))
		if n.st != nil {
			lr, lid := n.st.Locked()
			fmt.Fprintf(&b, " at %d/%d %s locked=%d/%s signer=%d/%d/%s", n.st.Height(), n.st.Round(), n.st.RoundStep(), lr, lid,
				n.st.signer.Height, n.st.signer.Round, n.st.signer.Step)
		}
		b.WriteByte('\n')
		if n.st != nil && simTrace {
			for _, m := range n.st.Messages(n.st.Height()) {
				if m.Vote != nil {
					fmt.Fprintf(&b, "    holds %s\n", m.Vote)
				}
			}
		}
	}
	return b.String()
}

func (s *sim) minCorrectHeight() uint64 {
	h := ^uint64(0)
	for _, n := range s.nodes {
		if !n.byz {
			h = min(h, uint64(len(n.decided)))
		}
	}
	return h
}

func (s *sim) maxCorrectHeight() uint64 {
	var h uint64
	for _, n := range s.nodes {
		if !n.byz {
			h = max(h, uint64(len(n.decided)))
		}
	}
	return h
}

// run executes events until liveness is shown, the bound passes, or an
// invariant breaks. It returns "" or what broke.
func (s *sim) run() string {
	target := uint64(0)
	targetSet := !s.cfg.faults
	if targetSet {
		target = liveTarget + 3
	}
	for s.q.Len() > 0 && s.failed == "" {
		e := heap.Pop(&s.q).(*simEvent)
		if !targetSet && e.at >= chaosEnd {
			target, targetSet = s.maxCorrectHeight()+liveTarget, true
		}
		s.now = e.at
		if targetSet && s.minCorrectHeight() >= target {
			return ""
		}
		if s.now > chaosEnd+liveBound {
			return fmt.Sprintf("liveness: after the network healed at %dms, correct nodes reached only height %d of %d by %dms\n%s",
				chaosEnd, s.minCorrectHeight(), target, s.now, s.dump())
		}
		switch e.kind {
		case evPartition:
			if s.now < chaosEnd {
				s.side = e.side
			}
		case evHeal:
			s.side = nil
			if s.now >= chaosEnd {
				s.loss = min(s.loss, 0.1)
				for _, n := range s.nodes {
					if !n.up {
						s.restart(n)
					}
				}
			}
		case evCrash:
			if n := s.nodes[e.node]; n.up && s.now < chaosEnd {
				s.crash(n)
			}
		case evRestart:
			if n := s.nodes[e.node]; !n.up {
				s.restart(n)
			}
		default:
			n := s.nodes[e.node]
			if !n.up || (e.kind != evDeliver && e.epoch != n.epoch) {
				continue
			}
			switch e.kind {
			case evCatchup:
				s.catchup(n)
			case evNext:
				h := uint64(len(n.decided)) + 1
				s.step(n, NextHeight{Validators: s.setAt(h)})
				if s.cfg.idle && s.rng.IntN(3) == 0 {
					s.push(&simEvent{at: s.now + s.rng.Int64N(2*simIdleWait), node: n.idx, epoch: n.epoch, ev: Wake{Height: h}})
				}
			default:
				s.step(n, e.ev)
			}
		}
	}
	return s.failed
}

func runSims(t *testing.T, cfg simConfig) {
	var evidence, heights, steps, idled int
	for _, seed := range simSeeds(t) {
		s := newSim(t, seed, cfg)
		if msg := s.run(); msg != "" {
			t.Fatalf("seed %d: %s\nreplay: go test ./chain/consensus -run '%s$' -seed=%d", seed, msg, t.Name(), seed)
		}
		evidence += s.evidence
		idled += s.idled
		heights += int(s.minCorrectHeight())
		steps += s.steps
	}
	t.Logf("%d seeds: %d heights decided by every correct node, %d steps, %d evidence, %d idle waits", len(simSeeds(t)), heights, steps, evidence, idled)
	if cfg.idle != (idled > 0) {
		t.Errorf("idle wait configured %v, idle waits begun %d", cfg.idle, idled)
	}
	if cfg.byzantine >= 0 && *flagSeed < 0 && evidence == 0 {
		t.Errorf("an equivocating validator ran for %d seeds and no evidence was produced", len(simSeeds(t)))
	}
}

func TestSimPerfectNetwork4(t *testing.T) {
	runSims(t, simConfig{powers: []uint64{1, 1, 1, 1}, byzantine: -1})
}

func TestSimFaults4(t *testing.T) {
	runSims(t, simConfig{powers: []uint64{1, 1, 1, 1}, byzantine: -1, faults: true})
}

func TestSimByzantine4(t *testing.T) {
	runSims(t, simConfig{powers: []uint64{1, 1, 1, 1}, byzantine: 3, faults: true})
}

func TestSimByzantine7(t *testing.T) {
	runSims(t, simConfig{powers: []uint64{1, 1, 1, 1, 1, 1, 1}, byzantine: 6, faults: true})
}

// TestSimIdle4 and TestSimIdleByzantine4: with the idle wait, work reaches
// one node at a time and late (or never), and every height still decides.
func TestSimIdle4(t *testing.T) {
	runSims(t, simConfig{powers: []uint64{1, 1, 1, 1}, byzantine: -1, idle: true})
}

func TestSimIdleByzantine4(t *testing.T) {
	runSims(t, simConfig{powers: []uint64{1, 1, 1, 1}, byzantine: 3, faults: true, idle: true})
}

// TestSimUnequalStake: the byzantine validator holds 2 of 10 (below 1/3) and
// one validator alone holds half, so decisions need stake, not head count.
func TestSimUnequalStake(t *testing.T) {
	runSims(t, simConfig{powers: []uint64{5, 1, 1, 1, 2}, byzantine: 4, faults: true})
}
