// Package lifecycle is a node's job lifecycle as a pure state machine: what
// the node does for the jobs it submitted (the client) and for the jobs it
// was matched to (the provider).
//
// Core.Step takes one Input — the events of a committed block that concern
// this node, the outcome of a payload or result fetch, of a run, of a
// transaction or of a write to disk, a restart's open work, or just the
// passing of time — and returns the Actions the node must take: run a job,
// fetch a payload or a result, send a result transaction, explain an
// expired bid, persist a job record, publish a job event, stop a run. The
// core holds no goroutine, reads no clock (the time comes with each Step)
// and does no I/O; the drivers in package node execute its actions and feed
// their outcomes back. The scripts in testdata/ specify it.
//
// The chain is the authority: a job moves on by what committed blocks say,
// and an outcome that arrives for a job the chain has already settled is
// dropped. Every retry is an action with a delay, so the driver owns the
// timers and tests run on virtual time.
//
// Long-running services (leases renewed until cancelled) fit the same
// shape: a third map of records fed by the same block events, with ticks
// to renew them.
//
// May import: chain, market, node/api, wallet (their types only).
package lifecycle

import (
	"container/heap"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
)

// StateResultUnavailable is re-exported for the scripts.
const StateResultUnavailable = api.StateResultUnavailable

// Config is the core's fixed configuration.
type Config struct {
	Self     wallet.Address // this node's account: matches to its offers are its provider jobs
	Provider bool           // the node runs jobs matched to it
	HoldAck  bool           // the client does not ack checked results (the window runs out instead)

	ResultFetchAttempts  int           // client: tries to fetch a settled job's result (default 5)
	ResultFetchBackoff   time.Duration // delay after attempt k is k times this (default 300ms)
	PayloadFetchAttempts int           // provider: tries to fetch a matched job's payload (default 6)
	PayloadFetchBackoff  time.Duration // delay after attempt k is k times this (default 250ms)
}

func (c Config) withDefaults() Config {
	if c.ResultFetchAttempts <= 0 {
		c.ResultFetchAttempts = 5
	}
	if c.ResultFetchBackoff <= 0 {
		c.ResultFetchBackoff = 300 * time.Millisecond
	}
	if c.PayloadFetchAttempts <= 0 {
		c.PayloadFetchAttempts = 6
	}
	if c.PayloadFetchBackoff <= 0 {
		c.PayloadFetchBackoff = 250 * time.Millisecond
	}
	return c
}

// ClientJob is a job this node submitted, as it is kept on disk.
type ClientJob struct {
	api.Job
	BidRaw       []byte `json:"bid_raw,omitempty"`
	ProviderPeer string `json:"provider_peer,omitempty"`
	// RunFailed: the chain settled the job as failed; it ends failed once
	// the result fetch is over.
	RunFailed bool `json:"run_failed,omitempty"`
	// ChallengedAvail: the node challenged the result's availability
	// (once per job).
	ChallengedAvail bool `json:"challenged_avail,omitempty"`

	Bid *market.Bid `json:"-"` // decoded BidRaw

	expiring bool // an Explain is out: the bid passed its match-by time
	attempt  int  // the result fetch under way
}

// Core is the lifecycle state machine. It is not safe for concurrent use:
// the driver serialises Steps.
type Core struct {
	cfg     Config
	clients map[string]*ClientJob
	// bidding holds the client jobs submitted or restored while bidding,
	// by match-by time: a block looks at the ones it passed, not at every
	// job the node ever submitted. A job that left bidding stays until
	// its match-by time and is then dropped.
	bidding byMatchBy
	prov    map[market.BidID]*provJob
	totals  ProviderTotals
	duties  map[market.BidID]*duty
}

// duty is a challenge this node sits on the committee of.
type duty struct {
	kind    chain.ChallengeKind
	hash    [32]byte
	peer    string
	size    uint64
	attempt int
}

// provJob is a job this node runs as a provider, from its match until the
// chain settles it.
type provJob struct {
	match      market.Match
	deadline   int64 // ms, the chain's result deadline
	state      string
	attempt    int   // payload fetch under way
	payloadBy  int64 // ms: the payload must be here by then (payloadDeadline)
	resultHash [32]byte
	stopped    bool // CancelRun sent
}

