// Package svclife is a node's service lifecycle as a pure state machine:
// what the node does for the replicas it hosts as a provider (start and
// stop them, fetch the owner's receipts, claim, leave an unpaid lease) and
// for the services it owns (sign cumulative receipts for replicas that
// serve, report replicas that stopped, scale with load within the budget).
//
// Core.Step takes one Input — the node's view of a committed block (its
// provided leases, its running services), the outcome of a replica start,
// of a receipt fetch or of a transaction, a replica's health and usage as
// the owner's gateway measured it, a service's load, or a Tick — at a time
// given with each Step, and returns Actions. No goroutine, clock or I/O:
// the driver in package node executes the actions and feeds their outcomes
// back. The scripts in testdata/ specify it.
//
// The chain is the authority, read level-triggered: every Block input is
// the whole current view, so a missed block or a restart only delays an
// action, never loses it.
//
// May import: chain, wallet (their types only).
package svclife

import (
	"fmt"
	"slices"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/wallet"
)

// Config is the core's fixed configuration. Zero fields take defaults.
type Config struct {
	Self wallet.Address
	// ClaimEvery is how many receipted, unpaid periods a provider lets
	// build up before it claims (default 5); an ending lease claims at once.
	ClaimEvery uint64
	// MaxReceiptLag is how many served periods without the owner's receipt
	// a provider tolerates before it leaves the lease (default 3): what an
	// owner that never pays can take.
	MaxReceiptLag uint64
	// DownAfter is how long an owner's gateway must see a replica fail
	// before the owner reports it down (default 3s).
	DownAfter time.Duration
	// MinReceiptLag is the least time a provider waits for receipts
	// before it leaves, however short the period (default 30s).
	MinReceiptLag time.Duration
	// StartGrace is how long an owner lets a new replica that never
	// answered fail before it counts as failing (default 60s): starting a
	// replica (fetching and compiling its module) takes time, and the
	// periods meanwhile are paid like any other.
	StartGrace time.Duration
	// StartAttempts and StartBackoff: a provider retries a failed replica
	// start (default 3 attempts, 500ms·attempt apart), then leaves.
	StartAttempts int
	StartBackoff  time.Duration
	// Elastic is the scaling policy of owned services.
	Elastic Elastic
}

func (c Config) withDefaults() Config {
	if c.ClaimEvery == 0 {
		c.ClaimEvery = 5
	}
	if c.MaxReceiptLag == 0 {
		c.MaxReceiptLag = 3
	}
	if c.DownAfter <= 0 {
		c.DownAfter = 3 * time.Second
	}
	if c.MinReceiptLag <= 0 {
		c.MinReceiptLag = 30 * time.Second
	}
	if c.StartGrace <= 0 {
		c.StartGrace = 60 * time.Second
	}
	if c.StartAttempts <= 0 {
		c.StartAttempts = 3
	}
	if c.StartBackoff <= 0 {
		c.StartBackoff = 500 * time.Millisecond
	}
	c.Elastic = c.Elastic.withDefaults()
	return c
}

// Lease is what the core needs of a chain lease.
type Lease struct {
	ID        chain.LeaseID
	Service   chain.ServiceID
	Name      string
	OwnerPeer string // the owner's node (the payload's peer): receipts come from it
	Provider  wallet.Address
	Start     int64 // unix ms
	PeriodMs  int64
	Funded    uint64
	PaidFor   uint64
	Status    chain.LeaseStatus
}

// Service is what the core needs of an owned running service.
type Service struct {
	ID       chain.ServiceID
	Name     string
	Replicas uint32 // wanted
	Min, Max uint32
	Budget   uint64 // escrow not yet funding a period
	Price    uint64 // the most a replica costs per period
	PeriodMs int64
	Leases   []Lease // active
}

// Input is one event.
type Input interface{ isInput() }

// Block is the node's view after a committed block: the leases it
// provides (active and ending) and the services it owns (running).
type Block struct {
	Height   uint64
	Provided []Lease
	Owned    []Service
}

// Started is the outcome of a StartReplica.
type Started struct {
	Lease   chain.LeaseID
	Attempt int
	Err     error
}

