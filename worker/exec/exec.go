package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

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
	// UIDBase and UIDCount are the uids (and gids) jobs run as: each
	// running job has one of its own, used by nothing else on the host, so
	// it cannot signal or read the daemon or another job, and everything
	// running under it when the job ends is killed. Defaults 2147000000
	// and 4096 (so at most 4096 jobs at once).
	UIDBase  int
	UIDCount int
	// MaxProcesses is RLIMIT_NPROC, the processes (and threads) a job may
	// have at once: its uid's. Default 64.
	MaxProcesses uint64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Executor runs a job's payload as a plain process. See the package doc.
type Executor struct {
	worker.Control // Wait, Cancel and Logs, from runs
	cfg            Config
	log            *slog.Logger
	runs           *worker.Runs

	self string // the binary that starts a job (see trampoline)

	mu   sync.Mutex
	busy map[int]bool // uid slots in use
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
	if cfg.UIDBase <= 0 {
		cfg.UIDBase = 2147000000
	}
	if cfg.UIDCount <= 0 {
		cfg.UIDCount = 4096
	}
	if cfg.MaxProcesses == 0 {
		cfg.MaxProcesses = 64
	}
	if cfg.UIDBase+cfg.UIDCount > math.MaxInt32 {
		return nil, fmt.Errorf("new exec executor: uids %d+%d pass 2^31-1", cfg.UIDBase, cfg.UIDCount)
	}
	if cfg.Enabled && os.Geteuid() == 0 {
		// Jobs run as other uids: they must be able to reach their
		// private directory under WorkDir, and nothing else in it.
		if err := os.MkdirAll(cfg.WorkDir, 0o711); err != nil {
			return nil, fmt.Errorf("new exec executor: work dir: %w", err)
		}
		if err := os.Chmod(cfg.WorkDir, 0o711); err != nil {
			return nil, fmt.Errorf("new exec executor: work dir: %w", err)
		}
		if err := traversable(cfg.WorkDir); err != nil {
			return nil, fmt.Errorf("new exec executor: work dir: %w", err)
		}
	}
	self := "/proc/self/exe"
	if _, err := os.Stat(self); err != nil {
		if self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("new exec executor: own binary: %w", err)
		}
	}
	runs := worker.NewRuns(cfg.LogCap, 0)
	return &Executor{Control: runs.Control(), cfg: cfg, log: cfg.Logger, runs: runs, self: self, busy: map[int]bool{}}, nil
}

// traversable checks that another uid can reach dir: every directory
// above it is searchable by others.
func traversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is under %s (mode %v), which job uids cannot search: choose a work dir they can reach", dir, d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// Kind returns worker.KindExec.
func (e *Executor) Kind() worker.Kind { return worker.KindExec }

