package mempool

import (
	"container/heap"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"

	"github.com/bourse-net/bourse/chain"
)

// Mempool errors. Every refusal wraps one of these (or ErrInvalidTx) with
// the reason, for the API and for gossip validation (ErrTxKnown → Ignore,
// ErrInvalidTx → Reject).
var (
	ErrTxKnown     = errors.New("transaction already in the mempool")
	ErrMempoolFull = errors.New("mempool full")
	ErrNonceGap    = errors.New("nonce gap")
	// ErrUndecodable marks a transaction that does not decode (it also
	// matches chain.ErrInvalidTx): no state makes it valid.
	ErrUndecodable = errors.New("undecodable transaction")
)

// verifyTxs is chain.VerifyTxs; tests count the signatures it is given.
var verifyTxs = chain.VerifyTxs

// Config bounds the mempool. Zero fields take the defaults.
type Config struct {
	MaxTxs       int // transactions held; default 20,000
	MaxBytes     int // encoded bytes held; default 64 MiB
	MaxPerSender int // queued per sender; default 1,000
	SigCacheSize int // verified-signature hashes remembered beyond the queued transactions (blocks ask the mempool for those: Held); default 25,000
	// MaxParked bounds the relayed transactions held ahead of a nonce gap
	// (see AddRelayed), over all senders; default 10,000. One waits for
	// its gap to fill at most ParkHeights blocks (default 20) and at most
	// ParkMs of block time (default 3,000): a resting chain makes a block
	// a second or slower, and free parked junk must not live 20 of them.
	MaxParked   int
	ParkHeights uint64
	ParkMs      int64
}

func (c Config) withDefaults() Config {
	if c.MaxTxs <= 0 {
		c.MaxTxs = 20000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 64 << 20
	}
	if c.MaxPerSender <= 0 {
		c.MaxPerSender = 1000
	}
	if c.SigCacheSize <= 0 {
		c.SigCacheSize = 25000
	}
	if c.MaxParked <= 0 {
		c.MaxParked = 10000
	}
	if c.ParkHeights == 0 {
		c.ParkHeights = 20
	}
	if c.ParkMs <= 0 {
		c.ParkMs = 3000
	}
	return c
}

type mtx struct {
	tx    *chain.Tx
	raw   []byte
	hash  [32]byte
	seq   uint64 // arrival order, breaks fee ties
	spend uint64 // fee plus what the body moves out of the balance
	since uint64 // parked: the height of the state it arrived at
	at    int64  // parked: that state's block time (unix ms)
}

type senderQueue struct {
	addr  wallet.Address
	txs   []*mtx // consecutive nonces from the account's next nonce
	spend sum    // of txs' spends, kept as txs change: a sender's admission check costs O(1), not O(queued)
}

// sum is a 128-bit total of spends: MaxPerSender of them cannot overflow it.
type sum struct{ hi, lo uint64 }

func (s sum) plus(v uint64) sum {
	lo, c := bits.Add64(s.lo, v, 0)
	return sum{s.hi + c, lo}
}

func (s sum) minus(v uint64) sum {
	lo, b := bits.Sub64(s.lo, v, 0)
	return sum{s.hi - b, lo}
}

// exceeds reports whether s is more than v.
func (s sum) exceeds(v uint64) bool { return s.hi > 0 || s.lo > v }

// setTxs replaces q's transactions and recounts their spend.
func (q *senderQueue) setTxs(txs []*mtx) {
	q.txs, q.spend = txs, sum{}
	for _, e := range txs {
		q.spend = q.spend.plus(e.spend)
	}
}

