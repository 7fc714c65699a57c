package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bourse-net/bourse/node"
)

// DefaultGrace is how long Stop waits after SIGTERM before SIGKILL.
const DefaultGrace = 10 * time.Second

// ErrAlreadyRunning is returned by Start for a node whose daemon runs.
var ErrAlreadyRunning = errors.New("daemon already running")

// ReadPID reads a home's daemon.pid. ok is false when there is none or it
// is unreadable.
func ReadPID(home string) (pid int, ok bool) {
	b, err := os.ReadFile(filepath.Join(home, node.PIDFile))
	if err != nil || len(b) > 64 {
		return 0, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, true
}

// livePID returns the pid of the daemon running in home, if any: the pid
// file names a live process that is a bourse daemon for this home (as far
// as /proc tells; without /proc, any live process counts).
func livePID(home string) (int, bool) {
	pid, ok := ReadPID(home)
	if !ok || !alive(pid) {
		return 0, false
	}
	if cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil {
		args := bytes.Split(bytes.TrimRight(cmd, "\x00"), []byte{0})
		if !isDaemonFor(args, home) {
			return 0, false // pid reused by another program
		}
	}
	return pid, true
}

// isDaemonFor reports whether a command line runs "daemon" for home.
func isDaemonFor(args [][]byte, home string) bool {
	var sawDaemon, sawHome bool
	for i, a := range args {
		s := string(a)
		switch {
		case s == "daemon":
			sawDaemon = true
		case s == "--home" || s == "-home":
			if i+1 < len(args) && sameDir(string(args[i+1]), home) {
				sawHome = true
			}
		case strings.HasPrefix(s, "--home="):
			sawHome = sawHome || sameDir(strings.TrimPrefix(s, "--home="), home)
		}
	}
	return sawDaemon && sawHome
}

func sameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// alive reports whether pid is a process that has not exited (a zombie
// waiting for its parent counts as exited).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: trust kill(0)
	}
	// Format: pid (comm) state ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return true
	}
	return stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// RunningNodes names the nodes whose daemon runs.
func RunningNodes(nw *Network) []string {
	var out []string
	for _, n := range nw.Nodes {
		if _, ok := livePID(n.Home); ok {
			out = append(out, n.Name)
		}
	}
	return out
}

// FindBinary returns the bourse executable the daemons run: override when
// set, else this program, unless this program is a go test binary (it
// would run the tests again as "daemons").
func FindBinary(override string) (string, error) {
	if override != "" {
		return override, nil
	}
	bin, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the bourse binary: %w", err)
	}
	if strings.HasSuffix(bin, ".test") {
		return "", fmt.Errorf("start testnet: %s is a test binary; pass the bourse binary to run (StartOptions.Binary, --binary)", bin)
	}
	return bin, nil
}

// StartOptions control Start.
type StartOptions struct {
	// Binary is the bourse executable. Empty: os.Executable().
	Binary string
	// Nodes to start by name; empty: all.
	Nodes []string
	// Env is added to the daemons' environment.
	Env []string
	// Logger receives one line per started and stopped daemon. Nil: discard.
	Logger *slog.Logger
}

// Cluster is a set of daemons started by this process. Its methods are
// safe for concurrent use.
type Cluster struct {
	nw    *Network
	log   *slog.Logger
	procs []*proc
	wg    sync.WaitGroup // one waiter per process

	exitOnce sync.Once
	exited   chan struct{} // closed when the first process exits
}

type proc struct {
	node Node
	cmd  *exec.Cmd
	out  *os.File
	done chan struct{}
	err  error // set before done closes
}

