package chain

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// Service tests: accounts 0..3 are validators, 4..6 providers, 7 the
// owner (client). n.block checks every invariant (supply to the unit,
// escrow = open matches + service budgets + lease holdings, reservations,
// the svcact/, svcdue/ and svcneed/ indexes) after every block.

const (
	svcOwner  = 7
	svcPeriod = 2000
)

func svcNet(t *testing.T) *testNet {
	t.Helper()
	n := newTestNet(t, 8, 4)
	var txs [][]byte
	for p := 4; p <= 6; p++ {
		txs = append(txs, n.tx(p, 1, func(tx *Tx) { tx.ProviderRegister = &ProviderRegister{Collateral: 100_000} }))
	}
	_, res := n.block(txs...)
	for _, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatal(tr.Log)
		}
	}
	return n
}

func svcSpec(name string, min, max uint32) ServiceSpec {
	sum := sha256.Sum256([]byte("service module"))
	return ServiceSpec{Name: name, Executor: market.ExecWASM,
		Payload:   market.Payload{SHA256: sum[:], Size: 100, Peer: "peer"},
		Resources: market.Resources{CPU: 500, MemMiB: 256}, MinReplicas: min, MaxReplicas: max,
		MaxPricePerPeriod: 100, PeriodMs: svcPeriod, Preference: market.PreferCheapest}
}

// open sends a ServiceOpen from the owner and returns the service id.
func (n *testNet) openService(spec ServiceSpec, budget uint64, replicas uint32) (ServiceID, *Result) {
	n.t.Helper()
	owner := n.keys[svcOwner]
	acc, _ := n.st.Account(owner.Address())
	id := NewServiceID(owner.Address(), max(acc.Nonce, n.pending[owner.Address()]))
	_, res := n.block(n.tx(svcOwner, 1, func(tx *Tx) { tx.ServiceOpen = &ServiceOpen{Spec: spec, Budget: budget, Replicas: replicas} }))
	return id, res
}

// placeTx is the proposer's ServicePlace of service id on provider p's
// offer seq, at the price the terms give.
func (n *testNet) placeTx(id ServiceID, p int, seq uint64) []byte {
	n.t.Helper()
	v, ok, err := n.st.Service(id)
	if err != nil || !ok {
		n.t.Fatalf("service %s: %v", id, err)
	}
	o := n.offer(p, seq)
	need := v.Spec.Need(v.Owner, n.time)
	price, err := market.PriceFor(o, &need)
	if err != nil {
		n.t.Fatal(err)
	}
	return n.tx(n.proposerIndex(), 0, func(tx *Tx) { tx.ServicePlace = &ServicePlace{Service: id, Offer: *o, Price: price} })
}

func (n *testNet) receipt(signer int, lease LeaseID, periods uint64) ServiceReceipt {
	r := ServiceReceipt{Lease: lease, Periods: periods, Requests: 10 * periods, Bytes: 100 * periods}
	r.Sign(testChainID, n.keys[signer])
	return r
}

func (n *testNet) claimTx(p int, r ServiceReceipt) []byte {
	return n.tx(p, 1, func(tx *Tx) { tx.ServiceClaim = &ServiceClaim{Receipt: r} })
}

func (n *testNet) leases(id ServiceID, activeOnly bool) []Lease {
	n.t.Helper()
	ls, err := n.st.ServiceLeases(id, activeOnly, 100)
	if err != nil {
		n.t.Fatal(err)
	}
	return ls
}

func (n *testNet) service(id ServiceID) Service {
	n.t.Helper()
	v, ok, err := n.st.Service(id)
	if err != nil || !ok {
		n.t.Fatalf("service %s: %v", id, err)
	}
	return v
}

func mustOK(t *testing.T, res *Result) {
	t.Helper()
	for _, tr := range res.TxResults {
		if tr.Code != 0 {
			t.Fatalf("%s refused: %s", tr.Kind, tr.Log)
		}
	}
}