// Mempool holds signature-checked transactions waiting for a block: per
// sender in nonce order with no gaps, bounded by count and bytes, reaped by
// fee. Safe for concurrent use.
type Mempool struct {
	cfg   Config
	cache *chain.SigCache

	mu      sync.Mutex
	st      *chain.State
	byHash  map[[32]byte]*mtx
	senders map[wallet.Address]*senderQueue
	bytes   int
	seq     uint64
	height  uint64 // of the state, from Update

	// parked holds relayed transactions whose nonce is ahead of the
	// sender's queue: gossip does not keep one sender's batches in order,
	// so a relay may see nonce n+1 before n. They join the queue when the
	// gap fills, and leave after ParkHeights blocks or ParkMs of block
	// time otherwise.
	parked  map[wallet.Address]map[uint64]*mtx
	nparked int

	added chan struct{} // see Added
}

// New returns a mempool checking against st (the latest committed
// state; Update replaces it).
func New(cfg Config, st *chain.State) *Mempool {
	cfg = cfg.withDefaults()
	var height uint64
	if st != nil {
		height = st.Globals().Height
	}
	return &Mempool{cfg: cfg, cache: chain.NewSigCache(cfg.SigCacheSize), st: st, height: height,
		byHash: map[[32]byte]*mtx{}, senders: map[wallet.Address]*senderQueue{},
		parked: map[wallet.Address]map[uint64]*mtx{}, added: make(chan struct{}, 1)}
}

// Added receives after transactions joined the queues that blocks are
// reaped from (coalesced: one value stands for every such admission since
// the last receive); parked transactions do not count. The chain driver
// wakes a resting chain on it.
func (m *Mempool) Added() <-chan struct{} { return m.added }

// Parked is the number of relayed transactions waiting for a nonce gap to
// fill.
func (m *Mempool) Parked() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nparked
}

// SigCache is the cache of verified transaction hashes, to hand to Execute
// and BuildBlock so they do not verify again.
func (m *Mempool) SigCache() *chain.SigCache { return m.cache }

// Size is the number of transactions and their encoded bytes.
func (m *Mempool) Size() (txs, bytes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byHash), m.bytes
}

// NextNonce is the nonce addr's next transaction must carry to queue
// behind its pending ones (the account's nonce if none is pending). The
// proposer uses it for its own Match transactions.
func (m *Mempool) NextNonce(addr wallet.Address) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st == nil {
		return 0, errors.New("mempool has no state yet")
	}
	acc, err := m.st.Account(addr)
	if err != nil {
		return 0, err
	}
	return m.senders[addr].next(acc.Nonce), nil
}

// next is the nonce the sender's next transaction must carry. The state may
// already hold a block whose transactions the queue still lists (the
// driver applies a block before it calls Update), so the queue's stale
// head, below the account's nonce, does not count.
func (q *senderQueue) next(accNonce uint64) uint64 {
	if q == nil || len(q.txs) == 0 {
		return accNonce
	}
	return max(accNonce, q.txs[len(q.txs)-1].tx.Nonce+1)
}

// live are the queued transactions the state has not committed yet.
func (q *senderQueue) live(accNonce uint64) []*mtx {
	if q == nil {
		return nil
	}
	for i, e := range q.txs {
		if e.tx.Nonce >= accNonce {
			return q.txs[i:]
		}
	}
	return nil
}

// Has reports whether the transaction is pending.
func (m *Mempool) Has(hash [32]byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.byHash[hash]
	return ok
}

// Held returns, in one lock, the queued transactions with these hashes
// as the mempool decoded and verified them, nil where it holds none:
// blocks reuse them rather than decode and verify the bytes again
// (chain.ExecOptions.Held). Under load a queued transaction can wait
// longer than the signature cache remembers; it was verified a second
// time in its block before. What it returns is shared: read it only.
func (m *Mempool) Held(hashes [][32]byte) []*chain.Tx {
	out := make([]*chain.Tx, len(hashes))
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, h := range hashes {
		if e := m.byHash[h]; e != nil {
			out[i] = e.tx
		}
	}
	return out
}

// Add checks one encoded transaction and queues it; it returns its hash.
func (m *Mempool) Add(raw []byte) ([32]byte, error) {
	hs, errs := m.AddBatch([][]byte{raw})
	return hs[0], errs[0]
}

