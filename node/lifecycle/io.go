package lifecycle

import (
	"log/slog"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
)

// Input is what Step takes.
type Input interface{ input() }

// Restore loads the client's jobs read from disk at start.
type Restore struct{ Jobs []ClientJob }

// Submit adds a client job whose bid was just signed and saved.
type Submit struct{ Job ClientJob }

// Block is a committed block: its time and the events of the jobs in it.
// It is also a tick.
type Block struct {
	Height uint64
	Time   int64 // ms, the block's time
	Events []Event
}

// EventKind is what the chain did to a job.
type EventKind int

// Event kinds.
const (
	Matched EventKind = iota + 1
	Completed
	Failed
	TimedOut
	Cancelled
	// Unavailable: the provider declared the payload unavailable
	// (chain.PayloadUnavailable); the client is refunded less a fee.
	Unavailable
	// Released: a held result's payment went to the provider (Amount)
	// by the client's ack, the window's end or a committee.
	Released
	// Challenged: the client challenged the held result; Challenge
	// names the committee.
	Challenged
	// ChallengeFailed: the committee sided with the provider.
	ChallengeFailed
	// Withheld: the committee could not get the result: the provider was
	// slashed (Amount), the client refunded.
	Withheld
	// WrongResult: the referees' majority hash is not the provider's:
	// the provider was slashed (Amount), the client refunded.
	WrongResult
)

func (k EventKind) String() string {
	switch k {
	case Matched:
		return "matched"
	case Completed:
		return "completed"
	case Failed:
		return "failed"
	case TimedOut:
		return "timed_out"
	case Cancelled:
		return "cancelled"
	case Unavailable:
		return "payload_unavailable"
	case Released:
		return "released"
	case Challenged:
		return "challenged"
	case ChallengeFailed:
		return "challenge_failed"
	case Withheld:
		return "withheld"
	case WrongResult:
		return "wrong_result"
	}
	return "unknown"
}

// Event is one job's change in a committed block, with the chain's record
// of the match as it stands.
type Event struct {
	Kind      EventKind
	JobID     market.BidID
	Height    uint64
	Match     *market.Match // Matched
	Deadline  int64         // Matched: the chain's result deadline, ms
	MatchedAt int64         // Matched: the matching block's time, ms

	ResultHash      [32]byte
	ExitCode        int32
	Paid, Refunded  uint64
	Slashed, Amount uint64
	Burned          uint64 // Unavailable: the client's fee, burned
	Err             string // the chain's record could not be read

	// Settlement: the match's provider, what its result holds, and for
	// Challenged and the outcomes, the challenge.
	Provider  wallet.Address
	HeldPay   uint64
	Challenge *ChallengeInfo
}

// ChallengeInfo is a challenge as a committee member needs it.
type ChallengeInfo struct {
	Kind         chain.ChallengeKind
	Committee    []wallet.Address
	ProviderPeer string
	Size         uint64 // the result's declared size: fetch no more
}

// OpenMatch is a match to this provider still open on chain.
type OpenMatch struct {
	Match     market.Match
	Deadline  int64
	MatchedAt int64
}

// Resume hands a restarted provider its open matches.
type Resume struct{ Open []OpenMatch }

// Tick is the passing of time alone.
type Tick struct{}

// Explained answers Explain: why no offer took an expired bid.
type Explained struct {
	ID      string
	Reasons []api.OfferFit
	Summary string
}

// ResultFetched is the outcome of FetchResult.
type ResultFetched struct {
	ID      string
	Attempt int
	Size    int64
	Err     error
}

// CancelConfirmed: the client's BidCancel committed.
type CancelConfirmed struct{ ID string }

// PersistFailed: writing a job record failed.
type PersistFailed struct {
	ID  string
	Err error
}

// PayloadFetched is the outcome of FetchPayload; the driver keeps the
// bytes (and the manifest) for Run.
type PayloadFetched struct {
	ID      market.BidID
	Attempt int
	Err     error
}

// RunFinished is the outcome of Run: the Result to send (exit code 1 and
// no hash if the job could not run, Err saying why).
type RunFinished struct {
	Result chain.ResultTx
	Err    error
}

// ResultSent is the outcome of SendResult.
type ResultSent struct {
	ID  market.BidID
	Err error
}

// UnavailableSent is the outcome of SendUnavailable.
type UnavailableSent struct {
	ID  market.BidID
	Err error
}

// AckSent, ChallengeSent and AttestSent are the outcomes of SendAck,
// SendChallenge and SendAttest.
type AckSent struct {
	ID  market.BidID
	Err error
}

// ChallengeSent is the outcome of SendChallenge.
type ChallengeSent struct {
	ID  market.BidID
	Err error
}

// AttestSent is the outcome of SendAttest.
type AttestSent struct {
	ID  market.BidID
	Err error
}

