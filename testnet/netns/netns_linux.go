//go:build linux

package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Prefix starts the name of every namespace this package makes.
const Prefix = "bnt-"

// Subnet of the hosts: host i has 10.99.0.<i+1>.
const (
	subnet   = "10.99.0."
	MaxHosts = 250
)

// nsDir is where `ip netns` keeps its named namespaces.
const nsDir = "/var/run/netns"

// ErrNoNetem is returned by Delay when the kernel has neither a netem
// qdisc nor NFQUEUE to delay packets with.
var ErrNoNetem = errors.New("this kernel has no netem qdisc (sch_netem) and no NFQUEUE: delay cannot be injected; use Slow")

// Available returns nil when this process can build namespace networks,
// else why not (for a test's skip message).
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	for _, tool := range []string{"ip", "iptables-restore", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (Debian: apt-get install iproute2 iptables)", tool)
		}
	}
	return nil
}

// faults is the desired fault picture of one host.
type faults struct {
	blocked map[int]bool // hosts whose packets this one drops, both ways
	loss    float64      // fraction of packets dropped, in and out
	qdisc   []string     // tc qdisc arguments after "root", or nil
	delay   *delayer     // the NFQUEUE delay where netem is missing, or nil
	down    bool         // bridge end of the cable down
}

// Net is a bridge and n hosts, each in its own namespace. Its methods are
// safe for concurrent use.
type Net struct {
	ID    string
	hub   string
	hosts []Host

	mu     sync.Mutex
	faults []faults
	closed bool
}

// New makes a network of n hosts. The hosts in behindNAT each sit behind
// a router namespace of their own that masquerades them (iptables
// MASQUERADE, no port forwarded): they reach everyone, nobody can open a
// connection to them. Close the network when done (t.Cleanup), even after
// a failure: namespaces outlive the process.
func New(ctx context.Context, n int, behindNAT ...int) (*Net, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if n < 1 || n > MaxHosts {
		return nil, fmt.Errorf("netns: %d hosts: want 1..%d", n, MaxHosts)
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	nt := &Net{ID: Prefix + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(rnd[:])}
	nt.hub = nt.ID + "-hub"
	for i := range n {
		h := Host{Index: i, NS: nt.ID + "-h" + strconv.Itoa(i), Addr: subnet + strconv.Itoa(i+1)}
		h.Inner = h.Addr
		if slices.Contains(behindNAT, i) {
			h.Router = nt.ID + "-r" + strconv.Itoa(i)
			h.Inner = "192.168." + strconv.Itoa(i+1) + ".2"
		}
		nt.hosts = append(nt.hosts, h)
		nt.faults = append(nt.faults, faults{blocked: map[int]bool{}})
	}
	for _, i := range behindNAT {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("netns: no host %d to put behind a NAT (have 0..%d)", i, n-1)
		}
	}
	if err := nt.build(ctx); err != nil {
		nt.Close()
		return nil, err
	}
	return nt, nil
}

