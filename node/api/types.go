package api

import (
	"encoding/json"
	"time"
)

// Version is the API version served under /v1/.
const Version = "v1"

// Node roles reported by Status.
const (
	RoleClient    = "client"
	RoleProvider  = "provider"
	RoleValidator = "validator"
)

// Status is GET /v1/status: where the node is and what it does.
type Status struct {
	ChainID         string    `json:"chain_id"`
	Moniker         string    `json:"moniker"`
	Height          uint64    `json:"height"`
	LatestBlockHash string    `json:"latest_block_hash"`
	LatestBlockTime time.Time `json:"latest_block_time"`
	Syncing         bool      `json:"syncing"`
	PeerID          string    `json:"peer_id"`
	Peers           int       `json:"peers"`
	// Address is the node's wallet address (bech32 bo1...): the account it
	// pays from, is paid to and signs with.
	Address  string   `json:"address"`
	Roles    []string `json:"roles"`
	Versions Versions `json:"versions"`
}

// Versions of the software and protocols the node speaks.
type Versions struct {
	Node     string `json:"node"`
	API      string `json:"api"`
	Protocol string `json:"protocol"`
}

// Block is a committed block: GET /v1/chain/blocks/{height} and
// /v1/chain/blocks/latest. Hashes are lowercase hex.
type Block struct {
	Height    uint64      `json:"height"`
	Hash      string      `json:"hash"`
	PrevHash  string      `json:"prev_hash"`
	Time      time.Time   `json:"time"`
	Proposer  string      `json:"proposer"`
	StateRoot string      `json:"state_root"`
	Round     uint32      `json:"round"`
	TxCount   int         `json:"tx_count"`
	Txs       []TxSummary `json:"txs"`
}

// TxSummary is a transaction as listed in a block.
type TxSummary struct {
	Hash string `json:"hash"`
	Type string `json:"type"`
	From string `json:"from"`
}

// Tx is GET /v1/chain/txs/{hash}: a committed transaction and its outcome.
type Tx struct {
	Hash   string `json:"hash"`
	Type   string `json:"type"` // transfer, bond, unbond, provider_register, bid_cancel, match, result, evidence, payload_unavailable
	Height uint64 `json:"height"`
	Index  int    `json:"index"`
	From   string `json:"from"`
	Nonce  uint64 `json:"nonce"`
	Fee    uint64 `json:"fee"` // paid whether the body succeeded or not
	// Status is the transaction's outcome: TxOK, TxFailed (the fee was
	// paid, the body had no effect: Log says why), TxPending (in the
	// mempool, not yet in a block) or TxUnknown (in a block stored before
	// the node kept receipts).
	Status string `json:"status"`
	// Log is why the body failed.
	Log string `json:"log,omitempty"`
	// Events are what the transaction did (a match's escrow, a
	// settlement's payment...).
	Events []TxEvent `json:"events,omitempty"`
	// Body is the transaction's type-specific fields as JSON.
	Body json.RawMessage `json:"body,omitempty"`
}

// DefaultMatchPage is the page size of GET /v1/market/matches without a
// limit.
const DefaultMatchPage = 100

// Tx statuses.
const (
	TxOK      = "ok"
	TxFailed  = "failed"
	TxPending = "pending"
	TxUnknown = "unknown"
)

// TxEvent is one event of a transaction (see chain.Event): Type is one of
// matched, completed, failed, timed_out, payload_unavailable, cancelled,
// unbonded, slashed, provider_leaving, collateral_withdrawn.
type TxEvent struct {
	Type    string `json:"type"`
	Address string `json:"address"`
	JobID   string `json:"job_id,omitempty"`
	Amount  uint64 `json:"amount"`
}

// Validator is one entry of GET /v1/chain/validators.
type Validator struct {
	Address string `json:"address"`
	PubKey  string `json:"pub_key"` // hex ed25519
	Stake   uint64 `json:"stake"`   // bonded, base units
	Power   uint64 `json:"power"`   // voting power
}

// Account is GET /v1/accounts/{addr}. Amounts are in base units.
type Account struct {
	Address    string `json:"address"`
	Balance    uint64 `json:"balance"`
	Nonce      uint64 `json:"nonce"`
	Bonded     uint64 `json:"bonded"`
	Unbonding  uint64 `json:"unbonding"`
	Collateral uint64 `json:"collateral"`
	Provider   bool   `json:"provider"`
}

