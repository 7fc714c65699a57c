package docker

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

// hostSecret is a server on the provider's loopback (a node API, a
// metadata service) that no service request may reach; it counts hits.
func hostSecret(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("provider secret"))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestDockerServiceAttackTargetUserinfoSSRF: a peer sends a request whose
// target is "@127.0.0.1:<port>/secret"; pasted after "http://<replica>",
// the replica's address becomes userinfo and the provider fetches the
// host's loopback server instead, answering with its body.
func TestDockerServiceAttackTargetUserinfoSSRF(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	srv, hits := hostSecret(t)
	tag := buildProgImage(t, e, "bourse-svc-test:"+strings.ToLower(workertest.NewID().Short()), svcDockerHello, "USER 65534:65534\n")
	b, err := e.StartService(context.Background(), serviceSpec(imageID(t, e, tag), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, target := range []string{"@" + host + "/secret", "http://" + host + "/secret", "." + host + "/x"} {
		resp, err := get(t, b, target)
		if hits.Load() != 0 || (err == nil && strings.Contains(string(resp.Body), "secret")) {
			t.Fatalf("target %q reached the provider's loopback: %+v %v", target, resp, err)
		}
	}
	for _, target := range []string{"/still-fine", "", "?q=1"} {
		if resp, err := get(t, b, target); err != nil || resp.Status != 200 {
			t.Fatalf("target %q: %+v %v", target, resp, err)
		}
	}
}

// TestDockerServiceAttackRedirectSSRF: a hostile container answers every
// request with a redirect to the provider's loopback; a provider that
// follows it fetches the address for the container and hands the body
// back to its caller.
func TestDockerServiceAttackRedirectSSRF(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	srv, hits := hostSecret(t)
	tag := buildProgImage(t, e, "bourse-svc-test:"+strings.ToLower(workertest.NewID().Short()),
		"github.com/bourse-net/bourse/worker/docker/internal/svchostile", "USER 65534:65534\n")
	spec := serviceSpec(imageID(t, e, tag), nil)
	spec.Env = append(spec.Env, "REDIRECT="+srv.URL+"/secret")
	b, err := e.StartService(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := b.Handle(ctx, &worker.Request{Method: "GET", Target: "/"})
	if hits.Load() != 0 {
		t.Fatalf("the provider followed the container's redirect to its loopback: %+v %v", resp, err)
	}
	if err != nil || resp.Status != http.StatusFound {
		t.Fatalf("the redirect should reach the caller as is: %+v %v", resp, err)
	}
}

// TestDockerServiceAttackTarballHeldAfterStart: a service's payload is its
// image tarball, up to market.MaxPayloadSize (1 GiB) and outside the
// lease's memory limit; once loaded the replica must not keep it, or each
// replica of a large image pins that much of the provider's memory for
// the lease's life.
func TestDockerServiceAttackTarballHeldAfterStart(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	tag := buildProgImage(t, e, "bourse-svc-test:"+strings.ToLower(workertest.NewID().Short()), svcDockerHello, "USER 65534:65534\n")
	tarball := saveImage(t, e, tag)
	b, err := e.StartService(context.Background(), serviceSpec(imageID(t, e, tag), tarball))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n := len(b.(*dockerService).spec.Module); n != 0 {
		t.Fatalf("the running replica holds its %d-byte image tarball", n)
	}
}

// TestDockerServiceAttackReplicaReachesTheHost: the service network is
// internal, which drops what a replica forwards past the bridge, but the
// provider's own addresses are not forwarded to: a hostile replica dials
// the bridge's address on the host and reaches anything the provider
// serves on all interfaces (the node's ports, an SSH server, a database).
//
// Known and not fixed (an internal network still gives the bridge a host
// address, and docker's isolation rules are in FORWARD, not INPUT; the
// fix needs an INPUT rule on the bridge or docker 28's isolated gateway
// mode and another way for the provider to reach its replicas): run with
// BOURSE_KNOWN_ATTACKS=1.
func TestDockerServiceAttackReplicaReachesTheHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the host guard rule needs root (without it a replica reaches the provider's ports; the executor logs the rule to add)")
	}
	e := newOrSkip(t)
	defer e.Close(context.Background())
	if err := e.serviceNetwork(context.Background()); err != nil {
		t.Fatal(err)
	}
	nw, err := e.Client().NetworkInspect(context.Background(), ServiceNetwork, network.InspectOptions{})
	if err != nil || len(nw.IPAM.Config) == 0 || nw.IPAM.Config[0].Gateway == "" {
		t.Skipf("no bridge address on %s: %v", ServiceNetwork, err)
	}
	ln, err := net.Listen("tcp", ":0") // a provider port on every interface
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	hostile, err := New(Config{LogCap: testLogCap, Network: ServiceNetwork})
	if err != nil {
		t.Fatal(err)
	}
	defer hostile.Close(context.Background())
	j := testJob(buildImage(t, e), "dial", net.JoinHostPort(nw.IPAM.Config[0].Gateway, port))
	j.ID, j.Limits.Timeout = workertest.NewID(), 5*time.Second
	if err := hostile.Start(context.Background(), j, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	x, err := hostile.Wait(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if accepted.Load() != 0 || strings.Contains(string(x.Stdout), "connected") {
		t.Fatalf("a container on the service network connected to the provider at %s:%s: %s %q", nw.IPAM.Config[0].Gateway, port, x.State, x.Stdout)
	}
}

// TestDockerServiceAttackConcurrentCrashAndClose: callers hammer a
// replica, some crashing it, while the lease ends; nothing races, every
// call returns, and no container of the lease is left.
func TestDockerServiceAttackConcurrentCrashAndClose(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	tag := buildProgImage(t, e, "bourse-svc-test:"+strings.ToLower(workertest.NewID().Short()), svcDockerHello, "USER 65534:65534\n")
	spec := serviceSpec(imageID(t, e, tag), nil)
	b, err := e.StartService(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				target := "/x"
				if (i+k)%7 == 0 {
					target = "/crash"
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				b.Handle(ctx, &worker.Request{Method: "GET", Target: target})
				b.Health()
				cancel()
			}
		}()
	}
	time.Sleep(3 * time.Second)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	f := filters.NewArgs(filters.Arg("label", "net.bourse.lease="+hex.EncodeToString(spec.ID[:])))
	left, err := e.Client().ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%d containers of the closed replica left", len(left))
	}
}

// TestDockerServiceAttackRootImageRunsConfined: an image that asks for
// root (no USER) still runs its replica as nobody, within the lease's
// memory (no swap), CPU and a process cap, read-only, without
// capabilities, on the service network only, with no port published on
// the host.
func TestDockerServiceAttackRootImageRunsConfined(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	tag := buildProgImage(t, e, "bourse-svc-test:"+strings.ToLower(workertest.NewID().Short()), svcDockerHello, "USER 0:0\n")
	spec := serviceSpec(imageID(t, e, tag), nil)
	b, err := e.StartService(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	info, err := e.Client().ContainerInspect(context.Background(), b.(*dockerService).id)
	if err != nil {
		t.Fatal(err)
	}
	hc, cc := info.HostConfig, info.Config
	switch {
	case cc.User != "65534:65534":
		t.Errorf("user %q", cc.User)
	case hc.Memory != 64<<20 || hc.MemorySwap != hc.Memory:
		t.Errorf("memory %d, with swap %d", hc.Memory, hc.MemorySwap)
	case hc.NanoCPUs != 500_000_000:
		t.Errorf("nano CPUs %d", hc.NanoCPUs)
	case hc.PidsLimit == nil || *hc.PidsLimit != 64:
		t.Errorf("pids limit %v", hc.PidsLimit)
	case !hc.ReadonlyRootfs || len(hc.CapDrop) != 1 || hc.CapDrop[0] != "ALL" || hc.Privileged:
		t.Errorf("read-only %v, cap drop %v, privileged %v", hc.ReadonlyRootfs, hc.CapDrop, hc.Privileged)
	case string(hc.NetworkMode) != ServiceNetwork || len(info.NetworkSettings.Networks) != 1:
		t.Errorf("network %s, %d networks", hc.NetworkMode, len(info.NetworkSettings.Networks))
	case len(hc.PortBindings) != 0 || len(info.NetworkSettings.Ports) != 0 && hasBinding(info.NetworkSettings.Ports):
		t.Errorf("ports published on the host: %v %v", hc.PortBindings, info.NetworkSettings.Ports)
	}
}

func hasBinding(pm map[nat.Port][]nat.PortBinding) bool {
	for _, b := range pm {
		if len(b) > 0 {
			return true
		}
	}
	return false
}

// TestDockerServiceAttackAddressTakenOverAfterIdleDeath: a victim's
// replica dies while no request is in flight (a leak killed at the memory
// limit, a crash of its own); docker frees its bridge address and hands it
// to the next container, here a hostile lease's replica on the same port.
// The victim's next requests (bodies, Authorization headers) must not go
// to the hostile container, nor be answered by it in the victim's name.
func TestDockerServiceAttackAddressTakenOverAfterIdleDeath(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	tag := buildProgImage(t, e, "bourse-svc-test:"+strings.ToLower(workertest.NewID().Short()), svcDockerHello, "USER 65534:65534\n")
	img := imageID(t, e, tag)
	victim, err := e.StartService(context.Background(), serviceSpec(img, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	if resp, err := get(t, victim, "/warm"); err != nil || resp.Status != 200 {
		t.Fatalf("victim: %+v %v", resp, err)
	}
	vs := victim.(*dockerService)
	if err := e.Client().ContainerKill(context.Background(), vs.id, "KILL"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	hs := serviceSpec(img, nil)
	hs.Env = []string{"GREETING=hijacked"}
	hostile, err := e.StartService(context.Background(), hs)
	if err != nil {
		t.Fatal(err)
	}
	defer hostile.Close()
	vs.mu.Lock()
	vaddr := vs.addr
	vs.mu.Unlock()
	t.Logf("victim at %s, hostile at %s", vaddr, hostile.(*dockerService).addr)
	back := false
	for range 5 {
		resp, err := get(t, victim, "/secret")
		if err == nil && strings.Contains(string(resp.Body), "hijacked") {
			t.Fatalf("the victim's request went to the hostile replica at its old address %s: %q", vaddr, resp.Body)
		}
		if back = err == nil && string(resp.Body) == "hi, secret!\n"; back {
			break
		}
	}
	if !back {
		t.Fatal("the victim's replica did not come back")
	}
}
