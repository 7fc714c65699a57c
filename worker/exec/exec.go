package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bourse-net/bourse/worker"
)

// Config configures an Executor. Zero values are the defaults, except
// Enabled.
type Config struct {
	// Enabled must be set by the provider's configuration: plain processes
	// are not a sandbox. When false, Available and Start report
	// worker.ErrUnavailable.
	Enabled bool
	// WorkDir holds each job's private directory (binary and working
	// directory), removed when the job ends. Default
	// <os.TempDir()>/bourse-exec.
	WorkDir string
	// LogCap is the bytes kept per log stream. Default worker.DefaultLogCap.
	LogCap int64
	// MaxOpenFiles is RLIMIT_NOFILE. Default 256.
	MaxOpenFiles uint64
	// KillGrace is how long output pipes may stay open after the process
	// exited or was killed (a grandchild holding them). Default 2s.
	KillGrace time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Executor runs a job's payload as a plain process. See the package doc.
type Executor struct {
	worker.Control // Wait, Cancel and Logs, from runs
	cfg            Config
	log            *slog.Logger
	runs           *worker.Runs
}

var _ worker.Executor = (*Executor)(nil)

// New returns an executor; it runs nothing unless cfg.Enabled.
func New(cfg Config) (*Executor, error) {
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "bourse-exec")
	}
	if cfg.MaxOpenFiles == 0 {
		cfg.MaxOpenFiles = 256
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Enabled {
		if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
			return nil, fmt.Errorf("new exec executor: work dir: %w", err)
		}
	}
	runs := worker.NewRuns(cfg.LogCap, 0)
	return &Executor{Control: runs.Control(), cfg: cfg, log: cfg.Logger, runs: runs}, nil
}

// Kind returns worker.KindExec.
func (e *Executor) Kind() worker.Kind { return worker.KindExec }

// Available reports ErrUnavailable unless enabled and not closed.
func (e *Executor) Available(context.Context) error {
	if !e.cfg.Enabled {
		return fmt.Errorf("exec: %w: not enabled in the provider's configuration", worker.ErrUnavailable)
	}
	if e.runs.Closed() {
		return fmt.Errorf("exec: %w: %w", worker.ErrUnavailable, worker.ErrClosed)
	}
	return nil
}

// Start implements worker.Executor.
func (e *Executor) Start(ctx context.Context, job *worker.Job, outDir string) error {
	if err := e.Available(ctx); err != nil {
		if e.runs.Closed() {
			return worker.ErrClosed
		}
		return err
	}
	if err := job.Validate(); err != nil {
		return fmt.Errorf("exec start: %w", err)
	}
	if job.Executor != worker.KindExec {
		return fmt.Errorf("exec start job %s: executor is %q", job.ID.Short(), job.Executor)
	}
	return e.runs.Go(job, outDir, e.run)
}

// Close kills every job's process group and waits for them.
func (e *Executor) Close(ctx context.Context) error {
	if err := e.runs.Close(ctx); err != nil {
		return fmt.Errorf("close exec executor: %w", err)
	}
	return nil
}

func failed(format string, a ...any) worker.Outcome {
	return worker.Outcome{State: worker.StateFailed, ExitCode: -1, Reason: fmt.Sprintf(format, a...)}
}

func (e *Executor) run(run *worker.Run) worker.Outcome {
	job := run.Job
	dir, err := os.MkdirTemp(e.cfg.WorkDir, "job-"+job.ID.Short()+"-")
	if err != nil {
		return failed("private dir: %v", err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "program")
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		return failed("private dir: %v", err)
	}
	if err := os.WriteFile(bin, job.Payload, 0o700); err != nil {
		return failed("write program: %v", err)
	}

	newCmd := func() *osexec.Cmd {
		cmd := osexec.Command(bin, job.Args...)
		cmd.Dir = work
		cmd.Env = job.SortedEnv(worker.OutputEnv+"="+run.OutDir, "HOME="+work, "TMPDIR="+work, "PATH=/usr/local/bin:/usr/bin:/bin")
		cmd.Stdout, cmd.Stderr = run.Stdout, run.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		cmd.WaitDelay = e.cfg.KillGrace
		return cmd
	}
	cmd, err := startRetry(newCmd)
	if err != nil {
		return failed("start process: %v", err)
	}
	pid := cmd.Process.Pid
	killGroup := func() { _ = syscall.Kill(-pid, syscall.SIGKILL) }
	if err := e.limit(pid, job); err != nil {
		killGroup()
		_ = cmd.Wait()
		return failed("set rlimits: %v", err)
	}
	// Kill the whole process group when the run must stop; the watcher
	// ends with the run.
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-run.Ctx.Done():
			killGroup()
		case <-stopWatch:
		}
	}()
	waitErr := cmd.Wait()
	close(stopWatch)
	<-watchDone
	killGroup() // anything the job left behind in its group

	return classify(cmd.ProcessState, waitErr, run)
}

