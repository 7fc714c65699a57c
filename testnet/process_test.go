package testnet

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node"
)

// fakeNetwork generates a network whose "daemon" is this test binary.
func fakeNetwork(t *testing.T, n int, mode string) (*Network, StartOptions) {
	t.Helper()
	nw, err := Generate(Options{Dir: t.TempDir(), N: n, APIBasePort: freeBase(t, n)})
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return nw, StartOptions{Binary: bin, Env: []string{fakeEnv + "=1", fakeEnv + "_MODE=" + mode}}
}

func startFake(t *testing.T, nw *Network, so StartOptions) *Cluster {
	t.Helper()
	c, err := Start(nw, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c.Stop(ctx, 2*time.Second)
	})
	return c
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartWaitStatusDown(t *testing.T) {
	nw, so := fakeNetwork(t, 3, "")
	c := startFake(t, nw, so)
	ctx := waitCtx(t)
	var lines []string
	err := WaitReady(ctx, nw, WaitOptions{MinHeight: 2, Failed: c.ExitError, Progress: func(s string) { lines = append(lines, s) }})
	if err != nil {
		t.Fatal(err)
	}
	pids := c.PIDs()
	for _, s := range Status(ctx, nw) {
		if !s.Up || !s.Running || s.Height < 2 || s.Peers != 2 || s.PID != pids[s.Name] || s.Error != "" {
			t.Fatalf("status %+v (started pid %d)", s, pids[s.Name])
		}
	}
	if err := RegisterProviders(ctx, nw, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range nw.Nodes {
		cl, _ := Client(n)
		if ps, err := cl.ProviderStatus(ctx); err != nil || !ps.Registered {
			t.Fatalf("%s: registered %v, %v", n.Name, ps.Registered, err)
		}
	}
	// A second start of a running node is refused.
	if _, err := Start(nw, StartOptions{Binary: so.Binary, Env: so.Env, Nodes: []string{"node1"}}); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("start of a running node: %v", err)
	}
	// down through the pid files, as another process would.
	res, err := Stop(ctx, nw, StopOptions{Nodes: []string{"node1"}, Grace: 5 * time.Second})
	if err != nil || len(res) != 1 || res[0].Result != "stopped" || res[0].PID != pids["node1"] {
		t.Fatalf("stop node1: %+v %v", res, err)
	}
	sts := Status(ctx, nw)
	if sts[1].Up || sts[1].Running || sts[1].Error == "" || !sts[0].Up || !sts[2].Up {
		t.Fatalf("after stopping node1: %+v", sts)
	}
	if got := RunningNodes(nw); strings.Join(got, ",") != "node0,node2" {
		t.Fatalf("running %v", got)
	}
	// Restart it: it answers again, its output appended to daemon.out.
	c2 := startFake(t, nw, StartOptions{Binary: so.Binary, Env: so.Env, Nodes: []string{"node1"}})
	if err := WaitReady(ctx, nw, WaitOptions{Nodes: []string{"node1"}, Failed: c2.ExitError}); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(filepath.Join(nw.Nodes[1].Home, DaemonOutFile))
	if n := strings.Count(string(out), "fake daemon up"); n != 2 {
		t.Fatalf("daemon.out shows %d starts, want 2:\n%s", n, out)
	}
	// Kill (a crash): the pid file is cleared so that it can start again.
	res, err = Stop(ctx, nw, StopOptions{Nodes: []string{"node2"}, Kill: true})
	if err != nil || res[0].Result != "killed" {
		t.Fatalf("kill node2: %+v %v", res, err)
	}
	if _, ok := ReadPID(nw.Nodes[2].Home); ok {
		t.Fatal("killed node2 left daemon.pid")
	}
	// down of everything; a node not running is reported as such.
	res, err = Stop(ctx, nw, StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"stopped", "stopped", "not running"}
	for i, r := range res {
		if r.Result != want[i] {
			t.Fatalf("down: %+v, want %v", res, want)
		}
	}
	if len(RunningNodes(nw)) != 0 {
		t.Fatalf("still running: %v", RunningNodes(nw))
	}
	if _, err := os.Stat(filepath.Join(nw.Nodes[0].Home, node.ConfigFile)); err != nil {
		t.Fatal("down removed the data")
	}
}

