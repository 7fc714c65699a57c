package store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/codec"
)

// Store keys. State records are stored under /state/<hex key> so that a
// block's state changes are plain puts and deletes in its batch.
var (
	keyFormat  = ds.NewKey("/meta/format")
	keyHeight  = ds.NewKey("/meta/height")
	keyHash    = ds.NewKey("/meta/hash")
	keyRoot    = ds.NewKey("/meta/root")
	keyGenesis = ds.NewKey("/meta/genesis")
	keySigner  = ds.NewKey("/meta/signer")
	// keySetStart is the first height of the run of blocks, ending at the
	// last one, that share its ValidatorsHash (big-endian uint64).
	keySetStart = ds.NewKey("/meta/set-start")
)

const (
	// storeFormat names the layout of the store and of the state records
	// in it. 2: stakes, unbonding and deadlines as indexes (one key per
	// item) instead of arrays. 3: results are held for a challenge
	// window (chain/settle.go): a block replayed under 2 settles
	// differently.
	storeFormat = "bourse-chain-store/3"
	prefixState = "/state/"
)

func blockKey(h uint64) ds.Key  { return ds.NewKey(fmt.Sprintf("/blocks/%016x", h)) }
func commitKey(h uint64) ds.Key { return ds.NewKey(fmt.Sprintf("/commits/%016x", h)) }
func txKey(h [32]byte) ds.Key   { return ds.NewKey("/txs/" + hex.EncodeToString(h[:])) }
func signerValueKey(id [32]byte) ds.Key {
	return ds.NewKey("/meta/signer-values/" + hex.EncodeToString(id[:]))
}
func receiptsKey(h uint64) ds.Key {
	return ds.NewKey(fmt.Sprintf("/receipts/%016x", h))
}
func stateKey(k []byte) ds.Key { return ds.NewKey(prefixState + hex.EncodeToString(k)) }

// Store errors.
var (
	// ErrNotFound: no such block, commit or transaction.
	ErrNotFound = errors.New("not found")
	// ErrClosed: the store was closed (the node is stopping).
	ErrClosed = errors.New("store closed")
	// ErrCorruptStore: the store is damaged (a record missing or not
	// decoding, a root that does not match its records). The node stops;
	// it never resets silently.
	ErrCorruptStore = errors.New("corrupt chain store")
	// ErrNotInitialized: the store has no genesis yet.
	ErrNotInitialized = errors.New("chain store not initialized")
)

// TxLocation is where a committed transaction is.
type TxLocation struct {
	Height uint64
	Index  uint32
}

// Store persists blocks, commit certificates, the state and the consensus
// signer state on a go-datastore. Every block is written with its state
// changes in one atomic batch, so after a crash the store holds either the
// previous block or the new one, never a part. Safe for concurrent use;
// writes are serialised.
type Store struct {
	mu     sync.Mutex // serialises writes
	d      ds.Batching
	closer func() error
	height uint64
	hash   [32]byte
	inited bool
	// The last block's ValidatorsHash and the first height of the run of
	// blocks ending at it that share it (0 before block 1).
	setHash  [32]byte
	setStart uint64
	// life lets StateRecord, which other goroutines call while a node
	// stops, see the store closed instead of reading a closed database.
	life   sync.RWMutex
	closed bool
}

// Open opens (or creates, if dir does not exist or is empty) the Pebble
// store in dir. An existing directory that does not open as a Pebble
// database, or opens without the store's format marker, is an error that
// says so: never a silent reset.
func Open(dir string) (*Store, error) {
	fresh := true
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		fresh = false
	} else if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("open chain store %s: %w", dir, err)
	}
	if fresh {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open chain store %s: %w", dir, err)
		}
	}
	// 1 MiB memtables, up to four queued for flushing before writes wait.
	// Pebble keeps two memtables of its largest size for good (the live
	// one and one to recycle), so its default 4 MiB held 8 MiB of every
	// node's memory after a burst of load. 1 MiB ones stalled commits
	// under load (3,000 tx/s offered: p50 5.8-9.4 s) when the signer state
	// still rewrote whole blocks with every vote and two memtables could
	// queue; with both changed, 1, 2 and 4 MiB give the same throughput
	// (bourse bench transfers --rate 7000: 3,192-3,646 tx/s for all three).
	opts := &pebble.Options{ErrorIfNotExists: !fresh, MemTableSize: 1 << 20, MemTableStopWritesThreshold: 4}
	d, err := pebbleds.NewDatastore(dir, pebbleds.WithPebbleOpts(opts), pebbleds.WithPebbleWriteOptions(pebble.Sync))
	if err != nil {
		return nil, fmt.Errorf("open chain store %s: %w: %v (restore the directory from a backup, or move it away to resync from genesis)", dir, ErrCorruptStore, err)
	}
	s, err := newStore(d, d.Close, fresh)
	if err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("open chain store %s: %w", dir, err)
	}
	return s, nil
}