// ReceiptFetched is the outcome of a FetchReceipt: the owner's newest
// receipt (signature already verified by the driver) or an error.
type ReceiptFetched struct {
	Lease   chain.LeaseID
	Receipt chain.ServiceReceipt
	Err     error
}

// TxDone is the outcome of a transaction the core asked for.
type TxDone struct {
	Lease chain.LeaseID // zero for a scale
	Kind  chain.Kind
	Err   error
}

// Usage is the owner's gateway's view of one replica: cumulative requests
// and bytes, and whether it answers (OK false: errors or timeouts only).
type Usage struct {
	Lease    chain.LeaseID
	Requests uint64
	Bytes    uint64
	OK       bool
}

// Load is the owner's gateway's view of one service's recent traffic.
type Load struct {
	Service chain.ServiceID
	P99     time.Duration
	// Outstanding is the mean number of requests in flight per replica.
	Outstanding float64
}

// Tick lets time pass: retries, receipt fetches, failure reports.
type Tick struct{}

func (Block) isInput()          {}
func (Started) isInput()        {}
func (ReceiptFetched) isInput() {}
func (TxDone) isInput()         {}
func (Usage) isInput()          {}
func (Load) isInput()           {}
func (Tick) isInput()           {}

// Action is one thing the driver must do.
type Action interface{ isAction() }

// StartReplica starts the lease's replica (fetching the module first).
type StartReplica struct {
	Lease   Lease
	Attempt int
}

// StopReplica stops a replica the node runs.
type StopReplica struct{ Lease chain.LeaseID }

// FetchReceipt asks the owner's node for its newest receipt of a lease.
type FetchReceipt struct {
	Lease chain.LeaseID
	From  string
}

// SendClaim sends a ServiceClaim with the receipt.
type SendClaim struct{ Receipt chain.ServiceReceipt }

// SendLeave sends a ServiceLeave.
type SendLeave struct {
	Lease  chain.LeaseID
	Reason string
}

// SignReceipt has the driver sign (with the owner's key) and keep the
// newest receipt of a lease, served to its provider on request.
type SignReceipt struct{ Receipt chain.ServiceReceipt }

// SendDown sends a ServiceDown for a replica that stopped serving.
type SendDown struct {
	Lease  chain.LeaseID
	Reason string
}

// SendScale sends a ServiceScale.
type SendScale struct {
	Service  chain.ServiceID
	Replicas uint32
	Reason   string
}

func (StartReplica) isAction() {}
func (StopReplica) isAction()  {}
func (FetchReceipt) isAction() {}
func (SendClaim) isAction()    {}
func (SendLeave) isAction()    {}
func (SignReceipt) isAction()  {}
func (SendDown) isAction()     {}
func (SendScale) isAction()    {}

// hosted is a lease this node provides.
type hosted struct {
	l        Lease
	running  bool
	starting bool
	attempt  int
	retryAt  time.Time
	best     chain.ServiceReceipt // newest receipt fetched
	fetching bool
	fetchAt  time.Time
	claiming bool
	leaving  bool
	stopped  bool
}

// owned is a lease of a service this node owns.
type owned struct {
	l            Lease
	ended        bool
	endedAt      int64 // unix ms the core saw it leave the active set
	failingSince time.Time
	answered     bool // the replica answered once
	downSent     bool
	requests     uint64
	bytes        uint64
	signed       uint64 // periods of the newest receipt signed
}

// Core is the service lifecycle state machine; the driver serialises
// Steps.
type Core struct {
	cfg      Config
	hosted   map[chain.LeaseID]*hosted
	owned    map[chain.LeaseID]*owned
	services map[chain.ServiceID]*svcState
}

type svcState struct {
	s       Service
	scaling bool
	ctl     scaleState
}

// New returns a core with nothing.
func New(cfg Config) *Core {
	return &Core{cfg: cfg.withDefaults(), hosted: map[chain.LeaseID]*hosted{}, owned: map[chain.LeaseID]*owned{}, services: map[chain.ServiceID]*svcState{}}
}

