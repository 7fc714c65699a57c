package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func put(t *testing.T, s *Store, data string) [32]byte {
	t.Helper()
	h, n, err := s.Put(context.Background(), strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if h != sha256.Sum256([]byte(data)) || n != int64(len(data)) {
		t.Fatalf("Put(%q) = %x, %d", data, h, n)
	}
	return h
}

func TestStoreRoundTripAndRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h := put(t, s, "hello result")
	if !s.Has(h) {
		t.Fatal("Has after Put = false")
	}
	rc, n, err := s.Open(h)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "hello result" || n != int64(len(b)) {
		t.Fatalf("Open = %q, %d", b, n)
	}
	// A crash left a temp file behind; a restart removes it and keeps blobs.
	if err := os.WriteFile(filepath.Join(dir, tmpPrefix+"junk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(dir, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get(h, 0)
	if err != nil || string(got) != "hello result" {
		t.Fatalf("after restart: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, tmpPrefix+"junk")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file survived the restart: %v", err)
	}
	if c, by := s2.Usage(); c != 1 || by != int64(len("hello result")) {
		t.Fatalf("usage after restart = %d, %d", c, by)
	}
}

func TestStoreErrors(t *testing.T) {
	s, err := OpenStore(t.TempDir(), StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var missing [32]byte
	if _, _, err := s.Open(missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(missing) = %v", err)
	}
	if _, err := s.Get(missing, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v", err)
	}
	h := put(t, s, "0123456789")
	if _, err := s.Get(h, 5); !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("Get over max = %v", err)
	}
	// Damage the file on disk: Get notices and drops it.
	if err := os.WriteFile(s.path(h), []byte("9876543210"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(h, 0); !errors.Is(err, ErrPayloadHash) {
		t.Errorf("Get(damaged) = %v", err)
	}
	if s.Has(h) {
		t.Error("damaged blob still listed")
	}
	// A failing writer stores nothing.
	_, _, err = s.Write(context.Background(), func(w io.Writer) error {
		w.Write([]byte("partial"))
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("Write with a failing fill succeeded")
	}
	if c, _ := s.Usage(); c != 0 {
		t.Fatalf("failed write left %d blobs", c)
	}
	ents, _ := os.ReadDir(s.Dir())
	if len(ents) != 0 {
		t.Fatalf("failed write left files: %v", ents)
	}
}

// TestStoreRetention: with random puts, the store never holds more than its
// bounds, the newest blob always survives, and what is listed is on disk.
func TestStoreRetention(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	for _, cfg := range []StoreConfig{{MaxCount: 3}, {MaxBytes: 100}, {MaxCount: 5, MaxBytes: 60}} {
		s, err := OpenStore(t.TempDir(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			data := fmt.Sprintf("%d:%s", i, bytes.Repeat([]byte{'x'}, rng.IntN(40)))
			h := put(t, s, data)
			if !s.Has(h) {
				t.Fatalf("seed %d cfg %+v: newest blob evicted", seed, cfg)
			}
			c, by := s.Usage()
			if cfg.MaxCount > 0 && c > cfg.MaxCount {
				t.Fatalf("seed %d cfg %+v: %d blobs", seed, cfg, c)
			}
			if cfg.MaxBytes > 0 && by > cfg.MaxBytes && c > 1 {
				t.Fatalf("seed %d cfg %+v: %d bytes in %d blobs", seed, cfg, by, c)
			}
			ents, _ := os.ReadDir(s.Dir())
			if len(ents) != c {
				t.Fatalf("seed %d cfg %+v: %d files on disk, %d listed", seed, cfg, len(ents), c)
			}
		}
	}
}

func putOwned(t *testing.T, s *Store, owner, data string) ([32]byte, error) {
	t.Helper()
	h, _, err := s.WriteOwned(context.Background(), owner, func(w io.Writer) error {
		_, err := io.WriteString(w, data)
		return err
	})
	return h, err
}

// Attack: one client of a provider fills the provider's store (payloads
// it sends, results its jobs make) to evict another client's payload or
// result before it is used or fetched. Before, the store was shared and
// evicted oldest first, whoever wrote. Now a client's writes delete only
// its own blobs to stay within its quota, and when the store is over its
// bound the owner holding the most bytes loses its oldest blob first.
func TestStoreAttackOneOwnerCannotEvictAnother(t *testing.T) {
	s, err := OpenStore(t.TempDir(), StoreConfig{MaxBytes: 100, MaxBytesPerOwner: 60})
	if err != nil {
		t.Fatal(err)
	}
	victim, err := putOwned(t, s, "honest", strings.Repeat("v", 30))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		h, err := putOwned(t, s, "flood", fmt.Sprintf("%03d%s", i, strings.Repeat("f", 17)))
		if err != nil {
			t.Fatal(err)
		}
		if !s.Has(h) {
			t.Fatalf("write %d: the newest blob was evicted", i)
		}
		if !s.Has(victim) {
			t.Fatalf("write %d: the flood evicted the honest owner's blob", i)
		}
		if got := s.OwnerUsage("flood"); got > 60 {
			t.Fatalf("write %d: the flooder holds %d bytes over its quota 60", i, got)
		}
	}
	if _, by := s.Usage(); by != 90 {
		t.Fatalf("store holds %d bytes, want 30 + 60", by)
	}
	// Over the store's bound (three owners of 30, 60 and 20 > 100), the
	// largest owner gives way, not the smallest.
	third, err := putOwned(t, s, "third", strings.Repeat("t", 20))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has(victim) || !s.Has(third) || s.OwnerUsage("flood") != 40 {
		t.Fatalf("over the bound: honest kept %v, third kept %v, flood holds %d (want 40)", s.Has(victim), s.Has(third), s.OwnerUsage("flood"))
	}
}

// The quota at its bound: a blob of exactly MaxBytesPerOwner is stored
// (evicting the owner's others), one byte more is refused while it
// streams and nothing of it stays; owners survive a restart.
func TestStoreOwnerQuotaAtTheBound(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, StoreConfig{MaxBytesPerOwner: 64})
	if err != nil {
		t.Fatal(err)
	}
	small, err := putOwned(t, s, "a", "small")
	if err != nil {
		t.Fatal(err)
	}
	other, err := putOwned(t, s, "b", "other")
	if err != nil {
		t.Fatal(err)
	}
	exact, err := putOwned(t, s, "a", strings.Repeat("x", 64))
	if err != nil {
		t.Fatalf("a blob of exactly the quota: %v", err)
	}
	if s.Has(small) || !s.Has(exact) || !s.Has(other) || s.OwnerUsage("a") != 64 {
		t.Fatalf("at the quota: small kept %v, exact kept %v, other kept %v, a holds %d", s.Has(small), s.Has(exact), s.Has(other), s.OwnerUsage("a"))
	}
	if _, err := putOwned(t, s, "a", strings.Repeat("y", 65)); !errors.Is(err, ErrQuota) {
		t.Fatalf("a blob one byte over the quota: %v, want ErrQuota", err)
	}
	if c, by := s.Usage(); c != 2 || by != 64+5 {
		t.Fatalf("after the refused blob: %d blobs, %d bytes", c, by)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Fatalf("a temporary file is left: %s", e.Name())
		}
	}
	// The same content written by another owner stays the first owner's.
	if _, err := putOwned(t, s, "b", strings.Repeat("x", 64)); err != nil {
		t.Fatal(err)
	}
	if s.OwnerUsage("a") != 64 || s.OwnerUsage("b") != 5 {
		t.Fatalf("rewritten blob: a holds %d, b %d", s.OwnerUsage("a"), s.OwnerUsage("b"))
	}
	s2, err := OpenStore(dir, StoreConfig{MaxBytesPerOwner: 64})
	if err != nil {
		t.Fatal(err)
	}
	if s2.OwnerUsage("a") != 64 || s2.OwnerUsage("b") != 5 {
		t.Fatalf("after a restart: a holds %d, b %d", s2.OwnerUsage("a"), s2.OwnerUsage("b"))
	}
	s2.Delete(exact)
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%x", exact)+ownerSuffix)); !os.IsNotExist(err) {
		t.Fatalf("the owner file outlives its blob: %v", err)
	}
	if _, err := putOwned(t, s2, strings.Repeat("o", MaxOwnerLen+1), "x"); err == nil {
		t.Fatal("an owner name over MaxOwnerLen was accepted")
	}
}
