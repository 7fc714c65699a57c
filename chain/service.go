package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// Services on chain.
//
// A ServiceOpen moves the client's budget into escrow and records a
// Service: a spec (one replica's executor, payload, resources and
// constraints, the billing period and the most the client pays one
// replica per period), the replica bounds and the wanted count. The block
// proposer places replicas (ServicePlace, like a Match: proposer signed,
// refused ones make the block invalid) while a service has fewer active
// leases than it wants. A Lease funds one period at a time from the
// service's budget (at placement, then at every period boundary, from the
// svcdue/ index, at most MaxServiceDuePerBlock per block); a lease whose
// service cannot fund its next period ends ("budget exhausted").
//
// Payment follows receipts: the service owner's node signs one cumulative
// ServiceReceipt per lease (periods served so far, requests, bytes), and
// the provider claims with the newest one whenever it likes (ServiceClaim:
// a transaction per lease per claim, never per request), paid Price for
// every funded period the receipt covers beyond those already paid. A
// lease ends when the owner closes the service or scales it down (the
// owner's own transaction stands for a receipt: every funded period is
// paid at once), when the owner reports the replica down (ServiceDown),
// when the provider leaves it (ServiceLeave), or when the budget runs
// out. The last three keep the lease's unpaid escrow for a claim window
// of ServiceClaimPeriods periods, for the provider's last claim, then
// refund it to the owner. A lease that ends while its service wants more
// replicas makes the next proposer place a replacement. chain/RATIONALE.md
// says what each party risks.

// MsgTypeServiceReceipt is the signature domain of a ServiceReceipt.
const MsgTypeServiceReceipt = "bourse/svc-receipt/1"

// Bounds of services.
const (
	MaxServiceReplicas  = 16                  // most replicas a service may want
	MinServicePeriodMs  = 1000                // shortest billing period
	MaxServicePeriodMs  = 24 * 60 * 60 * 1000 // longest billing period
	MaxServiceNameLen   = 63                  // a DNS label
	ServiceClaimPeriods = 3                   // claim window after a lease ends, in periods
)

// MaxServiceDuePerBlock bounds the lease period steps (funding the next
// period, ending a lease whose budget ran out, refunding after a claim
// window) one block performs; the rest are done by the next blocks,
// earliest first, as MaxTimeoutsPerBlock does for matches.
var MaxServiceDuePerBlock = 1024

// ServiceID identifies a service: sha256("bourse/service/1" || owner
// address || the nonce of its ServiceOpen), so the client knows it before
// the transaction is committed.
type ServiceID [32]byte

// LeaseID identifies one replica lease: sha256("bourse/lease/1" ||
// service id || seq, 4 bytes big endian).
type LeaseID [32]byte

// String is lowercase hex.
func (id ServiceID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the id as hex.
func (id ServiceID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses hex.
func (id *ServiceID) UnmarshalText(b []byte) error {
	return parseID32("service id", string(b), (*[32]byte)(id))
}

// String is lowercase hex.
func (id LeaseID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the id as hex.
func (id LeaseID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses hex.
func (id *LeaseID) UnmarshalText(b []byte) error {
	return parseID32("lease id", string(b), (*[32]byte)(id))
}

func parseID32(what, s string, out *[32]byte) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("parse %s %.80q: want 64 hex characters", what, s)
	}
	copy(out[:], b)
	return nil
}

// NewServiceID is the id of the service opened by owner's transaction
// with nonce.
func NewServiceID(owner wallet.Address, nonce uint64) ServiceID {
	h := sha256.New()
	h.Write([]byte("bourse/service/1"))
	h.Write(owner[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], nonce)
	h.Write(n[:])
	return ServiceID(h.Sum(nil))
}

// NewLeaseID is the id of lease seq of service s.
func NewLeaseID(s ServiceID, seq uint32) LeaseID {
	h := sha256.New()
	h.Write([]byte("bourse/lease/1"))
	h.Write(s[:])
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], seq)
	h.Write(n[:])
	return LeaseID(h.Sum(nil))
}

// ServiceSpec is what every replica of a service runs on and what it may
// cost. The market fields mean what they mean in a market.Bid.
type ServiceSpec struct {
	Name      string           `cbor:"1,keyasint" json:"name"` // DNS label, unique among the owner's open services
	Executor  string           `cbor:"2,keyasint" json:"executor"`
	Payload   market.Payload   `cbor:"3,keyasint" json:"payload"`
	Args      []string         `cbor:"4,keyasint,omitempty" json:"args,omitempty"`
	Env       []string         `cbor:"5,keyasint,omitempty" json:"env,omitempty"`
	Resources market.Resources `cbor:"6,keyasint" json:"resources"` // per replica
	// MinReplicas ≤ MaxReplicas ≤ MaxServiceReplicas bound the wanted
	// replica count (ServiceScale).
	MinReplicas uint32 `cbor:"7,keyasint" json:"min_replicas"`
	MaxReplicas uint32 `cbor:"8,keyasint" json:"max_replicas"`
	// MaxPricePerPeriod is the most one replica may cost per period: an
	// offer whose terms price the resources for one period above it
	// cannot host a replica.
	MaxPricePerPeriod uint64             `cbor:"9,keyasint" json:"max_price_per_period"`
	PeriodMs          int64              `cbor:"10,keyasint" json:"period_ms"`
	Constraints       market.Constraints `cbor:"11,keyasint,omitempty" json:"constraints"`
	Preference        string             `cbor:"12,keyasint" json:"preference"`
	Near              []string           `cbor:"13,keyasint,omitempty" json:"near,omitempty"`
}