// AddBatch checks and queues several transactions (a client's batch),
// verifying their signatures in one batch. errs[i] is nil for accepted ones.
// A transaction whose nonce is ahead of the sender's next is refused
// (ErrNonceGap).
func (m *Mempool) AddBatch(raws [][]byte) (hashes [][32]byte, errs []error) {
	return m.addBatch(raws, false)
}

// AddRelayed is AddBatch for transactions relayed by gossip, which may
// arrive out of nonce order: one ahead of a gap (within MaxPerSender of
// the sender's next nonce) is parked, errs[i] nil, and joins the queue
// when the gap fills; at most MaxParked are parked, each for ParkHeights
// blocks.
func (m *Mempool) AddRelayed(raws [][]byte) (hashes [][32]byte, errs []error) {
	hashes, errs, _ = m.AddRelayedForward(raws)
	return hashes, errs
}

// AddRelayedForward is AddRelayed that also says whether the batch may
// be forwarded: only when it admitted something and every signature in
// it was checked. A batch that queued little and carries much the pool
// refused unchecked (replays, surplus) is kept here but not forwarded:
// checking all of it for the network would let one free parked
// transaction (a key nobody funded can park a nonce gap) buy a full
// batch of verifications on every node. The gossip validator rejects the
// batch on a bad signature, accepts it when forward is true, and
// otherwise ignores it.
func (m *Mempool) AddRelayedForward(raws [][]byte) (hashes [][32]byte, errs []error, forward bool) {
	hashes, errs, queued, unchecked := m.add(raws, true)
	admitted := 0
	for _, err := range errs {
		if err == nil {
			admitted++
		}
	}
	// Forward when something was admitted and the unchecked are few
	// beside what joined a queue (an honest late relay: a batch partly
	// committed; an honest out-of-order one: all parked, none unchecked):
	// then every one is verified, so what is forwarded is all signed.
	// Otherwise one unchecked transaction, chosen at random, is verified,
	// so a flood of forged ones is still found and rejected, at one
	// verification a message. Neither check fills the signature cache:
	// what it verifies was refused, and must not push out what blocks may
	// still carry.
	forward = admitted > 0 && len(unchecked.txs) <= 2*queued
	if len(unchecked.txs) > 0 {
		if !forward {
			unchecked = unchecked.one(rand.IntN(len(unchecked.txs)))
		}
		m.cache.Count(len(unchecked.txs))
		m.verify(unchecked, errs, nil)
	}
	return hashes, errs, forward
}

func (m *Mempool) addBatch(raws [][]byte, park bool) (hashes [][32]byte, errs []error) {
	hashes, errs, _, _ = m.add(raws, park)
	return hashes, errs
}

// decoded are transactions of a batch being added: txs[j] decoded from
// raws[idx[j]], whose hash is vh[j].
type decoded struct {
	txs []*chain.Tx
	idx []int
	vh  [][32]byte
}

func (d *decoded) push(tx *chain.Tx, i int, h [32]byte) {
	d.txs, d.idx, d.vh = append(d.txs, tx), append(d.idx, i), append(d.vh, h)
}

// one is d's j-th transaction alone.
func (d decoded) one(j int) decoded {
	return decoded{txs: d.txs[j : j+1], idx: d.idx[j : j+1], vh: d.vh[j : j+1]}
}