// Resources is an amount of compute, in the units of the job spec.
type Resources struct {
	CPU    uint64 `json:"cpu" yaml:"cpu"`       // millicores (1000 = one core)
	Memory uint64 `json:"memory" yaml:"memory"` // MiB
	Disk   uint64 `json:"disk" yaml:"disk"`     // MiB
	GPUs   uint64 `json:"gpus" yaml:"gpus"`     // whole devices
}

// Prices are an offer's price terms in base units.
type Prices struct {
	PerCPUSecond uint64 `json:"per_cpu_second"` // per 1000 millicores for one second
	PerGiBSecond uint64 `json:"per_gib_second"` // per GiB of memory for one second
	PerJob       uint64 `json:"per_job"`        // fixed part per job
}

// Offer is a provider's live capacity offer (GET /v1/market/offers).
type Offer struct {
	ID        string            `json:"id"`
	Provider  string            `json:"provider"`
	PeerID    string            `json:"peer_id"`
	Capacity  Resources         `json:"capacity"`
	Free      Resources         `json:"free"`
	Load      float64           `json:"load"` // 0..1 of capacity in use
	Prices    Prices            `json:"prices"`
	Region    string            `json:"region"`
	Labels    map[string]string `json:"labels"`
	Executors []string          `json:"executors"`
	Expires   time.Time         `json:"expires"`
}

// Bid is an open job bid (GET /v1/market/bids).
type Bid struct {
	ID          string      `json:"id"`
	Client      string      `json:"client"`
	Executor    string      `json:"executor"`
	Resources   Resources   `json:"resources"`
	MaxPrice    uint64      `json:"max_price"`
	Deadline    time.Time   `json:"deadline"`
	Placement   string      `json:"placement"`
	Constraints Constraints `json:"constraints"`
	PayloadHash string      `json:"payload_hash"`
}

// Match is a committed match of a bid to an offer (GET /v1/market/matches).
type Match struct {
	ID       string    `json:"id"`
	BidID    string    `json:"bid_id"`
	OfferID  string    `json:"offer_id"`
	Client   string    `json:"client"`
	Provider string    `json:"provider"`
	Price    uint64    `json:"price"`  // the matched price (the quote)
	Escrow   uint64    `json:"escrow"` // what the match holds of the client's balance until it settles
	Height   uint64    `json:"height"`
	Deadline time.Time `json:"deadline"`
	// State is open, completed, failed, timed_out or payload_unavailable.
	State string `json:"state"`
	// MatchTx is the hash of the transaction that committed the match;
	// SettleTx of the one that settled it (a result or a payload
	// unavailable claim; empty while open and for a timeout, which its
	// block settles).
	MatchTx  string `json:"match_tx,omitempty"`
	SettleTx string `json:"settle_tx,omitempty"`
	// ResultHash is the hash of the result the provider committed.
	ResultHash string `json:"result_hash,omitempty"`
}

// MatchFilter narrows GET /v1/market/matches and /v1/market/stats (query
// parameters from, to, limit; zero means unbounded).
//
// A page of matches holds whole heights, newest first: it ends at the
// first height at which Limit (0: DefaultMatchPage) is reached, so it may
// hold a few more. The next page is To = the lowest height returned - 1.
type MatchFilter struct {
	FromHeight uint64 `json:"from"`
	ToHeight   uint64 `json:"to"`
	Limit      int    `json:"limit"`
}

// MarketStats is GET /v1/market/stats: how load and money were spread over
// a height range.
type MarketStats struct {
	FromHeight uint64 `json:"from"`
	ToHeight   uint64 `json:"to"`
	Matches    uint64 `json:"matches"`
	Volume     uint64 `json:"volume"` // sum of paid prices
	AvgPrice   uint64 `json:"avg_price"`
	// Fairness is Jain's index over providers' assignments: 1 is perfectly
	// even, 1/n is everything on one provider.
	Fairness  float64         `json:"fairness"`
	Providers []ProviderStats `json:"providers"`
	// Settlement over the range: held (results in their challenge
	// window), slashed, and the challenges decided for and against
	// providers.
	Held           uint64 `json:"held"`
	Slashed        uint64 `json:"slashed"`
	ChallengesWon  uint64 `json:"challenges_won"`
	ChallengesLost uint64 `json:"challenges_lost"`
}

