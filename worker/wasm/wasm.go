package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/bourse-net/bourse/worker"
)

// GuestOutputDir is where a job sees its output directory.
const GuestOutputDir = "/out"

// Config configures an Executor. Zero values are the defaults.
type Config struct {
	// CacheDir holds wazero's on-disk compilation cache, keyed by module
	// hash, so a module compiled once starts fast after a restart. ""
	// keeps compiled code in memory only.
	CacheDir string
	// KeepCompiled is how many compiled modules stay in memory (least
	// recently used evicted first). Default 16.
	KeepCompiled int
	// LogCap is the bytes kept per log stream; more ends the job as
	// failed. Default worker.DefaultLogCap.
	LogCap int64
	// MaxOutputFiles caps the entries a job may create in its output
	// directory. Default 10000, as worker.Config.
	MaxOutputFiles int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Executor runs WASI preview 1 modules on wazero. See the package doc.
type Executor struct {
	worker.Control // Wait, Cancel and Logs, from runs
	cfg            Config
	log            *slog.Logger
	rt             wazero.Runtime
	cache          wazero.CompilationCache
	runs           *worker.Runs

	mu       sync.Mutex
	compiled map[[32]byte]*compiled
	tick     uint64
}

var _ worker.Executor = (*Executor)(nil)

type compiled struct {
	ready chan struct{} // closed when mod/err are set
	mod   wazero.CompiledModule
	err   error

	refs    int // guarded by Executor.mu
	used    uint64
	evicted bool
}

// New returns an executor with its own wazero runtime.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.KeepCompiled <= 0 {
		cfg.KeepCompiled = 16
	}
	if cfg.MaxOutputFiles <= 0 {
		cfg.MaxOutputFiles = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("new wasm executor: cache dir: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("new wasm executor: compilation cache: %w", err)
		}
		cache = c
		rc = rc.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("new wasm executor: instantiate wasi: %w", err)
	}
	runs := worker.NewRuns(cfg.LogCap, 0)
	return &Executor{
		Control: runs.Control(),
		cfg:     cfg, log: cfg.Logger, rt: rt, cache: cache,
		runs:     runs,
		compiled: make(map[[32]byte]*compiled),
	}, nil
}

// Kind returns worker.KindWASM.
func (e *Executor) Kind() worker.Kind { return worker.KindWASM }

// Available is nil unless the executor is closed: wazero needs nothing
// from the host.
func (e *Executor) Available(context.Context) error {
	if e.runs.Closed() {
		return fmt.Errorf("wasm: %w: %w", worker.ErrUnavailable, worker.ErrClosed)
	}
	return nil
}

// Start implements worker.Executor.
func (e *Executor) Start(_ context.Context, job *worker.Job, outDir string) error {
	if err := job.Validate(); err != nil {
		return fmt.Errorf("wasm start: %w", err)
	}
	if job.Executor != worker.KindWASM {
		return fmt.Errorf("wasm start job %s: executor is %q", job.ID.Short(), job.Executor)
	}
	return e.runs.Go(job, outDir, e.run)
}

// Close stops every job, waits for them and closes the wazero runtime and
// the compilation cache.
func (e *Executor) Close(ctx context.Context) error {
	if err := e.runs.Close(ctx); err != nil {
		return fmt.Errorf("close wasm executor: %w", err)
	}
	e.mu.Lock()
	e.compiled = map[[32]byte]*compiled{}
	e.mu.Unlock()
	err := e.rt.Close(context.Background()) // also closes compiled modules
	if e.cache != nil {
		err = errors.Join(err, e.cache.Close(context.Background()))
	}
	if err != nil {
		return fmt.Errorf("close wasm executor: %w", err)
	}
	return nil
}