// AttestFetched is the outcome of FetchAttest.
type AttestFetched struct {
	ID      market.BidID
	Attempt int
	Err     error
}

// Reexecuted is the outcome of Reexecute: the hash of the result the
// job produced here.
type Reexecuted struct {
	ID   market.BidID
	Hash [32]byte
	Err  error
}

func (AckSent) input()         {}
func (ChallengeSent) input()   {}
func (AttestSent) input()      {}
func (AttestFetched) input()   {}
func (Reexecuted) input()      {}
func (Restore) input()         {}
func (Submit) input()          {}
func (Block) input()           {}
func (Resume) input()          {}
func (Tick) input()            {}
func (Explained) input()       {}
func (ResultFetched) input()   {}
func (CancelConfirmed) input() {}
func (PersistFailed) input()   {}
func (PayloadFetched) input()  {}
func (RunFinished) input()     {}
func (ResultSent) input()      {}
func (UnavailableSent) input() {}

// Action is what Step asks of the driver.
type Action interface{ action() }

// Persist writes a client job's record (the newest Persist of a job wins).
type Persist struct{ Job ClientJob }

// Publish announces a client job's new state on the event stream.
type Publish struct{ Job api.Job }

// Explain asks why no offer took an expired bid; answer with Explained.
type Explain struct {
	ID        string
	Bid       *market.Bid
	BlockTime int64
}

// FetchResult fetches a settled job's result from Peer after a delay,
// checked against Hash; answer with ResultFetched.
type FetchResult struct {
	ID      string
	Hash    [32]byte
	Peer    string
	Attempt int
	After   time.Duration
}

// FetchPayload fetches a matched job's payload after a delay, checked
// against Hash; answer with PayloadFetched. The fetch, retries included,
// must end by Deadline (unix ms): past it the provider could no longer
// run the job before the chain's deadline, and declares the payload
// unavailable instead, so a client that withholds or drip-feeds its
// payload cannot get the provider slashed.
//
// Manifest, when not zero, is the hash of the job's manifest (its args and
// env, market.Manifest), fetched from the same peer with the payload and
// under the same deadline; Hash is zero for an image job that has only a
// manifest.
type FetchPayload struct {
	ID       market.BidID
	Hash     [32]byte
	Size     int64
	Manifest [32]byte
	Client   wallet.Address // the bid's client, whose quota the fetched blobs count against
	From     string
	Attempt  int
	After    time.Duration
	Deadline int64
}

// Run runs a matched job; answer with RunFinished.
type Run struct {
	Match           market.Match
	PayloadVerified bool // FetchPayload got the payload
}

// CancelRun stops a run that can no longer earn anything.
type CancelRun struct {
	ID     market.BidID
	Reason string
}

// SendResult submits the Result transaction; answer with ResultSent.
type SendResult struct{ Result chain.ResultTx }

// SendUnavailable submits a PayloadUnavailable transaction for a job
// whose payload could not be had in time; answer with UnavailableSent.
type SendUnavailable struct {
	ID     market.BidID
	Reason string
}

// Level is a Note's severity.
type Level = slog.Level

// Levels of notes.
const (
	LevelInfo  = slog.LevelInfo
	LevelWarn  = slog.LevelWarn
	LevelError = slog.LevelError
)

// Note is something to log.
type Note struct {
	Level Level
	Job   string
	Msg   string
}

// SendAck submits the client's acknowledgement of a fetched, checked
// result (chain.AckTx); answer with AckSent.
type SendAck struct{ ID market.BidID }

// SendChallenge submits the client's challenge (chain.ChallengeTx);
// answer with ChallengeSent.
type SendChallenge struct {
	ID     market.BidID
	Kind   chain.ChallengeKind
	Reason string
}

// FetchAttest fetches, as a committee member, a challenged result from
// the provider after a delay, at most Size bytes, checked against Hash;
// answer with AttestFetched.
type FetchAttest struct {
	ID      market.BidID
	Hash    [32]byte
	Peer    string
	Size    uint64
	Attempt int
	After   time.Duration
}

// Reexecute runs a challenged WASM job again, as a referee, exactly as
// the bid says (fake clock, seeded randomness); answer with Reexecuted.
type Reexecute struct{ Match market.Match }

// SendAttest submits a committee member's attestation (chain.AttestTx);
// answer with AttestSent.
type SendAttest struct {
	ID   market.BidID
	Hash [32]byte
}

func (SendAck) action()         {}
func (SendChallenge) action()   {}
func (FetchAttest) action()     {}
func (Reexecute) action()       {}
func (SendAttest) action()      {}
func (Persist) action()         {}
func (Publish) action()         {}
func (Explain) action()         {}
func (FetchResult) action()     {}
func (FetchPayload) action()    {}
func (Run) action()             {}
func (CancelRun) action()       {}
func (SendResult) action()      {}
func (SendUnavailable) action() {}
func (Note) action()            {}