func (nt *Net) build(ctx context.Context) error {
	steps := [][]string{
		{"netns", "add", nt.hub},
		{"-n", nt.hub, "link", "set", "lo", "up"},
		{"-n", nt.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", nt.hub, "link", "set", "br0", "up"},
	}
	for _, h := range nt.hosts {
		v := "v" + strconv.Itoa(h.Index)
		steps = append(steps, []string{"netns", "add", h.NS}, []string{"-n", h.NS, "link", "set", "lo", "up"})
		if h.Router == "" {
			steps = append(steps,
				[]string{"-n", nt.hub, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
				[]string{"-n", nt.hub, "link", "set", v, "master", "br0"},
				[]string{"-n", nt.hub, "link", "set", v, "up"},
				[]string{"-n", h.NS, "addr", "add", h.Addr + "/24", "dev", "eth0"},
				[]string{"-n", h.NS, "link", "set", "eth0", "up"},
			)
			continue
		}
		// Bridge ↔ router (public side, the host's Addr) ↔ host (Inner).
		gw := strings.TrimSuffix(h.Inner, ".2") + ".1"
		steps = append(steps,
			[]string{"netns", "add", h.Router},
			[]string{"-n", h.Router, "link", "set", "lo", "up"},
			[]string{"-n", nt.hub, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", h.Router},
			[]string{"-n", nt.hub, "link", "set", v, "master", "br0"},
			[]string{"-n", nt.hub, "link", "set", v, "up"},
			[]string{"-n", h.Router, "addr", "add", h.Addr + "/24", "dev", "eth0"},
			[]string{"-n", h.Router, "link", "set", "eth0", "up"},
			[]string{"-n", h.Router, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", h.NS},
			[]string{"-n", h.Router, "addr", "add", gw + "/24", "dev", "lan0"},
			[]string{"-n", h.Router, "link", "set", "lan0", "up"},
			[]string{"-n", h.NS, "addr", "add", h.Inner + "/24", "dev", "eth0"},
			[]string{"-n", h.NS, "link", "set", "eth0", "up"},
			[]string{"-n", h.NS, "route", "add", "default", "via", gw},
		)
	}
	for _, s := range steps {
		if err := run(ctx, nil, "ip", s...); err != nil {
			return fmt.Errorf("netns: build network %s: %w", nt.ID, err)
		}
	}
	for _, h := range nt.hosts {
		if h.Router == "" {
			continue
		}
		// Forward, and masquerade what leaves for the bridge. Nothing is
		// forwarded in: a connection from outside has nowhere to go.
		nat := "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
			"-A POSTROUTING -o eth0 -s " + h.Inner + "/32 -j MASQUERADE\nCOMMIT\n" +
			"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
			"-A FORWARD -i lan0 -o eth0 -j ACCEPT\n" +
			"-A FORWARD -i eth0 -o lan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\nCOMMIT\n"
		if err := run(ctx, []byte(nat), "ip", "netns", "exec", h.Router, "iptables-restore", "-w"); err != nil {
			return fmt.Errorf("netns: NAT of host %d: %w", h.Index, err)
		}
		if err := run(ctx, nil, "ip", "netns", "exec", h.Router, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return fmt.Errorf("netns: NAT of host %d: %w", h.Index, err)
		}
	}
	return nil
}

// run runs a command and returns its error with its output.
func run(ctx context.Context, stdin []byte, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Hosts returns the hosts, in order.
func (nt *Net) Hosts() []Host { return slices.Clone(nt.hosts) }

// Host returns host i.
func (nt *Net) Host(i int) Host { return nt.hosts[i] }

// Len is the number of hosts.
func (nt *Net) Len() int { return len(nt.hosts) }

func (nt *Net) check(idx ...int) error {
	for _, i := range idx {
		if i < 0 || i >= len(nt.hosts) {
			return fmt.Errorf("netns: no host %d (have 0..%d)", i, len(nt.hosts)-1)
		}
	}
	if nt.closed {
		return errors.New("netns: network closed")
	}
	return nil
}

// Command returns a command that runs argv inside host i.
func (nt *Net) Command(i int, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", nt.hosts[i].NS}, argv...)...)
}

// Cut makes every host in a drop every packet from and to every host in b,
// and the reverse. Other cuts and faults stay.
func (nt *Net) Cut(ctx context.Context, a, b []int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.check(append(slices.Clone(a), b...)...); err != nil {
		return err
	}
	touched := map[int]bool{}
	for _, i := range a {
		for _, j := range b {
			if i != j {
				nt.faults[i].blocked[j], nt.faults[j].blocked[i] = true, true
				touched[i], touched[j] = true, true
			}
		}
	}
	return nt.applyFilters(ctx, touched)
}

// Partition splits the hosts into groups that cannot reach each other.
// Hosts in no group keep their links to everyone (a bridge node).
func (nt *Net) Partition(ctx context.Context, groups ...[]int) error {
	for x := range groups {
		for y := x + 1; y < len(groups); y++ {
			if err := nt.Cut(ctx, groups[x], groups[y]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Isolate cuts host i off from every other host.
func (nt *Net) Isolate(ctx context.Context, i int) error {
	var rest []int
	for j := range nt.hosts {
		if j != i {
			rest = append(rest, j)
		}
	}
	return nt.Cut(ctx, []int{i}, rest)
}

// Loss makes host i drop a fraction p (0..1) of the packets it sends and
// receives on the bridge. 0 removes the loss.
func (nt *Net) Loss(ctx context.Context, i int, p float64) error {
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("netns: loss %v: want a fraction in 0..1", p)
	}
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.check(i); err != nil {
		return err
	}
	nt.faults[i].loss = p
	return nt.applyFilters(ctx, map[int]bool{i: true})
}

// applyFilters replaces the filter table of each touched host with the
// rules its faults say, atomically.
func (nt *Net) applyFilters(ctx context.Context, touched map[int]bool) error {
	for i := range nt.hosts {
		if !touched[i] {
			continue
		}
		f := nt.faults[i]
		var b strings.Builder
		b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
		for j := range nt.hosts {
			if f.blocked[j] {
				fmt.Fprintf(&b, "-A INPUT -i eth0 -s %s/32 -j DROP\n-A OUTPUT -o eth0 -d %s/32 -j DROP\n", nt.hosts[j].Addr, nt.hosts[j].Addr)
			}
		}
		if f.loss > 0 {
			p := strconv.FormatFloat(f.loss, 'f', 4, 64)
			fmt.Fprintf(&b, "-A INPUT -i eth0 -m statistic --mode random --probability %s -j DROP\n", p)
			fmt.Fprintf(&b, "-A OUTPUT -o eth0 -m statistic --mode random --probability %s -j DROP\n", p)
		}
		b.WriteString("COMMIT\n")
		if err := run(ctx, []byte(b.String()), "ip", "netns", "exec", nt.hosts[i].NS, "iptables-restore", "-w"); err != nil {
			return fmt.Errorf("netns: set filters of host %d: %w", i, err)
		}
	}
	return nil
}

// Delay makes every round trip with host i d longer, give or take
// jitter: tc netem on what it sends where the kernel has netem, else what
// it receives waits in an NFQUEUE this process answers (see delayer). A
// zero delay removes it. ErrNoNetem when the kernel has neither.
func (nt *Net) Delay(ctx context.Context, i int, d, jitter time.Duration) error {
	if d < 0 || jitter < 0 || jitter > d {
		return fmt.Errorf("netns: delay %s ± %s: want 0 <= jitter <= delay", d, jitter)
	}
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.check(i); err != nil {
		return err
	}
	if err := nt.stopDelay(ctx, i); err != nil {
		return err
	}
	if d == 0 {
		return nt.clearQdisc(ctx, i)
	}
	err := nt.setQdiscLocked(ctx, i, []string{"netem", "delay", us(d), us(jitter)})
	if !errors.Is(err, ErrNoNetem) {
		return err
	}
	dl, err := startDelay(ctx, nt.hosts[i].NS, d, jitter)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrNoNetem, err)
	}
	nt.faults[i].delay = dl
	return nil
}

// stopDelay ends host i's NFQUEUE delay, if any. Called with nt.mu held.
func (nt *Net) stopDelay(ctx context.Context, i int) error {
	dl := nt.faults[i].delay
	if dl == nil {
		return nil
	}
	nt.faults[i].delay = nil
	return dl.stop(ctx, true)
}

// Slow makes host i's outgoing link a token bucket of rate bits per second
// whose queue holds up to latency of packets (tc tbf): packets wait in the
// queue (delay) and are dropped when it is full. A substitute for Delay
// where the kernel has no netem.
func (nt *Net) Slow(ctx context.Context, i int, bitsPerSecond uint64, latency time.Duration) error {
	if bitsPerSecond < 8000 || latency <= 0 {
		return fmt.Errorf("netns: slow link %d bit/s, latency %s: want at least 8000 bit/s and a positive latency", bitsPerSecond, latency)
	}
	return nt.setQdisc(ctx, i, []string{"tbf", "rate", strconv.FormatUint(bitsPerSecond, 10) + "bit",
		"burst", "16kb", "latency", us(latency)})
}

func us(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) + "us" }

func (nt *Net) setQdisc(ctx context.Context, i int, q []string) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.check(i); err != nil {
		return err
	}
	return nt.setQdiscLocked(ctx, i, q)
}

func (nt *Net) setQdiscLocked(ctx context.Context, i int, q []string) error {
	args := append([]string{"-n", nt.hosts[i].NS, "qdisc", "replace", "dev", "eth0", "root"}, q...)
	if err := run(ctx, nil, "tc", args...); err != nil {
		if q[0] == "netem" && strings.Contains(err.Error(), "qdisc kind is unknown") {
			return ErrNoNetem
		}
		return fmt.Errorf("netns: host %d: %w", i, err)
	}
	nt.faults[i].qdisc = q
	return nil
}

func (nt *Net) clearQdisc(ctx context.Context, i int) error {
	if nt.faults[i].qdisc == nil {
		return nil
	}
	if err := run(ctx, nil, "tc", "-n", nt.hosts[i].NS, "qdisc", "del", "dev", "eth0", "root"); err != nil {
		return fmt.Errorf("netns: host %d: %w", i, err)
	}
	nt.faults[i].qdisc = nil
	return nil
}

// LinkDown sets the bridge end of host i's cable down: nothing passes
// until LinkUp (or Heal).
func (nt *Net) LinkDown(ctx context.Context, i int) error { return nt.setLink(ctx, i, false) }

// LinkUp undoes LinkDown.
func (nt *Net) LinkUp(ctx context.Context, i int) error { return nt.setLink(ctx, i, true) }

func (nt *Net) setLink(ctx context.Context, i int, up bool) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.check(i); err != nil {
		return err
	}
	state := "down"
	if up {
		state = "up"
	}
	if err := run(ctx, nil, "ip", "-n", nt.hub, "link", "set", "v"+strconv.Itoa(i), state); err != nil {
		return fmt.Errorf("netns: host %d: %w", i, err)
	}
	nt.faults[i].down = !up
	return nil
}

// Heal removes every fault: cuts, loss, delay and slow links, downed links.
func (nt *Net) Heal(ctx context.Context) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if err := nt.check(); err != nil {
		return err
	}
	touched := map[int]bool{}
	var errs []error
	for i := range nt.hosts {
		f := &nt.faults[i]
		if len(f.blocked) > 0 || f.loss > 0 {
			touched[i] = true
		}
		f.blocked, f.loss = map[int]bool{}, 0
		errs = append(errs, nt.clearQdisc(ctx, i), nt.stopDelay(ctx, i))
		if f.down {
			if err := run(ctx, nil, "ip", "-n", nt.hub, "link", "set", "v"+strconv.Itoa(i), "up"); err != nil {
				errs = append(errs, err)
			} else {
				f.down = false
			}
		}
	}
	errs = append(errs, nt.applyFilters(ctx, touched))
	return errors.Join(errs...)
}

// Describe says what faults are in force, for logs.
func (nt *Net) Describe() string {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	var parts []string
	for i, f := range nt.faults {
		var p []string
		var bl []int
		for j := range nt.hosts {
			if f.blocked[j] && j > i {
				bl = append(bl, j)
			}
		}
		if len(bl) > 0 {
			p = append(p, fmt.Sprintf("cut from %v", bl))
		}
		if f.loss > 0 {
			p = append(p, fmt.Sprintf("loss %.0f%%", f.loss*100))
		}
		if f.qdisc != nil {
			p = append(p, strings.Join(f.qdisc, " "))
		}
		if f.delay != nil {
			p = append(p, fmt.Sprintf("delay %s ± %s (NFQUEUE)", f.delay.d, f.delay.jitter))
		}
		if f.down {
			p = append(p, "link down")
		}
		if len(p) > 0 {
			parts = append(parts, fmt.Sprintf("h%d: %s", i, strings.Join(p, ", ")))
		}
	}
	if len(parts) == 0 {
		return "healed"
	}
	return strings.Join(parts, "; ")
}

// inNS runs f on a thread that has entered namespace ns. The thread is
// never returned to the scheduler: it ends with the goroutine, so no other
// code runs in the namespace by accident. Sockets made by f stay in ns.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		fd, err := unix.Open(filepath.Join(nsDir, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: open %s: %w", ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("netns: enter %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// DialContext returns a dial function whose connections start inside host
// i (so "127.0.0.1:port" is host i's loopback).
func (nt *Net) DialContext(i int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	ns := nt.hosts[i].NS
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNS(ns, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// Listen listens inside host i.
func (nt *Net) Listen(i int, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNS(nt.hosts[i].NS, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// HTTPClient returns an HTTP client whose connections start inside host i.
func (nt *Net) HTTPClient(i int, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: nt.DialContext(i), MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}}
}

// Close ends every process still inside the network's namespaces and
// deletes them. It is safe to call more than once.
func (nt *Net) Close() error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.closed {
		return nil
	}
	nt.closed = true
	var errs []error
	for i := range nt.faults {
		if dl := nt.faults[i].delay; dl != nil {
			nt.faults[i].delay = nil
			dl.stop(context.Background(), false) // the namespace goes, and its rule with it
		}
	}
	for _, h := range nt.hosts {
		errs = append(errs, removeNS(h.NS))
		if h.Router != "" {
			errs = append(errs, removeNS(h.Router))
		}
	}
	errs = append(errs, removeNS(nt.hub))
	return errors.Join(errs...)
}

// removeNS kills the processes in namespace ns and deletes it. A missing
// namespace is not an error.
func removeNS(ns string) error {
	if _, err := os.Stat(filepath.Join(nsDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids { // gone before the namespace goes
		for ctx.Err() == nil && syscall.Kill(pid, 0) == nil && !zombie(pid) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := run(ctx, nil, "ip", "netns", "del", ns); err != nil {
		return fmt.Errorf("netns: remove %s: %w", ns, err)
	}
	return nil
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// Sweep deletes the namespaces left by runs whose process is gone (a
// test binary killed by its timeout cannot run its cleanup) and returns
// their names.
func Sweep() ([]string, error) {
	entries, err := os.ReadDir(nsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: sweep: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, Prefix), "-")
		if !strings.HasPrefix(name, Prefix) || !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			if !zombie(pid) {
				continue // its run is alive
			}
		}
		if err := removeNS(name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}