// Need is the unsigned market bid one replica of the service places (see
// market.CheckPlacement), valid at now.
func (s *ServiceSpec) Need(owner wallet.PublicKey, now int64) market.Bid {
	return market.Bid{Client: owner, Executor: s.Executor, Payload: s.Payload,
		Resources: s.Resources, MaxPrice: s.MaxPricePerPeriod, MatchBy: now + 1, TimeoutMs: s.PeriodMs,
		Constraints: s.Constraints, Preference: s.Preference, Near: s.Near, Replicas: 1}
}

// Validate checks the spec without chain state: every bid field as
// market.Bid.Validate checks it, a DNS-label name, the replica bounds and
// the period bounds.
func (s *ServiceSpec) Validate() error {
	if err := validServiceName(s.Name); err != nil {
		return err
	}
	switch {
	case s.Executor != market.ExecWASM && s.Executor != market.ExecDocker:
		return fmt.Errorf("service %s: executor %.20q: services run wasm or docker", s.Name, s.Executor)
	case s.Executor == market.ExecDocker && (s.Payload.Image == "" || len(s.Payload.SHA256) == 0):
		return fmt.Errorf("service %s: a docker service names its image by ID and sends its tarball as the payload", s.Name)
	case s.MinReplicas == 0:
		return fmt.Errorf("service %s: min_replicas must be at least 1", s.Name)
	case s.MaxReplicas < s.MinReplicas:
		return fmt.Errorf("service %s: max_replicas %d below min_replicas %d", s.Name, s.MaxReplicas, s.MinReplicas)
	case s.MaxReplicas > MaxServiceReplicas:
		return fmt.Errorf("service %s: max_replicas %d exceeds %d", s.Name, s.MaxReplicas, MaxServiceReplicas)
	case s.PeriodMs < MinServicePeriodMs || s.PeriodMs > MaxServicePeriodMs:
		return fmt.Errorf("service %s: period_ms %d not in %d..%d", s.Name, s.PeriodMs, MinServicePeriodMs, MaxServicePeriodMs)
	}
	need := s.Need(wallet.PublicKey{1}, 0)
	if err := need.Validate(0); err != nil {
		return fmt.Errorf("service %s: %w", s.Name, err)
	}
	if err := market.ValidateStrings("service.args", s.Args, false); err != nil {
		return fmt.Errorf("service %s: %w", s.Name, err)
	}
	if err := market.ValidateStrings("service.env", s.Env, true); err != nil {
		return fmt.Errorf("service %s: %w", s.Name, err)
	}
	return nil
}

func validServiceName(n string) error {
	if n == "" || len(n) > MaxServiceNameLen {
		return fmt.Errorf("service name %.70q: must be 1..%d characters", n, MaxServiceNameLen)
	}
	for i, c := range []byte(n) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' && i > 0 || c == '-' && i > 0 && i < len(n)-1
		if !ok {
			return fmt.Errorf("service name %.70q: lowercase letters, digits and inner hyphens, starting with a letter", n)
		}
	}
	return nil
}

// ServiceOpen deploys a service: Budget leaves the sender's balance into
// escrow (at least one period of MinReplicas replicas at
// MaxPricePerPeriod), and the proposers place Replicas replicas
// (MinReplicas when 0).
type ServiceOpen struct {
	Spec     ServiceSpec `cbor:"1,keyasint"`
	Budget   uint64      `cbor:"2,keyasint"`
	Replicas uint32      `cbor:"3,keyasint,omitempty"`
}

// ServiceScale sets how many replicas the sender's service wants, within
// its bounds. Scaling down ends the newest leases at once, paying their
// funded periods.
type ServiceScale struct {
	Service  ServiceID `cbor:"1,keyasint"`
	Replicas uint32    `cbor:"2,keyasint"`
}

// ServiceClose ends the sender's service: every active lease is paid its
// funded periods and ends, the unspent budget is refunded.
type ServiceClose struct {
	Service ServiceID `cbor:"1,keyasint"`
}

// ServicePlace is the block proposer's placement of one replica of
// Service on Offer at Price per period (market.CheckPlacement's price).
// Like a Match it needs no fee, and one that fails makes the block
// invalid.
type ServicePlace struct {
	Service ServiceID    `cbor:"1,keyasint"`
	Offer   market.Offer `cbor:"2,keyasint"`
	Price   uint64       `cbor:"3,keyasint"`
}

// ServiceClaim is a lease provider's claim for the periods Receipt (signed
// by the service's owner) covers.
type ServiceClaim struct {
	Receipt ServiceReceipt `cbor:"1,keyasint"`
}

// ServiceDown is the service owner's report that a lease's replica stopped
// serving: the lease ends (its provider may still claim what the owner
// receipted) and the next proposer places a replacement.
type ServiceDown struct {
	Lease LeaseID `cbor:"1,keyasint"`
}

// ServiceLeave is a lease provider ending its lease (it stops serving, or
// the owner stopped signing receipts); a replacement is placed.
type ServiceLeave struct {
	Lease LeaseID `cbor:"1,keyasint"`
}

// ServiceReceipt is the owner's signed statement that Lease's replica
// served Periods periods since its start (cumulative: a newer receipt
// supersedes older ones), with the request and byte counts its gateway
// measured, for audit.
type ServiceReceipt struct {
	Lease    LeaseID `cbor:"1,keyasint" json:"lease"`
	Periods  uint64  `cbor:"2,keyasint" json:"periods"`
	Requests uint64  `cbor:"3,keyasint,omitempty" json:"requests"`
	Bytes    uint64  `cbor:"4,keyasint,omitempty" json:"bytes"`
	Sig      []byte  `cbor:"5,keyasint,omitempty" json:"sig,omitempty"`
}