// NewMem is a store on an in-memory map datastore, for tests.
func NewMem() *Store {
	s, err := newStore(dssync.MutexWrap(ds.NewMapDatastore()), func() error { return nil }, true)
	if err != nil {
		panic(err) // an empty map cannot fail
	}
	return s
}

// NewOn wraps any batching datastore (fresh or previously written by
// a Store). Its batches must be atomic, as Pebble's are: a signer state
// and the block values it names are written in one.
func NewOn(d ds.Batching) (*Store, error) {
	return newStore(d, func() error { return nil }, false)
}

func newStore(d ds.Batching, closer func() error, fresh bool) (*Store, error) {
	s := &Store{d: d, closer: closer}
	ctx := context.Background()
	f, err := d.Get(ctx, keyFormat)
	switch {
	case errors.Is(err, ds.ErrNotFound):
		if !fresh {
			if hasAny(ctx, d) {
				return nil, fmt.Errorf("%w: data present but no format marker: not a Bourse chain store", ErrCorruptStore)
			}
		}
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read format: %w", err)
	case string(f) != storeFormat:
		return nil, fmt.Errorf("%w: format %q, want %q", ErrCorruptStore, f, storeFormat)
	}
	s.inited = true
	hb, err := d.Get(ctx, keyHeight)
	if err != nil || len(hb) != 8 {
		return nil, fmt.Errorf("%w: height record: %v", ErrCorruptStore, err)
	}
	s.height = binary.BigEndian.Uint64(hb)
	hash, err := d.Get(ctx, keyHash)
	if err != nil || len(hash) != 32 {
		return nil, fmt.Errorf("%w: last block hash record: %v", ErrCorruptStore, err)
	}
	copy(s.hash[:], hash)
	if s.height > 0 {
		b, err := s.Block(ctx, s.height)
		if err != nil {
			return nil, fmt.Errorf("%w: last block %d: %v", ErrCorruptStore, s.height, err)
		}
		if b.Hash() != s.hash {
			return nil, fmt.Errorf("%w: block %d hash differs from the recorded last hash", ErrCorruptStore, s.height)
		}
		s.setHash = b.Header.ValidatorsHash
		if err := s.loadSetStart(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// loadSetStart reads the set-start record, or rebuilds it by walking the
// headers back once for a store written before the record existed.
func (s *Store) loadSetStart(ctx context.Context) error {
	v, err := s.d.Get(ctx, keySetStart)
	if err == nil && len(v) == 8 {
		s.setStart = binary.BigEndian.Uint64(v)
		if s.setStart < 1 || s.setStart > s.height {
			return fmt.Errorf("%w: set-start record %d outside 1..%d", ErrCorruptStore, s.setStart, s.height)
		}
		return nil
	}
	if err != nil && !errors.Is(err, ds.ErrNotFound) {
		return fmt.Errorf("read set-start record: %w", err)
	}
	s.setStart = s.height
	for s.setStart > 1 {
		b, err := s.Block(ctx, s.setStart-1)
		if err != nil {
			return fmt.Errorf("%w: block %d: %v", ErrCorruptStore, s.setStart-1, err)
		}
		if b.Header.ValidatorsHash != s.setHash {
			break
		}
		s.setStart--
	}
	return nil
}

// ValidatorRun returns the last block's ValidatorsHash and the first height
// of the run of blocks, ending at the last one, that carry the same hash:
// where the current validator set began (see chain/driver). Both are zero
// before block 1.
func (s *Store) ValidatorRun() (hash [32]byte, start uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setHash, s.setStart
}

func hasAny(ctx context.Context, d ds.Datastore) bool {
	res, err := d.Query(ctx, query.Query{KeysOnly: true, Limit: 1})
	if err != nil {
		return true
	}
	defer res.Close()
	for r := range res.Next() {
		_ = r
		return true
	}
	return false
}

// Close closes the underlying database.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closer()
}

// Initialized reports whether InitGenesis has run.
func (s *Store) Initialized() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inited
}

// Height is the height of the last stored block (0: only genesis).
func (s *Store) Height() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.height
}