// add admits what it can of raws and returns, besides the hashes and
// errors, how many joined a queue and those the screen refused without
// checking their signatures.
func (m *Mempool) add(raws [][]byte, park bool) (hashes [][32]byte, errs []error, queued int, unchecked decoded) {
	hashes, errs = make([][32]byte, len(raws)), make([]error, len(raws))
	for i, raw := range raws {
		hashes[i] = chain.TxHash(raw)
	}
	known := m.Held(hashes)
	var d decoded
	for i, raw := range raws {
		if known[i] != nil {
			errs[i] = fmt.Errorf("add tx %x: %w", hashes[i][:8], ErrTxKnown)
			continue
		}
		tx, err := chain.DecodeTx(raw)
		if err != nil {
			errs[i] = fmt.Errorf("add tx %x: %w: %w: %v", hashes[i][:8], ErrUndecodable, chain.ErrInvalidTx, err)
			continue
		}
		d.push(tx, i, hashes[i])
	}
	// Refuse first what no signature could let in, so that replayed,
	// stale or surplus transactions cost no verification: under load most
	// relayed copies of a transaction arrive after its block, and a full
	// pool refuses most of what clients retry.
	d, unchecked = m.screen(d, raws, errs, park)
	m.verify(d, errs, m.cache)
	m.mu.Lock()
	seq := m.seq
	for j, tx := range d.txs {
		i := d.idx[j]
		if errs[i] != nil {
			continue
		}
		if err := m.insertLocked(tx, raws[i], d.vh[j], park); err != nil {
			errs[i] = fmt.Errorf("add tx %x: %w", d.vh[j][:8], err)
		}
	}
	queued = int(m.seq - seq) // promoted parked ones count: they joined too
	// Only a transaction that joined a sender's queue (checked against the
	// state: it can pay) is work. A parked one is not: anyone may gossip a
	// fee-less nonce gap from an unfunded key, and it must not wake a
	// resting chain for free.
	if m.seq != seq {
		select {
		case m.added <- struct{}{}:
		default:
		}
	}
	m.mu.Unlock()
	return hashes, errs, queued, unchecked
}

// verify checks the signatures of d in a batch, and on failure one by
// one, setting errs of the bad ones. With a cache it skips what the cache
// holds and remembers what holds; with nil it only checks.
func (m *Mempool) verify(d decoded, errs []error, cache *chain.SigCache) {
	if _, err := verifyTxs(d.txs, d.vh, cache); err == nil {
		return
	}
	for j, tx := range d.txs {
		if cache.Has(d.vh[j]) {
			continue
		}
		if err := cache.Verify(tx, d.vh[j]); err != nil {
			errs[d.idx[j]] = fmt.Errorf("add tx %x: %w: %w", d.vh[j][:8], chain.ErrInvalidTx, err)
		}
	}
}

func spendOf(tx *chain.Tx) uint64 {
	s := tx.Fee
	var body uint64
	switch tx.Kind() {
	case chain.KindTransfer:
		body = tx.Transfer.Amount
	case chain.KindBond:
		body = tx.Bond.Amount
	case chain.KindProviderRegister:
		body = tx.ProviderRegister.Collateral
	case chain.KindServiceOpen:
		body = tx.ServiceOpen.Budget
	}
	if t, err := add(s, body); err == nil {
		return t
	}
	return ^uint64(0)
}

// screen drops from a decoded batch, with their errors set, the
// transactions the pool would refuse now whatever their signatures: known
// ones, used or pending nonces, gaps it does not park, full queues, and a
// full pool the fee cannot make room in. It returns the rest, and those
// it refused without checking their signatures. What it lets through
// still meets every check in insertLocked; it only spares the work of
// verifying what would be refused anyway. It judges each transaction
// against the pool as the batch found it: a nonce gap is not held against
// a sender's later transactions in the same batch (the earlier ones may
// fill it), but room an earlier one would make by eviction is not
// counted (the client retries; honest batches do not rely on it).
func (m *Mempool) screen(d decoded, raws [][]byte, errs []error, park bool) (kept, unchecked decoded) {
	if len(d.txs) == 0 {
		return d, unchecked
	}
	seen := make(map[wallet.Address]struct{}, len(d.txs))
	m.mu.Lock()
	defer m.mu.Unlock()
	var t *tails // worked out when the pool is first found full
	cheapest := func() tails {
		if t == nil {
			c := m.cheapestTailsLocked()
			t = &c
		}
		return *t
	}
	for j, tx := range d.txs {
		i, h := d.idx[j], d.vh[j]
		sender := tx.SenderAddress()
		_, later := seen[sender]
		seen[sender] = struct{}{}
		if err := m.refusalLocked(tx, h, len(raws[i]), park, later, cheapest); err != nil {
			errs[i] = fmt.Errorf("add tx %x: %w", h[:8], err)
			if err != ErrTxKnown { // the same bytes are held: verified
				unchecked.push(tx, i, h)
			}
			continue
		}
		kept.push(tx, i, h)
	}
	return kept, unchecked
}