// SignBytes is the canonical encoding without the signature.
func (r *ServiceReceipt) SignBytes() []byte {
	c := *r
	c.Sig = nil
	return codec.MustMarshal(&c)
}

// Sign signs the receipt with the owner's key for chainID.
func (r *ServiceReceipt) Sign(chainID string, key wallet.PrivateKey) {
	r.Sig = key.Sign(chainID, MsgTypeServiceReceipt, r.SignBytes())
}

// Verify checks the receipt's signature by owner for chainID.
func (r *ServiceReceipt) Verify(chainID string, owner wallet.PublicKey) bool {
	return wallet.Verify(owner, chainID, MsgTypeServiceReceipt, r.SignBytes(), r.Sig)
}

// ServiceStatus is where a service stands.
type ServiceStatus uint8

// Service statuses.
const (
	ServiceRunning   ServiceStatus = iota + 1
	ServiceClosed                  // closed by its owner
	ServiceExhausted               // its budget could not fund a replica any more
)

func (s ServiceStatus) String() string {
	switch s {
	case ServiceRunning:
		return "running"
	case ServiceClosed:
		return "closed"
	case ServiceExhausted:
		return "exhausted"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// MarshalText writes the name.
func (s ServiceStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Service is the chain's record of a service. It stays after the service
// ends, for audit.
type Service struct {
	ID       ServiceID        `cbor:"1,keyasint" json:"id"`
	Owner    wallet.PublicKey `cbor:"2,keyasint" json:"owner_key"`
	Spec     ServiceSpec      `cbor:"3,keyasint" json:"spec"`
	Replicas uint32           `cbor:"4,keyasint" json:"replicas"` // wanted
	Active   uint32           `cbor:"5,keyasint" json:"active"`   // active leases
	Budget   uint64           `cbor:"6,keyasint" json:"budget"`   // escrow not yet funding a period
	Status   ServiceStatus    `cbor:"7,keyasint" json:"status"`
	OpenedAt int64            `cbor:"8,keyasint" json:"opened_at"`
	Height   uint64           `cbor:"9,keyasint" json:"height"`
	NextSeq  uint32           `cbor:"10,keyasint" json:"next_seq"`
	Paid     uint64           `cbor:"11,keyasint,omitempty" json:"paid"`     // to providers, all leases
	Refunded uint64           `cbor:"12,keyasint,omitempty" json:"refunded"` // to the owner
	ClosedAt int64            `cbor:"13,keyasint,omitempty" json:"closed_at,omitempty"`
	Failures uint32           `cbor:"14,keyasint,omitempty" json:"failures"` // leases ended down or left
}

// OwnerAddress is the owner's account.
func (s *Service) OwnerAddress() wallet.Address { return s.Owner.Address() }

// LeaseStatus is where a lease stands.
type LeaseStatus uint8

// Lease statuses.
const (
	LeaseActive  LeaseStatus = iota + 1
	LeaseEnding              // ended; its provider may claim until Due, then the rest is refunded
	LeaseSettled             // nothing held any more
)

func (s LeaseStatus) String() string {
	switch s {
	case LeaseActive:
		return "active"
	case LeaseEnding:
		return "ending"
	case LeaseSettled:
		return "settled"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// MarshalText writes the name.
func (s LeaseStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Why leases end.
const (
	EndClosed   = "closed"           // the owner closed the service
	EndScaled   = "scaled_down"      // the owner scaled the service down
	EndDown     = "down"             // the owner reported the replica down
	EndLeft     = "left"             // the provider left
	EndBudget   = "budget_exhausted" // the next period could not be funded
	EndProvider = "provider_gone"    // reserved
)

// Lease is one replica of a service on one provider.
type Lease struct {
	ID       LeaseID          `cbor:"1,keyasint" json:"id"`
	Service  ServiceID        `cbor:"2,keyasint" json:"service"`
	Seq      uint32           `cbor:"3,keyasint" json:"seq"`
	Offer    market.Offer     `cbor:"4,keyasint" json:"offer"` // as placed: provider key, peer id, region, terms
	Price    uint64           `cbor:"5,keyasint" json:"price"` // per period
	Start    int64            `cbor:"6,keyasint" json:"start"`
	PeriodMs int64            `cbor:"7,keyasint" json:"period_ms"`
	Funded   uint64           `cbor:"8,keyasint" json:"funded"` // periods funded from the budget
	PaidFor  uint64           `cbor:"9,keyasint,omitempty" json:"paid_periods"`
	Held     uint64           `cbor:"10,keyasint,omitempty" json:"held"` // escrow: funded, not yet paid or refunded
	Status   LeaseStatus      `cbor:"11,keyasint" json:"status"`
	Due      int64            `cbor:"12,keyasint" json:"due"` // next step in svcdue/ (0 once settled)
	Ended    string           `cbor:"13,keyasint,omitempty" json:"end_reason,omitempty"`
	EndedAt  int64            `cbor:"14,keyasint,omitempty" json:"ended_at,omitempty"`
	Paid     uint64           `cbor:"15,keyasint,omitempty" json:"paid"`
	Refunded uint64           `cbor:"16,keyasint,omitempty" json:"refunded"`
	Requests uint64           `cbor:"17,keyasint,omitempty" json:"requests"`
	Bytes    uint64           `cbor:"18,keyasint,omitempty" json:"bytes"`
	Res      market.Resources `cbor:"19,keyasint" json:"resources"`
}

// ProviderAddress is the lease's provider.
func (l *Lease) ProviderAddress() wallet.Address { return l.Offer.ProviderAddress() }

// Service state keys.
const (
	pfxService  = "svc/"     // + service id → Service
	pfxSvcName  = "svcname/" // + owner address + name → service id, open services only
	pfxLease    = "lease/"   // + lease id → Lease
	pfxSvcLease = "svcls/"   // + service id + seq (4 bytes BE) → lease id, every lease
	pfxSvcAct   = "svcact/"  // + service id + seq (4 bytes BE) → lease id, active leases
	pfxSvcDue   = "svcdue/"  // + time (8 bytes BE) + lease id → true: active and ending leases
	pfxSvcNeed  = "svcneed/" // + service id → true: running services with fewer active leases than wanted
	pfxLsProv   = "lsprov/"  // + provider address + lease id → true: its active and ending leases
)

func lsProvKey(l *Lease) string {
	a := l.ProviderAddress()
	return pfxLsProv + string(a[:]) + string(l.ID[:])
}

func seqKey(prefix string, s ServiceID, seq uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], seq)
	return prefix + string(s[:]) + string(b[:])
}

func svcDueKey(t int64, id LeaseID) string {
	return heightKey(pfxSvcDue, uint64(max(t, 0))) + string(id[:])
}

// Service returns a service record and whether it exists.
func (s *State) Service(id ServiceID) (Service, bool, error) {
	var v Service
	ok, err := getRecord(s, pfxService+string(id[:]), &v)
	return v, ok, err
}

// Lease returns a lease record and whether it exists.
func (s *State) Lease(id LeaseID) (Lease, bool, error) {
	var l Lease
	ok, err := getRecord(s, pfxLease+string(id[:]), &l)
	return l, ok, err
}

// ServiceByName is owner's running service called name.
func (s *State) ServiceByName(owner wallet.Address, name string) (Service, bool, error) {
	b, ok := s.get(pfxSvcName + string(owner[:]) + name)
	if !ok || len(b) == 0 {
		return Service{}, false, nil
	}
	var id ServiceID
	if err := codec.Unmarshal(b, &id); err != nil {
		return Service{}, false, fmt.Errorf("%w: service name %q: %v", ErrCorruptState, name, err)
	}
	return s.Service(id)
}

// ServiceLeases returns a service's leases in placement order, active
// only or all (at most limit; all leases grow with re-placements).
func (s *State) ServiceLeases(id ServiceID, activeOnly bool, limit int) ([]Lease, error) {
	pfx := pfxSvcLease
	if activeOnly {
		pfx = pfxSvcAct
	}
	var out []Lease
	err := scanRecords(s, pfx+string(id[:]), func(_ string, lid *LeaseID) error {
		if len(out) >= limit {
			return errStop
		}
		l, ok, err := s.Lease(*lid)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: service %s lists lease %s without a record", ErrCorruptState, id, lid)
		}
		out = append(out, l)
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, err
}

var errStop = errors.New("stop")

// ProviderLeases returns up to limit of provider's active and ending
// leases, in lease id order.
func (s *State) ProviderLeases(provider wallet.Address, limit int) ([]Lease, error) {
	var ids []LeaseID
	pfx := pfxLsProv + string(provider[:])
	s.scan(pfx, "", func(k string, _ []byte) bool {
		var id LeaseID
		copy(id[:], k[len(pfx):])
		ids = append(ids, id)
		return len(ids) < limit
	})
	out := make([]Lease, 0, len(ids))
	for _, id := range ids {
		l, ok, err := s.Lease(id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: provider index lists lease %s without a record", ErrCorruptState, id)
		}
		out = append(out, l)
	}
	return out, nil
}

// OwnerServices returns up to limit of owner's running services, in name
// order.
func (s *State) OwnerServices(owner wallet.Address, limit int) ([]Service, error) {
	var ids []ServiceID
	var err error
	s.scan(pfxSvcName+string(owner[:]), "", func(_ string, b []byte) bool {
		var id ServiceID
		if err = codec.Unmarshal(b, &id); err != nil {
			err = fmt.Errorf("%w: service name index: %v", ErrCorruptState, err)
			return false
		}
		ids = append(ids, id)
		return len(ids) < limit
	})
	if err != nil {
		return nil, err
	}
	out := make([]Service, 0, len(ids))
	for _, id := range ids {
		v, ok, err := s.Service(id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// Services calls fn for every service record, running and ended. It scans
// the service prefix: for the API and audits.
func (s *State) Services(fn func(Service) error) error {
	return scanRecords(s, pfxService, func(_ string, v *Service) error { return fn(*v) })
}

// ServicesNeedingReplicas returns up to limit running services with fewer
// active leases than wanted, in id order: the proposer's work list.
func (s *State) ServicesNeedingReplicas(limit int) ([]Service, error) {
	var ids []ServiceID
	s.scan(pfxSvcNeed, "", func(k string, _ []byte) bool {
		var id ServiceID
		copy(id[:], k[len(pfxSvcNeed):])
		ids = append(ids, id)
		return len(ids) < limit
	})
	out := make([]Service, 0, len(ids))
	for _, id := range ids {
		v, ok, err := s.Service(id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// Service execution.

func (x *execCtx) getService(id ServiceID) (Service, bool, error) {
	var v Service
	ok, err := getRecord(x.o, pfxService+string(id[:]), &v)
	return v, ok, err
}

func (x *execCtx) putService(v *Service) {
	x.o.put(pfxService+string(v.ID[:]), *v)
	need := pfxSvcNeed + string(v.ID[:])
	if v.Status == ServiceRunning && v.Active < v.Replicas {
		x.o.put(need, true)
	} else {
		x.o.del(need)
	}
}

func (x *execCtx) getLease(id LeaseID) (Lease, bool, error) {
	var l Lease
	ok, err := getRecord(x.o, pfxLease+string(id[:]), &l)
	return l, ok, err
}

// putLease writes l and moves its svcdue/ entry from oldDue (0: none).
func (x *execCtx) putLease(l *Lease, oldDue int64) {
	if oldDue != 0 {
		x.o.del(svcDueKey(oldDue, l.ID))
	}
	if l.Status != LeaseSettled {
		x.o.put(svcDueKey(l.Due, l.ID), true)
		x.o.put(lsProvKey(l), true)
	} else {
		l.Due = 0
		x.o.del(lsProvKey(l))
	}
	x.o.put(pfxLease+string(l.ID[:]), *l)
}

// Event types of services. JobID carries the service or lease id.
const (
	EvServiceOpened = "service_opened" // JobID service; Amount the budget escrowed
	EvServiceClosed = "service_closed" // JobID service; Amount refunded
	EvLeasePlaced   = "lease_placed"   // JobID lease; Address provider; Amount price per period
	EvLeaseEnded    = "lease_ended"    // JobID lease; Address provider; Amount paid at the end
	EvLeasePaid     = "lease_paid"     // JobID lease; Address provider; Amount paid by a claim
	EvLeaseSettled  = "lease_settled"  // JobID lease; Address owner; Amount refunded after the claim window
)

func (x *execCtx) serviceOpen(tx *Tx) error {
	o := tx.ServiceOpen
	owner := tx.SenderAddress()
	spec := &o.Spec
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("service open: %w", err)
	}
	want := o.Replicas
	if want == 0 {
		want = spec.MinReplicas
	}
	if want < spec.MinReplicas || want > spec.MaxReplicas {
		return fmt.Errorf("service open %s: replicas %d not in %d..%d", spec.Name, want, spec.MinReplicas, spec.MaxReplicas)
	}
	hi, minBudget := bits.Mul64(spec.MaxPricePerPeriod, uint64(spec.MinReplicas))
	if hi != 0 || o.Budget < minBudget {
		return fmt.Errorf("service open %s: budget %d below one period of %d replicas at %d", spec.Name, o.Budget, spec.MinReplicas, spec.MaxPricePerPeriod)
	}
	nameKey := pfxSvcName + string(owner[:]) + spec.Name
	if _, taken := x.o.get(nameKey); taken {
		return fmt.Errorf("service open: %s already runs a service called %q: close it or pick another name", owner, spec.Name)
	}
	if err := x.debit(owner, o.Budget); err != nil {
		return fmt.Errorf("service open %s: budget: %w", spec.Name, err)
	}
	var err error
	if x.g.Escrow, err = add(x.g.Escrow, o.Budget); err != nil {
		return fmt.Errorf("service open %s: %w", spec.Name, err)
	}
	id := NewServiceID(owner, tx.Nonce)
	if _, exists := x.o.get(pfxService + string(id[:])); exists {
		return fmt.Errorf("%w: service %s exists before its open", ErrCorruptState, id)
	}
	v := Service{ID: id, Owner: tx.Sender, Spec: *spec, Replicas: want, Budget: o.Budget, Status: ServiceRunning, OpenedAt: x.time, Height: x.height}
	x.putService(&v)
	x.o.put(nameKey, id)
	x.events = append(x.events, Event{Type: EvServiceOpened, Address: owner, JobID: id, Amount: o.Budget})
	return nil
}

// ownedService loads a running service the sender owns.
func (x *execCtx) ownedService(what string, sender wallet.Address, id ServiceID) (Service, error) {
	v, ok, err := x.getService(id)
	switch {
	case err != nil:
		return v, err
	case !ok:
		return v, fmt.Errorf("%s %s: no such service", what, id)
	case v.OwnerAddress() != sender:
		return v, fmt.Errorf("%s %s: %s is not the owner", what, id, sender)
	case v.Status != ServiceRunning:
		return v, fmt.Errorf("%s %s: service is %s", what, id, v.Status)
	}
	return v, nil
}

// activeLeases lists a service's active leases in seq order (at most
// MaxServiceReplicas).
func (x *execCtx) activeLeases(id ServiceID) ([]Lease, error) {
	var ids []LeaseID
	if err := scanRecords(x.o, pfxSvcAct+string(id[:]), func(_ string, lid *LeaseID) error {
		ids = append(ids, *lid)
		if len(ids) > MaxServiceReplicas {
			return fmt.Errorf("%w: service %s has more than %d active leases", ErrCorruptState, id, MaxServiceReplicas)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]Lease, 0, len(ids))
	for _, lid := range ids {
		l, ok, err := x.getLease(lid)
		if err != nil {
			return nil, err
		}
		if !ok || l.Status != LeaseActive {
			return nil, fmt.Errorf("%w: active index lists lease %s that is not active", ErrCorruptState, lid)
		}
		out = append(out, l)
	}
	return out, nil
}

func (x *execCtx) serviceScale(sender wallet.Address, s *ServiceScale) error {
	v, err := x.ownedService("service scale", sender, s.Service)
	if err != nil {
		return err
	}
	if s.Replicas < v.Spec.MinReplicas || s.Replicas > v.Spec.MaxReplicas {
		return fmt.Errorf("service scale %s: %d replicas not in %d..%d", v.Spec.Name, s.Replicas, v.Spec.MinReplicas, v.Spec.MaxReplicas)
	}
	if s.Replicas == v.Replicas {
		return fmt.Errorf("service scale %s: already wants %d replicas", v.Spec.Name, s.Replicas)
	}
	v.Replicas = s.Replicas
	if v.Active > v.Replicas {
		ls, err := x.activeLeases(v.ID)
		if err != nil {
			return err
		}
		// The newest leases go first.
		for i := len(ls) - 1; i >= 0 && v.Active > v.Replicas; i-- {
			if err := x.endLease(&v, &ls[i], EndScaled, true); err != nil {
				return fmt.Errorf("service scale %s: %w", v.Spec.Name, err)
			}
		}
	}
	x.putService(&v)
	return nil
}

func (x *execCtx) serviceClose(sender wallet.Address, c *ServiceClose) error {
	v, err := x.ownedService("service close", sender, c.Service)
	if err != nil {
		return err
	}
	ls, err := x.activeLeases(v.ID)
	if err != nil {
		return err
	}
	for i := range ls {
		if err := x.endLease(&v, &ls[i], EndClosed, true); err != nil {
			return fmt.Errorf("service close %s: %w", v.Spec.Name, err)
		}
	}
	refund := v.Budget
	if err := x.finishService(&v, ServiceClosed); err != nil {
		return err
	}
	x.events = append(x.events, Event{Type: EvServiceClosed, Address: sender, JobID: v.ID, Amount: refund})
	return nil
}

// finishService refunds the unspent budget, frees the name and records the
// final status. Leases in their claim window settle on their own.
func (x *execCtx) finishService(v *Service, st ServiceStatus) error {
	owner := v.OwnerAddress()
	var err error
	if x.g.Escrow, err = sub(x.g.Escrow, v.Budget); err != nil {
		return fmt.Errorf("%w: escrow pool: %v", ErrCorruptState, err)
	}
	if err := x.credit(owner, v.Budget); err != nil {
		return err
	}
	v.Refunded += v.Budget
	v.Budget = 0
	v.Status, v.ClosedAt = st, x.time
	x.o.del(pfxSvcName + string(owner[:]) + v.Spec.Name)
	x.putService(v)
	return nil
}

func (x *execCtx) servicePlace(p *ServicePlace) error {
	v, ok, err := x.getService(p.Service)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("service place %s: no such service", p.Service)
	case v.Status != ServiceRunning:
		return fmt.Errorf("service place %s: service is %s", p.Service, v.Status)
	case v.Active >= v.Replicas:
		return fmt.Errorf("service place %s: %d of %d replicas already active", v.Spec.Name, v.Active, v.Replicas)
	}
	need := v.Spec.Need(v.Owner, x.time)
	price, err := market.CheckPlacement(x.p.ChainID, &p.Offer, &need, chainView{r: x.o, p: x.p}, x.time)
	if err != nil {
		return fmt.Errorf("service place %s: %w", v.Spec.Name, err)
	}
	if price != p.Price {
		return fmt.Errorf("service place %s: price %d, terms give %d", v.Spec.Name, p.Price, price)
	}
	if v.Budget < price {
		return fmt.Errorf("service place %s: budget %d cannot fund a period at %d", v.Spec.Name, v.Budget, price)
	}
	provAddr := p.Offer.ProviderAddress()
	prov, _, err := x.getProvider(provAddr)
	if err != nil {
		return err
	}
	if prov.Reserved, err = prov.Reserved.Add(v.Spec.Resources); err != nil {
		return fmt.Errorf("service place %s: reserve: %w", v.Spec.Name, err)
	}
	prov.Reserved.GPUModel = ""
	prov.Open++
	prov.NewestOfferSeq = max(prov.NewestOfferSeq, p.Offer.Seq)
	x.o.put(addrKey(pfxProvider, provAddr), prov)

	seq := v.NextSeq
	v.NextSeq++
	v.Active++
	v.Budget -= price
	l := Lease{ID: NewLeaseID(v.ID, seq), Service: v.ID, Seq: seq, Offer: p.Offer, Price: price, Start: x.time,
		PeriodMs: v.Spec.PeriodMs, Funded: 1, Held: price, Status: LeaseActive, Due: x.time + v.Spec.PeriodMs, Res: v.Spec.Resources}
	l.Res.GPUModel = ""
	x.putLease(&l, 0)
	x.o.put(seqKey(pfxSvcLease, v.ID, seq), l.ID)
	x.o.put(seqKey(pfxSvcAct, v.ID, seq), l.ID)
	x.putService(&v)
	x.events = append(x.events, Event{Type: EvLeasePlaced, Address: provAddr, JobID: l.ID, Amount: price})
	return nil
}

// endLease ends an active lease of v (the caller writes v): the
// reservation is released and the service counts one active lease less.
// With payFunded (the owner ended it) every funded period is paid now and
// the lease settles; otherwise it enters its claim window.
func (x *execCtx) endLease(v *Service, l *Lease, reason string, payFunded bool) error {
	provAddr := l.ProviderAddress()
	prov, ok, err := x.getProvider(provAddr)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: provider %s of an active lease has no record", ErrCorruptState, provAddr)
	}
	if prov.Reserved, err = prov.Reserved.Sub(l.Res); err != nil {
		return fmt.Errorf("%w: release lease reservation: %v", ErrCorruptState, err)
	}
	prov.Reserved.GPUModel = ""
	prov.Open--
	x.o.put(addrKey(pfxProvider, provAddr), prov)
	x.o.del(seqKey(pfxSvcAct, v.ID, l.Seq))
	v.Active--
	if reason == EndDown || reason == EndLeft {
		v.Failures++
	}
	oldDue := l.Due
	l.Ended, l.EndedAt = reason, x.time
	var paid uint64
	if payFunded {
		paid = l.Held
		if err := x.payLease(v, l, l.Funded); err != nil {
			return err
		}
		l.Status = LeaseSettled
	} else {
		l.Status = LeaseEnding
		l.Due = x.time + ServiceClaimPeriods*l.PeriodMs
	}
	x.putLease(l, oldDue)
	x.events = append(x.events, Event{Type: EvLeaseEnded, Address: provAddr, JobID: l.ID, Amount: paid})
	return nil
}

// payLease pays l's provider for periods up to through (capped at the
// funded ones) not yet paid.
func (x *execCtx) payLease(v *Service, l *Lease, through uint64) error {
	through = min(through, l.Funded)
	if through <= l.PaidFor {
		return nil
	}
	hi, amount := bits.Mul64(through-l.PaidFor, l.Price)
	if hi != 0 || amount > l.Held {
		return fmt.Errorf("%w: lease %s holds %d, owes %d periods at %d", ErrCorruptState, l.ID, l.Held, through-l.PaidFor, l.Price)
	}
	var err error
	if x.g.Escrow, err = sub(x.g.Escrow, amount); err != nil {
		return fmt.Errorf("%w: escrow pool: %v", ErrCorruptState, err)
	}
	if err := x.credit(l.ProviderAddress(), amount); err != nil {
		return err
	}
	l.Held -= amount
	l.Paid += amount
	l.PaidFor = through
	v.Paid += amount
	return nil
}

func (x *execCtx) serviceClaim(sender wallet.Address, c *ServiceClaim) error {
	r := &c.Receipt
	l, ok, err := x.getLease(r.Lease)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("service claim %s: no such lease", r.Lease)
	case l.ProviderAddress() != sender:
		return fmt.Errorf("service claim %s: %s is not the provider", r.Lease, sender)
	case l.Status == LeaseSettled:
		return fmt.Errorf("service claim %s: lease is settled", r.Lease)
	}
	v, ok, err := x.getService(l.Service)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: lease %s of a missing service", ErrCorruptState, l.ID)
	}
	if !r.Verify(x.p.ChainID, v.Owner) {
		return fmt.Errorf("service claim %s: receipt not signed by the service owner %s", r.Lease, v.OwnerAddress())
	}
	if min(r.Periods, l.Funded) <= l.PaidFor {
		return fmt.Errorf("service claim %s: receipt covers %d periods, %d of %d funded already paid", r.Lease, r.Periods, l.PaidFor, l.Funded)
	}
	before := l.Paid
	if err := x.payLease(&v, &l, r.Periods); err != nil {
		return err
	}
	l.Requests, l.Bytes = max(l.Requests, r.Requests), max(l.Bytes, r.Bytes)
	oldDue := l.Due
	if l.Status == LeaseEnding && l.Held == 0 {
		l.Status = LeaseSettled
	}
	x.putLease(&l, oldDue)
	x.putService(&v)
	x.events = append(x.events, Event{Type: EvLeasePaid, Address: sender, JobID: l.ID, Amount: l.Paid - before})
	return nil
}

func (x *execCtx) serviceEnd(what string, sender wallet.Address, id LeaseID, byOwner bool) error {
	l, ok, err := x.getLease(id)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%s %s: no such lease", what, id)
	case l.Status != LeaseActive:
		return fmt.Errorf("%s %s: lease is %s", what, id, l.Status)
	}
	v, ok, err := x.getService(l.Service)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: lease %s of a missing service", ErrCorruptState, l.ID)
	}
	reason := EndLeft
	if byOwner {
		reason = EndDown
		if v.OwnerAddress() != sender {
			return fmt.Errorf("%s %s: %s is not the service owner", what, id, sender)
		}
	} else if l.ProviderAddress() != sender {
		return fmt.Errorf("%s %s: %s is not the provider", what, id, sender)
	}
	if err := x.endLease(&v, &l, reason, false); err != nil {
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	x.putService(&v)
	return nil
}

// settleServices performs the lease steps due at the block time, earliest
// first, at most MaxServiceDuePerBlock: an active lease funds its next
// period (or ends when the budget cannot), an ending lease whose claim
// window passed refunds what it holds.
func (x *execCtx) settleServices() error {
	type due struct {
		at int64
		id LeaseID
	}
	var todo []due
	var err error
	x.o.scan(pfxSvcDue, "", func(k string, _ []byte) bool {
		if len(k) != len(pfxSvcDue)+8+32 {
			err = fmt.Errorf("%w: lease due key %q", ErrCorruptState, printableKey(k))
			return false
		}
		d := due{at: int64(binary.BigEndian.Uint64([]byte(k[len(pfxSvcDue) : len(pfxSvcDue)+8])))}
		if d.at > x.time {
			return false
		}
		copy(d.id[:], k[len(pfxSvcDue)+8:])
		todo = append(todo, d)
		return len(todo) < MaxServiceDuePerBlock
	})
	if err != nil {
		return err
	}
	for _, d := range todo {
		l, ok, err := x.getLease(d.id)
		if err != nil {
			return err
		}
		if !ok || l.Status == LeaseSettled || max(l.Due, 0) != d.at {
			return fmt.Errorf("%w: lease due index lists %s at %d, which is not due then", ErrCorruptState, d.id, d.at)
		}
		v, ok, err := x.getService(l.Service)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: lease %s of a missing service", ErrCorruptState, l.ID)
		}
		if err := x.leaseStep(&v, &l); err != nil {
			return fmt.Errorf("lease %s: %w", l.ID, err)
		}
	}
	return nil
}

func (x *execCtx) leaseStep(v *Service, l *Lease) error {
	if l.Status == LeaseEnding {
		refund := l.Held
		var err error
		if x.g.Escrow, err = sub(x.g.Escrow, refund); err != nil {
			return fmt.Errorf("%w: escrow pool: %v", ErrCorruptState, err)
		}
		if err := x.credit(v.OwnerAddress(), refund); err != nil {
			return err
		}
		l.Held, l.Refunded = 0, l.Refunded+refund
		v.Refunded += refund
		oldDue := l.Due
		l.Status = LeaseSettled
		x.putLease(l, oldDue)
		x.putService(v)
		x.events = append(x.events, Event{Type: EvLeaseSettled, Address: v.OwnerAddress(), JobID: l.ID, Amount: refund})
		return nil
	}
	if v.Status == ServiceRunning && v.Budget >= l.Price {
		oldDue := l.Due
		v.Budget -= l.Price
		l.Held += l.Price
		l.Funded++
		l.Due += l.PeriodMs
		x.putLease(l, oldDue)
		x.putService(v)
		return nil
	}
	if err := x.endLease(v, l, EndBudget, false); err != nil {
		return err
	}
	if v.Status == ServiceRunning && v.Active == 0 && v.Budget < v.Spec.MaxPricePerPeriod {
		// Nothing can run any more: the service ends and refunds its rest.
		return x.finishService(v, ServiceExhausted)
	}
	x.putService(v)
	return nil
}

// serviceInvariants checks the service records against their indexes and
// returns what the records hold in escrow and reserve, per provider.
func serviceInvariants(st *State, reserved map[string]market.Resources, open map[string]uint64) (escrow uint64, errs []error) {
	active := map[ServiceID]uint32{}
	actIdx, dueIdx, provIdx := map[string]bool{}, map[string]bool{}, map[string]bool{}
	wantAct, wantDue, wantProv := map[string]bool{}, map[string]bool{}, map[string]bool{}
	st.scan(pfxLsProv, "", func(k string, _ []byte) bool { provIdx[k] = true; return true })
	sum := func(v uint64, what string) {
		s, err := add(escrow, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s overflows", what))
		}
		escrow = s
	}
	st.scan(pfxSvcAct, "", func(k string, _ []byte) bool { actIdx[k] = true; return true })
	st.scan(pfxSvcDue, "", func(k string, _ []byte) bool { dueIdx[k] = true; return true })
	if err := scanRecords(st, pfxLease, func(_ string, l *Lease) error {
		switch l.Status {
		case LeaseActive:
			active[l.Service]++
			wantAct[seqKey(pfxSvcAct, l.Service, l.Seq)] = true
			pa := l.ProviderAddress()
			pk := string(pa[:])
			r, err := reserved[pk].Sub(l.Res)
			if err != nil {
				errs = append(errs, fmt.Errorf("provider %s reserves less than its leases: %v", l.ProviderAddress(), err))
			} else {
				r.GPUModel = ""
				reserved[pk] = r
			}
			open[pk]--
			fallthrough
		case LeaseEnding:
			wantDue[svcDueKey(l.Due, l.ID)] = true
			wantProv[lsProvKey(l)] = true
			sum(l.Held, "lease escrow")
			if l.Status == LeaseActive && l.Held != (l.Funded-l.PaidFor)*l.Price {
				errs = append(errs, fmt.Errorf("lease %s holds %d for %d unpaid periods at %d", l.ID, l.Held, l.Funded-l.PaidFor, l.Price))
			}
		default:
			if l.Held != 0 {
				errs = append(errs, fmt.Errorf("settled lease %s still holds %d", l.ID, l.Held))
			}
		}
		return nil
	}); err != nil {
		return 0, append(errs, err)
	}
	if err := scanRecords(st, pfxService, func(_ string, v *Service) error {
		if v.Active != active[v.ID] {
			errs = append(errs, fmt.Errorf("service %s counts %d active leases, %d are", v.ID, v.Active, active[v.ID]))
		}
		if v.Status != ServiceRunning && (v.Budget != 0 || v.Active != 0) {
			errs = append(errs, fmt.Errorf("ended service %s holds budget %d, %d leases", v.ID, v.Budget, v.Active))
		}
		_, needed := st.get(pfxSvcNeed + string(v.ID[:]))
		if needed != (v.Status == ServiceRunning && v.Active < v.Replicas) {
			errs = append(errs, fmt.Errorf("service %s: need index %v with %d of %d active", v.ID, needed, v.Active, v.Replicas))
		}
		sum(v.Budget, "service budgets")
		return nil
	}); err != nil {
		return 0, append(errs, err)
	}
	if len(actIdx) != len(wantAct) {
		errs = append(errs, fmt.Errorf("active lease index holds %d, %d leases active", len(actIdx), len(wantAct)))
	}
	for k := range wantAct {
		if !actIdx[k] {
			errs = append(errs, fmt.Errorf("active lease %x missing from its index", k))
		}
	}
	if len(dueIdx) != len(wantDue) {
		errs = append(errs, fmt.Errorf("lease due index holds %d, %d leases unsettled", len(dueIdx), len(wantDue)))
	}
	for k := range wantDue {
		if !dueIdx[k] {
			errs = append(errs, fmt.Errorf("unsettled lease missing from the due index at %q", printableKey(k)))
		}
	}
	if len(provIdx) != len(wantProv) {
		errs = append(errs, fmt.Errorf("provider lease index holds %d, %d leases unsettled", len(provIdx), len(wantProv)))
	}
	for k := range wantProv {
		if !provIdx[k] {
			errs = append(errs, fmt.Errorf("unsettled lease missing from the provider index at %q", printableKey(k)))
		}
	}
	return escrow, errs
}

// proposerKind reports the kinds only a block proposer sends (no fee, a
// failing body makes the block invalid): Match and ServicePlace.
func proposerKind(k Kind) bool { return k == KindMatch || k == KindServicePlace }
