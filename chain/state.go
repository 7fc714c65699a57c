package chain

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/google/btree"

	"github.com/bourse-net/bourse/chain/merkle"
	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/wallet"
)

// State is the committed application state at one height: a key/value map
// of canonical CBOR records and the bucketed Merkle tree over it. Execute
// reads it without modifying it (a proposer may try blocks freely); Apply
// installs a block's Result. Reads are safe concurrently with each other
// and with Apply (the mempool checks transactions while the driver commits).
type State struct {
	mu   sync.RWMutex
	kv   map[string][]byte     // an empty value: a cold record, read from cold
	keys *btree.BTreeG[string] // the keys of kv in order, for prefix scans
	tree *merkle.Tree
	cold ColdReader // nil: every value stays in memory (see SetCold)
	// cooling are the settled matches the last Apply installed: their
	// values leave memory at the next Apply, when the store has them.
	cooling []string
	// cached decoded records that every block needs
	params  Params
	globals Globals
}

// Account is a balance and the nonce the account's next transaction must carry.
type Account struct {
	Balance uint64 `cbor:"1,keyasint,omitempty"`
	Nonce   uint64 `cbor:"2,keyasint,omitempty"`
}

// Stake is one bonded account: its validator key and its bonded amount.
// Each bonded account is its own record (stake/<address>) with a rank
// entry (srank/<^amount><address>) so the active set is the first
// MaxValidators rank entries: a bond costs O(log n) whatever the number
// of bonded accounts.
type Stake struct {
	Address wallet.Address   `cbor:"1,keyasint"`
	PubKey  wallet.PublicKey `cbor:"2,keyasint"`
	Amount  uint64           `cbor:"3,keyasint"`
}

// Unbonding is stake on its way back to the balance of Address: one
// record per account and maturity height (unbond/<maturity><address>),
// indexed per account (ubaddr/<address><maturity>) for slashing.
type Unbonding struct {
	Address wallet.Address `cbor:"1,keyasint"`
	Amount  uint64         `cbor:"2,keyasint"`
	// Height is the block that unbonded it. The stake gave voting power
	// up to Height+1 (set changes take effect two blocks later), so it
	// stays slashable for evidence of votes at Height+1 or earlier.
	Height uint64 `cbor:"3,keyasint"`
}

// Globals are chain-wide counters, one state record.
type Globals struct {
	Height        uint64   `cbor:"1,keyasint"`
	Time          int64    `cbor:"2,keyasint"` // unix ms of the last block (genesis time at 0)
	LastBlockHash [32]byte `cbor:"3,keyasint"`
	Supply        uint64   `cbor:"4,keyasint"` // minted at genesis, constant
	Burned        uint64   `cbor:"5,keyasint"` // slashed and burned, still counted in Supply
	Escrow        uint64   `cbor:"6,keyasint"` // held for open matches
	Bonded        uint64   `cbor:"7,keyasint"`
	Unbonding     uint64   `cbor:"8,keyasint"`
	Collateral    uint64   `cbor:"9,keyasint"`
	// Deposits are the challengers' deposits of open challenges.
	Deposits uint64 `cbor:"21,keyasint,omitempty"`
}

// State keys. Every record lives under one of these prefixes.
//
// A collection that users can grow is never one record: it is an index,
// one key per item under a prefix, read with State's ordered prefix scan,
// so no record outgrows its decoder's limits and adding or removing an
// item costs O(log n) whatever the others do.
const (
	keyParams    = "params"
	keyGlobals   = "globals"
	pfxAccount   = "acct/"   // + address
	pfxStake     = "stake/"  // + address → Stake
	pfxStakeRank = "srank/"  // + ^amount (8 bytes BE) + address → true: bonded accounts, largest first
	pfxValset    = "vset/"   // + height (8 bytes BE) → []Validator (at most MaxValidators)
	pfxUnbonding = "unbond/" // + maturity height (8 bytes BE) + address → Unbonding
	pfxUnbondBy  = "ubaddr/" // + address + maturity height (8 bytes BE) → true
	pfxEvidence  = "ev/"     // + address + height → seen double-sign evidence
	pfxProvider  = "prov/"   // + address → Provider
	pfxMatch     = "match/"  // + job id → Match
	pfxBid       = "bid/"    // + bid id → BidStatus
	pfxDeadline  = "dl/"     // + due time in unix ms (8 bytes BE) + job id → true: unsettled matches (see dueAt), earliest first
	pfxPubKey    = "pk/"     // + address → validator public key, kept after unbonding
	pfxPerf      = "perf/"   // + address → market.Perf: a provider's learnt performance figures
)

