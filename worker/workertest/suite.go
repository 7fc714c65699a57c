package workertest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/worker"
)

// Harness adapts a backend to the contract suite.
type Harness struct {
	// New returns a fresh executor; the suite closes it.
	New func(t *testing.T) worker.Executor
	// Job returns a job that runs testprog with args, with generous
	// default limits (the suite adjusts Limits and ID).
	Job func(t *testing.T, args ...string) *worker.Job
	// Invalid, if set, returns a job whose payload cannot run (an invalid
	// module, a missing image); it must end failed with a reason.
	Invalid func(t *testing.T) *worker.Job
	// Sandboxed: host files and the network are out of the job's reach.
	Sandboxed bool
	// OOMState is the state a job that allocates without bound ends in:
	// StateOOM where the backend can tell.
	OOMState worker.State
	// LogCap is the executor's per-stream log cap.
	LogCap int64
}

var idCounter struct {
	sync.Mutex
	n      uint64
	issued map[worker.JobID]bool
}

// NewID returns a fresh job id, distinct within the process.
func NewID() worker.JobID {
	idCounter.Lock()
	defer idCounter.Unlock()
	idCounter.n++
	id := worker.JobID(sha256.Sum256(fmt.Appendf(nil, "test-%d-%d", os.Getpid(), idCounter.n)))
	if idCounter.issued == nil {
		idCounter.issued = map[worker.JobID]bool{}
	}
	idCounter.issued[id] = true
	return id
}

// Issued reports whether NewID handed out id in this process: a leak check
// on a shared Docker daemon counts only this test binary's containers.
func Issued(id worker.JobID) bool {
	idCounter.Lock()
	defer idCounter.Unlock()
	return idCounter.issued[id]
}

func (h Harness) job(t *testing.T, timeout time.Duration, args ...string) *worker.Job {
	j := h.Job(t, args...)
	j.ID = NewID()
	j.Limits.Timeout = timeout
	return j
}

// start runs j with a fresh output dir and returns the dir.
func start(t *testing.T, e worker.Executor, j *worker.Job) string {
	t.Helper()
	out := t.TempDir()
	if err := e.Start(context.Background(), j, out); err != nil {
		t.Fatalf("start %v: %v", j.Args, err)
	}
	return out
}

func wait(t *testing.T, e worker.Executor, j *worker.Job) *worker.Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	exit, err := e.Wait(ctx, j.ID)
	if err != nil {
		t.Fatalf("wait %v: %v", j.Args, err)
	}
	return exit
}

func run(t *testing.T, e worker.Executor, j *worker.Job) (*worker.Exit, string) {
	t.Helper()
	out := start(t, e, j)
	return wait(t, e, j), out
}

func describe(x *worker.Exit) string {
	return fmt.Sprintf("state=%s code=%d reason=%q stdout=%.200q stderr=%.300q", x.State, x.ExitCode, x.Reason, x.Stdout, x.Stderr)
}

// unclosed lends the suite's executor to a Runtime, whose Close would
// otherwise close it under the other subtests.
type unclosed struct{ worker.Executor }

func (unclosed) Close(context.Context) error { return nil }

var quietLog = slog.New(slog.DiscardHandler)