// ProviderStats is one provider's line in MarketStats.
type ProviderStats struct {
	Address   string `json:"address"`
	Matches   uint64 `json:"matches"`
	Completed uint64 `json:"completed"`
	Failed    uint64 `json:"failed"`
	TimedOut  uint64 `json:"timed_out"`
	Earned    uint64 `json:"earned"`
	Slashed   uint64 `json:"slashed"`
	// Held is its pay held in challenge windows; challenges of its
	// results it won and lost.
	Held           uint64  `json:"held"`
	ChallengesWon  uint64  `json:"challenges_won"`
	ChallengesLost uint64  `json:"challenges_lost"`
	Utilization    float64 `json:"utilization"` // 0..1
	Share          float64 `json:"share"`       // of all matches in the range
	// Reputation (per mille) and Performance are the chain's figures for
	// the provider now, not over the range.
	Reputation  uint32       `json:"reputation"`
	Performance *Performance `json:"performance,omitempty"`
}

// Performance is a provider's learnt figures (market.Perf): moving
// averages over about its last 16 settled jobs, weighted by their worth,
// computed by every validator from the chain's record.
type Performance struct {
	Jobs         uint64  `json:"jobs"`           // settled jobs observed
	RunTimeRatio float64 `json:"run_time_ratio"` // run time / timeout, 0..1 (timeouts count 1)
	FailureRate  float64 `json:"failure_rate"`   // 0..1
	TimeoutRate  float64 `json:"timeout_rate"`   // 0..1
	PaidAvg      uint64  `json:"paid_avg"`       // base units per job
	ClientRTTMs  uint32  `json:"client_rtt_ms"`  // as clients reported it in their bids; 0: none did
	// Cost is what the balanced placement weighs, 0 (best) to 1, at the
	// last block's time.
	Cost float64 `json:"cost"`
}

// Job states, in lifecycle order. Paid, Expired, Failed, TimedOut,
// Cancelled, ResultUnavailable and PayloadUnavailable are terminal.
const (
	StateSubmitted       = "submitted"
	StateBidding         = "bidding" // bid gossiped, waiting for a match
	StateMatched         = "matched" // escrow taken
	StateRunning         = "running"
	StateResultCommitted = "result_committed"
	StatePaid            = "paid"
	StateExpired         = "expired"
	StateFailed          = "failed"
	StateTimedOut        = "timed_out"
	StateCancelled       = "cancelled"
	// StateResultUnavailable: the result could not be fetched (Error
	// says why), so it was never checked against the hash on chain; when
	// the node's availability challenge found the provider withholding
	// it, the provider was slashed and the escrow refunded (Slashed,
	// Refunded).
	StateResultUnavailable = "result_unavailable"
	// StateChallenged: the result could not be fetched, so the node
	// challenged its availability on chain; a committee decides.
	StateChallenged = "challenged"
	// StateWrongResult: referees re-executed the job and found another
	// hash: the provider was slashed and the escrow refunded.
	StateWrongResult = "wrong_result"
	// StatePayloadUnavailable: the provider could not get the payload
	// from this node before its deadline and said so on chain; the escrow
	// came back less the unavailability fee (burned).
	StatePayloadUnavailable = "payload_unavailable"
)

// Terminal reports whether a job in state s will not change any more.
func Terminal(s string) bool {
	switch s {
	case StatePaid, StateExpired, StateFailed, StateTimedOut, StateCancelled, StateResultUnavailable, StatePayloadUnavailable, StateWrongResult:
		return true
	}
	return false
}