// LastHash is the hash of the last stored block (zero at genesis).
func (s *Store) LastHash() [32]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hash
}

// InitGenesis writes the genesis document and its state at height 0 in one
// batch. It fails if the store is already initialized.
func (s *Store) InitGenesis(ctx context.Context, genesisJSON []byte, st *chain.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inited {
		return errors.New("init genesis: store already initialized")
	}
	if st.Height() != 0 {
		return fmt.Errorf("init genesis: state is at height %d", st.Height())
	}
	b, err := s.d.Batch(ctx)
	if err != nil {
		return fmt.Errorf("init genesis: %w", err)
	}
	err = st.Each(func(k string, v []byte) error { return b.Put(ctx, stateKey([]byte(k)), v) })
	if err != nil {
		return fmt.Errorf("init genesis: %w", err)
	}
	root := st.Root()
	puts := []struct {
		k ds.Key
		v []byte
	}{{keyGenesis, genesisJSON}, {keyHeight, be64(0)}, {keyHash, make([]byte, 32)}, {keyRoot, root[:]}, {keyFormat, []byte(storeFormat)}}
	for _, p := range puts {
		if err := b.Put(ctx, p.k, p.v); err != nil {
			return fmt.Errorf("init genesis: %w", err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("init genesis: commit: %w", err)
	}
	s.inited = true
	return nil
}

// Genesis returns the genesis document the store was initialized with.
func (s *Store) Genesis(ctx context.Context) ([]byte, error) {
	g, err := s.d.Get(ctx, keyGenesis)
	if errors.Is(err, ds.ErrNotFound) {
		return nil, ErrNotInitialized
	}
	return g, err
}

func be64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// SaveBlock stores block b, its commit certificate and the state changes of
// its execution result, with the new height, in one atomic batch. b must
// extend the stored chain (height+1, PrevHash = last hash) and res must be
// b's result (same height, same state root).
func (s *Store) SaveBlock(ctx context.Context, b *chain.Block, commit []byte, res *chain.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := b.Header.Height
	switch {
	case !s.inited:
		return fmt.Errorf("save block %d: %w", h, ErrNotInitialized)
	case h != s.height+1:
		return fmt.Errorf("save block %d: store is at height %d", h, s.height)
	case b.Header.PrevHash != s.hash:
		return fmt.Errorf("save block %d: prev hash %x is not the stored block's %x", h, b.Header.PrevHash[:8], s.hash[:8])
	case res.Height != h || res.StateRoot != b.Header.StateRoot:
		return fmt.Errorf("save block %d: result is for height %d root %x", h, res.Height, res.StateRoot[:8])
	}
	raw, err := b.Encode()
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	bt, err := s.d.Batch(ctx)
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	put := func(k ds.Key, v []byte) {
		if err == nil {
			err = bt.Put(ctx, k, v)
		}
	}
	for _, c := range res.Changes {
		if err != nil {
			break
		}
		if c.Value == nil {
			err = bt.Delete(ctx, stateKey(c.Key))
		} else {
			put(stateKey(c.Key), c.Value)
		}
	}
	for i, t := range b.Txs {
		var loc [12]byte
		binary.BigEndian.PutUint64(loc[:8], h)
		binary.BigEndian.PutUint32(loc[8:], uint32(i))
		put(txKey(chain.TxHash(t)), loc[:])
	}
	hash := b.Hash()
	setStart := s.setStart
	if h == 1 || b.Header.ValidatorsHash != s.setHash {
		setStart = h
	}
	put(keySetStart, be64(setStart))
	for i, tr := range res.TxResults {
		for _, ev := range tr.Events {
			if slot := jobSlot(ev.Type); slot != "" {
				put(jobTxKey(ev.JobID, slot), res.TxHashes[i][:])
			}
		}
	}
	rc, rerr := codec.Marshal(receiptsOf(res))
	if rerr != nil {
		return fmt.Errorf("save block %d: receipts: %w", h, rerr)
	}
	put(receiptsKey(h), rc)
	put(blockKey(h), raw)
	put(commitKey(h), commit)
	put(keyHash, hash[:])
	put(keyRoot, res.StateRoot[:])
	put(keyHeight, be64(h)) // last: but the batch is atomic anyway
	if err != nil {
		return fmt.Errorf("save block %d: %w", h, err)
	}
	if err := bt.Commit(ctx); err != nil {
		return fmt.Errorf("save block %d: commit batch: %w", h, err)
	}
	s.height, s.hash = h, hash
	s.setHash, s.setStart = b.Header.ValidatorsHash, setStart
	return nil
}

// Block returns the block at height h.
func (s *Store) Block(ctx context.Context, h uint64) (*chain.Block, error) {
	raw, err := s.d.Get(ctx, blockKey(h))
	if errors.Is(err, ds.ErrNotFound) {
		return nil, fmt.Errorf("block %d: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", h, err)
	}
	b, err := chain.DecodeBlock(raw)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w: %v", h, ErrCorruptStore, err)
	}
	return b, nil
}

// RawBlock returns the stored encoding of the block at height h (for sync).
func (s *Store) RawBlock(ctx context.Context, h uint64) ([]byte, error) {
	raw, err := s.d.Get(ctx, blockKey(h))
	if errors.Is(err, ds.ErrNotFound) {
		return nil, fmt.Errorf("block %d: %w", h, ErrNotFound)
	}
	return raw, err
}

// Commit returns the commit certificate stored with block h.
func (s *Store) Commit(ctx context.Context, h uint64) ([]byte, error) {
	c, err := s.d.Get(ctx, commitKey(h))
	if errors.Is(err, ds.ErrNotFound) {
		return nil, fmt.Errorf("commit %d: %w", h, ErrNotFound)
	}
	return c, err
}

// StateRecord reads one record of the stored state, the state after the
// last saved block: the chain.ColdReader of a state loaded from this
// store (chain.State.SetCold), which keeps settled matches on disk only.
// A missing record is ErrCorruptStore: the state names it.
func (s *Store) StateRecord(key string) ([]byte, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("state record %x: %w", key, ErrClosed)
	}
	v, err := s.d.Get(context.Background(), stateKey([]byte(key)))
	if errors.Is(err, ds.ErrNotFound) {
		return nil, fmt.Errorf("state record %x: %w: missing", key, ErrCorruptStore)
	}
	if err != nil {
		return nil, fmt.Errorf("state record %x: %w", key, err)
	}
	return v, nil
}