// Start launches `bourse daemon --home <home> --passphrase-file <home>/passphrase`
// for the chosen nodes, each in its own session (so Ctrl-C in a terminal
// reaches only this process, and the daemons can outlive it), with stdout
// and stderr appended to <home>/daemon.out. A node whose daemon already
// runs is an error (ErrAlreadyRunning); a stale daemon.pid left by a killed
// daemon is removed. On error, the daemons already started are stopped.
func Start(nw *Network, o StartOptions) (*Cluster, error) {
	if nw.Containers {
		return nil, errors.New("this testnet was generated for containers: run it with 'docker compose' (see testnet/README.md)")
	}
	nodes, err := nw.Select(o.Nodes)
	if err != nil {
		return nil, err
	}
	bin, err := FindBinary(o.Binary)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, n := range nodes {
		if pid, ok := livePID(n.Home); ok {
			return nil, fmt.Errorf("start %s: %w (pid %d); stop it with 'bourse testnet down --dir %s --node %s'", n.Name, ErrAlreadyRunning, pid, nw.Dir, n.Name)
		}
	}
	c := &Cluster{nw: nw, log: log, exited: make(chan struct{})}
	for _, n := range nodes {
		if err := c.start(bin, n, o.Env); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), DefaultGrace+5*time.Second)
			c.Stop(ctx, DefaultGrace)
			cancel()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) start(bin string, n Node, extraEnv []string) error {
	if _, ok := ReadPID(n.Home); ok {
		// Not live (checked by Start): left by a daemon that was killed.
		os.Remove(filepath.Join(n.Home, node.PIDFile))
	}
	out, err := os.OpenFile(filepath.Join(n.Home, DaemonOutFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	fmt.Fprintf(out, "--- %s: bourse testnet starts %s\n", time.Now().UTC().Format(time.RFC3339), n.Name)
	cmd := exec.Command(bin, "daemon", "--home", n.Home, "--passphrase-file", filepath.Join(n.Home, PassphraseFile))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(daemonEnv(os.Environ()), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	p := &proc{node: n, cmd: cmd, out: out, done: make(chan struct{})}
	c.procs = append(c.procs, p)
	c.log.Info("daemon started", "node", n.Name, "pid", cmd.Process.Pid, "api", n.API)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
		c.log.Info("daemon exited", "node", n.Name, "status", exitText(p.err))
		c.exitOnce.Do(func() { close(c.exited) })
	}()
	return nil
}

// daemonEnv drops variables that would point the daemon elsewhere.
func daemonEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "BOURSE_HOME", "BOURSE_API", "BOURSE_API_TOKEN", "BOURSE_PASSPHRASE":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// Network is the network the cluster runs.
func (c *Cluster) Network() *Network { return c.nw }

// PIDs maps node names to the pids of the started daemons.
func (c *Cluster) PIDs() map[string]int {
	m := map[string]int{}
	for _, p := range c.procs {
		m[p.node.Name] = p.cmd.Process.Pid
	}
	return m
}

// Exited is closed when any started daemon exits.
func (c *Cluster) Exited() <-chan struct{} { return c.exited }

// ExitError reports the first daemon found to have exited, or nil when
// all run.
func (c *Cluster) ExitError() error {
	for _, p := range c.procs {
		select {
		case <-p.done:
			return &NodeError{Node: p.node.Name, Err: fmt.Errorf("daemon exited: %s", exitText(p.err)),
				LogTail: LogTail(p.node.Home, 20)}
		default:
		}
	}
	return nil
}

// Stop sends SIGTERM to every daemon still running, waits up to grace,
// then sends SIGKILL, and waits for all to be reaped (or ctx to end). It
// returns an error naming the daemons that had to be killed.
func (c *Cluster) Stop(ctx context.Context, grace time.Duration) error {
	for _, p := range c.procs {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	var killed []string
	for _, p := range c.procs {
		select {
		case <-p.done:
			continue
		case <-timer.C:
		case <-ctx.Done():
		}
		// Past the grace period (the timer fired once; later ones are past too).
		timer.Reset(0)
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGKILL)
			killed = append(killed, p.node.Name)
		}
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop testnet: %w", ctx.Err())
	}
	if len(killed) > 0 {
		return fmt.Errorf("stop testnet: %v did not stop within %s and were killed", killed, grace)
	}
	return nil
}

// Detach leaves the daemons running after this process exits: they run in
// their own sessions and write daemon.pid, so 'bourse testnet down' finds
// them. The waiters of Start end when the daemons exit or this process
// does; call Detach only just before the process exits.
func (c *Cluster) Detach() {
	for _, p := range c.procs {
		c.log.Info("daemon detached", "node", p.node.Name, "pid", p.cmd.Process.Pid)
	}
}

// StopOptions control Stop.
type StopOptions struct {
	Nodes []string      // by name; empty: all
	Grace time.Duration // SIGTERM to SIGKILL; zero: DefaultGrace
	Kill  bool          // SIGKILL at once, as a crash would
}

// StopResult says what Stop did to one node.
type StopResult struct {
	Node   string `json:"node"`
	PID    int    `json:"pid,omitempty"`
	Result string `json:"result"` // "not running", "stopped", "killed"
}

// Stop stops the daemons of the network found through their daemon.pid
// files (wherever they were started from): SIGTERM, then SIGKILL after the
// grace period, or SIGKILL at once with Kill. Their data stays. A stale
// pid file is removed.
func Stop(ctx context.Context, nw *Network, o StopOptions) ([]StopResult, error) {
	nodes, err := nw.Select(o.Nodes)
	if err != nil {
		return nil, err
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	res := make([]StopResult, len(nodes))
	sig := syscall.SIGTERM
	if o.Kill {
		sig = syscall.SIGKILL
	}
	for i, n := range nodes {
		res[i] = StopResult{Node: n.Name, Result: "not running"}
		pid, ok := livePID(n.Home)
		if !ok {
			if _, stale := ReadPID(n.Home); stale {
				os.Remove(filepath.Join(n.Home, node.PIDFile))
			}
			continue
		}
		res[i].PID = pid
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return res, fmt.Errorf("stop %s (pid %d): %w", n.Name, pid, err)
		}
		res[i].Result = "stopping"
	}
	deadline := time.Now().Add(o.Grace)
	for i := range res {
		if res[i].Result != "stopping" {
			continue
		}
		if err := waitGone(ctx, res[i].PID, deadline); err != nil {
			if ctx.Err() != nil {
				return res, fmt.Errorf("stop %s: %w", res[i].Node, ctx.Err())
			}
			syscall.Kill(res[i].PID, syscall.SIGKILL)
			res[i].Result = "killed"
			if err := waitGone(ctx, res[i].PID, time.Now().Add(5*time.Second)); err != nil {
				return res, fmt.Errorf("stop %s (pid %d): still running after SIGKILL", res[i].Node, res[i].PID)
			}
		} else if o.Kill {
			res[i].Result = "killed"
		} else {
			res[i].Result = "stopped"
		}
		if o.Kill || res[i].Result == "killed" {
			// A killed daemon leaves its pid file behind.
			n, _ := nw.Node(res[i].Node)
			os.Remove(filepath.Join(n.Home, node.PIDFile))
		}
	}
	return res, nil
}

var errStillRunning = errors.New("still running")

func waitGone(ctx context.Context, pid int, deadline time.Time) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for alive(pid) {
		if time.Now().After(deadline) {
			return errStillRunning
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
