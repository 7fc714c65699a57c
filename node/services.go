package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/chain/driver"
	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/gateway"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/svclife"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Services (issue 19). The serviceManager drives svclife's pure core: it
// feeds it the node's view of every committed block (the leases it
// provides, the services it owns), the outcomes of the actions it ran,
// the gateway's per-replica usage and per-service load, and ticks; and it
// runs the actions: replicas started and stopped through the worker's
// service runtime, receipts signed and served, receipts fetched from
// owners, claims, leaves, down reports and scale steps sent as
// transactions. Everything chain-side is in chain/service.go.

// Limits of the service manager.
const (
	maxOwnedServices      = 64  // services one node's owner view follows
	maxProvidedLeases     = 256 // leases one provider's view follows
	maxPlacementsPerBlock = 32  // ServicePlace transactions a proposer adds
	maxNeedsPerBlock      = 64  // services a proposer looks at
	serviceTick           = 500 * time.Millisecond
	maxReceiptBytes       = 1 << 10
	maxServiceLogBytes    = 64 << 10
)

// protoSvcCtl is the owner/provider control protocol: a request is one
// byte (svcCtlReceipt or svcCtlLogs) and a lease id. A provider asks the
// owner's node for its newest receipt; an owner asks a provider for its
// replica's output (answered to the service owner's peer only).
const protoSvcCtl = "svcctl/1"

const (
	svcCtlReceipt byte = 1
	svcCtlLogs    byte = 2
)

type serviceManager struct {
	n    *Node
	core *svclife.Core

	// mu serialises the core's steps and the bookkeeping of its actions.
	mu       sync.Mutex
	receipts map[chain.LeaseID]chain.ServiceReceipt // owner: newest signed receipt per lease
	elastic  map[chain.ServiceID]bool               // owner: false when the service scales by hand only

	run *replicaRunner // provider: running replicas (nil on a node that sells nothing)

	routes *routeTable
	gw     *gateway.Gateway            // nil when the node runs no gateway
	gwAddr string                      // its listen address
	ph     *gateway.ProviderHandler    // svc/1 on a provider
	health map[[32]byte]*replicaHealth // the tick's judgement of each replica
	served map[chain.ServiceID]uint64  // requests of each service at the last tick

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newServiceManager(n *Node) (*serviceManager, error) {
	s := &serviceManager{n: n, receipts: map[chain.LeaseID]chain.ServiceReceipt{}, elastic: map[chain.ServiceID]bool{},
		core:   svclife.New(svclife.Config{Self: n.key.Address()}),
		routes: newRouteTable()}
	if n.cfg.Provider.Enabled {
		r, err := newReplicaRunner(n)
		if err != nil {
			return nil, err
		}
		s.run = r
	}
	if err := n.host.Handle(protoSvcCtl, 64, s.handleCtl); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *serviceManager) start(ctx context.Context) {
	s.ctx, s.cancel = context.WithCancel(ctx)
	if err := s.routes.rebuild(s.n.drv.State()); err != nil {
		s.n.log.Error("services: build the route table", "err", err)
	}
	// The gateway first: the tick reads s.gw.
	s.startGateway()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(serviceTick)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				s.tick()
			}
		}
	}()
}

func (s *serviceManager) close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.run != nil {
		s.run.closeAll()
	}
}

// step runs one input through the core and executes its actions.
func (s *serviceManager) step(in svclife.Input) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.core.Step(time.Now(), in) {
		s.do(a)
	}
}

func (s *serviceManager) tick() {
	for _, in := range s.gatewayInputs() {
		s.step(in)
	}
	s.step(svclife.Tick{})
}

// onCommit updates the route table and gives the core the node's view.
func (s *serviceManager) onCommit(c driver.Committed) {
	st := s.n.drv.State()
	s.routes.update(st, c.Result)
	blk, err := s.view(st, c.Block.Header.Height)
	if err != nil {
		s.n.log.Error("services: read the node's view", "height", c.Block.Header.Height, "err", err)
		return
	}
	s.step(blk)
}