// limit applies the job's rlimits to the started process. There is a
// window of microseconds between exec and this call in which the process
// runs unlimited.
func (e *Executor) limit(pid int, job *worker.Job) error {
	cpuSecs := uint64(job.Limits.Timeout/time.Second) + 1
	if job.Limits.CPU > 1000 {
		cpuSecs = cpuSecs * uint64(job.Limits.CPU) / 1000
	}
	disk := uint64(job.Limits.DiskMiB) << 20
	if disk == 0 {
		disk = 1 << 20 // stdout and stderr are pipes; this bounds stray files in the work dir
	}
	limits := []struct {
		res int
		val uint64
	}{
		{unix.RLIMIT_DATA, uint64(job.Limits.MemoryMiB) << 20},
		{unix.RLIMIT_CPU, cpuSecs},
		{unix.RLIMIT_FSIZE, disk},
		{unix.RLIMIT_NOFILE, e.cfg.MaxOpenFiles},
		{unix.RLIMIT_CORE, 0},
	}
	for _, l := range limits {
		rl := unix.Rlimit{Cur: l.val, Max: l.val}
		if err := unix.Prlimit(pid, l.res, &rl, nil); err != nil {
			return fmt.Errorf("prlimit %d: %w", l.res, err)
		}
	}
	return nil
}

func classify(ps *os.ProcessState, waitErr error, run *worker.Run) worker.Outcome {
	if ps == nil {
		return failed("wait: %v", waitErr)
	}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	oomLike := func() bool {
		s := strings.ToLower(string(run.Stderr.Bytes()))
		return strings.Contains(s, "out of memory") || strings.Contains(s, "cannot allocate memory")
	}
	switch {
	case ws.Signaled():
		sig := ws.Signal()
		if sig == syscall.SIGXCPU {
			return worker.Outcome{State: worker.StateTimedOut, ExitCode: -1, Reason: "cpu-time limit reached (SIGXCPU)"}
		}
		if oomLike() {
			return worker.Outcome{State: worker.StateOOM, ExitCode: -1, Reason: fmt.Sprintf("%v: killed by %v", worker.ErrOutOfMemory, sig)}
		}
		return worker.Outcome{State: worker.StateFailed, ExitCode: -1, Reason: fmt.Sprintf("killed by signal %v", sig)}
	case ps.ExitCode() == 0:
		if waitErr != nil && !errors.Is(waitErr, osexec.ErrWaitDelay) {
			return failed("wait: %v", waitErr)
		}
		return worker.Outcome{State: worker.StateSucceeded}
	default:
		code := ps.ExitCode()
		if oomLike() {
			return worker.Outcome{State: worker.StateOOM, ExitCode: code,
				Reason: fmt.Sprintf("%v: data limit of %d MiB reached (exit code %d)", worker.ErrOutOfMemory, run.Job.Limits.MemoryMiB, code)}
		}
		return worker.Outcome{State: worker.StateFailed, ExitCode: code, Reason: fmt.Sprintf("exit code %d", code)}
	}
}

// startRetry starts cmd, retrying while the kernel reports the freshly
// written binary busy: a process forked elsewhere in this program may hold
// the write descriptor for an instant (golang.org/issue/22315).
func startRetry(newCmd func() *osexec.Cmd) (*osexec.Cmd, error) {
	var err error
	for i := range 20 {
		cmd := newCmd()
		if err = cmd.Start(); !errors.Is(err, syscall.ETXTBSY) {
			return cmd, err
		}
		time.Sleep(time.Duration(i+1) * 5 * time.Millisecond)
	}
	return nil, err
}
