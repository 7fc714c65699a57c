package wasm

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

// handModule assembles a module with one function, _start, whose body is
// code (no locals), and the given table section body (nil: none).
func handModule(table []byte, code ...byte) []byte {
	b := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	sec := func(id byte, body ...byte) {
		b = append(b, id)
		b = appendLEB(b, uint64(len(body)))
		b = append(b, body...)
	}
	sec(1, 1, 0x60, 0, 0) // one type: () -> ()
	sec(3, 1, 0)          // one function of type 0
	if table != nil {
		sec(4, table...)
	}
	sec(7, 1, 6, '_', 's', 't', 'a', 'r', 't', 0, 0)
	body := append([]byte{0}, code...) // no locals
	body = append(body, 0x0b)
	fn := appendLEB(nil, uint64(len(body)))
	sec(10, append(append([]byte{1}, fn...), body...)...)
	return b
}

func appendLEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// peakRSS is this process' high-water resident memory (VmHWM).
func peakRSS(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM")
	return 0
}

// runHand runs payload as a 1 MiB job and returns its exit.
func runHand(t *testing.T, e *Executor, payload []byte) *worker.Exit {
	t.Helper()
	j := testJob(payload)
	j.Limits.MemoryMiB = 1
	j.Limits.Timeout = 2 * time.Minute
	if err := e.Start(context.Background(), j, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	x, err := e.Wait(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// The daemon's own memory must not move while a job misbehaves: it may
// grow this much for bookkeeping.
const daemonGrowth = 64 << 20

// TestTableGrowingJobCannotTakeMemoryFromTheDaemon: a tiny module that
// grows a table without a declared maximum by 16 Mi entries (128 MiB of
// host memory, outside linear memory) at a time, as long as it can. Its
// table gets its minimum as maximum, so table.grow fails at once, and in
// any case the table lives in the job's process: the daemon's peak memory
// does not move.
func TestTableGrowingJobCannotTakeMemoryFromTheDaemon(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	grow := handModule([]byte{1, 0x70, 0, 1}, // one funcref table, min 1, no max
		0x03, 0x40, // loop
		0xd0, 0x70, // ref.null func
		0x41, 0x80, 0x80, 0x80, 0x08, // i32.const 16Mi
		0xfc, 0x0f, 0x00, // table.grow 0
		0x41, 0x7f, // i32.const -1
		0x47,       // i32.ne
		0x0d, 0x00, // br_if 0
		0x0b, // end
	)
	before := peakRSS(t)
	x := runHand(t, e, grow)
	if grown := peakRSS(t) - before; grown > daemonGrowth {
		t.Fatalf("the daemon's peak memory grew by %d MiB while the job ran (%s: %s)", grown>>20, x.State, x.Reason)
	}
	if x.State != worker.StateSucceeded {
		t.Fatalf("got %s (%s), want the job to end once table.grow failed", x.State, x.Reason)
	}
}

// TestHugeDeclaredTableIsRefusedBeforeRunning: a hand-built bid skips the
// API's check; the provider refuses a table that could hold 2^31 entries
// (16 GiB of host memory) before starting anything.
func TestHugeDeclaredTableIsRefusedBeforeRunning(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	huge := handModule([]byte{1, 0x70, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x08})
	x := runHand(t, e, huge)
	if x.State != worker.StateOOM || !strings.Contains(x.Reason, "module refused") {
		t.Fatalf("got %s (%s), want oom: module refused", x.State, x.Reason)
	}
	// At the bound: a 1 MiB job may declare 128 Ki entries (1 MiB).
	x = runHand(t, e, handModule([]byte{1, 0x70, 1, 0, 0x80, 0x80, 0x08}))
	if x.State != worker.StateSucceeded {
		t.Fatalf("a table at the bound: got %s (%s)", x.State, x.Reason)
	}
	x = runHand(t, e, handModule([]byte{1, 0x70, 1, 0, 0x81, 0x80, 0x08}))
	if x.State != worker.StateOOM {
		t.Fatalf("a table one entry over the bound: got %s (%s)", x.State, x.Reason)
	}
}

// TestDeepRecursionKillsOnlyItsJobProcess: unbounded recursion makes
// wazero grow its call stack on the host (up to 400 MB) outside linear
// memory. The job's process dies of it under its own limit; the job ends
// out of memory and the daemon's peak memory does not move.
func TestDeepRecursionKillsOnlyItsJobProcess(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	recurse := handModule(nil, 0x10, 0x00) // call 0
	before := peakRSS(t)
	x := runHand(t, e, recurse)
	if grown := peakRSS(t) - before; grown > daemonGrowth {
		t.Fatalf("the daemon's peak memory grew by %d MiB while the job ran (%s: %s)", grown>>20, x.State, x.Reason)
	}
	if x.State != worker.StateOOM {
		t.Fatalf("got %s (%s), want oom", x.State, x.Reason)
	}
	// The executor still runs jobs.
	j := testJob(module(t, workertest.TestProg), "hello", "after")
	if err := e.Start(context.Background(), j, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if x, err := e.Wait(context.Background(), j.ID); err != nil || x.State != worker.StateSucceeded {
		t.Fatalf("a job after: %v %+v", err, x)
	}
}

// TestModuleThatDoesNotCompileFailsEveryTime: a module that passes the
// structural check but not the compiler fails its job, and the next job
// of the same module fails the same way (its process is not reused).
func TestModuleThatDoesNotCompileFailsEveryTime(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	bad := handModule(nil, 0x6a) // i32.add on an empty stack
	for i := range 2 {
		x := runHand(t, e, bad)
		if x.State != worker.StateFailed || !strings.Contains(x.Reason, "compile module") {
			t.Fatalf("run %d: got %s (%s), want failed: compile module", i, x.State, x.Reason)
		}
	}
}
