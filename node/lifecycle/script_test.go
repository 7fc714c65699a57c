package lifecycle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/wallet"
	"github.com/cockroachdb/datadriven"
)

// The scripts in testdata/ drive one node's Core by hand and print every
// action it returns; `go test -rewrite` rewrites the expected output. Jobs,
// keys and result hashes are named; time is virtual and starts at t0.
// Commands:
//
//	config [provider]                  a new core; provider: it runs jobs matched to it ("me")
//	submit job=J [matchby=D] [image]   the client submits J (a payload by hash, or an image)
//	restore job=J state=S [result=R] [failed]  J read from disk at start, in state S
//	match job=J provider=me|P [timeout=D] [grace=D]  a block matching J (a new bid of client "c" if J is not ours)
//	completed|failed job=J [result=R] [exit=N] [paid=N] [refunded=N]  a block settling J
//	timedout job=J [refunded=N] [slashed=N]  a block timing J out
//	cancelled job=J                    a block cancelling J's bid
//	block                              an empty block (bids past match-by expire)
//	advance D                          virtual time passes (no input)
//	tick                               a Tick
//	explained job=J summary=S          the driver's explanation of an expired bid
//	fetched job=J attempt=N [size=N] [err=E]  a result fetch's outcome
//	cancel-confirmed job=J             the client's BidCancel committed
//	persist-failed job=J err=E         a job record was not written
//	payload job=J attempt=N [err=E]    a payload fetch's outcome
//	ran job=J [exit=N] [result=R] [err=E]  a run's outcome
//	sent job=J [err=E]                 the Result transaction's outcome
//	resume job=J                       a restarted provider's open match J
//	released job=J amount=N [provider=me]  a block releasing J's held payment
//	challenged job=J kind=unavailable|wrong committee=A,B [size=N] [result=R]  a block opening a challenge of J
//	challenge-failed job=J kind=unavailable|wrong [provider=me]  a block where the committee sided with the provider
//	withheld|wrong job=J refunded=N slashed=N [heldpay=N] [provider=me]  a block where the provider lost a challenge
//	challenge-sent job=J [err=E]       the client's Challenge transaction's outcome
//	attest-fetched job=J attempt=N [err=E]  a committee member's fetch outcome
//	reexecuted job=J [result=R] [err=E]  a referee's re-execution outcome
//	job J                              print client job J
//	provider                           print the provider's jobs by state and totals
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := newScript()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return s.run(t, d)
		})
	})
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type script struct {
	core    *Core
	now     time.Time
	height  uint64
	keys    map[string]wallet.PrivateKey
	bids    map[string]*market.Bid
	names   map[string]string // hex id or hash → name
	matches map[string]*market.Match
}

func newScript() *script {
	return &script{now: t0, keys: map[string]wallet.PrivateKey{}, bids: map[string]*market.Bid{},
		names: map[string]string{strings.Repeat("0", 64): "none"}, matches: map[string]*market.Match{}, core: New(Config{})}
}

func (s *script) key(name string) wallet.PrivateKey {
	if k, ok := s.keys[name]; ok {
		return k
	}
	seed := sha256.Sum256([]byte("key " + name))
	k, err := wallet.KeyFromSeed(seed[:])
	if err != nil {
		panic(err)
	}
	s.keys[name] = k
	return k
}

func (s *script) hash(name string) [32]byte {
	h := sha256.Sum256([]byte(name))
	s.names[fmt.Sprintf("%x", h)] = name
	return h
}

func (s *script) bid(job, client string, matchBy time.Duration, image bool, timeout ...time.Duration) *market.Bid {
	if b, ok := s.bids[job]; ok {
		return b
	}
	b := &market.Bid{Client: s.key(client).Public(), Nonce: uint64(len(s.bids) + 1), Executor: "wasm",
		Resources: market.Resources{CPU: 1000, MemMiB: 64}, MaxPrice: 10, MatchBy: s.now.Add(matchBy).UnixMilli(),
		TimeoutMs: 5000, Replicas: 1}
	if len(timeout) > 0 {
		b.TimeoutMs = timeout[0].Milliseconds()
	}
	if image {
		b.Payload = market.Payload{Image: "example/" + job}
	} else {
		h := s.hash("payload " + job)
		b.Payload = market.Payload{SHA256: h[:], Size: 100, Peer: "peer-" + client}
	}
	s.bids[job] = b
	id := b.ID()
	s.names[hexID(id)] = job
	return b
}

func (s *script) id(t testing.TB, d *datadriven.TestData) (string, market.BidID) {
	var job string
	d.ScanArgs(t, "job", &job)
	b, ok := s.bids[job]
	if !ok {
		t.Fatalf("%s: no job %s", d.Pos, job)
	}
	return job, b.ID()
}