// tails are the two cheapest last transactions of different senders'
// queues: whether any queue but one sender's has a tail cheaper than a
// fee (what evictCheaperLocked looks for) is then O(1), not a scan of
// every sender for every screened transaction.
type tails struct {
	first, second       uint64 // fees; second is from another sender than first
	firstFrom           wallet.Address
	hasFirst, hasSecond bool
}

func (m *Mempool) cheapestTailsLocked() tails {
	var t tails
	for _, q := range m.senders {
		if len(q.txs) == 0 {
			continue
		}
		fee := q.txs[len(q.txs)-1].tx.Fee
		switch {
		case !t.hasFirst || fee < t.first:
			if t.hasFirst {
				t.second, t.hasSecond = t.first, true
			}
			t.first, t.firstFrom, t.hasFirst = fee, q.addr, true
		case !t.hasSecond || fee < t.second:
			t.second, t.hasSecond = fee, true
		}
	}
	return t
}

// canEvict reports whether a queue other than not's has a tail cheaper
// than fee.
func (t tails) canEvict(fee uint64, not wallet.Address) bool {
	if t.hasFirst && t.firstFrom != not {
		return t.first < fee
	}
	return t.hasSecond && t.second < fee
}

// refusalLocked is screen's check of one transaction of size bytes; later
// says the batch holds an earlier transaction of the same sender.
func (m *Mempool) refusalLocked(tx *chain.Tx, hash [32]byte, size int, park, later bool, cheapest func() tails) error {
	_, q, parkIt, err := m.placeLocked(tx, hash, park)
	switch {
	case later && (errors.Is(err, ErrNonceGap) || parkIt):
		return nil
	case err != nil:
		return err
	case parkIt:
		return m.parkRefusalLocked(q.addr, tx.Nonce)
	case m.fullLocked(size) && !cheapest().canEvict(tx.Fee, q.addr):
		return fmt.Errorf("%w: %d transactions, %d bytes", ErrMempoolFull, len(m.byHash), m.bytes)
	}
	return nil
}

// placeLocked finds where tx would go: the sender's account and queue (a
// new empty one if it has none), and whether it would be parked ahead of
// a gap; or why it cannot go anywhere.
func (m *Mempool) placeLocked(tx *chain.Tx, hash [32]byte, park bool) (acc chain.Account, q *senderQueue, parkIt bool, err error) {
	if _, ok := m.byHash[hash]; ok {
		return acc, nil, false, ErrTxKnown
	}
	sender := tx.SenderAddress()
	if p := m.parked[sender][tx.Nonce]; p != nil && p.hash == hash {
		return acc, nil, false, ErrTxKnown
	}
	if m.st == nil {
		return acc, nil, false, errors.New("mempool has no state yet")
	}
	if acc, err = m.st.Account(sender); err != nil {
		return acc, nil, false, err
	}
	q = m.senders[sender]
	if q == nil {
		q = &senderQueue{addr: sender}
	}
	expected := q.next(acc.Nonce)
	switch {
	case tx.Nonce < acc.Nonce:
		return acc, nil, false, fmt.Errorf("%w: nonce %d already used (next is %d)", chain.ErrInvalidTx, tx.Nonce, acc.Nonce)
	case tx.Nonce < expected:
		return acc, nil, false, fmt.Errorf("%w: nonce %d already pending", ErrTxKnown, tx.Nonce)
	case tx.Nonce > expected && park && tx.Nonce-expected <= uint64(m.cfg.MaxPerSender):
		return acc, q, true, nil
	case tx.Nonce > expected:
		return acc, nil, false, fmt.Errorf("%w: nonce %d, next expected %d", ErrNonceGap, tx.Nonce, expected)
	case len(q.txs) >= m.cfg.MaxPerSender:
		return acc, nil, false, fmt.Errorf("%w: %d transactions pending from %s", ErrMempoolFull, len(q.txs), sender)
	}
	return acc, q, false, nil
}

