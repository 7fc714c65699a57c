package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// StoreConfig bounds a Store. Zero means no bound.
type StoreConfig struct {
	// MaxBytes: when the blobs add up to more, blobs are deleted: the
	// oldest of the owner holding the most bytes first (see Store).
	MaxBytes int64
	// MaxCount: when there are more blobs, blobs are deleted as for
	// MaxBytes.
	MaxCount int
	// MaxBytesPerOwner bounds the bytes of one owner's blobs (WriteOwned):
	// a write that would take its owner past it deletes that owner's
	// oldest blobs, never another's; a blob larger than the bound is
	// refused (ErrQuota) as soon as it has streamed past it.
	MaxBytesPerOwner int64
	Logger           *slog.Logger
}

// ErrQuota: a blob is larger than its owner's quota in the store.
var ErrQuota = errors.New("blob exceeds the owner's quota")

// Store is a content-addressed blob store in one directory: each blob is a
// file named by the lowercase hex sha256 of its bytes, written atomically
// (temp file, fsync, rename), so the store survives a restart and a crash
// leaves at most a stray temp file, removed by OpenStore.
//
// A blob may have an owner (WriteOwned; a provider's store names the
// client whose job the blob is for), kept in a small <hash>.owner file
// beside it. Owners share the store fairly: one owner's writes delete
// only its own blobs to stay within MaxBytesPerOwner, and when the whole
// store is over MaxBytes or MaxCount, the oldest blob of the owner holding
// the most bytes goes first, so a party filling the store evicts its own
// blobs before anyone else's (blobs without an owner count as the owner
// ""). The blob just written is never the one evicted. A blob written
// again by another owner keeps its first owner.
//
// Readers opened by Open keep working if the blob is evicted meanwhile.
// All methods are safe for concurrent use.
type Store struct {
	dir string
	cfg StoreConfig
	log *slog.Logger

	mu     sync.Mutex
	blobs  map[[32]byte]blobInfo
	bytes  int64
	owners map[string]int64 // bytes per owner
}

type blobInfo struct {
	size  int64
	mod   time.Time
	owner string
}

const (
	tmpPrefix   = ".tmp-"
	ownerSuffix = ".owner"
	// MaxOwnerLen bounds an owner's name.
	MaxOwnerLen = 128
)