// ProviderTotals sums the provider's settled jobs, whose records are gone:
// a long-running provider keeps memory for its open jobs only.
type ProviderTotals struct {
	ByState         map[string]int
	Earned, Slashed uint64
	// Held is what results hold until their challenge window ends
	// (Earned counts what was released); ChallengesWon and
	// ChallengesLost count the challenges of its results.
	Held                          uint64
	ChallengesWon, ChallengesLost uint64
}

// New returns a core with no jobs.
func New(cfg Config) *Core {
	return &Core{cfg: cfg.withDefaults(), clients: map[string]*ClientJob{}, prov: map[market.BidID]*provJob{},
		totals: ProviderTotals{ByState: map[string]int{}}, duties: map[market.BidID]*duty{}}
}

// Step applies one input at time now and returns what the node must do,
// in order.
func (c *Core) Step(now time.Time, in Input) []Action {
	s := &step{c: c, now: now.UTC()}
	switch in := in.(type) {
	case Restore:
		s.restore(in)
	case Submit:
		s.submit(in)
	case Block:
		s.block(in)
	case Resume:
		for _, o := range in.Open {
			s.provMatched(o.Match, o.Deadline, o.MatchedAt)
		}
	case Tick:
		s.tick()
	case Explained:
		s.explained(in)
	case ResultFetched:
		s.resultFetched(in)
	case CancelConfirmed:
		s.clientUpdate(in.ID, func(j *ClientJob) bool {
			if j.State != api.StateBidding {
				return false
			}
			j.State = api.StateCancelled
			return true
		})
	case PersistFailed:
		s.persistFailed(in)
	case PayloadFetched:
		s.payloadFetched(in)
	case RunFinished:
		s.runFinished(in)
	case ResultSent:
		if in.Err != nil {
			s.note(LevelError, hexID(in.ID), "the result transaction was not sent: "+in.Err.Error())
		}
	case UnavailableSent:
		if in.Err != nil {
			s.note(LevelError, hexID(in.ID), "the payload-unavailable transaction was not sent: "+in.Err.Error())
		}
	case AckSent:
		if in.Err != nil {
			s.note(LevelWarn, hexID(in.ID), "the ack was not sent (the payment is released when the challenge window ends): "+in.Err.Error())
		}
	case ChallengeSent:
		s.challengeSent(in)
	case AttestSent:
		if in.Err != nil {
			s.note(LevelError, hexID(in.ID), "the attestation was not sent: "+in.Err.Error())
		}
	case AttestFetched:
		s.attestFetched(in)
	case Reexecuted:
		s.reexecuted(in)
	default:
		panic(fmt.Sprintf("lifecycle: unknown input %T", in))
	}
	return s.out
}

type step struct {
	c   *Core
	now time.Time
	out []Action
}

func (s *step) emit(a Action) { s.out = append(s.out, a) }

func (s *step) note(level Level, job, msg string) {
	s.emit(Note{Level: level, Job: job, Msg: msg})
}

func hexID(id market.BidID) string { return hex.EncodeToString(id[:]) }

// changed persists and publishes a client job after a change.
func (s *step) changed(j *ClientJob) {
	j.UpdatedAt = s.now
	s.emit(Persist{Job: j.copy()})
	s.emit(Publish{Job: j.Job})
}

func (j *ClientJob) copy() ClientJob {
	c := *j
	return c
}

// clientUpdate applies f to a live client job; f reports whether it
// changed anything.
func (s *step) clientUpdate(id string, f func(*ClientJob) bool) {
	j := s.c.clients[id]
	if j == nil || api.Terminal(j.State) {
		return
	}
	if f(j) {
		s.changed(j)
	}
}

func (s *step) restore(in Restore) {
	for i := range in.Jobs {
		j := in.Jobs[i]
		s.c.clients[j.ID] = &j
		s.c.watchExpiry(&j)
		// A settled job whose result was not fetched before the restart
		// is fetched now.
		if j.State == api.StateResultCommitted {
			s.fetch(&j)
		}
	}
}

func (s *step) submit(in Submit) {
	j := in.Job
	if _, ok := s.c.clients[j.ID]; ok {
		return
	}
	s.c.clients[j.ID] = &j
	s.c.watchExpiry(&j)
	// The driver saved the record before the bid left: publish only.
	s.emit(Publish{Job: j.Job})
}

