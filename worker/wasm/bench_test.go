package wasm

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

const (
	helloPkg  = "github.com/bourse-net/bourse/examples/hello"
	primesPkg = "github.com/bourse-net/bourse/examples/primes"
	// primesN sets the CPU-bound benchmark's work (~0.1-0.5 s natively).
	primesN = "1500000"
)

// runOnce starts one job and waits for it, failing b unless it succeeds.
func runOnce(b *testing.B, e *Executor, prog []byte, args ...string) {
	j := testJob(prog, args...)
	j.ID = workertest.NewID()
	if err := e.Start(context.Background(), j, b.TempDir()); err != nil {
		b.Fatal(err)
	}
	x, err := e.Wait(context.Background(), j.ID)
	if err != nil || x.State != worker.StateSucceeded {
		b.Fatalf("%v: %v %+v", args, err, x)
	}
}

// BenchmarkHelloCold: compile (no cache at all) + instantiate + run.
func BenchmarkHelloCold(b *testing.B) {
	prog := module(b, helloPkg)
	for b.Loop() {
		dir, err := os.MkdirTemp("", "bourse-bench-cache-")
		if err != nil {
			b.Fatal(err)
		}
		e, err := New(context.Background(), Config{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		runOnce(b, e, prog, "bench")
		e.Close(context.Background())
		os.RemoveAll(dir)
	}
}

// BenchmarkHelloFileCache: a fresh executor (as after a restart) whose
// on-disk compilation cache already holds the module.
func BenchmarkHelloFileCache(b *testing.B) {
	prog := module(b, helloPkg)
	dir := b.TempDir()
	warm, err := New(context.Background(), Config{CacheDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	runOnce(b, warm, prog, "bench")
	warm.Close(context.Background())
	for b.Loop() {
		e, err := New(context.Background(), Config{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		runOnce(b, e, prog, "bench")
		e.Close(context.Background())
	}
}

// BenchmarkHelloWarm: the module is already compiled in memory; this is
// start to exit of a job (goal: <= 10 ms).
func BenchmarkHelloWarm(b *testing.B) {
	prog := module(b, helloPkg)
	e, err := New(context.Background(), Config{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	runOnce(b, e, prog, "bench")
	for b.Loop() {
		runOnce(b, e, prog, "bench")
	}
}

func BenchmarkPrimesWasm(b *testing.B) {
	prog := module(b, primesPkg)
	e, err := New(context.Background(), Config{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	runOnce(b, e, prog, "1000")
	for b.Loop() {
		runOnce(b, e, prog, primesN)
	}
}

func nativePrimes(b *testing.B) string {
	p, err := workertest.Build(buildDir, primesPkg, "linux", "amd64")
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkPrimesNative(b *testing.B) {
	bin := nativePrimes(b)
	for b.Loop() {
		if out, err := exec.Command(bin, primesN).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

// BenchmarkPrimesRatio reports the WASM/native time ratio of the
// CPU-bound example (mostly a property of Go's wasm code generation).
func BenchmarkPrimesRatio(b *testing.B) {
	prog := module(b, primesPkg)
	bin := nativePrimes(b)
	e, err := New(context.Background(), Config{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	runOnce(b, e, prog, "1000")
	var wasmT, nativeT time.Duration
	for b.Loop() {
		t0 := time.Now()
		runOnce(b, e, prog, primesN)
		t1 := time.Now()
		if out, err := exec.Command(bin, primesN).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		wasmT += t1.Sub(t0)
		nativeT += time.Since(t1)
	}
	b.ReportMetric(float64(wasmT)/float64(nativeT), "wasm/native")
}

// BenchmarkPrimesWasmNoTerminationCheck runs the same guest on a bare
// wazero runtime without WithCloseOnContextDone. The executor cannot do
// without it (it is what stops a guest that loops forever), but it makes
// wazero call into the host at every loop back-edge; this benchmark shows
// how much of the WASM/native ratio is that check rather than Go's wasm
// code generation.
func BenchmarkPrimesWasmNoTerminationCheck(b *testing.B) {
	benchRawWazero(b, primesPkg, false, "primes", primesN)
}

// BenchmarkHelloRawWazero instantiates and runs hello on a bare wazero
// runtime configured like the executor's; BenchmarkHelloWarm minus this is
// the executor's own overhead per job (bookkeeping, logs, memory
// allocator, output dir).
func BenchmarkHelloRawWazero(b *testing.B) {
	benchRawWazero(b, helloPkg, true, "hello", "bench")
}

// benchRawWazero compiles pkg once on a bare wazero runtime (with or
// without the termination check) and instantiates and runs it per op.
func benchRawWazero(b *testing.B, pkg string, closeOnDone bool, args ...string) {
	prog := module(b, pkg)
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone))
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	m, err := rt.CompileModule(ctx, prog)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		mod, err := rt.InstantiateModule(ctx, m, wazero.NewModuleConfig().WithName("").WithArgs(args...))
		if err != nil {
			b.Fatal(err)
		}
		mod.Close(ctx)
	}
}