func TestForceRefusesRunningNetwork(t *testing.T) {
	nw, so := fakeNetwork(t, 1, "")
	c := startFake(t, nw, so)
	if err := WaitReady(waitCtx(t), nw, WaitOptions{Failed: c.ExitError}); err != nil {
		t.Fatal(err)
	}
	_, err := Generate(Options{Dir: nw.Dir, N: 1, Force: true, SkipPortCheck: true})
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("--force over a running testnet: %v", err)
	}
}

func TestWaitReadyReportsDeadDaemon(t *testing.T) {
	nw, so := fakeNetwork(t, 2, "fail")
	c := startFake(t, nw, so)
	err := WaitReady(waitCtx(t), nw, WaitOptions{MinHeight: 2, Failed: c.ExitError})
	var ne *NodeError
	if !errors.As(err, &ne) || !strings.Contains(ne.LogTail, "fatal: boom") || !strings.Contains(err.Error(), "daemon exited") {
		t.Fatalf("err %v, want a NodeError with the log tail", err)
	}
}

func TestWaitReadyTimeoutShowsLog(t *testing.T) {
	nw, so := fakeNetwork(t, 1, "")
	c := startFake(t, nw, so)
	// Up first (its log says so), so the short wait below is about the
	// height, not about a slow start.
	if err := WaitReady(waitCtx(t), nw, WaitOptions{Failed: c.ExitError}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := WaitReady(ctx, nw, WaitOptions{MinHeight: 1 << 40, Failed: c.ExitError})
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Node != "node0" || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(ne.LogTail, "fake daemon up") {
		t.Fatalf("err %v", err)
	}
}

func TestClusterStopEscalatesToKill(t *testing.T) {
	nw, so := fakeNetwork(t, 2, "ignoreterm")
	c := startFake(t, nw, so)
	if err := WaitReady(waitCtx(t), nw, WaitOptions{Failed: c.ExitError}); err != nil {
		t.Fatal(err)
	}
	err := c.Stop(waitCtx(t), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("stop of daemons ignoring SIGTERM: %v", err)
	}
	select {
	case <-c.Exited():
	default:
		t.Fatal("Exited not closed after Stop")
	}
	for _, p := range c.PIDs() {
		if alive(p) {
			t.Fatalf("pid %d alive after Stop", p)
		}
	}
}

func TestIsDaemonFor(t *testing.T) {
	split := func(s string) [][]byte {
		var out [][]byte
		for _, f := range strings.Fields(s) {
			out = append(out, []byte(f))
		}
		return out
	}
	for _, tc := range []struct {
		cmd  string
		want bool
	}{
		{"bourse daemon --home /t/node0 --passphrase-file /t/node0/passphrase", true},
		{"bourse daemon --home=/t/node0", true},
		{"bourse --home /t/node0 daemon", true},
		{"bourse daemon --home /t/node1", false},
		{"bourse chain status --home /t/node0", false},
		{"sleep 100", false},
		{"bourse daemon --home", false},
	} {
		if got := isDaemonFor(split(tc.cmd), "/t/node0"); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.cmd, got, tc.want)
		}
	}
}

func TestAliveAndStalePID(t *testing.T) {
	if !alive(os.Getpid()) {
		t.Fatal("own process not alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no 'true' binary:", err)
	}
	if alive(cmd.Process.Pid) {
		t.Fatalf("exited pid %d reported alive", cmd.Process.Pid)
	}
	// A pid file naming a process that is not a daemon for this home is not
	// a running daemon (pid reuse), nor is one naming a dead process.
	home := t.TempDir()
	for _, pid := range []int{os.Getpid(), cmd.Process.Pid} {
		os.WriteFile(filepath.Join(home, node.PIDFile), []byte(strconv.Itoa(pid)), 0o644)
		if p, ok := livePID(home); ok {
			t.Fatalf("pid %d taken for a daemon (%d)", pid, p)
		}
	}
	for _, junk := range []string{"", "x", "-5", "1", strings.Repeat("9", 100)} {
		os.WriteFile(filepath.Join(home, node.PIDFile), []byte(junk), 0o644)
		if _, ok := ReadPID(home); ok {
			t.Fatalf("pid file %q accepted", junk)
		}
	}
}
