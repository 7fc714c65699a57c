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
	// MaxBytes: when the blobs add up to more, the oldest are deleted.
	MaxBytes int64
	// MaxCount: when there are more blobs, the oldest are deleted.
	MaxCount int
	Logger   *slog.Logger
}

// Store is a content-addressed blob store in one directory: each blob is a
// file named by the lowercase hex sha256 of its bytes, written atomically
// (temp file, fsync, rename), so the store survives a restart and a crash
// leaves at most a stray temp file, removed by OpenStore. When a bound of
// StoreConfig is passed, the blobs written longest ago are deleted first;
// the blob just written is never the one evicted.
//
// Readers opened by Open keep working if the blob is evicted meanwhile.
// All methods are safe for concurrent use.
type Store struct {
	dir string
	cfg StoreConfig
	log *slog.Logger

	mu    sync.Mutex
	blobs map[[32]byte]blobInfo
	bytes int64
}

type blobInfo struct {
	size int64
	mod  time.Time
}

const tmpPrefix = ".tmp-"

// OpenStore opens (creating it if needed) the store in dir.
func OpenStore(dir string, cfg StoreConfig) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open result store %s: %w", dir, err)
	}
	s := &Store{dir: dir, cfg: cfg, log: cfg.Logger, blobs: make(map[[32]byte]blobInfo)}
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
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		s.blobs[h] = blobInfo{size: info.Size(), mod: info.ModTime()}
		s.bytes += info.Size()
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
	f, err := os.CreateTemp(s.dir, tmpPrefix+"*")
	if err != nil {
		return [32]byte{}, 0, fmt.Errorf("store blob: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	hw := &hashWriter{w: f, h: sha256.New()}
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
	if err := os.Rename(tmp, s.path(h)); err != nil {
		return [32]byte{}, 0, fmt.Errorf("store blob %x: %w", h[:6], err)
	}
	s.mu.Lock()
	if old, ok := s.blobs[h]; ok {
		s.bytes -= old.size
	}
	s.blobs[h] = blobInfo{size: hw.n, mod: time.Now()}
	s.bytes += hw.n
	s.evictLocked(h)
	s.mu.Unlock()
	return h, hw.n, nil
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashWriter) Write(p []byte) (int, error) {
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
		delete(s.blobs, h)
	}
	if err := os.Remove(s.path(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("result store: delete blob", "hash", hex.EncodeToString(h[:]), "err", err)
	}
}

// Usage returns the number of blobs and their total size.
func (s *Store) Usage() (count int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.blobs), s.bytes
}

func (s *Store) evictLocked(keep [32]byte) {
	over := func() bool {
		return (s.cfg.MaxBytes > 0 && s.bytes > s.cfg.MaxBytes) || (s.cfg.MaxCount > 0 && len(s.blobs) > s.cfg.MaxCount)
	}
	if !over() {
		return
	}
	type aged struct {
		h   [32]byte
		mod time.Time
	}
	all := make([]aged, 0, len(s.blobs))
	for h, info := range s.blobs {
		if h != keep {
			all = append(all, aged{h, info.mod})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].mod.Equal(all[j].mod) {
			return all[i].mod.Before(all[j].mod)
		}
		return bytes.Compare(all[i].h[:], all[j].h[:]) < 0
	})
	for _, a := range all {
		if !over() {
			return
		}
		s.deleteLocked(a.h)
	}
}
