package exec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

var buildDir string

func TestMain(m *testing.M) { workertest.Main(m, "bourse-exec-test-", &buildDir) }

const testLogCap = 256 << 10

func program(t *testing.T) []byte {
	t.Helper()
	p, err := workertest.Build(buildDir, workertest.TestProg, "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// needRoot skips a test that runs jobs: exec runs each under a uid of
// its own.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("exec runs each job under a uid of its own: needs root")
	}
}

// workDir returns a directory job uids can reach (t.TempDir's parents are
// private).
func workDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{d, filepath.Dir(d)} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestContract(t *testing.T) {
	needRoot(t)
	prog := program(t)
	workDir := workDir(t)
	workertest.Run(t, workertest.Harness{
		New: func(t *testing.T) worker.Executor {
			e, err := New(Config{Enabled: true, WorkDir: workDir, LogCap: testLogCap})
			if err != nil {
				t.Fatal(err)
			}
			return e
		},
		Job: func(t *testing.T, args ...string) *worker.Job {
			return &worker.Job{Executor: worker.KindExec, Payload: prog, Args: args,
				Limits: worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 256, DiskMiB: 16}}}
		},
		Invalid: func(t *testing.T) *worker.Job {
			return &worker.Job{Executor: worker.KindExec, Payload: []byte("\x7fELF not really"),
				Limits: worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 64}, Timeout: time.Minute}}
		},
		Sandboxed: false,
		OOMState:  worker.StateOOM,
		LogCap:    testLogCap,
	})
	// Every job's private directory is gone.
	ents, err := os.ReadDir(workDir)
	if err != nil || len(ents) != 0 {
		t.Fatalf("work dir not cleaned: %v %v", ents, err)
	}
}

func TestDisabled(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if err := e.Available(context.Background()); !errors.Is(err, worker.ErrUnavailable) {
		t.Fatalf("Available = %v, want ErrUnavailable", err)
	}
	j := &worker.Job{ID: workertest.NewID(), Executor: worker.KindExec, Payload: []byte("x"),
		Limits: worker.Limits{Resources: worker.Resources{CPU: 1, MemoryMiB: 1}, Timeout: time.Second}}
	if err := e.Start(context.Background(), j, t.TempDir()); !errors.Is(err, worker.ErrUnavailable) {
		t.Fatalf("Start = %v, want ErrUnavailable", err)
	}
}