func (s *serviceManager) view(st *chain.State, height uint64) (svclife.Block, error) {
	me := s.n.key.Address()
	b := svclife.Block{Height: height}
	if s.run != nil {
		ls, err := st.ProviderLeases(me, maxProvidedLeases)
		if err != nil {
			return b, err
		}
		for _, l := range ls {
			v, ok, err := st.Service(l.Service)
			if err != nil || !ok {
				return b, fmt.Errorf("service of lease %s: %v", l.ID, err)
			}
			b.Provided = append(b.Provided, leaseView(&v, &l))
		}
	}
	svcs, err := st.OwnerServices(me, maxOwnedServices)
	if err != nil {
		return b, err
	}
	for _, v := range svcs {
		sv := svclife.Service{ID: v.ID, Name: v.Spec.Name, Replicas: v.Replicas, Min: v.Spec.MinReplicas, Max: v.Spec.MaxReplicas,
			Budget: v.Budget, Price: v.Spec.MaxPricePerPeriod, PeriodMs: v.Spec.PeriodMs}
		ls, err := st.ServiceLeases(v.ID, true, chain.MaxServiceReplicas)
		if err != nil {
			return b, err
		}
		for _, l := range ls {
			sv.Leases = append(sv.Leases, leaseView(&v, &l))
		}
		b.Owned = append(b.Owned, sv)
	}
	return b, nil
}

func leaseView(v *chain.Service, l *chain.Lease) svclife.Lease {
	return svclife.Lease{ID: l.ID, Service: l.Service, Name: v.Spec.Name, OwnerPeer: v.Spec.Payload.Peer, Provider: l.ProviderAddress(),
		Start: l.Start, PeriodMs: l.PeriodMs, Funded: l.Funded, PaidFor: l.PaidFor, Status: l.Status}
}

// do executes one action; s.mu is held. Anything slow runs on a goroutine
// owned by the manager and reports back through step.
func (s *serviceManager) do(a svclife.Action) {
	n := s.n
	switch a := a.(type) {
	case svclife.StartReplica:
		if s.run == nil {
			return
		}
		s.goStep(func(ctx context.Context) svclife.Input {
			err := s.run.start(ctx, a.Lease.ID)
			if err != nil {
				n.log.Warn("services: start a replica", "lease", a.Lease.ID, "attempt", a.Attempt, "err", err)
			} else {
				n.log.Info("services: replica started", "service", a.Lease.Name, "lease", a.Lease.ID)
			}
			return svclife.Started{Lease: a.Lease.ID, Attempt: a.Attempt, Err: err}
		})
	case svclife.StopReplica:
		if s.run != nil {
			s.run.stop(a.Lease)
			n.log.Info("services: replica stopped", "lease", a.Lease)
		}
	case svclife.SignReceipt:
		r := a.Receipt
		r.Sign(n.cfg.ChainID, n.key)
		s.receipts[r.Lease] = r
	case svclife.FetchReceipt:
		s.goStep(func(ctx context.Context) svclife.Input {
			r, err := s.fetchReceipt(ctx, a.Lease, a.From)
			return svclife.ReceiptFetched{Lease: a.Lease, Receipt: r, Err: err}
		})
	case svclife.SendClaim:
		s.send(a.Receipt.Lease, chain.KindServiceClaim, func(tx *chain.Tx) { tx.ServiceClaim = &chain.ServiceClaim{Receipt: a.Receipt} })
	case svclife.SendLeave:
		n.log.Warn("services: leaving a lease", "lease", a.Lease, "reason", a.Reason)
		s.send(a.Lease, chain.KindServiceLeave, func(tx *chain.Tx) { tx.ServiceLeave = &chain.ServiceLeave{Lease: a.Lease} })
	case svclife.SendDown:
		n.log.Warn("services: reporting a replica down", "lease", a.Lease, "reason", a.Reason)
		s.send(a.Lease, chain.KindServiceDown, func(tx *chain.Tx) { tx.ServiceDown = &chain.ServiceDown{Lease: a.Lease} })
	case svclife.SendScale:
		if !s.isElastic(a.Service) {
			s.goStep(func(context.Context) svclife.Input { return svclife.TxDone{Kind: chain.KindServiceScale} })
			return
		}
		n.log.Info("services: scaling", "service", a.Service, "replicas", a.Replicas, "reason", a.Reason)
		s.send(chain.LeaseID{}, chain.KindServiceScale, func(tx *chain.Tx) {
			tx.ServiceScale = &chain.ServiceScale{Service: a.Service, Replicas: a.Replicas}
		})
	}
}