func (s *step) block(b Block) {
	for _, ev := range b.Events {
		id := hexID(ev.JobID)
		if j := s.c.clients[id]; j != nil {
			s.clientEvent(j, ev)
		}
		s.provEvent(ev)
		s.dutyEvent(ev)
	}
	// Bids past their match-by time without a match expire, with the
	// matcher's explanation (computed by the driver, off the block path).
	var expiring []*ClientJob
	for len(s.c.bidding) > 0 && b.Time >= s.c.bidding[0].Bid.MatchBy {
		j := heap.Pop(&s.c.bidding).(*ClientJob)
		if s.c.clients[j.ID] == j && j.State == api.StateBidding && !j.expiring {
			expiring = append(expiring, j)
		}
	}
	sort.Slice(expiring, func(a, b int) bool { return expiring[a].ID < expiring[b].ID })
	for _, j := range expiring {
		j.expiring = true
		s.emit(Explain{ID: j.ID, Bid: j.Bid, BlockTime: b.Time})
	}
	s.tick()
}

func (s *step) clientEvent(j *ClientJob, ev Event) {
	if ev.Err != "" {
		s.note(LevelError, j.ID, "read the chain's record: "+ev.Err)
	}
	switch ev.Kind {
	case WrongResult:
		// The client's wrong-result challenge (bourse job verify
		// --challenge) won: the job was paid by hash, now it is not.
		if j.State == api.StateWrongResult {
			return
		}
		j.State = api.StateWrongResult
		j.Paid, j.Refunded, j.Slashed = 0, ev.Refunded, ev.Slashed
		if j.Bid != nil && j.Bid.Replicas > 1 {
			j.Error = joinErr(j.Error, fmt.Sprintf("this replica's result lost to the job's decided result (the referees' re-run, or its other replicas' majority): provider slashed %d, escrow refunded", ev.Slashed))
		} else {
			j.Error = joinErr(j.Error, fmt.Sprintf("referees re-executed the job and found another result: provider slashed %d, escrow refunded", ev.Slashed))
		}
		s.changed(j)
		return
	case Withheld:
		if j.State != api.StateChallenged {
			return
		}
		j.State = api.StateResultUnavailable
		j.Paid, j.Refunded, j.Slashed = 0, ev.Refunded, ev.Slashed
		j.Error = joinErr(j.Error, fmt.Sprintf("the provider did not serve the result to the committee: provider slashed %d, escrow refunded", ev.Slashed))
		s.changed(j)
		return
	case ChallengeFailed:
		if j.State != api.StateChallenged || ev.Challenge == nil || ev.Challenge.Kind != chain.ChallengeUnavailable {
			if j.State == api.StatePaid {
				j.Error = joinErr(j.Error, "the referees found the provider's result right: the challenge deposit is lost")
				s.changed(j)
			}
			return
		}
		// A committee fetched it: the provider serves it. Fetch again.
		j.State = api.StateResultCommitted
		j.Error = joinErr(j.Error, "the committee fetched the result: the challenge deposit is lost; fetching again")
		s.changedThenFetch(j)
		return
	}
	s.clientUpdate(j.ID, func(j *ClientJob) bool {
		switch ev.Kind {
		case Matched:
			if j.State != api.StateBidding || ev.Match == nil {
				return false
			}
			mt := ev.Match
			j.State = api.StateMatched
			j.MatchHeight = ev.Height
			j.Provider = mt.Offer.ProviderAddress().String()
			j.MatchID = j.ID
			j.Escrowed = mt.Escrow()
			j.ProviderPeer = mt.Offer.PeerID
			j.expiring = false
		case Completed, Failed:
			if j.State == api.StateResultCommitted {
				return false
			}
			j.State = api.StateResultCommitted
			j.ResultHash = hex.EncodeToString(ev.ResultHash[:])
			code := int(ev.ExitCode)
			j.ExitCode = &code
			j.Paid, j.Refunded = ev.Paid, ev.Refunded
			if ev.Kind == Failed {
				j.RunFailed = true
				j.Error = fmt.Sprintf("the job failed on the provider (exit code %d)", code)
			}
			if ev.Err != "" {
				j.Error = joinErr(j.Error, "the chain's record could not be read: "+ev.Err)
			}
			s.changedThenFetch(j)
			return false // changedThenFetch announced it
		case TimedOut:
			j.State = api.StateTimedOut
			j.Refunded, j.Slashed = ev.Refunded, ev.Slashed
			j.Error = "the provider sent no result before the deadline: escrow refunded, provider collateral slashed"
		case Unavailable:
			j.State = api.StatePayloadUnavailable
			j.Refunded = ev.Refunded
			j.Error = fmt.Sprintf("the provider could not get the payload from this node in time: escrow refunded less a fee of %d (burned)", ev.Burned)
		case Cancelled:
			if j.State != api.StateBidding {
				return false
			}
			j.State = api.StateCancelled
		default:
			return false
		}
		return true
	})
}