// Job is a job this node submitted: GET /v1/jobs/{id}.
type Job struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	State       string    `json:"state"`
	Spec        JobSpec   `json:"spec"`
	SubmittedAt time.Time `json:"submitted_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	PayloadHash string    `json:"payload_hash,omitempty"`
	BidID       string    `json:"bid_id,omitempty"`
	// Set once matched.
	MatchID     string `json:"match_id,omitempty"`
	MatchHeight uint64 `json:"match_height,omitempty"`
	Provider    string `json:"provider,omitempty"`
	Escrowed    uint64 `json:"escrowed,omitempty"`
	// Set once the result is committed and settled.
	ResultHash string `json:"result_hash,omitempty"`
	ResultSize int64  `json:"result_size,omitempty"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	Paid       uint64 `json:"paid,omitempty"`
	Refunded   uint64 `json:"refunded,omitempty"`
	Slashed    uint64 `json:"slashed,omitempty"`
	// Error says why a job failed, timed out or was cancelled.
	Error string `json:"error,omitempty"`
	// Unmatched explains an expired job: for each offer seen, why it did not
	// fit.
	Unmatched []OfferFit `json:"unmatched,omitempty"`
	// Replicas, on a job with spec.replicas > 1 (its ID is replica 0's),
	// are its replicas, each a bid of its own placed on a distinct
	// provider. The job's state, result and provider are those of the
	// replicas in the chain's decided majority once one is fetched;
	// Paid, Refunded, Slashed and Escrowed sum the replicas.
	Replicas []JobReplica `json:"replicas,omitempty"`
}

// JobReplica is one replica of a job run on several providers.
type JobReplica struct {
	Replica    int    `json:"replica"`
	ID         string `json:"id"`
	State      string `json:"state"`
	Provider   string `json:"provider,omitempty"`
	ResultHash string `json:"result_hash,omitempty"`
	Paid       uint64 `json:"paid,omitempty"`
	Refunded   uint64 `json:"refunded,omitempty"`
	Slashed    uint64 `json:"slashed,omitempty"`
	Error      string `json:"error,omitempty"`
}

// JobFilter narrows GET /v1/jobs (query parameters state, limit).
type JobFilter struct {
	State string `json:"state"`
	Limit int    `json:"limit"`
}