// TxByHash returns where a committed transaction is, and its bytes.
func (s *Store) TxByHash(ctx context.Context, hash [32]byte) (TxLocation, []byte, error) {
	loc, err := s.d.Get(ctx, txKey(hash))
	if errors.Is(err, ds.ErrNotFound) {
		return TxLocation{}, nil, fmt.Errorf("tx %x: %w", hash, ErrNotFound)
	}
	if err != nil {
		return TxLocation{}, nil, fmt.Errorf("tx %x: %w", hash, err)
	}
	if len(loc) != 12 {
		return TxLocation{}, nil, fmt.Errorf("tx %x: %w: location record", hash, ErrCorruptStore)
	}
	l := TxLocation{Height: binary.BigEndian.Uint64(loc[:8]), Index: binary.BigEndian.Uint32(loc[8:])}
	b, err := s.Block(ctx, l.Height)
	if err != nil {
		return l, nil, fmt.Errorf("tx %x: %w", hash, err)
	}
	if int(l.Index) >= len(b.Txs) {
		return l, nil, fmt.Errorf("tx %x: %w: index %d beyond block %d", hash, ErrCorruptStore, l.Index, l.Height)
	}
	return l, b.Txs[l.Index], nil
}

// LoadState rebuilds the state at the stored height from its records and
// checks it: the recomputed root must equal the recorded root and the
// state's own height must equal the store's. Any mismatch is
// ErrCorruptStore. Settled matches stay in the store and are read when
// asked (chain.State.SetCold): use the state only while s is open.
func (s *Store) LoadState(ctx context.Context) (*chain.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.inited {
		return nil, ErrNotInitialized
	}
	res, err := s.d.Query(ctx, query.Query{Prefix: prefixState})
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	defer res.Close()
	// Settled matches are read from this store when asked, not held
	// (chain.State.SetCold): loading does not hold the whole history, and
	// the tree is built once from the leaves (chain.StateLoader).
	l := chain.NewStateLoader(s)
	for r := range res.Next() {
		if r.Error != nil {
			return nil, fmt.Errorf("load state: %w", r.Error)
		}
		k, err := hex.DecodeString(strings.TrimPrefix(r.Key, prefixState))
		if err != nil {
			return nil, fmt.Errorf("load state: %w: key %q", ErrCorruptStore, r.Key)
		}
		if err := l.Add(string(k), r.Value); err != nil {
			return nil, fmt.Errorf("load state: %w: %v", ErrCorruptStore, err)
		}
	}
	st, err := l.State()
	if err != nil {
		return nil, fmt.Errorf("load state: %w: %v", ErrCorruptStore, err)
	}
	root, err := s.d.Get(ctx, keyRoot)
	if err != nil || len(root) != 32 {
		return nil, fmt.Errorf("load state: %w: root record: %v", ErrCorruptStore, err)
	}
	if got := st.Root(); string(got[:]) != string(root) {
		return nil, fmt.Errorf("load state: %w: records hash to %x, recorded root %x", ErrCorruptStore, got[:8], root[:8])
	}
	if st.Height() != s.height {
		return nil, fmt.Errorf("load state: %w: state height %d, store height %d", ErrCorruptStore, st.Height(), s.height)
	}
	return st, nil
}