func (s *step) changedThenFetch(j *ClientJob) {
	s.changed(j)
	s.fetch(j)
}

// fetch starts the result fetch of a settled job.
func (s *step) fetch(j *ClientJob) {
	h, err := parseHash(j.ResultHash)
	if err != nil || h == ([32]byte{}) {
		s.fetchFinished(j, fmt.Errorf("the provider stored no result"))
		return
	}
	j.attempt = 1
	s.emit(FetchResult{ID: j.ID, Hash: h, Peer: j.ProviderPeer, Attempt: 1})
}

func (s *step) resultFetched(in ResultFetched) {
	j := s.c.clients[in.ID]
	if j == nil || j.State != api.StateResultCommitted || in.Attempt != j.attempt {
		return // stale
	}
	if in.Err == nil {
		j.ResultSize = in.Size
		j.attempt = 0
		if j.RunFailed {
			j.State = api.StateFailed
		} else {
			j.State = api.StatePaid
		}
		s.changed(j)
		// Fetched and checked against the chain's hash: release the
		// payment now rather than at the window's end.
		if id, err := parseHash(j.ID); err == nil && !s.c.cfg.HoldAck {
			s.emit(SendAck{ID: market.BidID(id)})
		}
		return
	}
	if in.Attempt < s.c.cfg.ResultFetchAttempts {
		j.attempt++
		h, _ := parseHash(j.ResultHash)
		s.emit(FetchResult{ID: j.ID, Hash: h, Peer: j.ProviderPeer, Attempt: j.attempt,
			After: time.Duration(in.Attempt) * s.c.cfg.ResultFetchBackoff})
		return
	}
	s.fetchFinished(j, fmt.Errorf("%d attempts, the last: %w", in.Attempt, in.Err))
}

// fetchFinished ends a settled job whose result could not be had: failed
// if it failed on the provider; otherwise never paid, since the result was
// neither seen nor checked against the chain's hash: the first time, the
// node challenges its availability (challenged, a committee decides),
// after that it is result_unavailable.
func (s *step) fetchFinished(j *ClientJob, err error) {
	j.attempt = 0
	j.Error = joinErr(j.Error, "result not fetched: "+err.Error())
	id, perr := parseHash(j.ID)
	switch {
	case j.RunFailed:
		j.State = api.StateFailed
	case !j.ChallengedAvail && perr == nil:
		// A zero hash too: a completed job with no result to serve is
		// withholding one.
		j.State = api.StateChallenged
		j.ChallengedAvail = true
		s.changed(j)
		s.emit(SendChallenge{ID: market.BidID(id), Kind: chain.ChallengeUnavailable, Reason: err.Error()})
		return
	default:
		j.State = api.StateResultUnavailable
	}
	s.changed(j)
}

func (s *step) challengeSent(in ChallengeSent) {
	if in.Err == nil {
		return
	}
	s.clientUpdate(hexID(in.ID), func(j *ClientJob) bool {
		if j.State != api.StateChallenged {
			return false
		}
		j.State = api.StateResultUnavailable
		j.Error = joinErr(j.Error, "the availability challenge was not sent: "+in.Err.Error())
		return true
	})
}

func (s *step) explained(in Explained) {
	s.clientUpdate(in.ID, func(j *ClientJob) bool {
		if j.State != api.StateBidding || !j.expiring {
			return false
		}
		j.expiring = false
		j.State = api.StateExpired
		j.Unmatched = in.Reasons
		j.Error = "no offer matched before the deadline: " + in.Summary
		return true
	})
}