// fullLocked reports whether size more bytes need room made first.
func (m *Mempool) fullLocked(size int) bool {
	return len(m.byHash) >= m.cfg.MaxTxs || m.bytes+size > m.cfg.MaxBytes
}

func (m *Mempool) insertLocked(tx *chain.Tx, raw []byte, hash [32]byte, park bool) error {
	acc, q, parkIt, err := m.placeLocked(tx, hash, park)
	if err != nil {
		return err
	}
	sender := q.addr
	if parkIt {
		return m.parkLocked(sender, &mtx{tx: tx, raw: raw, hash: hash, spend: spendOf(tx), since: m.height, at: m.blockTime()})
	}
	live := q.live(acc.Nonce)
	e := &mtx{tx: tx, raw: raw, hash: hash, spend: spendOf(tx)}
	if len(live) == 0 {
		if err := chain.CheckTxState(m.st, tx, true); err != nil {
			return err
		}
	} else {
		if err := chain.CheckTxState(m.st, tx, false); err != nil {
			return err
		}
		// The live queue's spend: the whole queue's, less the heads the
		// state already committed (a block applied, Update not yet run).
		total := q.spend.plus(e.spend)
		for _, p := range q.txs[:len(q.txs)-len(live)] {
			total = total.minus(p.spend)
		}
		if total.exceeds(acc.Balance) {
			return fmt.Errorf("%w: balance %d cannot cover the pending transactions of %s", chain.ErrInvalidTx, acc.Balance, sender)
		}
	}
	for m.fullLocked(len(raw)) {
		if !m.evictCheaperLocked(tx.Fee, sender) {
			return fmt.Errorf("%w: %d transactions, %d bytes", ErrMempoolFull, len(m.byHash), m.bytes)
		}
	}
	m.seq++
	e.seq = m.seq
	q.txs = append(q.txs, e)
	q.spend = q.spend.plus(e.spend)
	m.senders[sender] = q
	m.byHash[hash] = e
	m.bytes += len(raw)
	// Queued, blocks find it through Held: its place in the cache goes
	// to a verified transaction the mempool does not hold.
	m.cache.Forget([][32]byte{hash})
	m.promoteLocked(sender, tx.Nonce+1)
	return nil
}

// shrinkLocked gives the memory of a drained mempool back: Go maps never
// shrink, so after a burst of load the index would keep its peak size.
func (m *Mempool) shrinkLocked() {
	if len(m.byHash) == 0 {
		m.byHash = map[[32]byte]*mtx{}
	}
	if len(m.senders) == 0 {
		m.senders = map[wallet.Address]*senderQueue{}
	}
	if m.nparked == 0 {
		m.parked = map[wallet.Address]map[uint64]*mtx{}
	}
}

// parkLocked holds e until the nonces before it arrive.
func (m *Mempool) parkLocked(sender wallet.Address, e *mtx) error {
	if err := m.parkRefusalLocked(sender, e.tx.Nonce); err != nil {
		return err
	}
	ps := m.parked[sender]
	if ps == nil {
		ps = map[uint64]*mtx{}
		m.parked[sender] = ps
	}
	ps[e.tx.Nonce] = e
	m.nparked++
	return nil
}

// parkRefusalLocked is why sender's transaction of nonce cannot be
// parked, or nil.
func (m *Mempool) parkRefusalLocked(sender wallet.Address, nonce uint64) error {
	if m.parked[sender][nonce] != nil {
		return fmt.Errorf("%w: nonce %d already parked", ErrTxKnown, nonce)
	}
	if m.nparked >= m.cfg.MaxParked {
		return fmt.Errorf("%w: %d transactions parked ahead of nonce gaps", ErrMempoolFull, m.nparked)
	}
	return nil
}

