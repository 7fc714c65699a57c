package exec

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

const testUIDBase = 2146000000

func runProg(t *testing.T, cfg Config, args ...string) *worker.Exit {
	t.Helper()
	needRoot(t)
	cfg.Enabled, cfg.WorkDir, cfg.UIDBase = true, workDir(t), testUIDBase
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	j := &worker.Job{ID: workertest.NewID(), Executor: worker.KindExec, Payload: program(t), Args: args,
		Limits: worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 256, DiskMiB: 16}, Timeout: time.Minute}}
	if err := e.Start(context.Background(), j, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	x, err := e.Wait(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestJobCannotReadTheDaemonsEnviron: the daemon's environment holds the
// wallet passphrase (BOURSE_PASSPHRASE); a job runs under another uid and
// cannot read /proc/<daemon>/environ.
func TestJobCannotReadTheDaemonsEnviron(t *testing.T) {
	x := runProg(t, Config{}, "readhost", "/proc/"+strconv.Itoa(os.Getpid())+"/environ")
	if x.State == worker.StateSucceeded || strings.Contains(string(x.Stdout), "PATH=") {
		t.Fatalf("the job read the daemon's environment: %s %q", x.State, x.Stdout)
	}
	if !strings.Contains(string(x.Stderr), "permission denied") {
		t.Fatalf("want permission denied, got %s: %q", x.State, x.Stderr)
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "State:"); ok {
			return !strings.HasPrefix(strings.TrimSpace(v), "Z")
		}
	}
	return true
}

// TestSetsidGrandchildDoesNotOutliveTheJob: a grandchild that leaves the
// job's process group and session (setsid) is killed when the job ends.
func TestSetsidGrandchildDoesNotOutliveTheJob(t *testing.T) {
	x := runProg(t, Config{}, "escape")
	f := strings.Fields(string(x.Stdout))
	if len(f) != 2 || f[0] != "escaped" {
		t.Fatalf("%s (%s): stdout %q stderr %q", x.State, x.Reason, x.Stdout, x.Stderr)
	}
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	// Wait has returned: the job is over and its processes must be gone
	// already; the deadline only absorbs the kernel's bookkeeping.
	for deadline := time.Now().Add(5 * time.Second); alive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("the job's grandchild %d outlived it", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestForkBombIsBounded: a job starting processes without end gets at
// most MaxProcesses (its uid's RLIMIT_NPROC, threads included), and none
// survives it.
func TestForkBombIsBounded(t *testing.T) {
	const max = 24
	x := runProg(t, Config{MaxProcesses: max}, "forkbomb", "200")
	if f := strings.Fields(string(x.Stdout)); len(f) == 2 {
		n, _ := strconv.Atoi(f[1])
		if n >= max {
			t.Fatalf("the job started %d processes, limit %d", n, max)
		}
	} else if x.State == worker.StateSucceeded {
		t.Fatalf("stdout %q", x.Stdout)
	}
	pids, err := pidsOf(testUIDBase)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 0 {
		t.Fatalf("processes of the job survive it: %v", pids)
	}
}
