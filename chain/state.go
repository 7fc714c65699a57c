package chain

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"sync"

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
	kv   map[string][]byte
	tree *merkle.Tree
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
type Stake struct {
	Address wallet.Address   `cbor:"1,keyasint"`
	PubKey  wallet.PublicKey `cbor:"2,keyasint"`
	Amount  uint64           `cbor:"3,keyasint"`
}

// Unbonding is stake on its way back to the balance of Address.
type Unbonding struct {
	Address wallet.Address `cbor:"1,keyasint"`
	Amount  uint64         `cbor:"2,keyasint"`
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
	TimeoutScan   int64    `cbor:"10,keyasint"` // deadline second up to which timeouts are settled
}

// State keys. Every record lives under one of these prefixes.
const (
	keyParams    = "params"
	keyGlobals   = "globals"
	keyStakes    = "stakes"  // []Stake sorted by address
	pfxAccount   = "acct/"   // + address
	pfxValset    = "vset/"   // + height (8 bytes BE) → []Validator
	pfxUnbonding = "unbond/" // + maturity height (8 bytes BE) → []Unbonding
	pfxEvidence  = "ev/"     // + address + height → seen double-sign evidence
	pfxProvider  = "prov/"   // + address → Provider
	pfxMatch     = "match/"  // + job id → Match
	pfxBid       = "bid/"    // + bid id → BidStatus
	pfxDeadline  = "dl/"     // + deadline second (8 bytes BE) → [][32]byte job ids
	pfxPubKey    = "pk/"     // + address → validator public key, kept after unbonding
)

func heightKey(prefix string, h uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h)
	return prefix + string(b[:])
}

func addrKey(prefix string, a wallet.Address) string { return prefix + string(a[:]) }

// NewState returns an empty state; use GenesisState for a real chain.
func NewState() *State {
	return &State{kv: map[string][]byte{}, tree: merkle.New()}
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
	s.mu.RUnlock()
	return v, ok
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

// Stakes returns every bonded account, sorted by address.
func (s *State) Stakes() ([]Stake, error) {
	var st []Stake
	_, err := getRecord(s, keyStakes, &st)
	return st, err
}

// Each calls fn for every record in key order. The value must not be kept
// or modified. Used by the store and by invariant checks.
func (s *State) Each(fn func(key string, value []byte) error) error {
	s.mu.RLock()
	keys := make([]string, 0, len(s.kv))
	for k := range s.kv {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := s.get(k)
		if !ok {
			continue
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
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
}

// ErrCorruptState wraps a record that does not decode: the store or the
// state is damaged and the node must not go on.
var ErrCorruptState = errors.New("corrupt state")

func getRecord(r reader, key string, v any) (bool, error) {
	b, ok := r.get(key)
	if !ok {
		return false, nil
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
}

func newOverlay(base reader) *overlay { return &overlay{base: base, writes: map[string][]byte{}} }

func (o *overlay) get(key string) ([]byte, bool) {
	if v, ok := o.writes[key]; ok {
		return v, v != nil
	}
	return o.base.get(key)
}

func (o *overlay) put(key string, v any) {
	o.writes[key] = codec.MustMarshal(v)
}

func (o *overlay) del(key string) { o.writes[key] = nil }

// mergeInto copies o's writes into its parent overlay.
func (o *overlay) mergeInto(parent *overlay) {
	for k, v := range o.writes {
		parent.writes[k] = v
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if res.base != s || res.Height != s.globals.Height+1 {
		return fmt.Errorf("apply block %d: result was not computed on this state at height %d", res.Height, s.globals.Height)
	}
	if err := s.installLocked(res.Changes, res.pending); err != nil {
		return fmt.Errorf("apply block %d: %w", res.Height, err)
	}
	return nil
}

func (s *State) installLocked(changes []merkle.Change, p *merkle.Pending) error {
	for _, c := range changes {
		if c.Value == nil {
			delete(s.kv, string(c.Key))
		} else {
			s.kv[string(c.Key)] = c.Value
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
	var g Globals
	if _, err := getRecord(lockedGet, keyGlobals, &g); err != nil {
		return err
	}
	s.params, s.globals = p, g
	return nil
}

type lockedReader struct{ s *State }

func (l lockedReader) get(k string) ([]byte, bool) { v, ok := l.s.kv[k]; return v, ok }

// StateFromRecords rebuilds a state from stored records (the store's
// LoadState) and recomputes its root from scratch.
func StateFromRecords(records map[string][]byte) (*State, error) {
	s := NewState()
	changes := make([]merkle.Change, 0, len(records))
	for k, v := range records {
		if v == nil {
			return nil, fmt.Errorf("%w: record %q has no value", ErrCorruptState, printableKey(k))
		}
		changes = append(changes, merkle.Change{Key: []byte(k), Value: v})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.installLocked(changes, nil); err != nil {
		return nil, err
	}
	return s, nil
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