// promoteLocked moves sender's parked transactions from nonce next on
// into the queue while they follow without a gap.
func (m *Mempool) promoteLocked(sender wallet.Address, next uint64) {
	ps := m.parked[sender]
	e := ps[next]
	if e == nil {
		return
	}
	delete(ps, next)
	m.nparked--
	if len(ps) == 0 {
		delete(m.parked, sender)
	}
	// insertLocked promotes the next one in turn; a parked transaction
	// that no longer passes is dropped, and those after it wait for
	// their gap again.
	_ = m.insertLocked(e.tx, e.raw, e.hash, false)
}

// blockTime is the time of the state the mempool checks against (0
// without one).
func (m *Mempool) blockTime() int64 {
	if m.st == nil {
		return 0
	}
	return m.st.Globals().Time
}

// sweepParkedLocked drops parked transactions whose nonce is used or that
// waited ParkHeights blocks or ParkMs of block time, and promotes those
// whose gap filled.
func (m *Mempool) sweepParkedLocked(st *chain.State) {
	now := st.Globals().Time
	for sender, ps := range m.parked {
		acc, err := st.Account(sender)
		for n, e := range ps {
			if err != nil || n < acc.Nonce || m.height >= e.since+m.cfg.ParkHeights || now >= e.at+m.cfg.ParkMs {
				delete(ps, n)
				m.nparked--
			}
		}
		if len(ps) == 0 {
			delete(m.parked, sender)
			continue
		}
		if err == nil {
			m.promoteLocked(sender, m.senders[sender].next(acc.Nonce))
		}
	}
}

// evictCheaperLocked drops the last queued transaction with the lowest fee
// (below fee, from another sender); it reports whether it found one.
func (m *Mempool) evictCheaperLocked(fee uint64, not wallet.Address) bool {
	var victim *senderQueue
	for _, q := range m.senders {
		if q.addr == not || len(q.txs) == 0 {
			continue
		}
		last := q.txs[len(q.txs)-1]
		if last.tx.Fee < fee && (victim == nil || last.tx.Fee < victim.txs[len(victim.txs)-1].tx.Fee) {
			victim = q
		}
	}
	if victim == nil {
		return false
	}
	// Another proposer may still carry it: remember it was verified.
	m.cache.Add(victim.txs[len(victim.txs)-1].hash)
	m.dropFromLocked(victim, len(victim.txs)-1)
	return true
}

// dropFromLocked removes q.txs[i:] (later nonces cannot stay without i).
func (m *Mempool) dropFromLocked(q *senderQueue, i int) {
	for _, e := range q.txs[i:] {
		delete(m.byHash, e.hash)
		m.bytes -= len(e.raw)
		q.spend = q.spend.minus(e.spend)
	}
	q.txs = q.txs[:i]
	if len(q.txs) == 0 {
		delete(m.senders, q.addr)
	}
}

type reapHeap []*senderQueue