func (s *step) persistFailed(in PersistFailed) {
	j := s.c.clients[in.ID]
	if j == nil {
		return
	}
	// Memory and disk differ now: say so on the job itself, so the
	// failure is seen where the job is looked at.
	msg := "not saved to disk: " + in.Err.Error()
	if strings.Contains(j.Error, msg) {
		return
	}
	j.Error = joinErr(j.Error, msg)
	j.UpdatedAt = s.now
	s.emit(Publish{Job: j.Job})
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func parseHash(s string) ([32]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return [32]byte{}, fmt.Errorf("hash must be 64 hex digits")
	}
	return [32]byte(b), nil
}

// The provider's half.

func (s *step) provEvent(ev Event) {
	switch ev.Kind {
	case Matched:
		if ev.Match != nil {
			s.provMatched(*ev.Match, ev.Deadline, ev.MatchedAt)
		}
		return
	case Completed, Failed, TimedOut, Unavailable:
	case Released, Withheld, WrongResult, ChallengeFailed:
		// After the result: the job's record is gone, the chain names
		// the provider.
		if ev.Provider != s.c.cfg.Self || !s.c.cfg.Provider {
			return
		}
		t := &s.c.totals
		switch ev.Kind {
		case Released:
			t.Held -= min(t.Held, ev.Amount)
			t.Earned += ev.Amount
		case Withheld, WrongResult:
			t.Held -= min(t.Held, ev.HeldPay)
			t.Slashed += ev.Amount
			t.ChallengesLost++
		case ChallengeFailed:
			t.ChallengesWon++
		}
		return
	default:
		return
	}
	pj := s.c.prov[ev.JobID]
	if pj == nil {
		return
	}
	delete(s.c.prov, ev.JobID)
	t := &s.c.totals
	switch ev.Kind {
	case Completed: // the payment is held until released
		t.ByState[api.StatePaid]++
		t.Held += ev.Amount
	case Failed:
		t.ByState[api.StateFailed]++
		t.Held += ev.Amount
	case TimedOut:
		t.ByState[api.StateTimedOut]++
		t.Slashed += ev.Amount
	case Unavailable:
		t.ByState[api.StatePayloadUnavailable]++
	}
	if !pj.stopped && pj.state == api.StateRunning {
		// Settled while still running here (timed out): stop the run.
		s.emit(CancelRun{ID: ev.JobID, Reason: "the chain settled the job"})
	}
}

// payloadDeadline is when a matched job's payload must be here: half of
// the result grace period after the match (the chain's deadline is the
// match time + the bid's timeout + the grace period). The other half is
// left for the preparation (worker Limits.Prep) and for the result to
// reach the chain; the whole timeout for the run. With the match time
// unknown, the whole grace period.
func payloadDeadline(mt *market.Match, deadline, matchedAt int64) int64 {
	start := deadline - mt.Bid.TimeoutMs // = matchedAt + grace
	if matchedAt <= 0 || matchedAt > start {
		return start
	}
	return matchedAt + (start-matchedAt)/2
}

func (s *step) provMatched(mt market.Match, deadline, matchedAt int64) {
	if !s.c.cfg.Provider || mt.Offer.ProviderAddress() != s.c.cfg.Self {
		return
	}
	id := mt.Bid.ID()
	if s.c.prov[id] != nil {
		return
	}
	pj := &provJob{match: mt, deadline: deadline, state: api.StateRunning, payloadBy: payloadDeadline(&mt, deadline, matchedAt)}
	s.c.prov[id] = pj
	if f, ok := fetchFor(id, &mt.Bid); ok {
		pj.attempt = 1
		f.Attempt, f.Deadline = 1, pj.payloadBy
		s.emit(f)
		return
	}
	s.emit(Run{Match: mt})
}

// fetchFor is the fetch of a bid's payload and manifest, if it names
// either.
func fetchFor(id market.BidID, b *market.Bid) (FetchPayload, bool) {
	f := FetchPayload{ID: id, From: b.Payload.Peer, Client: b.ClientAddress()}
	f.Manifest, _ = b.Payload.ManifestHash()
	if len(b.Payload.SHA256) == 32 {
		f.Hash, f.Size = [32]byte(b.Payload.SHA256), int64(b.Payload.Size)
	}
	return f, f.Hash != [32]byte{} || f.Manifest != [32]byte{}
}

