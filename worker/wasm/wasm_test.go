package wasm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

// buildDir holds the test programs; cacheDir the compilation cache every
// executor in these tests shares (so only the first compile is cold).
var buildDir, cacheDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "bourse-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir, cacheDir = d, workertest.CacheDir()
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// module builds a Go package for wasip1 and returns its bytes.
func module(tb testing.TB, pkg string) []byte {
	tb.Helper()
	b, err := workertest.BuildWasm(buildDir, cacheDir, pkg)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const testLogCap = 256 << 10

func newExecutor(tb testing.TB) *Executor {
	tb.Helper()
	e, err := New(context.Background(), Config{CacheDir: cacheDir, LogCap: testLogCap})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func testJob(payload []byte, args ...string) *worker.Job {
	return &worker.Job{
		ID: workertest.NewID(), Executor: worker.KindWASM, Payload: payload, Args: args,
		Limits: worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 256, DiskMiB: 16}, Timeout: time.Minute},
	}
}

func TestContract(t *testing.T) {
	prog := module(t, workertest.TestProg)
	workertest.Run(t, workertest.Harness{
		New: func(t *testing.T) worker.Executor { return newExecutor(t) },
		Job: func(t *testing.T, args ...string) *worker.Job { return testJob(prog, args...) },
		Invalid: func(t *testing.T) *worker.Job {
			return testJob([]byte("\x00asm\x01\x00\x00\x00garbage"))
		},
		Sandboxed: true,
		OOMState:  worker.StateOOM,
		LogCap:    testLogCap,
	})
}

// TestGuestCannotLinkOutOfItsDirectory: wazero's directory mount follows a
// symlink that climbs out of it, so the guest may not make symlinks: the
// one path by which it could reach the provider's files.
func TestGuestCannotLinkOutOfItsDirectory(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("provider's secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	j := testJob(module(t, workertest.TestProg), "linkout", strings.TrimPrefix(secret, "/"))
	out := t.TempDir()
	if err := e.Start(context.Background(), j, out); err != nil {
		t.Fatal(err)
	}
	x, err := e.Wait(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if x.State != worker.StateFailed || strings.Contains(string(x.Stdout), "secret") {
		t.Fatalf("got %s: stdout %q stderr %q", x.State, x.Stdout, x.Stderr)
	}
	if !strings.Contains(string(x.Stderr), "not permitted") {
		t.Fatalf("the symlink did not fail as refused: %q", x.Stderr)
	}
}

// TestCompiledModuleEviction: with room for one compiled module, jobs
// alternating between two modules (some running concurrently) all succeed.
func TestCompiledModuleEviction(t *testing.T) {
	e, err := New(context.Background(), Config{CacheDir: cacheDir, KeepCompiled: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	mods := [][]byte{module(t, workertest.TestProg), module(t, helloPkg)}
	var jobs []*worker.Job
	for i := range 6 {
		j := testJob(mods[i%2], "hello", "x")
		if err := e.Start(context.Background(), j, t.TempDir()); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	for _, j := range jobs {
		x, err := e.Wait(context.Background(), j.ID)
		if err != nil || x.State != worker.StateSucceeded {
			t.Fatalf("job %s: %v %+v", j.ID.Short(), err, x)
		}
	}
	e.mu.Lock()
	n := e.nIdle
	e.mu.Unlock()
	if n > 1 {
		t.Fatalf("%d job processes (compiled modules) kept, limit 1", n)
	}
}