func heightKey(prefix string, h uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h)
	return prefix + string(b[:])
}

func addrKey(prefix string, a wallet.Address) string { return prefix + string(a[:]) }

// NewState returns an empty state; use GenesisState for a real chain.
func NewState() *State {
	return &State{kv: map[string][]byte{}, keys: btree.NewG(32, func(a, b string) bool { return a < b }), tree: merkle.New()}
}

// Height is the height of the last applied block (0 at genesis).
func (s *State) Height() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.globals.Height
}

// Root is the state root.
func (s *State) Root() [32]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Root()
}

// Params are the economic and consensus parameters fixed at genesis.
// Snapshot is a read-only copy of the state's records as they are now,
// for a long scan off the commit path (the driver's CheckInvariants):
// later Applies do not change it. The record map is copied (its values
// are never mutated in place, only replaced) and the key index cloned
// copy-on-write. It has no Merkle tree: Root and Apply are not for it.
func (s *State) Snapshot() *State {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &State{kv: maps.Clone(s.kv), keys: s.keys.Clone(), cold: s.cold, params: s.params, globals: s.globals}
}

func (s *State) Params() Params {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.params
}

// Globals returns the chain-wide counters.
func (s *State) Globals() Globals {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.globals
}

func (s *State) get(key string) ([]byte, bool) {
	s.mu.RLock()
	v, ok := s.kv[key]
	cold := s.cold
	s.mu.RUnlock()
	return coldOr(cold, key, v), ok
}

// ColdReader reads a record of the committed state from where it is
// stored: the block store's copy of the state (store.Store.StateRecord).
type ColdReader interface {
	StateRecord(key string) ([]byte, error)
}

// SetCold makes the state keep settled match records on disk only. A
// settled match never changes again and is read rarely (the API, an
// audit, a late result for a finished job), but a node keeps every job
// it ever saw: held in memory, the records grew a node's memory with the
// chain's history, about 750 bytes a job. With SetCold the state keeps
// their keys (for scans) and Merkle leaves (for the root), and drops
// their values, which reads then fetch from r.
//
// A value goes cold one Apply after the one that installed it: r must
// hold every record of a block by the time the next block is applied (the
// driver saves each block before it applies it). A value r cannot give is
// read as ErrCorruptState.
//
// The settled matches already held go cold at the next Apply, like the
// ones that Apply installs (a state loaded by StateLoader holds none).
func (s *State) SetCold(r ColdReader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cold = r
	var keys []string
	s.keys.AscendGreaterOrEqual(pfxMatch, func(k string) bool {
		if !strings.HasPrefix(k, pfxMatch) {
			return false
		}
		keys = append(keys, k)
		return true
	})
	cooling := make(map[string]bool, len(s.cooling))
	for _, k := range s.cooling {
		cooling[k] = true
	}
	for _, k := range keys {
		cold, err := settledMatch(k, s.kv[k])
		if err != nil {
			return err
		}
		if cold && !cooling[k] {
			s.cooling = append(s.cooling, k)
		}
	}
	return nil
}

// coldValue stands in kv for a value kept only by the ColdReader. No
// record's value is empty: every one is CBOR.
var coldValue = []byte{}

// settledMatch reports whether the record (key, v) is a settled match,
// which is kept cold. v is never empty here.
func settledMatch(key string, v []byte) (bool, error) {
	if !strings.HasPrefix(key, pfxMatch) || len(v) == 0 {
		return false, nil
	}
	var m Match
	if err := codec.Unmarshal(v, &m); err != nil {
		return false, fmt.Errorf("%w: record %q: %v", ErrCorruptState, printableKey(key), err)
	}
	return !unsettled(m.Status), nil
}