func (s *step) payloadFetched(in PayloadFetched) {
	pj := s.c.prov[in.ID]
	if pj == nil || pj.attempt != in.Attempt || pj.stopped {
		return
	}
	if in.Err == nil {
		pj.attempt = 0
		s.emit(Run{Match: pj.match, PayloadVerified: true})
		return
	}
	backoff := time.Duration(in.Attempt) * s.c.cfg.PayloadFetchBackoff
	if in.Attempt < s.c.cfg.PayloadFetchAttempts && s.now.Add(backoff).UnixMilli() < pj.payloadBy {
		pj.attempt++
		f, _ := fetchFor(in.ID, &pj.match.Bid)
		f.Attempt, f.After, f.Deadline = pj.attempt, backoff, pj.payloadBy
		s.emit(f)
		return
	}
	s.unavailable(in.ID, pj, fmt.Sprintf("payload fetch failed %d times, the last: %v", in.Attempt, in.Err))
}

// unavailable gives up on a payload that did not come in time: rather
// than run nothing and be slashed at the deadline, the provider says so
// on chain (chain.PayloadUnavailable).
func (s *step) unavailable(id market.BidID, pj *provJob, reason string) {
	pj.attempt = 0
	pj.state = api.StatePayloadUnavailable
	s.note(LevelWarn, hexID(id), reason+": declaring the payload unavailable")
	s.emit(SendUnavailable{ID: id, Reason: reason})
}

func (s *step) runFinished(in RunFinished) {
	id := in.Result.JobID
	pj := s.c.prov[id]
	if pj == nil || pj.state != api.StateRunning {
		s.note(LevelInfo, hexID(id), "run finished after the chain settled the job: no result sent")
		return
	}
	if in.Err != nil {
		s.note(LevelWarn, hexID(id), "job could not run: "+in.Err.Error())
	}
	if pj.stopped {
		s.note(LevelInfo, hexID(id), "run stopped past the deadline: no result sent")
		pj.state = api.StateResultCommitted
		return
	}
	pj.state = api.StateResultCommitted
	pj.resultHash = in.Result.ResultHash
	s.emit(SendResult{Result: in.Result})
}

// tick stops runs whose chain deadline has passed: their result would be
// refused, and the capacity is better free.
func (s *step) tick() {
	nowMs := s.now.UnixMilli()
	var ids []market.BidID
	for id, pj := range s.c.prov {
		if pj.state == api.StateRunning && !pj.stopped && pj.deadline > 0 && nowMs > pj.deadline {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return hexID(ids[a]) < hexID(ids[b]) })
	for _, id := range ids {
		s.c.prov[id].stopped = true
		s.emit(CancelRun{ID: id, Reason: "the chain's result deadline passed"})
	}
	// A payload fetch still under way past its deadline (a client that
	// drip-feeds or never answers): give up on it now, whatever it does.
	ids = ids[:0]
	for id, pj := range s.c.prov {
		if pj.state == api.StateRunning && pj.attempt > 0 && pj.payloadBy > 0 && nowMs >= pj.payloadBy {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return hexID(ids[a]) < hexID(ids[b]) })
	for _, id := range ids {
		s.unavailable(id, s.c.prov[id], "the payload did not arrive by its deadline")
	}
}

// watchExpiry queues j for the block that passes its match-by time.
func (c *Core) watchExpiry(j *ClientJob) {
	if j.State == api.StateBidding && j.Bid != nil {
		heap.Push(&c.bidding, j)
	}
}

// byMatchBy is a min-heap of client jobs by their bid's match-by time.
type byMatchBy []*ClientJob

func (h byMatchBy) Len() int { return len(h) }
func (h byMatchBy) Less(a, b int) bool {
	if h[a].Bid.MatchBy != h[b].Bid.MatchBy {
		return h[a].Bid.MatchBy < h[b].Bid.MatchBy
	}
	return h[a].ID < h[b].ID
}
func (h byMatchBy) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *byMatchBy) Push(x any)   { *h = append(*h, x.(*ClientJob)) }
func (h *byMatchBy) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}

// Queries. They return copies.

// Job returns the client job id.
func (c *Core) Job(id string) (ClientJob, bool) {
	j, ok := c.clients[id]
	if !ok {
		return ClientJob{}, false
	}
	return j.copy(), true
}

// Jobs returns the client jobs, newest first.
func (c *Core) Jobs() []ClientJob {
	out := make([]ClientJob, 0, len(c.clients))
	for _, j := range c.clients {
		out = append(out, j.copy())
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].SubmittedAt.Equal(out[b].SubmittedAt) {
			return out[a].SubmittedAt.After(out[b].SubmittedAt)
		}
		return out[a].ID < out[b].ID
	})
	return out
}