// OpenStore opens (creating it if needed) the store in dir.
func OpenStore(dir string, cfg StoreConfig) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open result store %s: %w", dir, err)
	}
	s := &Store{dir: dir, cfg: cfg, log: cfg.Logger, blobs: make(map[[32]byte]blobInfo), owners: map[string]int64{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open result store %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		h, ok := parseHash(name)
		if !ok || !e.Type().IsRegular() {
			if o, ok := parseHash(strings.TrimSuffix(name, ownerSuffix)); ok && strings.HasSuffix(name, ownerSuffix) {
				if _, err := os.Stat(s.path(o)); errors.Is(err, os.ErrNotExist) {
					_ = os.Remove(filepath.Join(dir, name)) // its blob was deleted
				}
			}
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		owner := ""
		if b, err := os.ReadFile(s.path(h) + ownerSuffix); err == nil && len(b) <= MaxOwnerLen {
			owner = string(b)
		}
		s.blobs[h] = blobInfo{size: info.Size(), mod: info.ModTime(), owner: owner}
		s.bytes += info.Size()
		s.owners[owner] += info.Size()
	}
	s.mu.Lock()
	s.evictLocked([32]byte{})
	s.mu.Unlock()
	return s, nil
}

func parseHash(name string) ([32]byte, bool) {
	var h [32]byte
	if len(name) != 64 || strings.ToLower(name) != name {
		return h, false
	}
	if _, err := hex.Decode(h[:], []byte(name)); err != nil {
		return h, false
	}
	return h, true
}

func (s *Store) path(h [32]byte) string { return filepath.Join(s.dir, hex.EncodeToString(h[:])) }

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Write stores what fill writes and returns its sha256 and size. If fill
// fails nothing is stored.
func (s *Store) Write(ctx context.Context, fill func(w io.Writer) error) ([32]byte, int64, error) {
	return s.WriteOwned(ctx, "", fill)
}

// WriteOwned is Write for a blob owned by owner (at most MaxOwnerLen
// bytes): it counts against owner's quota (MaxBytesPerOwner), and fill
// fails with ErrQuota once it writes more than the quota. The bytes
// stream to a temporary file, hashed as they go; nothing is held in
// memory.
func (s *Store) WriteOwned(ctx context.Context, owner string, fill func(w io.Writer) error) ([32]byte, int64, error) {
	if len(owner) > MaxOwnerLen {
		return [32]byte{}, 0, fmt.Errorf("store blob: owner of %d bytes exceeds %d", len(owner), MaxOwnerLen)
	}
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return [32]byte{}, 0, fmt.Errorf("store blob: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	hw := &hashWriter{w: f, h: sha256.New(), max: s.cfg.MaxBytesPerOwner}
	err = fill(hw)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return [32]byte{}, 0, fmt.Errorf("store blob: %w", err)
	}
	var h [32]byte
	hw.h.Sum(h[:0])
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.blobs[h]; ok {
		owner = old.owner // the first owner keeps it
		s.bytes -= old.size
		s.owners[old.owner] -= old.size
	} else if owner != "" {
		if err := os.WriteFile(s.path(h)+ownerSuffix, []byte(owner), 0o644); err != nil {
			return [32]byte{}, 0, fmt.Errorf("store blob %x: owner: %w", h[:6], err)
		}
	}
	if err := os.Rename(tmp, s.path(h)); err != nil {
		return [32]byte{}, 0, fmt.Errorf("store blob %x: %w", h[:6], err)
	}
	s.blobs[h] = blobInfo{size: hw.n, mod: time.Now(), owner: owner}
	s.bytes += hw.n
	s.owners[owner] += hw.n
	s.evictLocked(h)
	return h, hw.n, nil
}

type hashWriter struct {
	w   io.Writer
	h   hash.Hash
	n   int64
	max int64 // > 0: fail past max bytes (ErrQuota)
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	if hw.max > 0 && hw.n+int64(len(p)) > hw.max {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrQuota, hw.max)
	}
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

// Put stores r's bytes.
func (s *Store) Put(ctx context.Context, r io.Reader) ([32]byte, int64, error) {
	return s.Write(ctx, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// Has reports whether the blob is stored.
func (s *Store) Has(h [32]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.blobs[h]
	return ok
}

// Open returns a reader over the blob and its size, or an error wrapping
// ErrNotFound. The caller closes the reader. This is what the p2p blob
// server calls.
func (s *Store) Open(h [32]byte) (io.ReadCloser, int64, error) {
	f, err := os.Open(s.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("open blob %x: %w", h[:6], ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %x: %w", h[:6], err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open blob %x: %w", h[:6], err)
	}
	return f, info.Size(), nil
}

// Get returns the blob's bytes after checking they still hash to h (a file
// damaged on disk is deleted and reported as an error). max > 0 refuses
// blobs larger than max bytes.
func (s *Store) Get(h [32]byte, max int64) ([]byte, error) {
	rc, size, err := s.Open(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if max > 0 && size > max {
		return nil, fmt.Errorf("get blob %x: %d bytes > %d: %w", h[:6], size, max, ErrPayloadTooLarge)
	}
	var b bytes.Buffer
	b.Grow(int(size))
	if _, err := io.Copy(&b, rc); err != nil {
		return nil, fmt.Errorf("get blob %x: %w", h[:6], err)
	}
	if sha256.Sum256(b.Bytes()) != h {
		s.Delete(h)
		return nil, fmt.Errorf("get blob %x: stored bytes are damaged: %w", h[:6], ErrPayloadHash)
	}
	return b.Bytes(), nil
}

// Delete removes a blob; deleting a missing blob is not an error.
func (s *Store) Delete(h [32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLocked(h)
}

func (s *Store) deleteLocked(h [32]byte) {
	if info, ok := s.blobs[h]; ok {
		s.bytes -= info.size
		if s.owners[info.owner] -= info.size; s.owners[info.owner] <= 0 {
			delete(s.owners, info.owner)
		}
		delete(s.blobs, h)
	}
	if err := os.Remove(s.path(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("result store: delete blob", "hash", hex.EncodeToString(h[:]), "err", err)
	}
	_ = os.Remove(s.path(h) + ownerSuffix)
}

// Usage returns the number of blobs and their total size.
func (s *Store) Usage() (count int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.blobs), s.bytes
}

// OwnerUsage returns the bytes of owner's blobs.
func (s *Store) OwnerUsage(owner string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owners[owner]
}

// evictLocked deletes blobs (never keep) until the owner of keep is
// within its quota and the store within its bounds.
func (s *Store) evictLocked(keep [32]byte) {
	if k, ok := s.blobs[keep]; ok && s.cfg.MaxBytesPerOwner > 0 {
		for s.owners[k.owner] > s.cfg.MaxBytesPerOwner {
			if !s.evictOldestLocked(k.owner, keep) {
				break
			}
		}
	}
	for (s.cfg.MaxBytes > 0 && s.bytes > s.cfg.MaxBytes) || (s.cfg.MaxCount > 0 && len(s.blobs) > s.cfg.MaxCount) {
		// The owner holding the most bytes (then the smaller name) that
		// has a blob to give.
		var owners []string
		for o := range s.owners {
			owners = append(owners, o)
		}
		sort.Slice(owners, func(i, j int) bool {
			if s.owners[owners[i]] != s.owners[owners[j]] {
				return s.owners[owners[i]] > s.owners[owners[j]]
			}
			return owners[i] < owners[j]
		})
		evicted := false
		for _, o := range owners {
			if s.evictOldestLocked(o, keep) {
				evicted = true
				break
			}
		}
		if !evicted {
			return
		}
	}
}

// evictOldestLocked deletes owner's blob written longest ago (then the
// smallest hash), other than keep, and reports whether there was one.
func (s *Store) evictOldestLocked(owner string, keep [32]byte) bool {
	var (
		found  bool
		oldest [32]byte
		mod    time.Time
	)
	for h, info := range s.blobs {
		if h == keep || info.owner != owner {
			continue
		}
		if !found || info.mod.Before(mod) || info.mod.Equal(mod) && bytes.Compare(h[:], oldest[:]) < 0 {
			found, oldest, mod = true, h, info.mod
		}
	}
	if found {
		s.deleteLocked(oldest)
	}
	return found
}