func dur(t testing.TB, d *datadriven.TestData, key string, def time.Duration) time.Duration {
	var v string
	if !d.MaybeScanArgs(t, key, &v) {
		return def
	}
	x, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %s: %v", d.Pos, key, err)
	}
	return x
}

func num(t testing.TB, d *datadriven.TestData, key string) uint64 {
	var v uint64
	d.MaybeScanArgs(t, key, &v)
	return v
}

func errArg(t testing.TB, d *datadriven.TestData) error {
	var e string
	if d.MaybeScanArgs(t, "err", &e) {
		return errors.New(strings.ReplaceAll(e, "-", " "))
	}
	return nil
}

func (s *script) step(in Input) string {
	return s.render(s.core.Step(s.now, in))
}

func (s *script) block(evs ...Event) string {
	s.height++
	for i := range evs {
		evs[i].Height = s.height
	}
	return s.step(Block{Height: s.height, Time: s.now.UnixMilli(), Events: evs})
}

func (s *script) run(t testing.TB, d *datadriven.TestData) string {
	switch d.Cmd {
	case "config":
		s.core = New(Config{Self: s.key("me").Address(), Provider: d.HasArg("provider")})
		return ""
	case "submit":
		var job string
		d.ScanArgs(t, "job", &job)
		b := s.bid(job, "me", dur(t, d, "matchby", 10*time.Second), d.HasArg("image"))
		raw, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		id := hexID(b.ID())
		return s.step(Submit{Job: ClientJob{Job: api.Job{ID: id, State: api.StateBidding, SubmittedAt: s.now,
			UpdatedAt: s.now, BidID: id}, BidRaw: raw, Bid: b}})
	case "restore":
		var job, state, result string
		d.ScanArgs(t, "job", &job)
		d.ScanArgs(t, "state", &state)
		b := s.bid(job, "me", 10*time.Second, false)
		id := hexID(b.ID())
		j := ClientJob{Job: api.Job{ID: id, State: state, SubmittedAt: s.now, UpdatedAt: s.now, BidID: id},
			Bid: b, ProviderPeer: "peer-p1", RunFailed: d.HasArg("failed")}
		if d.MaybeScanArgs(t, "result", &result) {
			h := s.hash(result)
			j.ResultHash = fmt.Sprintf("%x", h)
		}
		return s.step(Restore{Jobs: []ClientJob{j}})
	case "match":
		var job, prov string
		d.ScanArgs(t, "job", &job)
		d.ScanArgs(t, "provider", &prov)
		b := s.bid(job, "c", 10*time.Second, d.HasArg("image"), dur(t, d, "timeout", 5*time.Second))
		if d.HasArg("manifest") && len(b.Payload.Manifest) == 0 {
			h := s.hash("manifest " + job)
			b.Payload.Manifest, b.Payload.Peer = h[:], "peer-c"
			s.names[hexID(b.ID())] = job
		}
		mt := &market.Match{Offer: market.Offer{Provider: s.key(prov).Public(), PeerID: "peer-" + prov}, Bid: *b, Price: 7}
		s.names[mt.Offer.ProviderAddress().String()] = prov
		s.matches[job] = mt
		deadline := mt.ResultDeadline(s.now.UnixMilli(), dur(t, d, "grace", 2*time.Second).Milliseconds())
		return s.block(Event{Kind: Matched, JobID: b.ID(), Match: mt, Deadline: deadline, MatchedAt: s.now.UnixMilli()})
	case "completed", "failed":
		_, id := s.id(t, d)
		var result string
		ev := Event{Kind: Completed, JobID: id, ExitCode: int32(num(t, d, "exit")), Paid: num(t, d, "paid"),
			Refunded: num(t, d, "refunded"), Amount: num(t, d, "paid")}
		if d.Cmd == "failed" {
			ev.Kind = Failed
		}
		if d.MaybeScanArgs(t, "result", &result) {
			ev.ResultHash = s.hash(result)
		}
		return s.block(ev)
	case "unavailable":
		_, id := s.id(t, d)
		return s.block(Event{Kind: Unavailable, JobID: id, Refunded: num(t, d, "refunded"), Burned: num(t, d, "fee")})
	case "unavailable-sent":
		_, id := s.id(t, d)
		return s.step(UnavailableSent{ID: id, Err: errArg(t, d)})
	case "timedout":
		_, id := s.id(t, d)
		return s.block(Event{Kind: TimedOut, JobID: id, Refunded: num(t, d, "refunded"), Slashed: num(t, d, "slashed"),
			Amount: num(t, d, "slashed")})
	case "cancelled":
		_, id := s.id(t, d)
		return s.block(Event{Kind: Cancelled, JobID: id})
	case "block":
		return s.block()
	case "advance":
		x, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			t.Fatal(err)
		}
		s.now = s.now.Add(x)
		return fmt.Sprintf("now t0+%s", s.now.Sub(t0))
	case "tick":
		return s.step(Tick{})
	case "explained":
		_, id := s.id(t, d)
		var summary string
		d.ScanArgs(t, "summary", &summary)
		return s.step(Explained{ID: hexID(id), Summary: strings.ReplaceAll(summary, "-", " ")})
	case "fetched":
		_, id := s.id(t, d)
		return s.step(ResultFetched{ID: hexID(id), Attempt: int(num(t, d, "attempt")), Size: int64(num(t, d, "size")), Err: errArg(t, d)})
	case "cancel-confirmed":
		_, id := s.id(t, d)
		return s.step(CancelConfirmed{ID: hexID(id)})
	case "persist-failed":
		_, id := s.id(t, d)
		return s.step(PersistFailed{ID: hexID(id), Err: errArg(t, d)})
	case "payload":
		_, id := s.id(t, d)
		return s.step(PayloadFetched{ID: id, Attempt: int(num(t, d, "attempt")), Err: errArg(t, d)})
	case "ran":
		_, id := s.id(t, d)
		var result string
		r := chain.ResultTx{JobID: id, ExitCode: int32(num(t, d, "exit"))}
		if d.MaybeScanArgs(t, "result", &result) {
			r.ResultHash = s.hash(result)
		}
		return s.step(RunFinished{Result: r, Err: errArg(t, d)})
	case "sent":
		_, id := s.id(t, d)
		return s.step(ResultSent{ID: id, Err: errArg(t, d)})
	case "resume":
		var job string
		d.ScanArgs(t, "job", &job)
		b := s.bid(job, "c", 10*time.Second, false)
		mt := &market.Match{Offer: market.Offer{Provider: s.key("me").Public(), PeerID: "peer-me"}, Bid: *b, Price: 7}
		return s.step(Resume{Open: []OpenMatch{{Match: *mt, Deadline: mt.ResultDeadline(s.now.UnixMilli(), 2000), MatchedAt: s.now.UnixMilli()}}})
	case "released", "challenged", "challenge-failed", "withheld", "wrong":
		job, id := s.id(t, d)
		ev := Event{JobID: id, Amount: num(t, d, "amount"), Refunded: num(t, d, "refunded"), Slashed: num(t, d, "slashed"), HeldPay: num(t, d, "heldpay")}
		var prov, kind, committee, result string
		if d.MaybeScanArgs(t, "provider", &prov) {
			ev.Provider = s.key(prov).Address()
		}
		if d.Cmd == "withheld" || d.Cmd == "wrong" {
			ev.Amount = ev.Slashed
		}
		if d.MaybeScanArgs(t, "result", &result) {
			ev.ResultHash = s.hash(result)
		}
		if d.MaybeScanArgs(t, "kind", &kind) {
			ev.Challenge = &ChallengeInfo{Kind: chain.ChallengeUnavailable, ProviderPeer: "peer-p1", Size: num(t, d, "size")}
			if kind == "wrong" {
				ev.Challenge.Kind = chain.ChallengeWrong
			}
			if d.MaybeScanArgs(t, "committee", &committee) {
				for _, n := range strings.Split(committee, ",") {
					ev.Challenge.Committee = append(ev.Challenge.Committee, s.key(n).Address())
				}
			}
		}
		ev.Match = s.matches[job]
		ev.Kind = map[string]EventKind{"released": Released, "challenged": Challenged, "challenge-failed": ChallengeFailed,
			"withheld": Withheld, "wrong": WrongResult}[d.Cmd]
		return s.block(ev)
	case "challenge-sent":
		_, id := s.id(t, d)
		return s.step(ChallengeSent{ID: id, Err: errArg(t, d)})
	case "attest-fetched":
		_, id := s.id(t, d)
		return s.step(AttestFetched{ID: id, Attempt: int(num(t, d, "attempt")), Err: errArg(t, d)})
	case "reexecuted":
		_, id := s.id(t, d)
		var result string
		in := Reexecuted{ID: id, Err: errArg(t, d)}
		if d.MaybeScanArgs(t, "result", &result) {
			in.Hash = s.hash(result)
		}
		return s.step(in)
	case "job":
		b, ok := s.bids[d.CmdArgs[0].Key]
		if !ok {
			t.Fatalf("%s: no job %s", d.Pos, d.CmdArgs[0].Key)
		}
		j, ok := s.core.Job(hexID(b.ID()))
		if !ok {
			return "no such job"
		}
		return s.jobLine(j.Job)
	case "provider":
		by, earned, slashed := s.core.ProviderJobs()
		var parts []string
		for st, k := range by {
			parts = append(parts, fmt.Sprintf("%s=%d", st, k))
		}
		sort.Strings(parts)
		tot := s.core.Totals()
		return fmt.Sprintf("jobs %s; records %d; earned %d slashed %d held %d; challenges won %d lost %d", strings.Join(parts, " "),
			s.core.OpenProviderJobs(), earned, slashed, tot.Held, tot.ChallengesWon, tot.ChallengesLost)
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}