// Bidding returns the bids of the jobs waiting for a match.
func (c *Core) Bidding() []*market.Bid {
	var out []*market.Bid
	for _, j := range c.clients {
		if j.State == api.StateBidding && j.Bid != nil {
			out = append(out, j.Bid)
		}
	}
	return out
}

// Counts is the number of client jobs in each state.
func (c *Core) Counts() map[string]int {
	out := map[string]int{}
	for _, j := range c.clients {
		out[j.State]++
	}
	return out
}

// ProviderJobs is the number of provider jobs in each state, open and
// settled, with the settled totals.
func (c *Core) ProviderJobs() (byState map[string]int, earned, slashed uint64) {
	byState = map[string]int{}
	for _, pj := range c.prov {
		byState[pj.state]++
	}
	for st, k := range c.totals.ByState {
		byState[st] += k
	}
	return byState, c.totals.Earned, c.totals.Slashed
}

// Totals returns the provider's settled totals (a copy).
func (c *Core) Totals() ProviderTotals {
	t := c.totals
	t.ByState = nil
	return t
}

// OpenProviderJobs is the number of provider job records kept.
func (c *Core) OpenProviderJobs() int { return len(c.prov) }

// ProviderResult is the result hash of an open provider job, once run.
func (c *Core) ProviderResult(id market.BidID) ([32]byte, bool) {
	pj := c.prov[id]
	if pj == nil || pj.resultHash == ([32]byte{}) {
		return [32]byte{}, false
	}
	return pj.resultHash, true
}

// The committee member's half: a validator drawn onto a challenge's
// committee fetches the result (availability) or re-executes the job
// (wrong result) and attests what it got.

func (s *step) dutyEvent(ev Event) {
	switch ev.Kind {
	case Challenged:
		c := ev.Challenge
		if c == nil || !slices.Contains(c.Committee, s.c.cfg.Self) || s.c.duties[ev.JobID] != nil {
			return
		}
		d := &duty{kind: c.Kind, hash: ev.ResultHash, peer: c.ProviderPeer, size: c.Size}
		s.c.duties[ev.JobID] = d
		switch c.Kind {
		case chain.ChallengeUnavailable:
			d.attempt = 1
			s.emit(FetchAttest{ID: ev.JobID, Hash: d.hash, Peer: d.peer, Size: d.size, Attempt: 1})
		case chain.ChallengeWrong:
			if ev.Match == nil {
				s.note(LevelError, hexID(ev.JobID), "a wrong-result challenge without its match: cannot re-execute")
				delete(s.c.duties, ev.JobID)
				return
			}
			s.emit(Reexecute{Match: *ev.Match})
		}
	case Released, Withheld, WrongResult, ChallengeFailed:
		delete(s.c.duties, ev.JobID) // decided: an answer now would be refused
	}
}

func (s *step) attestFetched(in AttestFetched) {
	d := s.c.duties[in.ID]
	if d == nil || d.kind != chain.ChallengeUnavailable || in.Attempt != d.attempt {
		return
	}
	if in.Err == nil {
		delete(s.c.duties, in.ID)
		s.emit(SendAttest{ID: in.ID, Hash: d.hash})
		return
	}
	if in.Attempt < s.c.cfg.ResultFetchAttempts {
		d.attempt++
		s.emit(FetchAttest{ID: in.ID, Hash: d.hash, Peer: d.peer, Size: d.size, Attempt: d.attempt,
			After: time.Duration(in.Attempt) * s.c.cfg.ResultFetchBackoff})
		return
	}
	delete(s.c.duties, in.ID)
	s.note(LevelWarn, hexID(in.ID), fmt.Sprintf("committee: the challenged result could not be fetched in %d attempts (the last: %v): no attestation", in.Attempt, in.Err))
}

func (s *step) reexecuted(in Reexecuted) {
	d := s.c.duties[in.ID]
	if d == nil || d.kind != chain.ChallengeWrong {
		return
	}
	delete(s.c.duties, in.ID)
	if in.Err != nil {
		s.note(LevelWarn, hexID(in.ID), "referee: the job could not be re-executed: "+in.Err.Error()+": no vote")
		return
	}
	s.emit(SendAttest{ID: in.ID, Hash: in.Hash})
}