// Run runs the contract suite against h's backend.
func Run(t *testing.T, h Harness) {
	const long = 2 * time.Minute
	e := h.New(t)
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	t.Run("exit states", func(t *testing.T) {
		cases := []struct {
			name     string
			args     []string
			state    worker.State
			code     int
			stdout   string
			sentinel error
		}{
			{"hello succeeds", []string{"hello", "a", "b c"}, worker.StateSucceeded, 0, "hello a b c\n", nil},
			{"exit code is kept", []string{"exit", "3"}, worker.StateFailed, 3, "exiting with 3\n", worker.ErrJobFailed},
			{"usage error", []string{"no-such-mode"}, worker.StateFailed, 2, "", worker.ErrJobFailed},
			{"env reaches the job", []string{"env", "COLOUR"}, worker.StateSucceeded, 0, "blue\n", nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				j := h.job(t, long, tc.args...)
				j.Env = map[string]string{"COLOUR": "blue"}
				x, _ := run(t, e, j)
				if x.State != tc.state || x.ExitCode != tc.code || string(x.Stdout) != tc.stdout {
					t.Fatalf("got %s; want state=%s code=%d stdout=%q", describe(x), tc.state, tc.code, tc.stdout)
				}
				err := x.Err(j.ID)
				if (err == nil) != (tc.sentinel == nil) || (tc.sentinel != nil && !errors.Is(err, tc.sentinel)) {
					t.Fatalf("Err() = %v, want %v", err, tc.sentinel)
				}
				if tc.state == worker.StateSucceeded && x.Reason != "" {
					t.Errorf("succeeded with reason %q", x.Reason)
				}
				if tc.state != worker.StateSucceeded && x.Reason == "" {
					t.Errorf("failed without a reason: %s", describe(x))
				}
				if x.Finished.Before(x.Started) {
					t.Errorf("finished %v before started %v", x.Finished, x.Started)
				}
			})
		}
	})

	t.Run("stderr is captured separately", func(t *testing.T) {
		t.Parallel()
		x, _ := run(t, e, h.job(t, long, "hello", "x"))
		if string(x.Stderr) != "note\n" || string(x.Stdout) != "hello x\n" {
			t.Fatalf("got %s", describe(x))
		}
	})

	t.Run("output directory", func(t *testing.T) {
		t.Parallel()
		j := h.job(t, long, "write", "sub/result.txt", "forty-two")
		x, out := run(t, e, j)
		if x.State != worker.StateSucceeded {
			t.Fatalf("got %s", describe(x))
		}
		b, err := os.ReadFile(filepath.Join(out, "sub", "result.txt"))
		if err != nil || string(b) != "forty-two" {
			t.Fatalf("output file: %q, %v", b, err)
		}
	})

	t.Run("endless loop times out with partial logs", func(t *testing.T) {
		t.Parallel()
		j := h.job(t, 6*time.Second, "loop") // room to start under -race on a loaded machine
		x, _ := run(t, e, j)
		if x.State != worker.StateTimedOut {
			t.Fatalf("got %s, want timed_out", describe(x))
		}
		err := x.Err(j.ID)
		if !errors.Is(err, worker.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Err() = %v; want ErrTimeout matching context.DeadlineExceeded", err)
		}
		if errors.Is(err, worker.ErrOutOfMemory) || errors.Is(err, worker.ErrCancelled) {
			t.Fatalf("timeout error %v matches another sentinel", err)
		}
		if !strings.Contains(string(x.Stdout), "looping") {
			t.Fatalf("partial stdout lost: %s", describe(x))
		}
	})

	t.Run("unbounded allocation hits the memory limit", func(t *testing.T) {
		t.Parallel()
		j := h.job(t, long, "alloc")
		j.Limits.MemoryMiB = 48
		x, _ := run(t, e, j)
		if !strings.Contains(string(x.Stdout), "allocating") {
			t.Fatalf("the program did not start: %s", describe(x))
		}
		if x.State != h.OOMState {
			t.Fatalf("got %s, want %s", describe(x), h.OOMState)
		}
		if h.OOMState == worker.StateOOM && !errors.Is(x.Err(j.ID), worker.ErrOutOfMemory) {
			t.Fatalf("Err() = %v, want ErrOutOfMemory", x.Err(j.ID))
		}
		if x.Reason == "" {
			t.Fatal("no reason")
		}
	})

	t.Run("output directory flood is stopped", func(t *testing.T) {
		t.Parallel()
		// Through a Runtime, which measures the output directory while
		// the job runs (the WASM backend also refuses the writes).
		store, err := worker.OpenStore(t.TempDir(), worker.StoreConfig{})
		if err != nil {
			t.Fatal(err)
		}
		rt, err := worker.NewRuntime(worker.Config{
			Capacity: worker.Resources{CPU: 64000, MemoryMiB: 1 << 20, DiskMiB: 1 << 20},
			WorkDir:  t.TempDir(), OutputPoll: 20 * time.Millisecond, Logger: quietLog,
		}, store, nil, unclosed{e})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close(context.Background())
		j := h.job(t, long, "fill")
		j.Limits.DiskMiB = 1
		res, err := rt.Run(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		if res.State != worker.StateFailed || !strings.Contains(res.Reason, worker.ErrOutputLimit.Error()) {
			t.Fatalf("got state=%s reason=%q stdout=%.100q stderr=%.300q; want failed with %q",
				res.State, res.Reason, res.Stdout, res.Stderr, worker.ErrOutputLimit)
		}
		// No check of stdout: a container stopped this fast may not have
		// delivered its first line; the reason proves the program wrote.
	})

	t.Run("stdout flood is cut at the cap", func(t *testing.T) {
		t.Parallel()
		j := h.job(t, long, "flood")
		x, _ := run(t, e, j)
		if x.State != worker.StateFailed || !strings.Contains(x.Reason, worker.ErrOutputLimit.Error()) {
			t.Fatalf("got %s; want failed with %q", describe(x), worker.ErrOutputLimit)
		}
		if !x.StdoutTruncated || int64(len(x.Stdout)) != h.LogCap {
			t.Fatalf("stdout kept %d bytes (truncated=%v), want exactly the cap %d", len(x.Stdout), x.StdoutTruncated, h.LogCap)
		}
	})

	t.Run("cancel stops a running job", func(t *testing.T) {
		t.Parallel()
		j := h.job(t, long, "loop")
		start(t, e, j)
		waitForLine(t, e, j.ID, "looping")
		for range 2 { // idempotent
			if err := e.Cancel(context.Background(), j.ID); err != nil {
				t.Fatalf("cancel: %v", err)
			}
		}
		x := wait(t, e, j)
		if x.State != worker.StateCancelled {
			t.Fatalf("got %s, want cancelled", describe(x))
		}
		if err := x.Err(j.ID); !errors.Is(err, worker.ErrCancelled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Err() = %v", err)
		}
		if err := e.Cancel(context.Background(), j.ID); err != nil {
			t.Fatalf("cancel after the end: %v", err)
		}
		again, err := e.Wait(context.Background(), j.ID)
		if err != nil || again != x {
			t.Fatalf("second Wait = %v, %v; want the same exit", again, err)
		}
	})

	t.Run("logs follow to the end", func(t *testing.T) {
		t.Parallel()
		j := h.job(t, long, "hello", "follow")
		start(t, e, j)
		rc, err := e.Logs(context.Background(), j.ID, worker.Stdout)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		x := wait(t, e, j)
		if string(got) != string(x.Stdout) || string(got) != "hello follow\n" {
			t.Fatalf("followed %q, exit stdout %q", got, x.Stdout)
		}
	})

	t.Run("bad calls", func(t *testing.T) {
		t.Parallel()
		unknown := NewID()
		if _, err := e.Wait(context.Background(), unknown); !errors.Is(err, worker.ErrUnknownJob) {
			t.Errorf("Wait(unknown) = %v", err)
		}
		if err := e.Cancel(context.Background(), unknown); !errors.Is(err, worker.ErrUnknownJob) {
			t.Errorf("Cancel(unknown) = %v", err)
		}
		if _, err := e.Logs(context.Background(), unknown, worker.Stdout); !errors.Is(err, worker.ErrUnknownJob) {
			t.Errorf("Logs(unknown) = %v", err)
		}
		j := h.job(t, long, "hello")
		start(t, e, j)
		if err := e.Start(context.Background(), j, t.TempDir()); !errors.Is(err, worker.ErrDuplicateJob) {
			t.Errorf("second Start = %v, want ErrDuplicateJob", err)
		}
		wait(t, e, j)
		bad := h.job(t, long, "hello")
		bad.Limits.MemoryMiB = 0
		if err := e.Start(context.Background(), bad, t.TempDir()); err == nil {
			t.Error("Start with zero memory accepted")
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		lj := h.job(t, 5*time.Second, "loop")
		start(t, e, lj)
		if _, err := e.Wait(ctx, lj.ID); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait with a dead ctx = %v", err)
		}
		_ = e.Cancel(context.Background(), lj.ID)
		wait(t, e, lj)
	})

	if h.Invalid != nil {
		t.Run("invalid payload fails with a reason", func(t *testing.T) {
			t.Parallel()
			j := h.Invalid(t)
			j.ID = NewID()
			x, _ := run(t, e, j)
			if x.State != worker.StateFailed || x.Reason == "" {
				t.Fatalf("got %s", describe(x))
			}
		})
	}

	if h.Sandboxed {
		t.Run("sandbox", func(t *testing.T) {
			t.Parallel()
			secret := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(secret, []byte("s3cret"), 0o644); err != nil {
				t.Fatal(err)
			}
			x, _ := run(t, e, h.job(t, long, "readhost", secret))
			if x.State != worker.StateFailed || strings.Contains(string(x.Stdout), "s3cret") {
				t.Fatalf("host file readable: %s", describe(x))
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			x, _ = run(t, e, h.job(t, long, "dial", ln.Addr().String()))
			if x.State != worker.StateFailed || strings.Contains(string(x.Stdout), "connected") {
				t.Fatalf("network reachable: %s", describe(x))
			}
		})
	}

	t.Run("concurrent jobs keep their own output", func(t *testing.T) {
		t.Parallel()
		seed := time.Now().UnixNano()
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		type one struct {
			j   *worker.Job
			out string
			tok string
		}
		var jobs []one
		for i := range 4 {
			tok := fmt.Sprintf("tok%d-%x", i, rng.Uint64())
			j := h.job(t, long, "write", "f.txt", tok)
			jobs = append(jobs, one{j: j, out: start(t, e, j), tok: tok})
		}
		for _, o := range jobs {
			x := wait(t, e, o.j)
			b, err := os.ReadFile(filepath.Join(o.out, "f.txt"))
			if x.State != worker.StateSucceeded || err != nil || string(b) != o.tok {
				t.Fatalf("seed %d: job %s: %s; file %q %v; want %q", seed, o.j.ID.Short(), describe(x), b, err, o.tok)
			}
		}
	})

	t.Run("close cancels running jobs and refuses new ones", func(t *testing.T) {
		before := runtime.NumGoroutine()
		e2 := h.New(t)
		j := h.job(t, long, "loop")
		start(t, e2, j)
		waitForLine(t, e2, j.ID, "looping")
		if err := e2.Close(context.Background()); err != nil {
			t.Fatalf("close: %v", err)
		}
		x := wait(t, e2, j)
		if x.State != worker.StateCancelled {
			t.Fatalf("after Close: %s", describe(x))
		}
		if err := e2.Start(context.Background(), h.job(t, long, "hello"), t.TempDir()); !errors.Is(err, worker.ErrClosed) {
			t.Fatalf("Start after Close = %v, want ErrClosed", err)
		}
		if err := e2.Close(context.Background()); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		CheckGoroutines(t, before)
	})
}

// waitForLine reads the job's stdout until a line equal to want appears.
func waitForLine(t *testing.T, e worker.Executor, id worker.JobID, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, err := e.Logs(ctx, id, worker.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if sc.Text() == want {
			return
		}
	}
	t.Fatalf("stdout ended before %q: %v", want, sc.Err())
}

// CheckGoroutines fails t if the goroutine count does not come back to at
// most before (goroutines of the runtime and of finished helpers may take a
// moment to exit; this waits for them, it does not time anything).
func CheckGoroutines(t *testing.T, before int) {
	t.Helper()
	var n int
	for range 200 {
		n = runtime.NumGoroutine()
		if n <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	buf = buf[:runtime.Stack(buf, true)]
	t.Fatalf("goroutines: %d before, %d after Close\n%s", before, n, buf)
}