// coldOr is v, or, for a cold record (an empty v, with r set), its value
// read from r.
func coldOr(r ColdReader, key string, v []byte) []byte {
	if len(v) > 0 || r == nil {
		return v
	}
	return readCold(r, key)
}

// readCold reads a cold record; unreadable if r cannot give it.
func readCold(r ColdReader, key string) []byte {
	v, err := r.StateRecord(key)
	if err != nil || len(v) == 0 {
		return unreadable
	}
	return v
}

// unreadable stands for a cold record the ColdReader could not give. It
// is not nil (an overlay takes nil for a deletion) and not a CBOR value
// (0xff is a lone "break"), so no decoder takes it for a record, and the
// readers that decode say what happened (errUnreadable).
var unreadable = []byte{0xff}

func isUnreadable(v []byte) bool { return len(v) == 1 && v[0] == 0xff }

func errUnreadable(key string) error {
	return fmt.Errorf("%w: record %q is held on disk only and the store could not give it", ErrCorruptState, printableKey(key))
}

// Account returns the account of a (zero if it never received funds).
func (s *State) Account(a wallet.Address) (Account, error) {
	var acc Account
	_, err := getRecord(s, addrKey(pfxAccount, a), &acc)
	return acc, err
}

// ValidatorsAt is the validator set that signs height h, sorted by address.
// It is known for h in [Height(), Height()+2]: changes made by block H take
// effect at H+2.
func (s *State) ValidatorsAt(h uint64) ([]Validator, error) {
	var vals []Validator
	ok, err := getRecord(s, heightKey(pfxValset, h), &vals)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("validators at height %d: unknown at state height %d", h, s.Height())
	}
	return vals, nil
}

// Provider returns the provider record of a, and whether it exists.
func (s *State) Provider(a wallet.Address) (Provider, bool, error) {
	var p Provider
	ok, err := getRecord(s, addrKey(pfxProvider, a), &p)
	return p, ok, err
}

// Perf returns a provider's performance figures (market.Perf), learnt from
// its settled matches; zero before the first.
func (s *State) Perf(a wallet.Address) (market.Perf, error) {
	var p market.Perf
	_, err := getRecord(s, addrKey(pfxPerf, a), &p)
	return p, err
}

// Match returns the open or settled match of a job, and whether it exists.
func (s *State) Match(jobID [32]byte) (Match, bool, error) {
	var m Match
	ok, err := getRecord(s, pfxMatch+string(jobID[:]), &m)
	return m, ok, err
}

// Matches calls fn for every match record, open and settled, in job id
// order. It walks the whole state: for start-up and audits, not hot paths.
func (s *State) Matches(fn func(Match) error) error {
	return s.Each(func(key string, value []byte) error {
		if !strings.HasPrefix(key, pfxMatch) {
			return nil
		}
		var m Match
		if err := codec.Unmarshal(value, &m); err != nil {
			return fmt.Errorf("%w: record %q: %v", ErrCorruptState, printableKey(key), err)
		}
		return fn(m)
	})
}

// Stakes returns every bonded account, sorted by address. It reads one
// record per bonded account: for the API and audits, not the block path.
func (s *State) Stakes() ([]Stake, error) {
	var out []Stake
	err := scanRecords(s, pfxStake, func(_ string, st *Stake) error {
		out = append(out, *st)
		return nil
	})
	return out, err
}

// Each calls fn for every record in key order. The value must not be kept
// or modified. Used by the store and by invariant checks.
func (s *State) Each(fn func(key string, value []byte) error) error {
	var err error
	s.scan("", "", func(k string, v []byte) bool {
		if isUnreadable(v) {
			err = errUnreadable(k)
		} else {
			err = fn(k, v)
		}
		return err == nil
	})
	return err
}

// scanChunk is how many records State.scan copies under its read lock at
// a time, so fn may call back into the state.
const scanChunk = 128