func (h reapHeap) Len() int { return len(h) }
func (h reapHeap) Less(i, j int) bool {
	a, b := h[i].txs[0], h[j].txs[0]
	if a.tx.Fee != b.tx.Fee {
		return a.tx.Fee > b.tx.Fee
	}
	return a.seq < b.seq
}
func (h reapHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *reapHeap) Push(x any)   { *h = append(*h, x.(*senderQueue)) }
func (h *reapHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Reap returns up to maxTxs transactions totalling at most maxBytes,
// highest fee first, each sender's in nonce order. It does not remove
// them; Update does once they commit.
func (m *Mempool) Reap(maxBytes, maxTxs int) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := make(reapHeap, 0, len(m.senders))
	for _, q := range m.senders {
		h = append(h, &senderQueue{addr: q.addr, txs: q.txs})
	}
	heap.Init(&h)
	var out [][]byte
	size := 0
	for h.Len() > 0 && len(out) < maxTxs {
		q := h[0]
		e := q.txs[0]
		if size+len(e.raw) > maxBytes {
			heap.Pop(&h) // this sender's later nonces cannot go first
			continue
		}
		out = append(out, e.raw)
		size += len(e.raw)
		q.txs = q.txs[1:]
		if len(q.txs) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return out
}

// Update is called after each committed block with the hashes of its
// transactions and the new state: it removes the committed transactions
// and evicts those that became invalid (used nonces, a head that no longer
// passes CheckTx, queues the balance no longer covers).
func (m *Mempool) Update(height uint64, committed [][32]byte, st *chain.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st = st
	m.height = height
	defer m.sweepParkedLocked(st)
	defer m.shrinkLocked()
	m.cache.Forget(committed) // a committed transaction is not verified again
	for _, h := range committed {
		if e, ok := m.byHash[h]; ok {
			delete(m.byHash, h)
			m.bytes -= len(e.raw)
			e.raw = nil // marks it removed for the queue sweep below
		}
	}
	for _, q := range m.senders {
		kept := q.txs[:0]
		for _, e := range q.txs {
			if e.raw != nil {
				kept = append(kept, e)
			}
		}
		q.setTxs(kept)
		acc, err := st.Account(q.addr)
		if err != nil {
			m.dropFromLocked(q, 0)
			continue
		}
		i := 0
		for i < len(q.txs) && q.txs[i].tx.Nonce < acc.Nonce {
			i++
		}
		// Drop used nonces from the front.
		for _, e := range q.txs[:i] {
			delete(m.byHash, e.hash)
			m.bytes -= len(e.raw)
		}
		q.setTxs(q.txs[i:])
		if len(q.txs) == 0 {
			delete(m.senders, q.addr)
			continue
		}
		if q.txs[0].tx.Nonce != acc.Nonce || chain.CheckTxState(st, q.txs[0].tx, true) != nil {
			m.dropFromLocked(q, 0)
			continue
		}
		var total uint64
		for j, e := range q.txs {
			var err error
			if total, err = add(total, e.spend); err != nil || total > acc.Balance {
				m.dropFromLocked(q, j)
				break
			}
		}
	}
}

// MaxTxBatch bounds the transactions of one gossip message on the txs topic.
const MaxTxBatch = 1024

var batchDecoder = codec.MustDecoder(codec.Limits{MaxSize: 4 << 20, MaxNesting: 4, MaxArrayElements: MaxTxBatch, MaxMapPairs: 16})

// EncodeTxBatch is the payload of one message on the txs topic: several
// encoded transactions, so gossip carries batches rather than one message
// per transaction.
func EncodeTxBatch(txs [][]byte) ([]byte, error) {
	if len(txs) == 0 || len(txs) > MaxTxBatch {
		return nil, fmt.Errorf("encode tx batch: %d transactions, want 1..%d", len(txs), MaxTxBatch)
	}
	return codec.Marshal(txs)
}

// DecodeTxBatch decodes a txs-topic message; each element still goes
// through Mempool.AddBatch (DecodeTx, signatures, state).
func DecodeTxBatch(data []byte) ([][]byte, error) {
	var txs [][]byte
	if err := batchDecoder.UnmarshalCanonical(data, &txs); err != nil {
		return nil, fmt.Errorf("decode tx batch: %w", err)
	}
	if len(txs) == 0 {
		return nil, errors.New("decode tx batch: empty")
	}
	for i, t := range txs {
		if len(t) == 0 || len(t) > chain.MaxTxBytes {
			return nil, fmt.Errorf("decode tx batch: tx %d is %d bytes", i, len(t))
		}
	}
	return txs, nil
}

func add(a, b uint64) (uint64, error) {
	s, c := bits.Add64(a, b, 0)
	if c != 0 {
		return 0, chain.ErrOverflow
	}
	return s, nil
}