func refusedWith(t *testing.T, res *Result, i int, want string) {
	t.Helper()
	if res.TxResults[i].Code == 0 || !strings.Contains(res.TxResults[i].Log, want) {
		t.Fatalf("tx %d (%s): code %d log %q, want refusal with %q", i, res.TxResults[i].Kind, res.TxResults[i].Code, res.TxResults[i].Log, want)
	}
}

// The whole life: open, three placements, periods funded as blocks pass,
// claims with the owner's receipts, close paying the funded periods and
// refunding the rest. Money is checked to the unit at the end.
func TestServiceLifecycleOpenPlaceClaimClose(t *testing.T) {
	n := svcNet(t)
	ownerBefore := n.balance(svcOwner)
	id, res := n.openService(svcSpec("hello", 1, 5), 1000, 3)
	mustOK(t, res)
	if v := n.service(id); v.Budget != 1000 || v.Replicas != 3 || v.Status != ServiceRunning {
		t.Fatalf("service %+v", v)
	}
	if got, _ := n.st.ServicesNeedingReplicas(10); len(got) != 1 {
		t.Fatalf("need index holds %d services, want 1", len(got))
	}
	_, res = n.block(n.placeTx(id, 4, 1), n.placeTx(id, 5, 1), n.placeTx(id, 6, 1))
	mustOK(t, res)
	ls := n.leases(id, true)
	if len(ls) != 3 {
		t.Fatalf("%d active leases", len(ls))
	}
	price := ls[0].Price
	if pl, _ := n.st.ProviderLeases(n.keys[4].Address(), 10); len(pl) != 1 || pl[0].Service != id {
		t.Fatalf("provider index: %+v", pl)
	}
	if os, _ := n.st.OwnerServices(n.keys[svcOwner].Address(), 10); len(os) != 1 || os[0].ID != id {
		t.Fatalf("owner index: %+v", os)
	}
	if got, _ := n.st.ServicesNeedingReplicas(10); len(got) != 0 {
		t.Fatalf("a fully placed service is still in the need index")
	}
	// A fourth placement is refused: the block would be invalid, so the
	// proposer's BuildBlock drops it.
	b, _ := n.block(n.placeTx(id, 4, 2))
	if len(b.Txs) != 0 {
		t.Fatal("a placement beyond the wanted replicas was included")
	}
	// Blocks pass: every period boundary funds the next period.
	for range 4 {
		n.block()
	}
	ls = n.leases(id, true)
	if ls[0].Funded < 3 {
		t.Fatalf("lease funded %d periods after 6 s of 2 s periods", ls[0].Funded)
	}
	// Provider 4 claims two periods with the owner's receipt.
	prov4 := n.balance(4)
	_, res = n.block(n.claimTx(4, n.receipt(svcOwner, ls[0].ID, 2)))
	mustOK(t, res)
	if got := n.balance(4) - (prov4 - 1); got != 2*price {
		t.Fatalf("provider paid %d for two periods at %d", got, price)
	}
	// Close: every active lease is paid its funded periods, the rest of
	// the budget goes back.
	_, res = n.block(n.tx(svcOwner, 1, func(tx *Tx) { tx.ServiceClose = &ServiceClose{Service: id} }))
	mustOK(t, res)
	v := n.service(id)
	if v.Status != ServiceClosed || v.Budget != 0 || v.Active != 0 {
		t.Fatalf("closed service %+v", v)
	}
	var paid uint64
	for _, l := range n.leases(id, false) {
		if l.Status != LeaseSettled || l.Held != 0 || l.PaidFor != l.Funded {
			t.Fatalf("lease after close %+v", l)
		}
		paid += l.Paid
	}
	if v.Paid != paid || paid+v.Refunded != 1000 {
		t.Fatalf("paid %d (record %d) + refunded %d != budget 1000", paid, v.Paid, v.Refunded)
	}
	if got := ownerBefore - n.balance(svcOwner); got != paid+2 {
		t.Fatalf("owner spent %d, want paid %d + 2 fees", got, paid)
	}
	if _, ok, _ := n.st.ServiceByName(n.keys[svcOwner].Address(), "hello"); ok {
		t.Fatal("the name of a closed service is still taken")
	}
	if n.st.Globals().Escrow != 0 {
		t.Fatalf("escrow %d after everything settled", n.st.Globals().Escrow)
	}
	if pl, _ := n.st.ProviderLeases(n.keys[4].Address(), 10); len(pl) != 0 {
		t.Fatalf("provider index keeps settled leases: %+v", pl)
	}
	if os, _ := n.st.OwnerServices(n.keys[svcOwner].Address(), 10); len(os) != 0 {
		t.Fatal("owner index keeps a closed service")
	}
	for p := 4; p <= 6; p++ {
		pr, _, _ := n.st.Provider(n.keys[p].Address())
		if pr.Open != 0 || !pr.Reserved.IsZero() {
			t.Fatalf("provider %d keeps open %d reserved %v", p, pr.Open, pr.Reserved)
		}
	}
}