func (s *script) name(hexOrAddr string) string {
	if n, ok := s.names[hexOrAddr]; ok {
		return n
	}
	return hexOrAddr
}

func (s *script) jobLine(j api.Job) string {
	out := fmt.Sprintf("%s %s", s.name(j.ID), j.State)
	if j.Provider != "" {
		out += " provider=" + s.name(j.Provider)
	}
	if j.Escrowed != 0 {
		out += fmt.Sprintf(" escrowed=%d", j.Escrowed)
	}
	if j.ResultHash != "" {
		out += " result=" + s.name(j.ResultHash)
	}
	if j.ExitCode != nil {
		out += fmt.Sprintf(" exit=%d", *j.ExitCode)
	}
	if j.Paid+j.Refunded+j.Slashed != 0 {
		out += fmt.Sprintf(" paid=%d refunded=%d slashed=%d", j.Paid, j.Refunded, j.Slashed)
	}
	if j.ResultSize != 0 {
		out += fmt.Sprintf(" size=%d", j.ResultSize)
	}
	if j.Error != "" {
		out += " error=" + j.Error
	}
	return out
}

func (s *script) render(acts []Action) string {
	var out []string
	for _, a := range acts {
		var l string
		switch a := a.(type) {
		case Persist:
			l = "persist " + s.jobLine(a.Job.Job)
		case Publish:
			l = "publish " + s.name(a.Job.ID) + " " + a.Job.State
		case Explain:
			l = "explain " + s.name(a.ID)
		case FetchResult:
			l = fmt.Sprintf("fetch-result %s hash=%s from=%s attempt=%d after=%s", s.name(a.ID), s.name(fmt.Sprintf("%x", a.Hash)), a.Peer, a.Attempt, a.After)
		case FetchPayload:
			hash := "none"
			if a.Hash != ([32]byte{}) {
				hash = s.name(fmt.Sprintf("%x", a.Hash))
			}
			l = fmt.Sprintf("fetch-payload %s hash=%s from=%s attempt=%d after=%s", s.name(hexID(a.ID)), hash, a.From, a.Attempt, a.After)
			if a.Manifest != ([32]byte{}) {
				l += " manifest=" + s.name(fmt.Sprintf("%x", a.Manifest))
			}
		case Run:
			l = fmt.Sprintf("run %s verified=%t", s.name(hexID(a.Match.Bid.ID())), a.PayloadVerified)
		case CancelRun:
			l = fmt.Sprintf("cancel-run %s: %s", s.name(hexID(a.ID)), a.Reason)
		case SendUnavailable:
			l = fmt.Sprintf("send-unavailable %s: %s", s.name(hexID(a.ID)), a.Reason)
		case SendResult:
			l = fmt.Sprintf("send-result %s exit=%d result=%s", s.name(hexID(a.Result.JobID)), a.Result.ExitCode, s.name(fmt.Sprintf("%x", a.Result.ResultHash)))
		case SendAck:
			l = "send-ack " + s.name(hexID(a.ID))
		case SendChallenge:
			l = fmt.Sprintf("send-challenge %s kind=%s: %s", s.name(hexID(a.ID)), a.Kind, a.Reason)
		case FetchAttest:
			l = fmt.Sprintf("fetch-attest %s hash=%s from=%s size=%d attempt=%d after=%s", s.name(hexID(a.ID)), s.name(fmt.Sprintf("%x", a.Hash)), a.Peer, a.Size, a.Attempt, a.After)
		case Reexecute:
			l = "reexecute " + s.name(hexID(a.Match.Bid.ID()))
		case SendAttest:
			l = fmt.Sprintf("send-attest %s hash=%s", s.name(hexID(a.ID)), s.name(fmt.Sprintf("%x", a.Hash)))
		case Note:
			l = fmt.Sprintf("note %s %s: %s", strings.ToLower(a.Level.String()), s.name(a.Job), a.Msg)
		default:
			l = fmt.Sprintf("%T %+v", a, a)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n")
}