// Available reports ErrUnavailable unless enabled and not closed.
func (e *Executor) Available(context.Context) error {
	if !e.cfg.Enabled {
		return fmt.Errorf("exec: %w: not enabled in the provider's configuration", worker.ErrUnavailable)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("exec: %w: the daemon must run as root to run each job under a uid of its own (a job under the daemon's uid could read its environment and files)", worker.ErrUnavailable)
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

// takeUID reserves a free uid slot, killing anything a crashed daemon
// may have left running under it.
func (e *Executor) takeUID() (int, error) {
	e.mu.Lock()
	slot := -1
	for i := range e.cfg.UIDCount {
		if !e.busy[i] {
			slot = i
			e.busy[i] = true
			break
		}
	}
	e.mu.Unlock()
	if slot < 0 {
		return 0, fmt.Errorf("all %d job uids in use", e.cfg.UIDCount)
	}
	uid := e.cfg.UIDBase + slot
	if err := reap(uid, e.cfg.KillGrace); err != nil {
		e.releaseUID(uid)
		return 0, err
	}
	return uid, nil
}

func (e *Executor) releaseUID(uid int) {
	e.mu.Lock()
	delete(e.busy, uid-e.cfg.UIDBase)
	e.mu.Unlock()
}

func (e *Executor) run(run *worker.Run) worker.Outcome {
	job := run.Job
	if strings.ContainsRune(run.OutDir, '\n') {
		return failed("output directory %q: a newline in its path", run.OutDir)
	}
	uid, err := e.takeUID()
	if err != nil {
		return failed("job uid: %v", err)
	}
	defer e.releaseUID(uid)
	dir, err := os.MkdirTemp(e.cfg.WorkDir, "job-"+job.ID.Short()+"-")
	if err != nil {
		return failed("private dir: %v", err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "program")
	work := filepath.Join(dir, "work")
	out := filepath.Join(dir, "out")
	if err := os.WriteFile(bin, job.Payload, 0o500); err != nil {
		return failed("write program: %v", err)
	}
	for _, d := range []string{work, out} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return failed("private dir: %v", err)
		}
	}
	for _, p := range []string{dir, bin, work, run.OutDir} {
		if err := os.Chown(p, uid, uid); err != nil {
			return failed("private dir: %v", err)
		}
	}

	newCmd := func() *osexec.Cmd {
		cmd := osexec.Command(e.self, append([]string{bin}, job.Args...)...)
		cmd.Dir = work
		cmd.Env = job.SortedEnv(worker.OutputEnv+"="+out, "HOME="+work, "TMPDIR="+work, "PATH=/usr/local/bin:/usr/bin:/bin",
			trampolineEnv+"="+trampolineValue(uid, e.limits(job), run.OutDir, out))
		cmd.Stdout, cmd.Stderr = run.Stdout, run.Stderr
		// A mount namespace of its own, where the trampoline binds the
		// output directory (whose parents the job's uid may not search)
		// into the job's private directory.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Unshareflags: syscall.CLONE_NEWNS}
		cmd.WaitDelay = e.cfg.KillGrace
		return cmd
	}
	cmd, err := startRetry(newCmd)
	if err != nil {
		return failed("start process: %v", err)
	}
	pid := cmd.Process.Pid
	killAll := func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = reap(uid, e.cfg.KillGrace)
	}
	// Kill everything the job runs when the run must stop; the watcher
	// ends with the run.
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-run.Ctx.Done():
			killAll()
		case <-stopWatch:
		}
	}()
	waitErr := cmd.Wait()
	close(stopWatch)
	<-watchDone
	// Anything the job left behind, in its group or not (setsid), runs
	// under its uid.
	if err := reap(uid, e.cfg.KillGrace); err != nil {
		e.log.Error("exec: job processes survive", "job", job.ID.Short(), "uid", uid, "err", err)
	}
	return classify(cmd.ProcessState, waitErr, run)
}

// reap kills every process running under uid (zombies aside: they are
// their parent's to collect) until none is left, or grace has passed.
func reap(uid int, grace time.Duration) error {
	deadline := time.Now().Add(grace)
	for {
		pids, err := pidsOf(uid)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes of uid %d survive SIGKILL", len(pids), uid)
		}
		time.Sleep(time.Millisecond)
	}
}

// pidsOf lists the live processes whose real, effective or saved uid is uid.
func pidsOf(uid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	want := strconv.Itoa(uid)
	var pids []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/status")
		if err != nil {
			continue // gone
		}
		mine, zombie := false, false
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "State:"); ok {
				zombie = strings.HasPrefix(strings.TrimSpace(v), "Z")
			}
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				f := strings.Fields(v)
				mine = len(f) >= 3 && (f[0] == want || f[1] == want || f[2] == want)
			}
		}
		if mine && !zombie {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// limits are the job's rlimits, in trampolineLimits' order.
func (e *Executor) limits(job *worker.Job) []uint64 {
	cpuSecs := uint64(job.Limits.Timeout/time.Second) + 1
	if job.Limits.CPU > 1000 {
		cpuSecs = cpuSecs * uint64(job.Limits.CPU) / 1000
	}
	disk := uint64(job.Limits.DiskMiB) << 20
	if disk == 0 {
		disk = 1 << 20 // stdout and stderr are pipes; this bounds stray files in the work dir
	}
	return []uint64{uint64(job.Limits.MemoryMiB) << 20, cpuSecs, disk, e.cfg.MaxOpenFiles, 0, e.cfg.MaxProcesses}
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
