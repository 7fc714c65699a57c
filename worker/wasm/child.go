package wasm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/wasm/wasmfile"
)

// Any binary that links this package is also the job process: the
// executor starts it again (/proc/self/exe) with runnerEnv set, and this
// init runs the job loop instead of the program's main.
const (
	runnerEnv      = "BOURSE_WASM_RUNNER"
	runnerCacheEnv = "BOURSE_WASM_CACHE"
)

func init() {
	if os.Getenv(runnerEnv) == "1" {
		os.Exit(runnerMain(os.Stdin, os.Stdout))
	}
}

// request is one job sent to a job process (gob on its stdin).
type request struct {
	Hash [32]byte
	// PayloadLen is the size of the module, sent for the process' first
	// job only (it keeps it). The module is not in the gob message:
	// PayloadLen raw bytes follow it on the pipe, so that the daemon's
	// encoder, which keeps its buffer for the life of the process, never
	// grows to the module's size. The job process reads them into payload
	// (unexported: gob never carries it).
	payload    []byte
	PayloadLen int64
	Args       []string
	Env        []string // sorted KEY=VALUE, BOURSE_OUTPUT included
	OutDir     string
	Clock      bool
	Random     bool
	Seed       uint64

	MemoryBytes uint64 // the job's linear memory limit
	DiskBytes   int64
	MaxEntries  int64
	// Slack is the address space the process may add, beyond linear
	// memory, while the job runs (wazero's call stack, tables, the Go
	// heap): RLIMIT_DATA is set to what the process maps when the job
	// starts, plus MemoryBytes, plus Slack.
	Slack uint64
}

// maxModuleBytes bounds the module a job process reads after a request.
const maxModuleBytes = 1 << 30

// result is a job process' report (JSON in a frameResult).
type result struct {
	State    worker.State
	ExitCode int
	Reason   string
}

// runnerMain serves jobs read from in, one at a time, until in ends.
func runnerMain(in io.Reader, out io.Writer) int {
	debug.SetMaxThreads(256)
	_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 256, Max: 256})
	ctx := context.Background()
	// No WithCloseOnContextDone: the executor stops a job by killing its
	// process, so the guest's loops need no termination checks.
	rc := wazero.NewRuntimeConfig()
	if dir := os.Getenv(runnerCacheEnv); dir != "" {
		if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
			rc = rc.WithCompilationCache(c)
		}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		fmt.Fprintln(os.Stderr, "instantiate wasi:", err)
		return 1
	}
	fw := &frameWriter{w: bufio.NewWriter(out)}
	br := bufio.NewReader(in) // a ByteReader: gob reads exactly its messages from it
	dec := gob.NewDecoder(br)
	var mod wazero.CompiledModule
	var modHash [32]byte
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "read job:", err)
			return 1
		}
		if req.PayloadLen < 0 || req.PayloadLen > maxModuleBytes {
			fmt.Fprintln(os.Stderr, "read job: a module of", req.PayloadLen, "bytes")
			return 1
		}
		if req.PayloadLen > 0 {
			req.payload = make([]byte, req.PayloadLen)
			if _, err := io.ReadFull(br, req.payload); err != nil {
				fmt.Fprintln(os.Stderr, "read module:", err)
				return 1
			}
		}
		var res result
		switch {
		case mod == nil && req.payload == nil, mod != nil && req.Hash != modHash:
			res = result{State: worker.StateFailed, ExitCode: -1, Reason: "job process: no module for this job"}
		default:
			if mod == nil {
				modHash = req.Hash
				m, err := compileModule(ctx, rt, req)
				if err != nil {
					res = result{State: worker.StateFailed, ExitCode: -1, Reason: err.Error()}
					break
				}
				mod = m
			}
			if err := fw.frame(frameBegun, nil); err != nil {
				return 1
			}
			res = runJob(ctx, rt, mod, fw, req)
		}
		b, _ := json.Marshal(res)
		if err := fw.frame(frameResult, b); err != nil {
			return 1
		}
		if mod == nil {
			return 0 // nothing to serve
		}
	}
}

func compileModule(ctx context.Context, rt wazero.Runtime, req request) (wazero.CompiledModule, error) {
	if sha256.Sum256(req.payload) != req.Hash {
		return nil, errors.New("job process: payload does not match its hash")
	}
	// Prepare's rewrite does not depend on the limits; the executor
	// checked them against this job before sending it.
	prepared, err := wasmfile.Prepare(req.payload, wasmfile.Limits{})
	if err != nil {
		return nil, fmt.Errorf("module refused: %w", err)
	}
	m, err := rt.CompileModule(ctx, prepared)
	if err != nil {
		return nil, fmt.Errorf("compile module: %w", err)
	}
	return m, nil
}

