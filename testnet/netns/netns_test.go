//go:build linux

package netns

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newNet(t *testing.T, n int, behindNAT ...int) *Net {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip("netns:", err)
	}
	nt, err := New(context.Background(), n, behindNAT...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nt.Close(); err != nil {
			t.Error(err)
		}
	})
	return nt
}

// echo serves on port 7 of host i: each connection gets "hi" and is closed.
func echo(t *testing.T, nt *Net, i int) string {
	t.Helper()
	l, err := nt.Listen(i, "tcp", nt.Host(i).Addr+":7007")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	return l.Addr().String()
}

// reach dials addr from host i and reads the greeting, within a short
// deadline: a cut link fails it.
func reach(nt *Net, i int, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	c, err := nt.DialContext(i)(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(700 * time.Millisecond))
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(b) != "hi" {
		return errors.New("got " + strconv.Quote(string(b)))
	}
	return nil
}

func mustReach(t *testing.T, nt *Net, i int, addr string) {
	t.Helper()
	// A healed link may need a retransmission or two.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := reach(nt, i, addr)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %d cannot reach %s: %v (faults: %s)", i, addr, err, nt.Describe())
		}
	}
}

func mustNotReach(t *testing.T, nt *Net, i int, addr string) {
	t.Helper()
	if err := reach(nt, i, addr); err == nil {
		t.Fatalf("host %d reaches %s through %s", i, addr, nt.Describe())
	}
}

func TestHostsTalkOverTheBridgeAndNotThroughTheHostsLoopback(t *testing.T) {
	nt := newNet(t, 3)
	a0 := echo(t, nt, 0)
	mustReach(t, nt, 1, a0)
	mustReach(t, nt, 2, a0)
	// Host 0's loopback is its own: a listener on it is not the host's.
	l, err := nt.Listen(0, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if c, err := net.DialTimeout("tcp", l.Addr().String(), 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("the test's own namespace reaches host 0's loopback")
	}
}

func TestPartitionCutsAcrossGroupsOnlyAndHealRestoresIt(t *testing.T) {
	nt := newNet(t, 4)
	addr := make([]string, 4)
	for i := range 4 {
		addr[i] = echo(t, nt, i)
	}
	ctx := context.Background()
	if err := nt.Partition(ctx, []int{0, 1}, []int{2}); err != nil { // 3 bridges both sides
		t.Fatal(err)
	}
	mustReach(t, nt, 1, addr[0])
	mustNotReach(t, nt, 0, addr[2])
	mustNotReach(t, nt, 2, addr[1])
	mustReach(t, nt, 3, addr[0])
	mustReach(t, nt, 3, addr[2])
	mustReach(t, nt, 2, addr[3])
	if err := nt.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	mustReach(t, nt, 0, addr[2])
	mustReach(t, nt, 2, addr[1])
	if d := nt.Describe(); d != "healed" {
		t.Fatalf("after Heal: %s", d)
	}
}

func TestIsolatedAndUnpluggedHostsReachNobody(t *testing.T) {
	nt := newNet(t, 3)
	a1, a2 := echo(t, nt, 1), echo(t, nt, 2)
	ctx := context.Background()
	if err := nt.Isolate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, nt, 0, a1)
	mustReach(t, nt, 2, a1)
	if err := nt.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	mustReach(t, nt, 0, a1)
	if err := nt.LinkDown(ctx, 1); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, nt, 0, a1)
	mustReach(t, nt, 0, a2)
	if err := nt.LinkUp(ctx, 1); err != nil {
		t.Fatal(err)
	}
	mustReach(t, nt, 0, a1)
}