// scan calls fn for every record whose key starts with prefix and is at
// least from, in key order, until fn returns false.
func (s *State) scan(prefix, from string, fn func(key string, value []byte) bool) {
	start := max(prefix, from)
	type rec struct {
		k string
		v []byte
	}
	batch := make([]rec, 0, scanChunk)
	for {
		batch = batch[:0]
		s.mu.RLock()
		s.keys.AscendGreaterOrEqual(start, func(k string) bool {
			if !strings.HasPrefix(k, prefix) {
				return false
			}
			batch = append(batch, rec{k, s.kv[k]})
			return len(batch) < scanChunk
		})
		cold := s.cold
		s.mu.RUnlock()
		for _, r := range batch {
			if !fn(r.k, coldOr(cold, r.k, r.v)) {
				return
			}
		}
		if len(batch) < scanChunk {
			return
		}
		start = batch[len(batch)-1].k + "\x00"
	}
}

// Len is the number of records.
func (s *State) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.kv)
}

// reader is what typed accessors read from: the State or an overlay.
type reader interface {
	get(key string) ([]byte, bool)
	// scan calls fn for every record whose key starts with prefix and is
	// at least from, in key order, until fn returns false.
	scan(prefix, from string, fn func(key string, value []byte) bool)
}

// scanRecords decodes every record under prefix into a fresh T, in key
// order; fn's error stops the scan and is returned.
func scanRecords[T any](r reader, prefix string, fn func(key string, v *T) error) error {
	var err error
	r.scan(prefix, "", func(k string, b []byte) bool {
		v := new(T)
		if isUnreadable(b) {
			err = errUnreadable(k)
			return false
		}
		if uerr := codec.Unmarshal(b, v); uerr != nil {
			err = fmt.Errorf("%w: record %q: %v", ErrCorruptState, printableKey(k), uerr)
			return false
		}
		err = fn(k, v)
		return err == nil
	})
	return err
}

// ErrCorruptState wraps a record that does not decode: the store or the
// state is damaged and the node must not go on.
var ErrCorruptState = errors.New("corrupt state")

func getRecord(r reader, key string, v any) (bool, error) {
	b, ok := r.get(key)
	if !ok {
		return false, nil
	}
	if isUnreadable(b) {
		return true, errUnreadable(key)
	}
	if err := codec.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("%w: record %q: %v", ErrCorruptState, printableKey(key), err)
	}
	return true, nil
}

func printableKey(k string) string {
	for i, c := range []byte(k) {
		if c == '/' {
			return fmt.Sprintf("%s%x", k[:i+1], k[i+1:])
		}
	}
	return k
}

// overlay is a write set over a reader; nil values are deletions.
type overlay struct {
	base   reader
	writes map[string][]byte
	keys   *btree.BTreeG[string] // the keys of writes in order, for scan
}

func newOverlay(base reader) *overlay {
	return &overlay{base: base, writes: map[string][]byte{}, keys: btree.NewG(16, func(a, b string) bool { return a < b })}
}

func (o *overlay) write(key string, v []byte) {
	if _, ok := o.writes[key]; !ok {
		o.keys.ReplaceOrInsert(key)
	}
	o.writes[key] = v
}

func (o *overlay) get(key string) ([]byte, bool) {
	if v, ok := o.writes[key]; ok {
		return v, v != nil
	}
	return o.base.get(key)
}

// scan merges o's writes under prefix with its base's records. It costs
// O(log n) to start plus what it visits, however many writes o holds.
func (o *overlay) scan(prefix, from string, fn func(key string, value []byte) bool) {
	start := max(prefix, from)
	var mine []string // o's keys in range, collected lazily in chunks
	next := start
	more := true
	refill := func() {
		mine = mine[:0]
		o.keys.AscendGreaterOrEqual(next, func(k string) bool {
			if !strings.HasPrefix(k, prefix) {
				more = false
				return false
			}
			mine = append(mine, k)
			return len(mine) < scanChunk
		})
		if len(mine) < scanChunk {
			more = false
		}
		if len(mine) > 0 {
			next = mine[len(mine)-1] + "\x00"
		}
	}
	refill()
	i, stopped := 0, false
	advance := func() {
		i++
		if i == len(mine) && more {
			refill()
			i = 0
		}
	}
	emit := func(k string, v []byte) bool {
		if v == nil { // deleted here
			return true
		}
		if !fn(k, v) {
			stopped = true
		}
		return !stopped
	}
	o.base.scan(prefix, start, func(k string, v []byte) bool {
		for i < len(mine) && mine[i] < k {
			w := mine[i]
			advance()
			if !emit(w, o.writes[w]) {
				return false
			}
		}
		if i < len(mine) && mine[i] == k {
			advance()
			return emit(k, o.writes[k])
		}
		return emit(k, v)
	})
	for !stopped && i < len(mine) {
		w := mine[i]
		advance()
		emit(w, o.writes[w])
	}
}