func TestServiceOpenRefusesBadSpecs(t *testing.T) {
	n := svcNet(t)
	bad := []struct {
		name   string
		edit   func(*ServiceSpec)
		budget uint64
		want   string
	}{
		{"name", func(s *ServiceSpec) { s.Name = "Hello_World" }, 1000, "lowercase"},
		{"exec", func(s *ServiceSpec) { s.Executor = market.ExecExec }, 1000, "wasm or docker"},
		{"docker without an image", func(s *ServiceSpec) { s.Executor = market.ExecDocker }, 1000, "image by ID"},
		{"docker with a tag", func(s *ServiceSpec) { s.Executor, s.Payload.Image = market.ExecDocker, "busybox:latest" }, 1000, "image"},
		{"wasm with an image", func(s *ServiceSpec) { s.Payload.Image = "sha256:" + strings.Repeat("a", 64) }, 1000, "docker executor"},
		{"min zero", func(s *ServiceSpec) { s.MinReplicas = 0 }, 1000, "min_replicas"},
		{"max below min", func(s *ServiceSpec) { s.MinReplicas, s.MaxReplicas = 3, 2 }, 1000, "below min_replicas"},
		{"too many", func(s *ServiceSpec) { s.MaxReplicas = MaxServiceReplicas + 1 }, 1000, "exceeds"},
		{"period", func(s *ServiceSpec) { s.PeriodMs = MinServicePeriodMs - 1 }, 1000, "period_ms"},
		{"no resources", func(s *ServiceSpec) { s.Resources = market.Resources{} }, 1000, "resources"},
		{"budget", func(s *ServiceSpec) {}, 99, "budget 99 below"},
		{"broke", func(s *ServiceSpec) {}, 10_000_000, "budget"},
	}
	for _, c := range bad {
		s := svcSpec("ok", 1, 3)
		c.edit(&s)
		_, res := n.openService(s, c.budget, 0)
		refusedWith(t, res, 0, c.want)
	}
	id, res := n.openService(svcSpec("dup", 1, 3), 1000, 0)
	mustOK(t, res)
	_, res = n.openService(svcSpec("dup", 1, 3), 1000, 0)
	refusedWith(t, res, 0, "already runs a service called")
	if v := n.service(id); v.Replicas != 1 {
		t.Fatalf("replicas 0 should mean min: %d", v.Replicas)
	}
}

