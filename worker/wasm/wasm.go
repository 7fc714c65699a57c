package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/wasm/wasmfile"
)

// GuestOutputDir is where a job sees its output directory.
const GuestOutputDir = "/out"

// Config configures an Executor. Zero values are the defaults.
type Config struct {
	// CacheDir holds wazero's on-disk compilation cache, keyed by module
	// hash, shared by the job processes, so a module compiled once starts
	// fast in a new process and after a restart. "": a temporary
	// directory, removed by Close.
	CacheDir string
	// KeepCompiled is how many idle job processes (each holding one
	// compiled module) are kept for the next job of their module (least
	// recently used killed first). Default 16.
	KeepCompiled int
	// LogCap is the bytes kept per log stream; more ends the job as
	// failed. Default worker.DefaultLogCap.
	LogCap int64
	// MaxOutputFiles caps the entries a job may create in its output
	// directory. Default 10000, as worker.Config.
	MaxOutputFiles int
	// ProcessSlackMiB is the memory a job process may map beyond the
	// job's linear memory while the job runs: wazero's call stack and
	// tables, the Go runtime. Past it the process dies and the job ends
	// StateOOM. Default DefaultProcessSlackMiB.
	ProcessSlackMiB int
	// Binary is the program started as job process; it must link this
	// package (see runnerMain). Default: the running binary.
	Binary string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// DefaultProcessSlackMiB is Config.ProcessSlackMiB's default.
const DefaultProcessSlackMiB = 64

// Executor runs WASI preview 1 modules on wazero, each job in a job
// process of its own. See the package doc.
type Executor struct {
	worker.Control // Wait, Cancel and Logs, from runs
	cfg            Config
	log            *slog.Logger
	runs           *worker.Runs
	self           string // the binary started as job process
	cacheDir       string
	tmpCache       bool // cacheDir is the executor's own, removed by Close
	stop           chan struct{}
	procs          sync.WaitGroup // every job process' reader

	mu     sync.Mutex
	idle   map[[32]byte][]*proc // finished a job cleanly, hold their module
	nIdle  int
	tick   uint64
	closed bool
	// services are the running service replicas, closed by Close.
	services map[*service]bool
}

var _ worker.Executor = (*Executor)(nil)

// New returns an executor. Nothing is compiled in the daemon: job
// processes compile and run modules.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.KeepCompiled <= 0 {
		cfg.KeepCompiled = 16
	}
	if cfg.MaxOutputFiles <= 0 {
		cfg.MaxOutputFiles = 10000
	}
	if cfg.ProcessSlackMiB <= 0 {
		cfg.ProcessSlackMiB = DefaultProcessSlackMiB
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	self := cfg.Binary
	if self == "" {
		self = "/proc/self/exe"
		if _, err := os.Stat(self); err != nil {
			if self, err = os.Executable(); err != nil {
				return nil, fmt.Errorf("new wasm executor: find own binary for job processes: %w", err)
			}
		}
	}
	e := &Executor{
		cfg: cfg, log: cfg.Logger, self: self, cacheDir: cfg.CacheDir,
		stop: make(chan struct{}), idle: make(map[[32]byte][]*proc),
	}
	if e.cacheDir == "" {
		// Job processes share compiled code through a file cache; without
		// one configured it lives as long as the executor.
		d, err := os.MkdirTemp("", "bourse-wasm-cache-")
		if err != nil {
			return nil, fmt.Errorf("new wasm executor: cache dir: %w", err)
		}
		e.cacheDir, e.tmpCache = d, true
	} else if err := os.MkdirAll(e.cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("new wasm executor: cache dir: %w", err)
	}
	e.runs = worker.NewRuns(cfg.LogCap, 0)
	e.Control = e.runs.Control()
	return e, nil
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

// Close stops every job, kills every job process, waits for them and
// removes the executor's own compilation cache.
func (e *Executor) Close(ctx context.Context) error {
	if err := e.runs.Close(ctx); err != nil {
		return fmt.Errorf("close wasm executor: %w", err)
	}
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.stop)
	}
	for _, ps := range e.idle {
		for _, p := range ps {
			p.kill()
		}
	}
	e.idle, e.nIdle = map[[32]byte][]*proc{}, 0
	services := make([]*service, 0, len(e.services))
	for s := range e.services {
		services = append(services, s)
	}
	e.mu.Unlock()
	for _, s := range services {
		_ = s.Close()
	}
	done := make(chan struct{})
	go func() { e.procs.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("close wasm executor: %w", ctx.Err())
	}
	if e.tmpCache {
		if err := os.RemoveAll(e.cacheDir); err != nil {
			return fmt.Errorf("close wasm executor: %w", err)
		}
	}
	return nil
}

// take returns an idle process holding the module, or a new one.
func (e *Executor) take(h [32]byte) (*proc, error) {
	e.mu.Lock()
	if ps := e.idle[h]; len(ps) > 0 {
		p := ps[len(ps)-1]
		e.idle[h] = ps[:len(ps)-1]
		if len(e.idle[h]) == 0 {
			delete(e.idle, h)
		}
		e.nIdle--
		e.mu.Unlock()
		return p, nil
	}
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, worker.ErrClosed
	}
	return e.spawn(h)
}

// maxJobsPerProc bounds how many jobs one process serves before it is
// replaced.
const maxJobsPerProc = 256

