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