// Attack: a forged receipt. A provider claims with receipts the owner
// never signed (self-signed, signed for another chain, another lease's),
// or re-uses one; each is refused and pays nothing, and the owner's
// genuine receipt still pays exactly once. Without the signature check
// the self-signed receipt paid every funded period.
func TestServiceAttackForgedReceiptsPayNothing(t *testing.T) {
	n := svcNet(t)
	id, res := n.openService(svcSpec("api", 2, 2), 1000, 0)
	mustOK(t, res)
	mustOK(t, mustBlock(n, n.placeTx(id, 4, 1), n.placeTx(id, 5, 1)))
	for range 3 {
		n.block()
	}
	ls := n.leases(id, true)
	mine, other := ls[0], ls[1]
	if mine.ProviderAddress() != n.keys[4].Address() {
		mine, other = other, mine
	}
	escrow := n.st.Globals().Escrow
	otherChain := ServiceReceipt{Lease: mine.ID, Periods: 2}
	otherChain.Sign("another-chain", n.keys[svcOwner])
	_, res = n.block(
		n.claimTx(4, n.receipt(4, mine.ID, 2)),         // self-signed
		n.claimTx(4, otherChain),                       // another chain
		n.claimTx(4, n.receipt(svcOwner, other.ID, 2)), // another provider's lease
		n.claimTx(4, n.receipt(svcOwner, mine.ID, 0)),  // nothing served
	)
	refusedWith(t, res, 0, "not signed by the service owner")
	refusedWith(t, res, 1, "not signed by the service owner")
	refusedWith(t, res, 2, "is not the provider")
	refusedWith(t, res, 3, "covers 0 periods")
	if n.st.Globals().Escrow != escrow {
		t.Fatalf("forged claims moved escrow %d → %d", escrow, n.st.Globals().Escrow)
	}
	good := n.receipt(svcOwner, mine.ID, 1)
	_, res = n.block(n.claimTx(4, good), n.claimTx(4, good))
	if res.TxResults[0].Code != 0 {
		t.Fatal(res.TxResults[0].Log)
	}
	refusedWith(t, res, 1, "already paid")
	if l, _, _ := n.st.Lease(mine.ID); l.Paid != l.Price {
		t.Fatalf("paid %d for one period at %d", l.Paid, l.Price)
	}
}

func mustBlock(n *testNet, txs ...[]byte) *Result {
	_, res := n.block(txs...)
	return res
}

// Attack: a provider stops serving but goes on claiming. The owner reports
// the replica down: the lease ends, a replacement is wanted (the need index
// lists the service, and the next placement goes through); the provider's
// claim for periods the owner never receipted is capped at what it did
// receipt, and the funded rest is refunded to the owner after the claim
// window, to the unit.
func TestServiceAttackProviderStopsServingButClaims(t *testing.T) {
	n := svcNet(t)
	id, res := n.openService(svcSpec("api", 1, 2), 1000, 1)
	mustOK(t, res)
	mustOK(t, mustBlock(n, n.placeTx(id, 4, 1)))
	l := n.leases(id, true)[0]
	// It served one period (receipted), then stopped.
	r1 := n.receipt(svcOwner, l.ID, 1)
	for range 4 {
		n.block()
	}
	_, res = n.block(n.tx(svcOwner, 1, func(tx *Tx) { tx.ServiceDown = &ServiceDown{Lease: l.ID} }))
	mustOK(t, res)
	l, _, _ = n.st.Lease(l.ID)
	if l.Status != LeaseEnding || l.Ended != EndDown {
		t.Fatalf("lease after down: %+v", l)
	}
	if got, _ := n.st.ServicesNeedingReplicas(10); len(got) != 1 {
		t.Fatal("the service does not ask for a replacement")
	}
	// The provider claims with a receipt it made itself for every period:
	// refused; with the owner's one-period receipt: one period.
	_, res = n.block(n.claimTx(4, n.receipt(4, l.ID, 100)), n.claimTx(4, r1))
	refusedWith(t, res, 0, "not signed by the service owner")
	if res.TxResults[1].Code != 0 {
		t.Fatal(res.TxResults[1].Log)
	}
	// The replacement goes to another provider.
	mustOK(t, mustBlock(n, n.placeTx(id, 5, 1)))
	if act := n.leases(id, true); len(act) != 1 || act[0].ProviderAddress() != n.keys[5].Address() {
		t.Fatalf("replacement: %+v", act)
	}
	ownerBefore := n.balance(svcOwner)
	for range ServiceClaimPeriods * svcPeriod / 1000 {
		n.block()
	}
	l, _, _ = n.st.Lease(l.ID)
	if l.Status != LeaseSettled || l.Paid != l.Price || l.Paid+l.Refunded != l.Funded*l.Price {
		t.Fatalf("down lease settled as %+v", l)
	}
	if got := n.balance(svcOwner) - ownerBefore; got != l.Refunded {
		t.Fatalf("owner refunded %d, lease says %d", got, l.Refunded)
	}
	// A claim after the window pays nothing.
	_, res = n.block(n.claimTx(4, n.receipt(svcOwner, l.ID, l.Funded)))
	refusedWith(t, res, 0, "settled")
}