// Step applies one input at now and returns the actions, in order.
func (c *Core) Step(now time.Time, in Input) []Action {
	var out []Action
	switch in := in.(type) {
	case Block:
		out = c.block(now, in)
	case Started:
		h := c.hosted[in.Lease]
		if h == nil && in.Err == nil {
			// The lease settled while its replica was starting.
			return []Action{StopReplica{Lease: in.Lease}}
		}
		if h == nil || !h.starting || h.attempt != in.Attempt {
			return nil
		}
		h.starting = false
		if in.Err == nil {
			h.running = true
			if h.l.Status != chain.LeaseActive {
				h.running = false
				return []Action{StopReplica{Lease: h.l.ID}}
			}
			return nil
		}
		if h.attempt >= c.cfg.StartAttempts {
			h.leaving = true
			return []Action{SendLeave{Lease: h.l.ID, Reason: fmt.Sprintf("replica failed to start %d times: %v", h.attempt, in.Err)}}
		}
		h.retryAt = now.Add(time.Duration(h.attempt) * c.cfg.StartBackoff)
	case ReceiptFetched:
		h := c.hosted[in.Lease]
		if h == nil {
			return nil
		}
		h.fetching = false
		if in.Err == nil && in.Receipt.Lease == h.l.ID && in.Receipt.Periods > h.best.Periods {
			h.best = in.Receipt
		}
		out = c.provide(now, h)
	case TxDone:
		if h := c.hosted[in.Lease]; h != nil {
			switch in.Kind {
			case chain.KindServiceClaim:
				h.claiming = false // the next block shows what was paid
			case chain.KindServiceLeave:
				if in.Err != nil {
					h.leaving = false
				}
			}
		}
		if o := c.owned[in.Lease]; o != nil && in.Kind == chain.KindServiceDown && in.Err != nil {
			o.downSent = false
		}
		if in.Kind == chain.KindServiceScale {
			for _, s := range c.services {
				s.scaling = false
			}
		}
	case Usage:
		o := c.owned[in.Lease]
		if o == nil {
			return nil
		}
		o.requests, o.bytes = max(o.requests, in.Requests), max(o.bytes, in.Bytes)
		starting := !o.answered && now.Before(time.UnixMilli(o.l.Start).Add(c.cfg.StartGrace))
		switch {
		case in.OK:
			o.failingSince, o.answered = time.Time{}, true
		case starting:
			// not failing yet: still within its start grace
		case o.failingSince.IsZero():
			o.failingSince = now
		}
		out = c.own(now, o)
	case Load:
		s := c.services[in.Service]
		if s == nil || s.scaling {
			return nil
		}
		want, reason, ok := c.cfg.Elastic.decide(now, &s.ctl, &s.s, in)
		if ok {
			s.scaling = true
			out = append(out, SendScale{Service: s.s.ID, Replicas: want, Reason: reason})
		}
	case Tick:
		for _, id := range c.hostedIDs() {
			out = append(out, c.provide(now, c.hosted[id])...)
		}
		for _, id := range c.ownedIDs() {
			out = append(out, c.own(now, c.owned[id])...)
		}
	}
	return out
}

func (c *Core) hostedIDs() []chain.LeaseID {
	ids := make([]chain.LeaseID, 0, len(c.hosted))
	for id := range c.hosted {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b chain.LeaseID) int { return compareID(a, b) })
	return ids
}

func (c *Core) ownedIDs() []chain.LeaseID {
	ids := make([]chain.LeaseID, 0, len(c.owned))
	for id := range c.owned {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b chain.LeaseID) int { return compareID(a, b) })
	return ids
}

func compareID(a, b [32]byte) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