// SaveSignerState durably stores the consensus signer state (the last
// height/round/step signed), which must be written before a vote leaves
// the node, and in the same write the block values it refers to by id:
// put adds or replaces values, drop deletes the ones it no longer refers
// to. A value is written once, not with every vote that follows it.
func (s *Store) SaveSignerState(ctx context.Context, state []byte, put map[[32]byte][]byte, drop [][32]byte) error {
	b, err := s.d.Batch(ctx)
	if err != nil {
		return fmt.Errorf("save signer state: %w", err)
	}
	for id, v := range put {
		if err == nil {
			err = b.Put(ctx, signerValueKey(id), v)
		}
	}
	if err == nil {
		err = b.Put(ctx, keySigner, state)
	}
	for _, id := range drop {
		if err == nil {
			err = b.Delete(ctx, signerValueKey(id))
		}
	}
	if err == nil {
		err = b.Commit(ctx)
	}
	if err != nil {
		return fmt.Errorf("save signer state: %w", err)
	}
	return nil
}

// LoadSignerValue returns the block value SaveSignerState stored under id,
// or ErrNotFound.
func (s *Store) LoadSignerValue(ctx context.Context, id [32]byte) ([]byte, error) {
	b, err := s.d.Get(ctx, signerValueKey(id))
	if errors.Is(err, ds.ErrNotFound) {
		return nil, fmt.Errorf("signer value %x: %w", id[:8], ErrNotFound)
	}
	return b, err
}

// LoadSignerState returns the signer state, or ErrNotFound before the
// first save.
func (s *Store) LoadSignerState(ctx context.Context) ([]byte, error) {
	b, err := s.d.Get(ctx, keySigner)
	if errors.Is(err, ds.ErrNotFound) {
		return nil, fmt.Errorf("signer state: %w", ErrNotFound)
	}
	return b, err
}