// Attack: a client that never pays (signs no receipt) and never closes.
// The provider loses at most the periods it served unreceipted: it leaves
// the lease without a slash, its reservation and collateral are whole;
// the budget then runs out period by period, every lease ends
// "budget_exhausted", the service ends as exhausted and every unit of its
// budget is accounted for (paid + refunded = budget).
func TestServiceAttackClientNeverPaysNorCloses(t *testing.T) {
	n := svcNet(t)
	const budget = 200
	id, res := n.openService(svcSpec("free", 1, 1), budget, 0)
	mustOK(t, res)
	mustOK(t, mustBlock(n, n.placeTx(id, 4, 1)))
	l := n.leases(id, true)[0]
	coll := func() uint64 { p, _, _ := n.st.Provider(n.keys[4].Address()); return p.Collateral }
	before := coll()
	for range 4 {
		n.block()
	}
	// No receipt after two periods: the provider's node leaves.
	_, res = n.block(n.tx(4, 1, func(tx *Tx) { tx.ServiceLeave = &ServiceLeave{Lease: l.ID} }))
	mustOK(t, res)
	if coll() != before {
		t.Fatal("leaving an unpaid lease cost collateral")
	}
	if p, _, _ := n.st.Provider(n.keys[4].Address()); p.Open != 0 || !p.Reserved.IsZero() {
		t.Fatalf("provider still reserves %v", p.Reserved)
	}
	// The client never acts again. Replacements are placed and leave as
	// long as the budget funds a period, then the service exhausts.
	for i := 0; i < 200 && n.service(id).Status == ServiceRunning; i++ {
		if v := n.service(id); v.Active < v.Replicas && v.Budget >= 16 {
			n.block(n.placeTx(id, 5+i%2, uint64(1+i)))
			continue
		}
		n.block()
	}
	v := n.service(id)
	if v.Status != ServiceExhausted {
		t.Fatalf("service %+v did not exhaust", v)
	}
	for range ServiceClaimPeriods*svcPeriod/1000 + 1 {
		n.block()
	}
	v = n.service(id)
	var paid, refunded uint64
	for _, l := range n.leases(id, false) {
		if l.Status != LeaseSettled {
			t.Fatalf("lease %s still %s", l.ID, l.Status)
		}
		paid += l.Paid
		refunded += l.Refunded
	}
	if paid != 0 || refunded+v.Refunded-refunded != v.Refunded || v.Refunded != budget {
		t.Fatalf("budget %d: paid %d, refunded %d (service record %d)", budget, paid, refunded, v.Refunded)
	}
}

// Attack: budget exhaustion. A budget of exactly three periods of one
// replica: the lease funds three periods, the fourth boundary ends it as
// budget_exhausted, the service exhausts (nothing can run), the provider
// still claims its receipted periods in the claim window, and nothing is
// left in escrow.
func TestServiceAttackBudgetExhaustion(t *testing.T) {
	n := svcNet(t)
	spec := svcSpec("short", 1, 1)
	o := n.offer(4, 1)
	need := spec.Need(n.keys[svcOwner].Public(), n.time)
	price, _ := market.PriceFor(o, &need)
	spec.MaxPricePerPeriod = price
	id, res := n.openService(spec, 3*price, 0)
	mustOK(t, res)
	mustOK(t, mustBlock(n, n.placeTx(id, 4, 1)))
	l := n.leases(id, true)[0]
	for i := 0; i < 20 && n.leases(id, true) != nil; i++ {
		n.block()
	}
	l, _, _ = n.st.Lease(l.ID)
	if l.Ended != EndBudget || l.Funded != 3 {
		t.Fatalf("lease %+v", l)
	}
	if v := n.service(id); v.Status != ServiceExhausted || v.Budget != 0 {
		t.Fatalf("service %+v", v)
	}
	_, res = n.block(n.claimTx(4, n.receipt(svcOwner, l.ID, 5)))
	mustOK(t, res)
	l, _, _ = n.st.Lease(l.ID)
	if l.Paid != 3*price || l.Status != LeaseSettled {
		t.Fatalf("claim past the funded periods: %+v", l)
	}
	if n.st.Globals().Escrow != 0 {
		t.Fatalf("escrow %d left", n.st.Globals().Escrow)
	}
}