func (c *Core) block(now time.Time, b Block) []Action {
	var out []Action
	seen := map[chain.LeaseID]bool{}
	for _, l := range b.Provided {
		seen[l.ID] = true
		h := c.hosted[l.ID]
		if h == nil {
			h = &hosted{}
			c.hosted[l.ID] = h
		}
		h.l = l
	}
	for _, id := range c.hostedIDs() {
		h := c.hosted[id]
		if !seen[id] { // settled: nothing more to claim
			if h.running || h.starting {
				out = append(out, StopReplica{Lease: id})
			}
			delete(c.hosted, id)
			continue
		}
		out = append(out, c.provide(now, h)...)
	}

	active := map[chain.LeaseID]bool{}
	svcs := map[chain.ServiceID]bool{}
	for _, s := range b.Owned {
		svcs[s.ID] = true
		st := c.services[s.ID]
		if st == nil {
			st = &svcState{}
			c.services[s.ID] = st
		}
		if st.s.Replicas != s.Replicas {
			st.scaling = false
		}
		st.s = s
		for _, l := range s.Leases {
			active[l.ID] = true
			o := c.owned[l.ID]
			if o == nil {
				o = &owned{}
				c.owned[l.ID] = o
			}
			o.l = l
		}
	}
	for id := range c.services {
		if !svcs[id] {
			delete(c.services, id)
		}
	}
	for _, id := range c.ownedIDs() {
		o := c.owned[id]
		if !active[id] && !o.ended {
			o.ended, o.endedAt = true, now.UnixMilli()
		}
		// An ended lease's receipt is kept through the claim window.
		if o.ended && now.UnixMilli() > o.endedAt+chain.ServiceClaimPeriods*o.l.PeriodMs+o.l.PeriodMs {
			delete(c.owned, id)
			continue
		}
		out = append(out, c.own(now, o)...)
	}
	return out
}

// served is how many whole periods of l lie before t (unix ms), capped at
// the funded ones.
func served(l *Lease, t int64) uint64 {
	if t <= l.Start || l.PeriodMs <= 0 {
		return 0
	}
	return min(uint64((t-l.Start)/l.PeriodMs), l.Funded)
}

// provide is the provider's side for one hosted lease.
func (c *Core) provide(now time.Time, h *hosted) []Action {
	var out []Action
	ms := now.UnixMilli()
	if h.l.Status != chain.LeaseActive {
		if (h.running || h.starting) && !h.stopped {
			h.stopped, h.running, h.starting = true, false, false
			out = append(out, StopReplica{Lease: h.l.ID})
		}
	} else if !h.running && !h.starting && !h.leaving && !now.Before(h.retryAt) {
		h.starting = true
		h.attempt++
		out = append(out, StartReplica{Lease: h.l, Attempt: h.attempt})
	}
	// Receipts: fetched once a period while anything served is unreceipted.
	due := served(&h.l, ms)
	if h.l.Status == chain.LeaseEnding {
		due = h.l.Funded
	}
	if !h.fetching && h.best.Periods < due && !now.Before(h.fetchAt) && h.l.OwnerPeer != "" {
		h.fetching = true
		h.fetchAt = now.Add(time.Duration(max(h.l.PeriodMs/2, 500)) * time.Millisecond)
		out = append(out, FetchReceipt{Lease: h.l.ID, From: h.l.OwnerPeer})
	}
	claimable := min(h.best.Periods, h.l.Funded)
	if !h.claiming && claimable > h.l.PaidFor && (claimable-h.l.PaidFor >= c.cfg.ClaimEvery || h.l.Status == chain.LeaseEnding) {
		h.claiming = true
		out = append(out, SendClaim{Receipt: h.best})
	}
	lagged := due >= h.best.Periods+c.cfg.MaxReceiptLag &&
		ms-h.l.Start-int64(h.best.Periods)*h.l.PeriodMs >= c.cfg.MinReceiptLag.Milliseconds()
	if h.l.Status == chain.LeaseActive && !h.leaving && lagged {
		h.leaving = true
		out = append(out, SendLeave{Lease: h.l.ID, Reason: fmt.Sprintf("the owner receipted %d of %d served periods", h.best.Periods, due)})
	}
	return out
}

// own is the owner's side for one lease of its services.
func (c *Core) own(now time.Time, o *owned) []Action {
	var out []Action
	ms := now.UnixMilli()
	until := ms
	if o.ended {
		until = o.endedAt
	}
	if !o.failingSince.IsZero() {
		until = min(until, o.failingSince.UnixMilli())
		if !o.ended && !o.downSent && now.Sub(o.failingSince) >= c.cfg.DownAfter {
			o.downSent = true
			out = append(out, SendDown{Lease: o.l.ID, Reason: fmt.Sprintf("failing for %s", now.Sub(o.failingSince).Round(time.Millisecond))})
		}
	}
	p := served(&o.l, until)
	if p > o.signed {
		o.signed = p
		out = append(out, SignReceipt{Receipt: chain.ServiceReceipt{Lease: o.l.ID, Periods: p, Requests: o.requests, Bytes: o.bytes}})
	}
	return out
}