// goStep runs f on a goroutine owned by the manager and steps its result.
func (s *serviceManager) goStep(f func(ctx context.Context) svclife.Input) {
	if s.ctx == nil || s.ctx.Err() != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		in := f(s.ctx)
		if s.ctx.Err() == nil && in != nil {
			s.step(in)
		}
	}()
}

// send submits a transaction and reports its outcome to the core.
func (s *serviceManager) send(lease chain.LeaseID, kind chain.Kind, fill func(*chain.Tx)) {
	s.goStep(func(ctx context.Context) svclife.Input {
		_, ch, err := s.n.txs.submit(ctx, fill)
		if err == nil {
			select {
			case o := <-ch:
				if o.res.Code != 0 {
					err = errors.New(o.res.Log)
				}
			case <-time.After(30 * time.Second):
				err = errors.New("not committed within 30s")
			case <-ctx.Done():
				return nil
			}
		}
		if err != nil {
			s.n.log.Warn("services: transaction", "kind", kind, "lease", lease, "err", err)
		}
		return svclife.TxDone{Lease: lease, Kind: kind, Err: err}
	})
}

// handleCtl serves protoSvcCtl.
func (s *serviceManager) handleCtl(_ context.Context, from peer.ID, req []byte) ([]byte, error) {
	if len(req) != 33 {
		return nil, fmt.Errorf("svcctl: request of %d bytes, want 33", len(req))
	}
	var id chain.LeaseID
	copy(id[:], req[1:])
	switch req[0] {
	case svcCtlReceipt:
		s.mu.Lock()
		r, ok := s.receipts[id]
		s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("no receipt for lease %s", id)
		}
		return codec.Marshal(&r)
	case svcCtlLogs:
		if s.run == nil {
			return nil, errors.New("this node hosts no replicas")
		}
		st := s.n.drv.State()
		l, ok, err := st.Lease(id)
		if err != nil || !ok {
			return nil, fmt.Errorf("no lease %s", id)
		}
		v, ok, err := st.Service(l.Service)
		if err != nil || !ok || v.Spec.Payload.Peer != from.String() {
			return nil, errors.New("logs go to the service owner's node only")
		}
		logs, ok := s.run.logs(id)
		if !ok {
			return nil, fmt.Errorf("lease %s runs no replica here", id)
		}
		if len(logs) > maxServiceLogBytes {
			logs = logs[len(logs)-maxServiceLogBytes:]
		}
		return logs, nil
	}
	return nil, fmt.Errorf("svcctl: unknown request %d", req[0])
}

var receiptDecoder = codec.MustDecoder(codec.Limits{MaxSize: maxReceiptBytes, MaxNesting: 4, MaxArrayElements: 16, MaxMapPairs: 16})

// decodeReceipt decodes a receipt from the network under tight limits.
func decodeReceipt(b []byte) (chain.ServiceReceipt, error) {
	var r chain.ServiceReceipt
	if err := receiptDecoder.UnmarshalCanonical(b, &r); err != nil {
		return r, fmt.Errorf("decode receipt: %w", err)
	}
	return r, nil
}