func TestLossAtTheBoundsDropsAllOrNothing(t *testing.T) {
	nt := newNet(t, 2)
	a1 := echo(t, nt, 1)
	ctx := context.Background()
	for _, bad := range []float64{-0.1, 1.01} {
		if err := nt.Loss(ctx, 0, bad); err == nil {
			t.Fatalf("loss %v accepted", bad)
		}
	}
	if err := nt.Loss(ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, nt, 0, a1)
	if err := nt.Loss(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	mustReach(t, nt, 0, a1)
	// A lossy link still carries traffic, with retransmissions.
	if err := nt.Loss(ctx, 0, 0.2); err != nil {
		t.Fatal(err)
	}
	mustReach(t, nt, 0, a1)
	// Loss on the bridge leaves the host's loopback alone.
	l := echo0(t, nt)
	for range 20 {
		if err := reach(nt, 0, l); err != nil {
			t.Fatalf("loopback of a lossy host: %v", err)
		}
	}
}

func echo0(t *testing.T, nt *Net) string {
	l, err := nt.Listen(0, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestSlowAndDelayedLinksStillCarryTraffic(t *testing.T) {
	nt := newNet(t, 2)
	a1 := echo(t, nt, 1)
	ctx := context.Background()
	if err := nt.Slow(ctx, 0, 100, time.Second); err == nil {
		t.Fatal("a 100 bit/s link accepted")
	}
	if err := nt.Slow(ctx, 0, 256_000, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	mustReach(t, nt, 0, a1)
	err := nt.Delay(ctx, 1, 50*time.Millisecond, 10*time.Millisecond)
	if _, serr := os.Stat("/proc/net/netfilter/nfnetlink_queue"); errors.Is(err, ErrNoNetem) && serr != nil {
		t.Log("neither netem nor NFQUEUE in this kernel: Delay not exercised")
	} else if err != nil {
		t.Fatal(err)
	} else {
		// A connection needs host 1's SYN-ACK, which waits at least 40ms:
		// a lower bound, so it holds however loaded the machine is.
		start := time.Now()
		mustReach(t, nt, 0, a1)
		if time.Since(start) < 40*time.Millisecond {
			t.Fatalf("a 50ms delay took %s (%s)", time.Since(start), nt.Describe())
		}
	}
	if err := nt.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	mustReach(t, nt, 0, a1)
}

// TestDelayWithoutNetemDelaysEveryPacketOfAStream: the NFQUEUE delay
// (netem's substitute) holds every packet of host 1's exchanges, not only
// the first ones: ten round trips over one connection take at least ten delays, a
// bulk transfer arrives whole and in order, and removing the delay leaves
// no rule behind.
func TestDelayWithoutNetemDelaysEveryPacketOfAStream(t *testing.T) {
	nt := newNet(t, 2)
	ctx := context.Background()
	l, err := nt.Listen(1, "tcp", nt.Host(1).Addr+":7008")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	const bulk = 4 << 20
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				for {
					if _, err := c.Read(b); err != nil {
						return
					}
					if b[0] == 'B' { // a bulk transfer: 4 MiB of a counting pattern
						out := make([]byte, bulk)
						for i := range out {
							out[i] = byte(i % 251)
						}
						c.Write(out)
						return
					}
					c.Write(b)
				}
			}()
		}
	}()
	if err := nt.Delay(ctx, 1, 20*time.Millisecond, 0); err != nil {
		if _, serr := os.Stat("/proc/net/netfilter/nfnetlink_queue"); serr != nil {
			t.Skip("no NFQUEUE in this kernel:", err)
		}
		t.Fatal(err)
	}
	c, err := nt.DialContext(0)(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b := make([]byte, 1)
	start := time.Now()
	for range 10 {
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
	}
	if rt := time.Since(start); rt < 10*20*time.Millisecond {
		t.Fatalf("10 round trips over a 20ms-delayed link took %s (%s)", rt, nt.Describe())
	}
	if _, err := c.Write([]byte{'B'}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	got, err := io.ReadAll(c)
	t.Logf("4 MiB over the delayed link in %s", time.Since(start))
	if err != nil || len(got) != bulk {
		t.Fatalf("bulk transfer: %d bytes, %v", len(got), err)
	}
	for i, x := range got {
		if x != byte(i%251) {
			t.Fatalf("byte %d is %d, want %d", i, x, i%251)
		}
	}
	if err := nt.Delay(ctx, 1, 0, 0); err != nil {
		t.Fatal(err)
	}
	out, err := nt.Command(1, "iptables", "-w", "-t", "mangle", "-S", "PREROUTING").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	if strings.Contains(string(out), "NFQUEUE") {
		t.Fatalf("the queue rule outlived the delay:\n%s", out)
	}
	if d := nt.Describe(); d != "healed" {
		t.Fatalf("after removing the delay: %s", d)
	}
}

func TestCloseEndsProcessesInsideAndRemovesTheNamespaces(t *testing.T) {
	nt := newNet(t, 2)
	cmd := nt.Command(1, "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := nt.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the process in the namespace survived Close")
	}
	for _, h := range append(nt.Hosts(), Host{NS: nt.hub}) {
		if _, err := os.Stat(filepath.Join(nsDir, h.NS)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still exists after Close (%v)", h.NS, err)
		}
	}
	if err := nt.Isolate(context.Background(), 0); err == nil {
		t.Fatal("a fault accepted on a closed network")
	}
}

func TestSweepRemovesOnlyNamespacesOfDeadRuns(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip("netns:", err)
	}
	// A pid that is surely dead: a child that has been reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := Prefix + strconv.Itoa(cmd.Process.Pid) + "-000000-hub"
	live := newNet(t, 1)
	if err := run(context.Background(), nil, "ip", "netns", "add", dead); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNS(dead) })
	if syscall.Kill(cmd.Process.Pid, 0) == nil {
		t.Skip("the pid was reused")
	}
	removed, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range removed {
		found = found || r == dead
		if r == live.hub || r == live.Host(0).NS {
			t.Fatalf("Sweep removed %s of a live run", r)
		}
	}
	if !found {
		t.Fatalf("Sweep removed %v, not %s", removed, dead)
	}
}

func TestHostBehindNATReachesOthersButNobodyReachesIt(t *testing.T) {
	nt := newNet(t, 3, 2)
	h := nt.Host(2)
	if h.Router == "" || h.Inner == h.Addr {
		t.Fatalf("host 2 is not behind a NAT: %+v", h)
	}
	a0 := echo(t, nt, 0)
	mustReach(t, nt, 2, a0)
	// Its listener, on its inner address, is out of reach: the private
	// address has no route from the bridge, the router forwards nothing in.
	l, err := nt.Listen(2, "tcp", h.Inner+":7007")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	mustNotReach(t, nt, 0, h.Inner+":7007")
	mustNotReach(t, nt, 0, h.Addr+":7007")
	// The others see its packets come from the router's address.
	seen := make(chan string, 1)
	l0, err := nt.Listen(1, "tcp", nt.Host(1).Addr+":7008")
	if err != nil {
		t.Fatal(err)
	}
	defer l0.Close()
	go func() {
		c, err := l0.Accept()
		if err == nil {
			seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := nt.DialContext(2)(ctx, "tcp", nt.Host(1).Addr+":7008")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := <-seen; got != h.Addr {
		t.Fatalf("host 1 sees the NATed host as %s, want its router %s", got, h.Addr)
	}
	// A cut works on it like on any host.
	if err := nt.Isolate(ctx, 2); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, nt, 2, a0)
	if err := nt.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(nsDir, h.Router)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("router namespace %s left after Close", h.Router)
	}
}