// Attack: a scale flood. The owner sends scale steps up and down in one
// block (each a transaction with a fee); a scale down ends the newest
// leases at once paying their funded periods; a proposer cannot place
// more replicas than wanted; the work per scale is bounded by
// MaxServiceReplicas; the invariants hold after every block.
func TestServiceAttackScaleFlood(t *testing.T) {
	n := svcNet(t)
	id, res := n.openService(svcSpec("elastic", 1, 3), 5000, 3)
	mustOK(t, res)
	mustOK(t, mustBlock(n, n.placeTx(id, 4, 1), n.placeTx(id, 5, 1), n.placeTx(id, 6, 1)))
	var flood [][]byte
	for i := range 40 {
		flood = append(flood, n.tx(svcOwner, 1, func(tx *Tx) { tx.ServiceScale = &ServiceScale{Service: id, Replicas: uint32(1 + i%3)} }))
	}
	flood = append(flood, n.tx(svcOwner, 1, func(tx *Tx) { tx.ServiceScale = &ServiceScale{Service: id, Replicas: 9} }))
	_, res = n.block(flood...)
	refusedWith(t, res, len(flood)-1, "not in 1..3")
	v := n.service(id)
	if v.Active != 1 {
		t.Fatalf("after the flood %d active, want 1 (scaled 3→1 then up only as wanted)", v.Active)
	}
	ended := 0
	for _, l := range n.leases(id, false) {
		if l.Ended == EndScaled {
			ended++
			if l.Status != LeaseSettled || l.PaidFor != l.Funded || l.Paid != l.Price {
				t.Fatalf("scaled-down lease not paid its period: %+v", l)
			}
		}
	}
	if ended != 2 {
		t.Fatalf("%d leases ended by scaling, want 2", ended)
	}
	// v.Replicas is the last step's count; the proposer may fill only that.
	want := v.Replicas - v.Active
	var places [][]byte
	for p := 4; p <= 6; p++ {
		places = append(places, n.placeTx(id, p, 2))
	}
	b, _ := n.block(places...)
	if uint32(len(b.Txs)) != want {
		t.Fatalf("%d placements included, %d wanted", len(b.Txs), want)
	}
}

// The due index is worked at most MaxServiceDuePerBlock leases per block,
// earliest first; the rest follow in the next block.
func TestServiceDueStepsAreBoundedPerBlock(t *testing.T) {
	old := MaxServiceDuePerBlock
	MaxServiceDuePerBlock = 2
	t.Cleanup(func() { MaxServiceDuePerBlock = old })
	n := svcNet(t)
	id, res := n.openService(svcSpec("wide", 3, 3), 10_000, 0)
	mustOK(t, res)
	mustOK(t, mustBlock(n, n.placeTx(id, 4, 1), n.placeTx(id, 5, 1), n.placeTx(id, 6, 1)))
	n.step = svcPeriod
	n.block()
	funded := 0
	for _, l := range n.leases(id, true) {
		if l.Funded == 2 {
			funded++
		}
	}
	if funded != 2 {
		t.Fatalf("%d leases stepped in the block at the boundary, want the bound 2", funded)
	}
	n.step = 1
	n.block()
	for _, l := range n.leases(id, true) {
		if l.Funded != 2 {
			t.Fatalf("deferred lease not stepped in the next block: %+v", l)
		}
	}
}

func TestServiceReceiptSignatureDomain(t *testing.T) {
	k := testKey(1)
	r := ServiceReceipt{Lease: LeaseID{1}, Periods: 3}
	r.Sign(testChainID, k)
	if !r.Verify(testChainID, k.Public()) {
		t.Fatal("own receipt does not verify")
	}
	r.Periods = 4
	if r.Verify(testChainID, k.Public()) {
		t.Fatal("an altered receipt verifies")
	}
	var zero wallet.PublicKey
	if r.Verify(testChainID, zero) {
		t.Fatal("verifies under the zero key")
	}
}
