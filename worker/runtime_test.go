package worker_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/wasm"
	"github.com/bourse-net/bourse/worker/workertest"
)

var buildDir string

func TestMain(m *testing.M) { workertest.Main(m, "bourse-worker-test-", &buildDir) }

func testProg(t *testing.T) []byte {
	t.Helper()
	b, err := workertest.BuildWasm(buildDir, workertest.CacheDir(), workertest.TestProg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fetcher func(ctx context.Context, hash [32]byte, size int64, from string) ([]byte, error)

func (f fetcher) Fetch(ctx context.Context, hash [32]byte, size int64, from string) ([]byte, error) {
	return f(ctx, hash, size, from)
}

func newRuntime(t *testing.T, capacity worker.Resources, f worker.PayloadFetcher) (*worker.Runtime, string) {
	t.Helper()
	ex, err := wasm.New(context.Background(), wasm.Config{CacheDir: workertest.CacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	store, err := worker.OpenStore(t.TempDir(), worker.StoreConfig{MaxCount: 100})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	rt, err := worker.NewRuntime(worker.Config{Capacity: capacity, WorkDir: work, Logger: quiet}, store, f, ex)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(context.Background()); err != nil {
			t.Errorf("close runtime: %v", err)
		}
	})
	return rt, work
}

var quiet = slog.New(slog.DiscardHandler)

var bigCapacity = worker.Resources{CPU: 4000, MemoryMiB: 4096, DiskMiB: 1024}

func job(prog []byte, seed uint64, args ...string) *worker.Job {
	return &worker.Job{
		ID: workertest.NewID(), Executor: worker.KindWASM, Payload: prog, PayloadHash: sha256.Sum256(prog),
		Args: args, Seed: seed,
		Limits: worker.Limits{Resources: worker.Resources{CPU: 500, MemoryMiB: 128, DiskMiB: 1}, Timeout: time.Minute},
	}
}

func mustRun(t *testing.T, rt *worker.Runtime, j *worker.Job) *worker.Result {
	t.Helper()
	res, err := rt.Run(context.Background(), j)
	if err != nil {
		t.Fatalf("run %v: %v", j.Args, err)
	}
	return res
}

// TestResultsAreReproducible: the same WASM job with the same inputs
// yields the same result hash; the hash is the stored archive's sha256.
func TestResultsAreReproducible(t *testing.T) {
	prog := testProg(t)
	rt, work := newRuntime(t, bigCapacity, nil)
	cases := []struct {
		name string
		args []string
	}{
		{"hello", []string{"hello", "world"}},
		{"random and clock", []string{"rand"}},
		{"output file", []string{"write", "a/b.txt", "payload"}},
		{"failure", []string{"exit", "4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := mustRun(t, rt, job(prog, 1, c.args...))
			b := mustRun(t, rt, job(prog, 1, c.args...))
			if a.Hash != b.Hash || a.Hash == ([32]byte{}) {
				t.Fatalf("hashes differ: %x (%q) vs %x (%q)", a.Hash, a.Stdout, b.Hash, b.Stdout)
			}
			blob, err := rt.Store().Get(a.Hash, 0)
			if err != nil || sha256.Sum256(blob) != a.Hash || int64(len(blob)) != a.Size {
				t.Fatalf("stored blob: %d bytes, %v", len(blob), err)
			}
			rc, n, err := rt.Store().Open(a.Hash)
			if err != nil || n != a.Size {
				t.Fatalf("Open: %d, %v", n, err)
			}
			rc.Close()
		})
	}
	t.Run("another seed changes random output", func(t *testing.T) {
		a := mustRun(t, rt, job(prog, 1, "rand"))
		b := mustRun(t, rt, job(prog, 2, "rand"))
		if a.Hash == b.Hash || string(a.Stdout) == string(b.Stdout) {
			t.Fatalf("seed ignored: %q vs %q", a.Stdout, b.Stdout)
		}
	})
	t.Run("real clock and randomness are not reproducible", func(t *testing.T) {
		j1, j2 := job(prog, 1, "rand"), job(prog, 1, "rand")
		j1.RealClock, j1.RealRandom, j2.RealClock, j2.RealRandom = true, true, true, true
		if a, b := mustRun(t, rt, j1), mustRun(t, rt, j2); a.Hash == b.Hash {
			t.Fatalf("real sources gave identical output %q", a.Stdout)
		}
	})
	ents, _ := os.ReadDir(work)
	if len(ents) != 0 {
		t.Fatalf("work dir not emptied: %v", ents)
	}
}

func TestRuntimeCapacity(t *testing.T) {
	prog := testProg(t)
	rt, _ := newRuntime(t, worker.Resources{CPU: 1000, MemoryMiB: 256, DiskMiB: 10}, nil)
	loop := job(prog, 0, "loop")
	loop.Limits.CPU, loop.Limits.MemoryMiB = 800, 128
	if err := rt.Start(context.Background(), loop); err != nil {
		t.Fatal(err)
	}
	l := rt.Load()
	if l.Reserved.CPU != 800 || l.Free.CPU != 200 || l.Running != 1 {
		t.Fatalf("load while running: %+v", l)
	}
	big := job(prog, 0, "hello")
	big.Limits.CPU = 500
	err := rt.Start(context.Background(), big)
	if !errors.Is(err, worker.ErrInsufficientCapacity) || !strings.Contains(err.Error(), "cpu 500m > free 200m") {
		t.Fatalf("oversized start = %v", err)
	}
	if err := rt.Start(context.Background(), loop); !errors.Is(err, worker.ErrDuplicateJob) {
		t.Fatalf("duplicate start = %v", err)
	}
	small := job(prog, 0, "hello", "small")
	small.Limits.CPU, small.Limits.MemoryMiB = 200, 128
	if res := mustRun(t, rt, small); res.State != worker.StateSucceeded {
		t.Fatalf("small job: %+v", res)
	}
	if err := rt.Cancel(context.Background(), loop.ID); err != nil {
		t.Fatal(err)
	}
	res, err := rt.Wait(context.Background(), loop.ID)
	if err != nil || res.State != worker.StateCancelled || !errors.Is(res.Err(), worker.ErrCancelled) {
		t.Fatalf("cancelled job: %+v, %v", res, err)
	}
	if res.Usage.WallMillis <= 0 || res.Usage.CPUMillis != res.Usage.WallMillis*800/1000 {
		t.Fatalf("usage %+v", res.Usage)
	}
	if l := rt.Load(); l.Reserved != (worker.Resources{}) || l.Running != 0 {
		t.Fatalf("load after the jobs: %+v", l)
	}
}

func TestRuntimeOutputOverDiskLimit(t *testing.T) {
	prog := testProg(t)
	rt, _ := newRuntime(t, bigCapacity, nil)
	j := job(prog, 0, "write", "big", strings.Repeat("x", 2<<20))
	res := mustRun(t, rt, j)
	if res.State != worker.StateFailed || !strings.Contains(res.Reason, worker.ErrOutputLimit.Error()) || res.Hash == ([32]byte{}) {
		t.Fatalf("got %+v", res)
	}
}

func TestRuntimePayloadFetch(t *testing.T) {
	prog := testProg(t)
	h := sha256.Sum256(prog)
	var asked []string
	f := fetcher(func(_ context.Context, hash [32]byte, size int64, from string) ([]byte, error) {
		asked = append(asked, from)
		if hash != h {
			return []byte("something else"), nil
		}
		return prog, nil
	})
	rt, _ := newRuntime(t, bigCapacity, f)
	j := job(nil, 0, "hello", "fetched")
	j.PayloadHash, j.PayloadSize, j.PayloadFrom = h, int64(len(prog)), "client-node"
	res := mustRun(t, rt, j)
	if res.State != worker.StateSucceeded || string(res.Stdout) != "hello fetched\n" || len(asked) != 1 {
		t.Fatalf("got %+v, asked %v", res, asked)
	}
	bad := job(nil, 0, "hello")
	bad.PayloadHash, bad.PayloadSize, bad.PayloadFrom = sha256.Sum256([]byte("other")), int64(len("something else")), "evil"
	if err := rt.Start(context.Background(), bad); !errors.Is(err, worker.ErrPayloadHash) {
		t.Fatalf("bad payload start = %v", err)
	}
	tampered := job(prog, 0, "hello")
	tampered.PayloadHash[0] ^= 1
	if err := rt.Start(context.Background(), tampered); !errors.Is(err, worker.ErrPayloadHash) {
		t.Fatalf("tampered payload start = %v", err)
	}
	docker := job(prog, 0)
	docker.Executor = worker.KindDocker
	if err := rt.Start(context.Background(), docker); !errors.Is(err, worker.ErrUnavailable) {
		t.Fatalf("start on a missing executor = %v", err)
	}
	if l := rt.Load(); l.Reserved != (worker.Resources{}) {
		t.Fatalf("refused jobs left reservations: %+v", l)
	}
}

func TestRuntimeCloseWhileRunning(t *testing.T) {
	prog := testProg(t)
	before := runtime.NumGoroutine()
	ex, err := wasm.New(context.Background(), wasm.Config{CacheDir: workertest.CacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	store, _ := worker.OpenStore(t.TempDir(), worker.StoreConfig{})
	rt, err := worker.NewRuntime(worker.Config{Capacity: bigCapacity, WorkDir: t.TempDir()}, store, nil, ex)
	if err != nil {
		t.Fatal(err)
	}
	j := job(prog, 0, "loop")
	if err := rt.Start(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	rc, err := rt.Logs(context.Background(), j.ID, worker.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("looping"))
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "looping" {
		t.Fatalf("logs: %q, %v", buf, err)
	}
	rc.Close()
	if err := rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := rt.Wait(context.Background(), j.ID)
	if err != nil || res.State != worker.StateCancelled || !store.Has(res.Hash) {
		t.Fatalf("after close: %+v, %v", res, err)
	}
	if err := rt.Start(context.Background(), job(prog, 0, "hello")); !errors.Is(err, worker.ErrClosed) {
		t.Fatalf("start after close = %v", err)
	}
	workertest.CheckGoroutines(t, before)
}