// runJob runs one instance of mod under the job's limits.
func runJob(ctx context.Context, rt wazero.Runtime, mod wazero.CompiledModule, fw *frameWriter, req request) result {
	restore, err := limitData(req.MemoryBytes+req.Slack, spareCommitted())
	if err != nil {
		return result{State: worker.StateFailed, ExitCode: -1, Reason: fmt.Sprintf("job process: set limits: %v", err)}
	}
	defer restore()

	alloc := &allocator{limit: req.MemoryBytes}
	disk := newQuota(req.DiskBytes, req.MaxEntries)
	ctx = experimental.WithMemoryAllocator(ctx, alloc)
	mc := wazero.NewModuleConfig().
		WithName("").
		WithArgs(append([]string{"job"}, req.Args...)...).
		WithStdin(bytes.NewReader(nil)).
		WithStdout(stream{fw, frameStdout}).
		WithStderr(stream{fw, frameStderr}).
		WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(newQuotaFS(req.OutDir, disk), GuestOutputDir))
	for _, kv := range req.Env {
		k, v, _ := strings.Cut(kv, "=")
		mc = mc.WithEnv(k, v)
	}
	if req.Clock {
		mc = mc.WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	}
	if req.Random {
		mc = mc.WithRandSource(rand.Reader)
	} else {
		mc = mc.WithRandSource(seededRand(req.Seed))
	}
	inst, err := rt.InstantiateModule(ctx, mod, mc)
	if inst != nil {
		_ = inst.Close(context.Background())
	}
	code, reason := 0, ""
	var exitErr *sys.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = int(exitErr.ExitCode())
		reason = fmt.Sprintf("exit code %d", code)
	default:
		code, reason = -1, fmt.Sprintf("trap: %v", err)
	}
	limitMiB := req.MemoryBytes >> 20
	if alloc.refused.Load() && code != 0 {
		return result{State: worker.StateOOM, ExitCode: code,
			Reason: fmt.Sprintf("%v: memory limit of %d MiB reached (%s)", worker.ErrOutOfMemory, limitMiB, reason)}
	}
	if disk.refused.Load() {
		// Whatever the guest made of ENOSPC, its output is incomplete.
		return result{State: worker.StateFailed, ExitCode: code,
			Reason: fmt.Sprintf("%v: the output directory reached the %d MiB or %d entries bought (%s)", worker.ErrOutputLimit, req.DiskBytes>>20, req.MaxEntries+1, orOK(reason))}
	}
	if code != 0 {
		return result{State: worker.StateFailed, ExitCode: code, Reason: reason}
	}
	return result{State: worker.StateSucceeded}
}

// limitData sets the process' soft RLIMIT_DATA to what it maps now (less
// credit: the spare linear memory the job will reuse, counted in extra)
// plus extra, and returns the function that lifts it again. A job that needs
// more address space than that (a table grown without bound, deep
// recursion on wazero's heap-allocated stack) makes the Go runtime fail
// its allocation and the process die with "out of memory": the job's
// process, never the daemon.
func limitData(extra, credit uint64) (func(), error) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_DATA, &old); err != nil {
		return nil, err
	}
	now, err := vmData()
	if err != nil {
		return nil, err
	}
	lim := unix.Rlimit{Cur: min(now-min(credit, now)+extra, old.Max), Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_DATA, &lim); err != nil {
		return nil, err
	}
	return func() { _ = unix.Setrlimit(unix.RLIMIT_DATA, &old) }, nil
}

// vmData is the process' data segment size as the kernel counts it for
// RLIMIT_DATA (VmData in /proc/self/status).
func vmData() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmData:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmData %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmData in /proc/self/status")
}

// allocator backs one job's linear memory with an mmap reservation of its
// maximum, made accessible as the guest grows it, and refuses to grow
// past the job's limit (or past RLIMIT_DATA), remembering that it did so
// the job can be reported as out of memory. Growing never copies. The
// process keeps one freed reservation (spare) for its next job, zeroed
// before reuse: faulting fresh pages in for every job costs more than
// clearing the ones the last job touched.
type allocator struct {
	limit   uint64
	refused atomic.Bool
}

func (a *allocator) Allocate(_, max uint64) experimental.LinearMemory {
	m := &linearMemory{a: a, max: min(max, a.limit)}
	spareMu.Lock()
	if spare != nil && uint64(len(spare.mem)) >= m.max {
		m.mem, m.committed = spare.mem, spare.committed
		spare = nil
		clear(m.mem[:m.committed])
	}
	spareMu.Unlock()
	return m
}

var (
	spareMu sync.Mutex
	spare   *linearMemory // a freed reservation, its committed part dirty
)

// spareCommitted is the writable part of the spare reservation.
func spareCommitted() uint64 {
	spareMu.Lock()
	defer spareMu.Unlock()
	if spare == nil {
		return 0
	}
	return spare.committed
}

type linearMemory struct {
	a         *allocator
	max       uint64
	mem       []byte // the reservation, PROT_NONE past committed
	committed uint64
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		m.a.refused.Store(true)
		return nil
	}
	if m.mem == nil {
		res := max(m.max, 1) // mmap refuses 0 bytes
		b, err := unix.Mmap(-1, 0, int(res), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			m.a.refused.Store(true)
			return nil
		}
		m.mem = b
	}
	if size > m.committed {
		if err := unix.Mprotect(m.mem[m.committed:size], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			m.a.refused.Store(true) // ENOMEM: RLIMIT_DATA
			return nil
		}
		m.committed = size
	}
	return m.mem[:size:size]
}

func (m *linearMemory) Free() {
	if m.mem == nil {
		return
	}
	spareMu.Lock()
	old := spare
	spare = &linearMemory{mem: m.mem, committed: m.committed}
	spareMu.Unlock()
	if old != nil {
		_ = unix.Munmap(old.mem)
	}
	m.mem = nil
}