// compile returns the compiled module for payload, compiling it at most once
// at a time per hash; the release function must be called when the caller
// no longer instantiates it.
func (e *Executor) compile(ctx context.Context, h [32]byte, payload []byte) (wazero.CompiledModule, func(), error) {
	e.mu.Lock()
	c, ok := e.compiled[h]
	e.tick++
	if !ok {
		c = &compiled{ready: make(chan struct{})}
		e.compiled[h] = c
	}
	c.refs++
	c.used = e.tick
	e.mu.Unlock()
	release := func() {
		e.mu.Lock()
		c.refs--
		closeNow := c.evicted && c.refs == 0 && c.mod != nil
		e.mu.Unlock()
		if closeNow {
			_ = c.mod.Close(context.Background())
		}
	}
	if !ok {
		mod, err := e.rt.CompileModule(ctx, payload)
		e.mu.Lock()
		c.mod, c.err = mod, err
		if err != nil && e.compiled[h] == c {
			delete(e.compiled, h) // do not cache failures: the next try may have a live ctx
		}
		e.mu.Unlock()
		close(c.ready)
		e.evict()
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if c.err != nil {
		release()
		return nil, nil, c.err
	}
	return c.mod, release, nil
}

// evict drops the least recently used compiled modules over KeepCompiled;
// one still in use is closed when its last user releases it.
func (e *Executor) evict() {
	var toClose []wazero.CompiledModule
	e.mu.Lock()
	for len(e.compiled) > e.cfg.KeepCompiled {
		var oldH [32]byte
		var old *compiled
		for h, c := range e.compiled {
			if old == nil || c.used < old.used {
				oldH, old = h, c
			}
		}
		delete(e.compiled, oldH)
		old.evicted = true
		if old.refs == 0 && old.mod != nil {
			toClose = append(toClose, old.mod)
		}
	}
	e.mu.Unlock()
	for _, m := range toClose {
		_ = m.Close(context.Background())
	}
}

const pageSize = 1 << 16

func (e *Executor) run(run *worker.Run) worker.Outcome {
	job := run.Job
	limit := uint64(job.Limits.MemoryMiB) << 20
	// Start's Validate checked a non-zero PayloadHash against the payload.
	h := job.PayloadHash
	if h == ([32]byte{}) {
		h = sha256.Sum256(job.Payload)
	}
	mod, release, err := e.compile(run.Ctx, h, job.Payload)
	if err != nil {
		return worker.Outcome{State: worker.StateFailed, ExitCode: -1, Reason: fmt.Sprintf("compile module: %v", err)}
	}
	defer release()
	run.Begin() // the job's clock starts after the compile

	mems := mod.ImportedMemories()
	for _, m := range mod.ExportedMemories() {
		mems = append(mems, m)
	}
	for _, m := range mems {
		if need := uint64(m.Min()) * pageSize; need > limit {
			return worker.Outcome{State: worker.StateOOM, ExitCode: -1,
				Reason: fmt.Sprintf("%v: module needs %d MiB of memory to start, limit %d MiB", worker.ErrOutOfMemory, need>>20, job.Limits.MemoryMiB)}
		}
	}

	alloc := &allocator{limit: limit}
	// The output directory's root is one of the entries the packer counts.
	disk := newQuota(job.Limits.DiskMiB<<20, int64(e.cfg.MaxOutputFiles)-1)
	ctx := experimental.WithMemoryAllocator(run.Ctx, alloc)
	mc := wazero.NewModuleConfig().
		WithName("").
		WithArgs(append([]string{"job"}, job.Args...)...).
		WithStdin(bytes.NewReader(nil)).
		WithStdout(run.Stdout).
		WithStderr(run.Stderr).
		WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(newQuotaFS(run.OutDir, disk), GuestOutputDir))
	for _, kv := range job.SortedEnv(worker.OutputEnv + "=" + GuestOutputDir) {
		k, v, _ := bytesCut(kv)
		mc = mc.WithEnv(k, v)
	}
	if job.RealClock {
		mc = mc.WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	}
	if job.RealRandom {
		mc = mc.WithRandSource(rand.Reader)
	} else {
		mc = mc.WithRandSource(seededRand(job.Seed))
	}

	inst, err := e.rt.InstantiateModule(ctx, mod, mc)
	if inst != nil {
		_ = inst.Close(context.Background())
	}
	code, reason := 0, ""
	var exitErr *sys.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		switch exitErr.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			return worker.Outcome{State: worker.StateCancelled, ExitCode: -1, Reason: "stopped"} // Runs names the cause
		}
		code = int(exitErr.ExitCode())
		reason = fmt.Sprintf("exit code %d", code)
	default:
		code, reason = -1, fmt.Sprintf("trap: %v", err)
	}
	if alloc.refused.Load() && code != 0 {
		return worker.Outcome{State: worker.StateOOM, ExitCode: code,
			Reason: fmt.Sprintf("%v: memory limit of %d MiB reached (%s)", worker.ErrOutOfMemory, job.Limits.MemoryMiB, reason)}
	}
	if disk.refused.Load() {
		// Whatever the guest made of ENOSPC, its output is incomplete.
		return worker.Outcome{State: worker.StateFailed, ExitCode: code,
			Reason: fmt.Sprintf("%v: the output directory reached the %d MiB or %d entries bought (%s)", worker.ErrOutputLimit, job.Limits.DiskMiB, e.cfg.MaxOutputFiles, orOK(reason))}
	}
	if code != 0 {
		return worker.Outcome{State: worker.StateFailed, ExitCode: code, Reason: reason}
	}
	return worker.Outcome{State: worker.StateSucceeded}
}

func orOK(reason string) string {
	if reason == "" {
		return "exit code 0"
	}
	return reason
}

func bytesCut(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// seededRand is the guest's random_get source when the job did not ask for
// real randomness: ChaCha8 keyed by sha256 of the seed.
func seededRand(seed uint64) io.Reader {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	key := sha256.Sum256(append([]byte("bourse/wasm/random_get/"), b[:]...))
	return mrand.NewChaCha8(key)
}

// allocator backs one job's linear memory and refuses to grow it past the
// job's limit, remembering that it did so the job can be reported as out
// of memory.
type allocator struct {
	limit   uint64
	refused atomic.Bool
}

func (a *allocator) Allocate(_, max uint64) experimental.LinearMemory {
	return &linearMemory{a: a, max: min(max, a.limit)}
}

type linearMemory struct {
	a   *allocator
	max uint64
	buf []byte
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		m.a.refused.Store(true)
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	c := min(max(size, 2*uint64(cap(m.buf))), m.max)
	nb := make([]byte, size, c)
	copy(nb, m.buf)
	m.buf = nb
	return m.buf
}

func (m *linearMemory) Free() { m.buf = nil }