// put returns a process that finished a job cleanly to the idle set,
// killing the least recently used ones over KeepCompiled.
func (e *Executor) put(p *proc) {
	if p.jobs >= maxJobsPerProc {
		p.kill()
		return
	}
	var evicted []*proc
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		p.kill()
		return
	}
	e.tick++
	p.used = e.tick
	e.idle[p.hash] = append(e.idle[p.hash], p)
	e.nIdle++
	for e.nIdle > e.cfg.KeepCompiled {
		var oldH [32]byte
		oldI := -1
		var old *proc
		for h, ps := range e.idle {
			for i, q := range ps {
				if old == nil || q.used < old.used {
					oldH, oldI, old = h, i, q
				}
			}
		}
		ps := e.idle[oldH]
		e.idle[oldH] = append(ps[:oldI:oldI], ps[oldI+1:]...)
		if len(e.idle[oldH]) == 0 {
			delete(e.idle, oldH)
		}
		e.nIdle--
		evicted = append(evicted, old)
	}
	e.mu.Unlock()
	for _, q := range evicted {
		q.kill()
	}
}

func (e *Executor) run(run *worker.Run) worker.Outcome {
	job := run.Job
	limit := uint64(job.Limits.MemoryMiB) << 20
	// The early refusal: the module's declared memory and tables must fit
	// the job before any process starts (a hand-built bid skips the API's
	// check).
	if err := wasmfile.Check(job.Payload, wasmfile.ForMemory(limit)); err != nil {
		if errors.Is(err, wasmfile.ErrTooLarge) {
			return worker.Outcome{State: worker.StateOOM, ExitCode: -1,
				Reason: fmt.Sprintf("%v: module refused: %v", worker.ErrOutOfMemory, err)}
		}
		return worker.Outcome{State: worker.StateFailed, ExitCode: -1, Reason: fmt.Sprintf("module refused: %v", err)}
	}
	// Start's Validate checked a non-zero PayloadHash against the payload.
	h := job.PayloadHash
	if h == ([32]byte{}) {
		h = sha256.Sum256(job.Payload)
	}
	p, err := e.take(h)
	if err != nil {
		return worker.Outcome{State: worker.StateFailed, ExitCode: -1, Reason: fmt.Sprintf("start job process: %v", err)}
	}
	req := request{
		Hash: h, Args: job.Args, OutDir: run.OutDir,
		Env:   job.SortedEnv(worker.OutputEnv + "=" + GuestOutputDir),
		Clock: job.RealClock, Random: job.RealRandom, Seed: job.Seed,
		MemoryBytes: limit, DiskBytes: job.Limits.DiskMiB << 20,
		// The output directory's root is one of the entries the packer counts.
		MaxEntries: int64(e.cfg.MaxOutputFiles) - 1,
		Slack:      uint64(e.cfg.ProcessSlackMiB) << 20,
	}
	var module []byte
	if p.fresh {
		module, req.PayloadLen = job.Payload, int64(len(job.Payload))
	}
	p.fresh = false
	p.jobs++
	begun := false // the process holds the module: it may serve again
	sent := make(chan error, 1)
	go func() { sent <- p.send(&req, module) }() // a large module may fill the pipe
	for {
		select {
		case err := <-sent:
			if err != nil {
				p.kill()
			}
		case ev := <-p.events:
			switch {
			case ev.err != nil:
				<-p.dead
				return e.died(p)
			case ev.typ == frameStdout:
				_, _ = run.Stdout.Write(ev.body)
			case ev.typ == frameStderr:
				_, _ = run.Stderr.Write(ev.body)
			case ev.typ == frameBegun:
				begun = true
				run.Begin() // the job's clock starts after the compile
			case ev.typ == frameResult:
				res, err := decodeResult(ev.body)
				if err != nil {
					p.kill()
					p.drain()
					return worker.Outcome{State: worker.StateFailed, ExitCode: -1, Reason: err.Error()}
				}
				if run.Ctx.Err() != nil || !begun {
					p.kill() // the log cap or a cancel raced the end, or the module did not compile
				} else {
					e.put(p)
				}
				return worker.Outcome{State: res.State, ExitCode: res.ExitCode, Reason: res.Reason}
			}
		case <-p.dead:
			return e.died(p)
		case <-run.Ctx.Done():
			p.kill()
			p.drain()
			return worker.Outcome{State: worker.StateCancelled, ExitCode: -1, Reason: "stopped"} // Runs names the cause
		}
	}
}

// died is the outcome of a job whose process ended without reporting it.
func (e *Executor) died(p *proc) worker.Outcome {
	reason, oom := p.deathReason()
	if oom {
		return worker.Outcome{State: worker.StateOOM, ExitCode: -1,
			Reason: fmt.Sprintf("%v: the job's process ran out of memory outside the guest's linear memory (%s)", worker.ErrOutOfMemory, reason)}
	}
	return worker.Outcome{State: worker.StateFailed, ExitCode: -1, Reason: reason}
}

func orOK(reason string) string {
	if reason == "" {
		return "exit code 0"
	}
	return reason
}

// seededRand is the guest's random_get source when the job did not ask for
// real randomness: ChaCha8 keyed by sha256 of the seed.
func seededRand(seed uint64) io.Reader {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	key := sha256.Sum256(append([]byte("bourse/wasm/random_get/"), b[:]...))
	return mrand.NewChaCha8(key)
}