// JobLogs is GET /v1/jobs/{id}/logs.
type JobLogs struct {
	ID        string `json:"id"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Truncated bool   `json:"truncated"`
}

// Verification is POST /v1/jobs/{id}/verify: the client's node ran the
// job again and compared its result with the one committed on chain. A
// WASM job runs with a fake clock and seeded randomness, so an honest
// provider's result hash and the re-run's are equal.
type Verification struct {
	ID            string `json:"id"`
	Match         bool   `json:"match"`      // the hashes are equal
	ChainHash     string `json:"chain_hash"` // the provider's result, as committed on chain
	LocalHash     string `json:"local_hash"` // this node's re-run
	ChainExitCode int    `json:"chain_exit_code"`
	LocalExitCode int    `json:"local_exit_code"`
	LocalState    string `json:"local_state"` // the re-run's end: succeeded, failed, timed_out, oom
	Provider      string `json:"provider"`
	WallMs        int64  `json:"wall_ms"` // the re-run's wall time, compile excluded
}

// ResultInfo describes a job's result blob. Hash is the lowercase hex
// sha256 of the content, as committed on chain.
type ResultInfo struct {
	Size int64  `json:"size"`
	Hash string `json:"hash"`
}

// OfferFit says whether one offer fits a job and, if not, why.
type OfferFit struct {
	OfferID  string   `json:"offer_id"`
	Provider string   `json:"provider"`
	Fits     bool     `json:"fits"`
	Price    uint64   `json:"price"` // estimated price for the job on this offer
	Reasons  []string `json:"reasons,omitempty"`
}

// DryRun is POST /v1/jobs/dry-run: which offers fit a spec and which one
// the placement policy would choose now.
type DryRun struct {
	Spec    JobSpec    `json:"spec"`
	Offers  []OfferFit `json:"offers"`
	Chosen  string     `json:"chosen,omitempty"` // offer id, "" if none fits
	Price   uint64     `json:"price,omitempty"`  // estimated price on the chosen offer
	Summary string     `json:"summary"`
}

// SendRequest is POST /v1/wallet/send.
type SendRequest struct {
	To     string `json:"to"`
	Amount uint64 `json:"amount"`
}

// AmountRequest is POST /v1/stake/bond and /v1/stake/unbond.
type AmountRequest struct {
	Amount uint64 `json:"amount"`
}

// RegisterRequest is POST /v1/provider/register.
type RegisterRequest struct {
	Collateral uint64 `json:"collateral"`
}

// TxResult is what a transaction-posting call returns: the transaction's
// hash, and the height once it is committed (0 while in the mempool).
type TxResult struct {
	Hash   string `json:"hash"`
	Height uint64 `json:"height"`
	Status string `json:"status"` // pending, committed, failed or rejected (Error says why)
	Error  string `json:"error,omitempty"`
}

// MaxSubmitTxs bounds the transactions of one POST /v1/txs.
const MaxSubmitTxs = 1000

// MaxSubmitTxsBody bounds the JSON body of one POST /v1/txs (1,000
// transactions of a few hundred bytes each, base64, fit many times over).
const MaxSubmitTxsBody = 4 << 20

// TxRejected is the TxResult status of a transaction POST /v1/txs did not
// admit: Error says why (bad encoding or signature, wrong chain id, a nonce
// already used or not next, a balance that cannot cover it, a full mempool).
const TxRejected = "rejected"

// SubmitTxsRequest is POST /v1/txs: transactions signed elsewhere, each
// the canonical CBOR encoding of a signed chain transaction (chain.Tx's
// Encode after Sign), base64 in JSON. At most MaxSubmitTxs per request.
type SubmitTxsRequest struct {
	Txs [][]byte `json:"txs"`
	// Commit makes the call wait until every admitted transaction commits
	// (up to about 10 s; those still in the mempool then are "pending").
	// Without it the call returns once they are admitted to the mempool.
	Commit bool `json:"commit,omitempty"`
}

// SubmitTxsResponse is the answer of POST /v1/txs: one result per
// submitted transaction, in order. Status is "pending" (in the mempool,
// this call's or an earlier one's), "committed" with its height, "failed"
// (committed, its fee paid, its body refused: Error says why) or
// "rejected" (not admitted: Error says why).
type SubmitTxsResponse struct {
	Results []TxResult `json:"results"`
}

// ProviderStatus is GET /v1/provider.
type ProviderStatus struct {
	Address    string `json:"address"`
	Registered bool   `json:"registered"`
	// Leaving: deregistered; the collateral can be withdrawn from
	// WithdrawableAt on, once OpenMatches is 0.
	Leaving        bool           `json:"leaving"`
	WithdrawableAt *time.Time     `json:"withdrawable_at,omitempty"`
	OpenMatches    uint64         `json:"open_matches"`
	Collateral     uint64         `json:"collateral"`
	Capacity       Resources      `json:"capacity"`
	Free           Resources      `json:"free"`
	Executors      []string       `json:"executors"`
	Offer          *Offer         `json:"offer,omitempty"`
	Running        int            `json:"running"`
	Jobs           map[string]int `json:"jobs"` // by state
	Earned         uint64         `json:"earned"`
	Slashed        uint64         `json:"slashed"`
	Reputation     uint32         `json:"reputation"` // per mille
	Performance    *Performance   `json:"performance,omitempty"`
	// Settlement, from the chain's record of this provider: what its
	// results hold until their challenge window ends (HeldJobs results),
	// what was released to it, what of its collateral was slashed, and
	// the challenges of its results it won and lost.
	Held           uint64 `json:"held"`
	HeldJobs       uint64 `json:"held_jobs"`
	Released       uint64 `json:"released"`
	SlashedTotal   uint64 `json:"slashed_total"`
	ChallengesWon  uint64 `json:"challenges_won"`
	ChallengesLost uint64 `json:"challenges_lost"`
}

// ChallengeRequest is POST /v1/jobs/{id}/challenge: "unavailable" (the
// result cannot be fetched) or "wrong" (a WASM result whose re-run gave
// another hash).
type ChallengeRequest struct {
	Kind string `json:"kind"`
}

// Challenge is the answer to POST /v1/jobs/{id}/challenge: the
// challenge committed with the deposit it locked, or why the chain
// refused it.
type Challenge struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Deposit uint64 `json:"deposit"` // at most this; the chain locks it for a full committee or less
	Status  string `json:"status"`  // committed or failed
	Error   string `json:"error,omitempty"`
}

// Event types of the SSE stream.
const (
	EventBlock = "block"
	EventJob   = "job"
)

// Event is one message of GET /v1/events. Type says which field is set.
type Event struct {
	Type  string `json:"type"`
	Block *Block `json:"block,omitempty"`
	Job   *Job   `json:"job,omitempty"`
}