func (o *overlay) put(key string, v any) { o.write(key, codec.MustMarshal(v)) }

func (o *overlay) del(key string) { o.write(key, nil) }

// mergeInto copies o's writes into its parent overlay.
func (o *overlay) mergeInto(parent *overlay) {
	for k, v := range o.writes {
		parent.write(k, v)
	}
}

// changes lists the writes sorted by key, for the tree and the store.
func (o *overlay) changes() []merkle.Change {
	out := make([]merkle.Change, 0, len(o.writes))
	for k, v := range o.writes {
		out = append(out, merkle.Change{Key: []byte(k), Value: v})
	}
	slices.SortFunc(out, func(a, b merkle.Change) int { return bytes.Compare(a.Key, b.Key) })
	return out
}

// Apply installs the result of executing the next block on s. res must
// come from Execute(s, ...) with no other Apply in between.
func (s *State) Apply(res *Result) error {
	// Which values go cold is decided before the write lock: decoding a
	// block's match records there would hold up every reader.
	s.mu.RLock()
	hasCold := s.cold != nil
	s.mu.RUnlock()
	var cold []bool
	if hasCold {
		var err error
		if cold, err = settledMatches(res.Changes); err != nil {
			return fmt.Errorf("apply block %d: %w", res.Height, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if res.base != s || res.Height != s.globals.Height+1 {
		return fmt.Errorf("apply block %d: result was not computed on this state at height %d", res.Height, s.globals.Height)
	}
	if err := s.installLocked(res.Changes, cold, res.pending); err != nil {
		return fmt.Errorf("apply block %d: %w", res.Height, err)
	}
	return nil
}

// settledMatches reports which of changes write a settled match.
func settledMatches(changes []merkle.Change) ([]bool, error) {
	cold := make([]bool, len(changes))
	for i, c := range changes {
		var err error
		if cold[i], err = settledMatch(string(c.Key), c.Value); err != nil {
			return nil, err
		}
	}
	return cold, nil
}

// installLocked installs changes; cold[i] (cold may be nil) keeps the
// value of changes[i] on disk only.
//
// No block changes a settled match (every writer of a match requires it
// unsettled; the chain tests check it after every block, see testNet).
// Were one to, the state would stay right: the new value is installed
// like any other. Only a reader on another goroutine between the driver's
// SaveBlock and Apply, or of an older Snapshot, would read the newer copy.
func (s *State) installLocked(changes []merkle.Change, cold []bool, p *merkle.Pending) error {
	for _, k := range s.cooling {
		if v, ok := s.kv[k]; ok && len(v) > 0 {
			s.kv[k] = coldValue
		}
	}
	s.cooling = s.cooling[:0]
	for i, c := range changes {
		k := string(c.Key)
		if c.Value == nil {
			delete(s.kv, k)
			s.keys.Delete(k)
			continue
		}
		if _, ok := s.kv[k]; !ok {
			s.keys.ReplaceOrInsert(k)
		}
		s.kv[k] = c.Value
		if cold != nil && cold[i] {
			s.cooling = append(s.cooling, k)
		}
	}
	if p == nil {
		p = s.tree.Preview(changes)
	}
	s.tree.Apply(p)
	return s.reloadLocked()
}

func (s *State) reloadLocked() error {
	lockedGet := lockedReader{s}
	var p Params
	if _, err := getRecord(lockedGet, keyParams, &p); err != nil {
		return err
	}
	if p.ResultGraceMs == 0 { // a params record written before the field existed
		p.ResultGraceMs = market.DefaultResultGraceMs
	}
	p.DefaultSettlement()
	var g Globals
	if _, err := getRecord(lockedGet, keyGlobals, &g); err != nil {
		return err
	}
	s.params, s.globals = p, g
	return nil
}

type lockedReader struct{ s *State }

func (l lockedReader) get(k string) ([]byte, bool) {
	v, ok := l.s.kv[k]
	return coldOr(l.s.cold, k, v), ok
}

func (l lockedReader) scan(string, string, func(string, []byte) bool) {
	panic("chain: scan under the state's write lock")
}

// StateFromRecords rebuilds a state from stored records, every value in
// memory, and recomputes its root from scratch.
func StateFromRecords(records map[string][]byte) (*State, error) {
	l := NewStateLoader(nil)
	for k, v := range records {
		if err := l.Add(k, v); err != nil {
			return nil, err
		}
	}
	return l.State()
}

// StateLoader rebuilds a state from stored records given one by one (the
// store's LoadState). Each record's Merkle leaf is computed as it comes
// and the tree is built once at the end (merkle.Build). With a ColdReader
// a settled match's value is dropped as soon as its leaf is computed, as
// with SetCold, so loading a long chain's state needs the memory of the
// state it keeps, not of every value in the chain's history at once.
type StateLoader struct {
	s      *State
	leaves []merkle.Leaf
	done   bool
}

// NewStateLoader starts an empty state; cold, when not nil, holds every
// record that will be added (see SetCold).
func NewStateLoader(cold ColdReader) *StateLoader {
	s := NewState()
	s.cold = cold
	return &StateLoader{s: s}
}

// Add adds the record (key, value). Each key is added once.
func (l *StateLoader) Add(key string, value []byte) error {
	if l.done {
		return errors.New("state loader: Add after State")
	}
	if len(value) == 0 {
		return fmt.Errorf("%w: record %q has no value", ErrCorruptState, printableKey(key))
	}
	l.leaves = append(l.leaves, merkle.NewLeaf([]byte(key), value))
	if l.s.cold != nil {
		cold, err := settledMatch(key, value)
		if err != nil {
			return err
		}
		if cold {
			value = coldValue
		}
	}
	if _, ok := l.s.kv[key]; !ok {
		l.s.keys.ReplaceOrInsert(key)
	}
	l.s.kv[key] = value
	return nil
}

// State builds the tree and returns the state; its root is computed from
// the records, for the caller to compare.
func (l *StateLoader) State() (*State, error) {
	if l.done {
		return nil, errors.New("state loader: State called twice")
	}
	l.done = true
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.tree = merkle.Build(l.leaves)
	l.leaves = nil
	if err := l.s.reloadLocked(); err != nil {
		return nil, err
	}
	return l.s, nil
}

// Checked arithmetic: a would-be overflow or underflow is an error, never a wrap.
var (
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrOverflow          = errors.New("amount overflow")
)

func add(a, b uint64) (uint64, error) {
	s, c := bits.Add64(a, b, 0)
	if c != 0 {
		return 0, ErrOverflow
	}
	return s, nil
}

func sub(a, b uint64) (uint64, error) {
	if b > a {
		return 0, fmt.Errorf("%w: have %d, need %d", ErrInsufficientFunds, a, b)
	}
	return a - b, nil
}

// mulBps returns amount*bps/10000 without overflow (rounded down).
func mulBps(amount uint64, bps uint32) uint64 {
	hi, lo := bits.Mul64(amount, uint64(bps))
	q, _ := bits.Div64(hi, lo, 10000)
	return q
}

// UnbondingOf is the sum of a's stake still unbonding (its entries in the
// per-address unbonding index: O(its own entries)).
func (s *State) UnbondingOf(a wallet.Address) (uint64, error) {
	prefix := addrKey(pfxUnbondBy, a)
	var sum uint64
	var err error
	s.scan(prefix, "", func(k string, _ []byte) bool {
		if len(k) != len(prefix)+8 {
			err = fmt.Errorf("%w: unbonding index key %q", ErrCorruptState, printableKey(k))
			return false
		}
		var u Unbonding
		ok, gerr := getRecord(s, unbondKey(binary.BigEndian.Uint64([]byte(k[len(prefix):])), a), &u)
		if gerr != nil || !ok {
			err = fmt.Errorf("%w: unbonding index lists %q without its record: %v", ErrCorruptState, printableKey(k), gerr)
			return false
		}
		sum, err = add(sum, u.Amount)
		return err == nil
	})
	return sum, err
}