// fetchReceipt asks the owner's node for a lease's newest receipt and
// checks it: the right lease, signed by the service's owner.
func (s *serviceManager) fetchReceipt(ctx context.Context, lease chain.LeaseID, from string) (chain.ServiceReceipt, error) {
	p, err := peer.Decode(from)
	if err != nil {
		return chain.ServiceReceipt{}, fmt.Errorf("owner peer %q: %w", from, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	raw, err := s.n.host.Request(ctx, p, protoSvcCtl, append([]byte{svcCtlReceipt}, lease[:]...), maxReceiptBytes)
	if err != nil {
		return chain.ServiceReceipt{}, err
	}
	r, err := decodeReceipt(raw)
	if err != nil {
		return r, err
	}
	st := s.n.drv.State()
	l, ok, err := st.Lease(lease)
	if err != nil || !ok {
		return r, fmt.Errorf("lease %s: not on chain", lease)
	}
	v, ok, err := st.Service(l.Service)
	if err != nil || !ok {
		return r, fmt.Errorf("service of lease %s: not on chain", lease)
	}
	if r.Lease != lease || !r.Verify(s.n.cfg.ChainID, v.Owner) {
		return r, errors.New("receipt not signed by the service owner for this lease")
	}
	return r, nil
}

// proposerTxs adds the proposer's ServicePlace transactions after taken.
func (s *serviceManager) proposerTxs(st *chain.State, height uint64, blockTime int64, taken [][]byte) [][]byte {
	n := s.n
	svcs, err := st.ServicesNeedingReplicas(maxNeedsPerBlock)
	if err != nil || len(svcs) == 0 {
		return nil
	}
	var needs []market.ReplicaNeed
	ids := map[[32]byte]chain.ServiceID{}
	for _, v := range svcs {
		ls, err := st.ServiceLeases(v.ID, true, chain.MaxServiceReplicas)
		if err != nil {
			n.log.Error("propose placements: read leases", "service", v.ID, "err", err)
			continue
		}
		nd := market.ReplicaNeed{Service: v.ID, Need: v.Spec.Need(v.Owner, blockTime), Count: int(v.Replicas - v.Active)}
		for _, l := range ls {
			nd.Hosting = append(nd.Hosting, l.ProviderAddress())
		}
		needs = append(needs, nd)
		ids[v.ID] = v.ID
	}
	snap := n.market.book.RoundSnapshot()
	places := market.PlaceReplicas(needs, snap.Offers, st.View(), blockTime, maxPlacementsPerBlock)
	if len(places) == 0 {
		return nil
	}
	acc, err := st.Account(n.key.Address())
	if err != nil {
		return nil
	}
	nonce := acc.Nonce
	for _, raw := range taken {
		if tx, err := chain.DecodeTx(raw); err == nil && tx.SenderAddress() == n.key.Address() && tx.Nonce >= nonce {
			nonce = tx.Nonce + 1
		}
	}
	var out [][]byte
	for _, p := range places {
		tx := &chain.Tx{ChainID: n.cfg.ChainID, Sender: n.key.Public(), Nonce: nonce,
			ServicePlace: &chain.ServicePlace{Service: ids[p.Service], Offer: *p.Offer, Price: p.Price}}
		if err := tx.Sign(n.key); err != nil {
			n.log.Error("propose placements: sign", "err", err)
			continue
		}
		raw, err := tx.Encode()
		if err != nil {
			continue
		}
		out = append(out, raw)
		nonce++
	}
	n.log.Debug("proposing placements", "height", height, "placements", len(out))
	return out
}

// The API side.

func (s *serviceManager) deploy(ctx context.Context, spec api.ServiceSpec, module []byte) (api.Service, error) {
	n, m := s.n, s.n.market
	var hash [32]byte
	size := int64(len(module))
	if len(module) == 0 {
		h, err := parseHash(spec.PayloadSHA256)
		if err != nil {
			return api.Service{}, api.BadRequest("payload_sha256: %v", err)
		}
		if !m.payloads.Has(h) {
			return api.Service{}, fmt.Errorf("%w: this daemon holds no module %s; upload it", api.ErrNotFound, spec.PayloadSHA256)
		}
		rc, sz, err := m.payloads.Open(h)
		if err != nil {
			return api.Service{}, err
		}
		rc.Close()
		hash, size = h, sz
	} else {
		if err := api.CheckPayload(spec.Executor, module); err != nil {
			return api.Service{}, err
		}
		hash = sha256.Sum256(module)
		if !m.payloads.Has(hash) {
			if _, _, err := m.payloads.Put(ctx, bytes.NewReader(module)); err != nil {
				return api.Service{}, fmt.Errorf("store module: %w", err)
			}
		}
	}
	m.blobs.Publish(hash)
	cs := chainSpec(spec, hash, size, n.host.ID().String())
	if err := cs.Validate(); err != nil {
		return api.Service{}, api.BadRequest("%v", err)
	}
	budget, err := spec.BudgetUnits()
	if err != nil {
		return api.Service{}, err
	}
	st := n.drv.State()
	if _, ok, _ := st.ServiceByName(n.key.Address(), spec.Name); ok {
		return api.Service{}, fmt.Errorf("%w: a service called %q runs already: close it or pick another name", api.ErrConflict, spec.Name)
	}
	hashTx, err := s.sendWait(ctx, func(tx *chain.Tx) {
		tx.ServiceOpen = &chain.ServiceOpen{Spec: cs, Budget: budget, Replicas: spec.Replicas.Initial}
	})
	if err != nil {
		return api.Service{}, err
	}
	v, ok, err := n.drv.State().ServiceByName(n.key.Address(), spec.Name)
	if err != nil || !ok {
		return api.Service{}, fmt.Errorf("service %s committed but not found: %v", spec.Name, err)
	}
	if spec.Elastic != nil && !*spec.Elastic {
		if err := s.setManual(v.ID); err != nil {
			n.log.Warn("services: remember a service scales by hand", "service", v.ID, "err", err)
		}
	}
	out := s.serviceView(n.drv.State(), &v)
	out.TxHash = hex.EncodeToString(hashTx[:])
	return out, nil
}

// sendWait submits a transaction and waits for it to commit.
func (s *serviceManager) sendWait(ctx context.Context, fill func(*chain.Tx)) ([32]byte, error) {
	h, ch, err := s.n.txs.submit(ctx, fill)
	if err != nil {
		return h, api.BadRequest("%v", err)
	}
	select {
	case o := <-ch:
		if o.res.Code != 0 {
			return o.hash, api.BadRequest("%s", o.res.Log)
		}
		return o.hash, nil
	case <-ctx.Done():
		return h, fmt.Errorf("%w: transaction %x sent, not committed yet", api.ErrUnavailable, h[:8])
	}
}

func chainSpec(spec api.ServiceSpec, hash [32]byte, size int64, peerID string) chain.ServiceSpec {
	cs := chain.ServiceSpec{Name: spec.Name, Executor: spec.Executor, Args: spec.Args,
		Payload:     market.Payload{SHA256: hash[:], Size: uint64(size), Peer: peerID, Image: spec.Image},
		Resources:   fromAPIResources(spec.Resources),
		MinReplicas: spec.Replicas.Min, MaxReplicas: spec.Replicas.Max, MaxPricePerPeriod: spec.PricePerPeriod,
		PeriodMs: spec.Period.Milliseconds(), Preference: spec.Placement}
	for k, v := range spec.Env {
		if k != "PORT" || spec.Executor != api.ExecutorDocker {
			cs.Env = append(cs.Env, k+"="+v)
		}
	}
	if spec.Executor == api.ExecutorDocker {
		cs.Env = append(cs.Env, "PORT="+strconv.Itoa(int(spec.Port)))
	}
	sort.Strings(cs.Env)
	if spec.Constraints.Region != "" {
		cs.Constraints.Regions = []string{spec.Constraints.Region}
	}
	for k, v := range spec.Constraints.Labels {
		cs.Constraints.Labels = append(cs.Constraints.Labels, k+"="+v)
	}
	sort.Strings(cs.Constraints.Labels)
	return cs
}

// resolve finds a service by this node's name for it, or by id.
func (s *serviceManager) resolve(name string) (chain.Service, error) {
	st := s.n.drv.State()
	if v, ok, err := st.ServiceByName(s.n.key.Address(), name); err != nil {
		return v, err
	} else if ok {
		return v, nil
	}
	if b, err := hex.DecodeString(name); err == nil && len(b) == 32 {
		v, ok, err := st.Service(chain.ServiceID(b))
		if err != nil {
			return v, err
		}
		if ok {
			return v, nil
		}
	}
	// An ended service of ours, by name: the newest.
	var found *chain.Service
	me := s.n.key.Address()
	if err := st.Services(func(v chain.Service) error {
		if v.Spec.Name == name && v.OwnerAddress() == me && (found == nil || v.Height > found.Height) {
			c := v
			found = &c
		}
		return nil
	}); err != nil {
		return chain.Service{}, err
	}
	if found != nil {
		return *found, nil
	}
	return chain.Service{}, fmt.Errorf("%w: no service %q on this node (give its name or its id)", api.ErrNotFound, name)
}

func (s *serviceManager) serviceView(st *chain.State, v *chain.Service) api.Service {
	out := api.Service{ID: v.ID.String(), Name: v.Spec.Name, Owner: v.OwnerAddress().String(), Status: v.Status.String(),
		Replicas: v.Replicas, Active: v.Active, Min: v.Spec.MinReplicas, Max: v.Spec.MaxReplicas, PricePerPeriod: v.Spec.MaxPricePerPeriod,
		PeriodMs: v.Spec.PeriodMs, Budget: v.Budget, Paid: v.Paid, Refunded: v.Refunded, Failures: v.Failures,
		OpenedAt: time.UnixMilli(v.OpenedAt).UTC(), Height: v.Height, URL: s.gatewayURL(v.Spec.Name)}
	if v.ClosedAt != 0 {
		out.ClosedAt = time.UnixMilli(v.ClosedAt).UTC()
	}
	ls, err := st.ServiceLeases(v.ID, false, 256)
	if err == nil {
		for _, l := range ls {
			out.Leases = append(out.Leases, api.Lease{ID: l.ID.String(), Seq: l.Seq, Provider: l.ProviderAddress().String(), PeerID: l.Offer.PeerID,
				Region: l.Offer.Region, Status: l.Status.String(), EndReason: l.Ended, Price: l.Price, Start: time.UnixMilli(l.Start).UTC(),
				Funded: l.Funded, PaidPeriods: l.PaidFor, Paid: l.Paid, Refunded: l.Refunded, Requests: l.Requests, Bytes: l.Bytes})
		}
	}
	return out
}

func (s *serviceManager) list(all bool) ([]api.Service, error) {
	st := s.n.drv.State()
	me := s.n.key.Address()
	var out []api.Service
	err := st.Services(func(v chain.Service) error {
		if v.OwnerAddress() == me && (all || v.Status == chain.ServiceRunning) {
			out = append(out, s.serviceView(st, &v))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || out[i].Name == out[j].Name && out[i].Height > out[j].Height
	})
	return out, err
}

func (s *serviceManager) get(name string) (api.Service, error) {
	v, err := s.resolve(name)
	if err != nil {
		return api.Service{}, err
	}
	return s.serviceView(s.n.drv.State(), &v), nil
}

func (s *serviceManager) owned(name string) (chain.Service, error) {
	v, err := s.resolve(name)
	if err != nil {
		return v, err
	}
	if v.OwnerAddress() != s.n.key.Address() {
		return v, fmt.Errorf("%w: service %s belongs to %s, not this node", api.ErrConflict, name, v.OwnerAddress())
	}
	if v.Status != chain.ServiceRunning {
		return v, fmt.Errorf("%w: service %s is %s", api.ErrConflict, name, v.Status)
	}
	return v, nil
}

func (s *serviceManager) scale(ctx context.Context, name string, replicas uint32) (api.Service, error) {
	v, err := s.owned(name)
	if err != nil {
		return api.Service{}, err
	}
	if replicas < v.Spec.MinReplicas || replicas > v.Spec.MaxReplicas {
		return api.Service{}, api.BadRequest("%d replicas: service %s scales within %d..%d", replicas, name, v.Spec.MinReplicas, v.Spec.MaxReplicas)
	}
	h, err := s.sendWait(ctx, func(tx *chain.Tx) { tx.ServiceScale = &chain.ServiceScale{Service: v.ID, Replicas: replicas} })
	if err != nil {
		return api.Service{}, err
	}
	out, err := s.get(v.ID.String())
	out.TxHash = hex.EncodeToString(h[:])
	return out, err
}

func (s *serviceManager) closeService(ctx context.Context, name string) (api.Service, error) {
	v, err := s.owned(name)
	if err != nil {
		return api.Service{}, err
	}
	h, err := s.sendWait(ctx, func(tx *chain.Tx) { tx.ServiceClose = &chain.ServiceClose{Service: v.ID} })
	if err != nil {
		return api.Service{}, err
	}
	out, err := s.get(v.ID.String())
	out.TxHash = hex.EncodeToString(h[:])
	return out, err
}

// logs is the service's chain history (from its records) and its
// replicas' output, fetched from their providers.
func (s *serviceManager) logs(ctx context.Context, name string) (api.ServiceLogs, error) {
	v, err := s.resolve(name)
	if err != nil {
		return api.ServiceLogs{}, err
	}
	st := s.n.drv.State()
	out := api.ServiceLogs{Service: v.Spec.Name, Events: []api.ServiceEvent{{Height: v.Height, Time: time.UnixMilli(v.OpenedAt).UTC(), Type: "opened",
		Detail: fmt.Sprintf("%d replicas wanted, budget %d", v.Replicas, v.Budget+v.Paid+v.Refunded)}}}
	ls, err := st.ServiceLeases(v.ID, false, 256)
	if err != nil {
		return out, err
	}
	for _, l := range ls {
		out.Events = append(out.Events, api.ServiceEvent{Time: time.UnixMilli(l.Start).UTC(), Type: "placed", Lease: l.ID.String(),
			Detail: fmt.Sprintf("on %s at %d per period", l.ProviderAddress(), l.Price)})
		if l.EndedAt != 0 {
			out.Events = append(out.Events, api.ServiceEvent{Time: time.UnixMilli(l.EndedAt).UTC(), Type: "ended", Lease: l.ID.String(),
				Detail: fmt.Sprintf("%s; paid %d for %d periods", l.Ended, l.Paid, l.PaidFor)})
		}
	}
	if v.ClosedAt != 0 {
		out.Events = append(out.Events, api.ServiceEvent{Time: time.UnixMilli(v.ClosedAt).UTC(), Type: v.Status.String(), Detail: fmt.Sprintf("refunded %d", v.Refunded)})
	}
	sort.SliceStable(out.Events, func(i, j int) bool { return out.Events[i].Time.Before(out.Events[j].Time) })
	for _, l := range ls {
		if l.Status != chain.LeaseActive {
			continue
		}
		ro := api.ReplicaOutput{Lease: l.ID.String(), Provider: l.ProviderAddress().String()}
		if l.ProviderAddress() == s.n.key.Address() && s.run != nil {
			b, _ := s.run.logs(l.ID)
			ro.Logs = string(b)
		} else if p, err := peer.Decode(l.Offer.PeerID); err != nil {
			ro.Error = err.Error()
		} else {
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			b, err := s.n.host.Request(rctx, p, protoSvcCtl, append([]byte{svcCtlLogs}, l.ID[:]...), maxServiceLogBytes)
			cancel()
			if err != nil {
				ro.Error = err.Error()
			}
			ro.Logs = string(b)
		}
		out.Output = append(out.Output, ro)
	}
	return out, nil
}

// manualDir holds one empty file per service of this node that scales by
// hand only (elastic: false), so the choice survives a restart.
func (s *serviceManager) manualDir() string { return filepath.Join(s.n.home, "services", "manual") }

func (s *serviceManager) setManual(id chain.ServiceID) error {
	s.mu.Lock()
	s.elastic[id] = false
	s.mu.Unlock()
	if err := os.MkdirAll(s.manualDir(), 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.manualDir(), id.String()), nil, 0o600)
}

// isElastic: the elasticity controller may scale the service. s.mu is held.
func (s *serviceManager) isElastic(id chain.ServiceID) bool {
	if on, ok := s.elastic[id]; ok {
		return on
	}
	_, err := os.Stat(filepath.Join(s.manualDir(), id.String()))
	on := err != nil
	s.elastic[id] = on
	return on
}
