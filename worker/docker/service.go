package docker

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/bourse-net/bourse/worker"
)

// DefaultServicePort is the port a service's container listens on when
// its environment does not set PORT (which the container always gets).
const DefaultServicePort = 8080

// ServiceNetwork is the docker network service containers join: internal
// (no route out of the machine) and without traffic between containers
// (enable_icc false), so a replica reaches neither the internet nor
// another client's replica; the provider reaches each replica at its
// address on the network's bridge. Created on first use.
const ServiceNetwork = "bourse-services"

// serviceNetwork makes sure ServiceNetwork exists, as described.
func (e *Executor) serviceNetwork(ctx context.Context) error {
	nw, err := e.cli.NetworkInspect(ctx, ServiceNetwork, network.InspectOptions{})
	if err != nil {
		_, cerr := e.cli.NetworkCreate(ctx, ServiceNetwork, network.CreateOptions{Driver: "bridge", Internal: true,
			Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"},
			Labels:  map[string]string{serviceNetworkLabel: "services"}})
		if err := e.dedupeNetwork(ctx, ServiceNetwork); err != nil {
			return err
		}
		if nw, err = e.cli.NetworkInspect(ctx, ServiceNetwork, network.InspectOptions{}); err != nil {
			return fmt.Errorf("service network %s: %v (create: %v)", ServiceNetwork, err, cerr)
		}
	}
	if !nw.Internal || nw.Options["com.docker.network.bridge.enable_icc"] != "false" {
		return fmt.Errorf("service network %s exists but is not internal with inter-container traffic off: remove it (docker network rm %s) and the provider makes it again", ServiceNetwork, ServiceNetwork)
	}
	e.guardHost(ctx, bridgeName(nw))
	return nil
}

const serviceNetworkLabel = "net.bourse"

// dedupeNetwork leaves one network named name (ServiceNetwork). Several
// providers sharing one docker daemon (a testnet on one machine) may
// create it at once, and a daemon that does not check names atomically
// then holds two, after which the name is ambiguous and no replica can
// start. Every provider keeps the same one, the oldest (ties by ID), and
// removes the other bourse-made ones that no container uses.
func (e *Executor) dedupeNetwork(ctx context.Context, name string) error {
	list, err := e.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return fmt.Errorf("service network %s: list: %w", name, err)
	}
	list = slices.DeleteFunc(list, func(n network.Summary) bool { return n.Name != name })
	if len(list) < 2 {
		return nil
	}
	slices.SortFunc(list, func(a, b network.Summary) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, n := range list[1:] {
		if n.Labels[serviceNetworkLabel] != "services" {
			return fmt.Errorf("service network %s: the name is ambiguous and network %s was not made by bourse: remove it (docker network rm %s)", name, n.ID, n.ID)
		}
		if err := e.cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("service network %s: the name is ambiguous and the duplicate %s cannot be removed: %w", name, n.ID[:min(12, len(n.ID))], err)
		}
	}
	return nil
}

// bridgeName is the host interface of a docker bridge network.
func bridgeName(nw network.Inspect) string {
	if n := nw.Options["com.docker.network.bridge.name"]; n != "" {
		return n
	}
	return "br-" + nw.ID[:min(12, len(nw.ID))]
}

// guardHost keeps replicas off the provider's own ports: the bridge of an
// internal network still has a host address, and docker's rules only
// cover traffic forwarded onward, so a replica could open a connection to
// anything the host listens on (libp2p, SSH, an API bound to 0.0.0.0).
// One iptables rule drops every new connection arriving from the bridge;
// the provider's own connections to its replicas are answered as
// established ones. It needs root: otherwise the rule is logged for the
// operator to add, once per executor.
func (e *Executor) guardHost(ctx context.Context, bridge string) {
	rule := []string{"INPUT", "-i", bridge, "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"}
	e.guardOnce.Do(func() {
		if os.Geteuid() == 0 {
			if _, err := exec.LookPath("iptables"); err == nil {
				if exec.CommandContext(ctx, "iptables", append([]string{"-w", "-C"}, rule...)...).Run() == nil {
					return
				}
				out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-I"}, rule...)...).CombinedOutput()
				if err == nil {
					e.log.Info("docker: service replicas cannot open connections to this host", "bridge", bridge)
					return
				}
				e.log.Warn("docker: add the host guard rule", "err", err, "output", strings.TrimSpace(string(out)))
			}
		}
		e.log.Warn("docker: service replicas can open connections to this host's ports through the bridge; as root, run: iptables -I " + strings.Join(rule, " "))
	})
}

// serviceReadyTimeout bounds how long a started container may take to
// accept connections on its port.
const serviceReadyTimeout = 30 * time.Second

var _ worker.ServiceExecutor = (*Executor)(nil)

// StartService runs one replica of a docker service: one container from
// the spec's image (by ID; the Module is its `docker save` tarball, or
// empty when the image is present), on ServiceNetwork (no way out, no
// neighbours) serving HTTP on its one port, under the same limits as a job
// (memory without swap, CPU, process count, read-only root, no
// capabilities, an unprivileged user). Requests go to the port as HTTP/1.1;
// spec.Instances bounds how many are in flight at once. A container that
// dies is started again on the next request that finds it gone.
func (e *Executor) StartService(ctx context.Context, spec *worker.ServiceSpec) (worker.ServiceBackend, error) {
	ref, err := e.image(ctx, &worker.Job{Payload: spec.Module, Image: spec.Image})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	env := slices.Clone(spec.Env)
	port := DefaultServicePort
	if v, ok := envValue(env, "PORT"); ok {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("PORT=%q: want a port number", v)
		}
		port = p
	} else {
		env = append(env, "PORT="+strconv.Itoa(port))
	}
	cport := nat.Port(strconv.Itoa(port) + "/tcp")
	if err := e.serviceNetwork(ctx); err != nil {
		return nil, err
	}
	mem := spec.Limits.MemoryMiB << 20
	pids := e.cfg.PidsLimit
	hc := &container.HostConfig{
		NetworkMode:    ServiceNetwork,
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		LogConfig:      container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "1"}},
		Tmpfs:          map[string]string{"/tmp": fmt.Sprintf("rw,noexec,nosuid,size=%dm", e.cfg.TmpfsMiB)},
		Resources: container.Resources{
			NanoCPUs:   spec.Limits.CPU * 1_000_000,
			Memory:     mem,
			MemorySwap: mem,
			PidsLimit:  &pids,
		},
	}
	cc := &container.Config{
		Image:        ref,
		Cmd:          spec.Args,
		Env:          env,
		User:         e.cfg.User,
		ExposedPorts: nat.PortSet{cport: struct{}{}},
		Labels:       map[string]string{"net.bourse.lease": hex.EncodeToString(spec.ID[:])},
	}
	name := "bourse-svc-" + hex.EncodeToString(spec.ID[:12])
	// A container of this lease left by a crashed daemon goes first.
	_ = e.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
	created, err := e.cli.ContainerCreate(ctx, cc, hc, nil, nil, name)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	s := &dockerService{e: e, id: created.ID, spec: *spec, port: port, sem: make(chan struct{}, max(spec.Instances, 1))}
	s.spec.Module = nil // the image is loaded; its tarball (up to 1 GiB) is not kept
	s.hc = &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: max(spec.Instances, 1), DisableCompression: true, MaxResponseHeaderBytes: 64 << 10,
		DialContext: s.dial,
	},
		// A redirect goes back to the caller as it is: followed, the
		// provider would fetch any address the container names (its own
		// loopback, the node API) and hand the body back.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if err := s.boot(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// dockerService is one running replica in a container.
type dockerService struct {
	e    *Executor
	id   string
	spec worker.ServiceSpec
	port int
	hc   *http.Client
	sem  chan struct{}
	busy atomic.Int64

	mu        sync.Mutex
	addr      string // <bridge IP>:<port>; "" while down
	restarts  uint64
	lastDeath string
	closed    bool
}

// boot starts the container and waits until its port accepts
// connections.
func (s *dockerService) boot(ctx context.Context) error {
	if err := s.e.cli.ContainerStart(ctx, s.id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	deadline := time.Now().Add(serviceReadyTimeout)
	for {
		info, err := s.e.cli.ContainerInspect(ctx, s.id)
		if err != nil {
			return fmt.Errorf("inspect container: %w", err)
		}
		if info.State != nil && !info.State.Running {
			return fmt.Errorf("container exited (code %d) before serving: %s", info.State.ExitCode, strings.TrimSpace(string(s.Logs())))
		}
		if info.NetworkSettings != nil {
			if ep := info.NetworkSettings.Networks[ServiceNetwork]; ep != nil && ep.IPAddress != "" {
				// Ready is an HTTP answer, any status.
				addr := net.JoinHostPort(ep.IPAddress, strconv.Itoa(s.port))
				if s.answers(ctx, addr) {
					s.mu.Lock()
					s.addr = addr
					s.mu.Unlock()
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container does not accept connections on port %d within %s", s.port, serviceReadyTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dial opens a connection to the replica, once docker confirms that its
// container is running at that address: a container that died while idle
// gives its bridge address back, and docker hands it to the next container
// started, maybe another lease's on the same port, which would otherwise
// get this replica's requests and answer them in its name.
func (s *dockerService) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	info, err := s.e.cli.ContainerInspect(ctx, s.id)
	if err != nil {
		return nil, fmt.Errorf("inspect container: %w", err)
	}
	if info.State == nil || !info.State.Running {
		return nil, errors.New("container not running")
	}
	if info.NetworkSettings == nil || info.NetworkSettings.Networks[ServiceNetwork] == nil ||
		info.NetworkSettings.Networks[ServiceNetwork].IPAddress != host {
		return nil, fmt.Errorf("container no longer at %s", host)
	}
	return (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr) // a local bridge: a second is ample
}

// answers reports whether an HTTP GET / to addr gets any answer.
func (s *dockerService) answers(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return false
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return true
}

// hopHeaders are connection-level headers that are not forwarded.
var hopHeaders = map[string]bool{"connection": true, "keep-alive": true, "proxy-connection": true,
	"te": true, "trailer": true, "transfer-encoding": true, "upgrade": true, "content-length": true, "host": true}

func (s *dockerService) Handle(ctx context.Context, req *worker.Request) (*worker.Response, error) {
	// The target is pasted after "http://<replica>": only a path keeps
	// that the host ("@host/..." would make the replica's address userinfo
	// and send the request, and the answer, to host).
	target := req.Target
	if target == "" || target[0] == '?' {
		target = "/" + target // an absolute-form request with no path
	}
	if !strings.HasPrefix(target, "/") {
		return &worker.Response{Status: http.StatusBadRequest, Header: [][2]string{{"Content-Type", "text/plain; charset=utf-8"}},
			Body: []byte("request target must be a path starting with /\n")}, nil
	}
	qctx, cancel := context.WithTimeout(ctx, s.spec.QueueTimeout)
	select {
	case s.sem <- struct{}{}:
		cancel()
	case <-qctx.Done():
		cancel()
		return nil, worker.ErrServiceBusy
	}
	defer func() { <-s.sem }()
	s.mu.Lock()
	addr, closed := s.addr, s.closed
	s.mu.Unlock()
	if closed {
		return nil, worker.ErrServiceClosed
	}
	if addr == "" {
		if err := s.revive(ctx); err != nil {
			return nil, fmt.Errorf("%w: %v", worker.ErrHandlerFailed, err)
		}
		s.mu.Lock()
		addr = s.addr
		s.mu.Unlock()
	}
	s.busy.Add(1)
	defer s.busy.Add(-1)
	rctx, rcancel := context.WithTimeout(ctx, s.spec.Limits.Timeout)
	defer rcancel()
	hreq, err := http.NewRequestWithContext(rctx, req.Method, "http://"+addr+target, bytes.NewReader(req.Body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", worker.ErrHandlerFailed, err)
	}
	for _, kv := range req.Header {
		if !hopHeaders[strings.ToLower(kv[0])] {
			hreq.Header.Add(kv[0], kv[1])
		}
	}
	resp, err := s.hc.Do(hreq)
	if err != nil {
		if rctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("%w after %s", worker.ErrHandlerTimeout, s.spec.Limits.Timeout)
		}
		s.check(ctx)
		return nil, fmt.Errorf("%w: %v", worker.ErrHandlerFailed, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(s.spec.MaxBody)+1))
	if err != nil {
		if rctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("%w after %s", worker.ErrHandlerTimeout, s.spec.Limits.Timeout)
		}
		return nil, fmt.Errorf("%w: read the answer: %v", worker.ErrHandlerFailed, err)
	}
	if len(body) > s.spec.MaxBody {
		return nil, fmt.Errorf("%w: answer larger than %d bytes", worker.ErrHandlerFailed, s.spec.MaxBody)
	}
	out := &worker.Response{Status: resp.StatusCode, Body: body}
	for k, vs := range resp.Header {
		if hopHeaders[strings.ToLower(k)] {
			continue
		}
		for _, v := range vs {
			out.Header = append(out.Header, [2]string{k, v})
		}
	}
	return out, nil
}

// check marks the replica down when its container is no longer running,
// with the reason, so the next request starts it again.
func (s *dockerService) check(ctx context.Context) {
	info, err := s.e.cli.ContainerInspect(context.WithoutCancel(ctx), s.id)
	if err != nil || info.State == nil || info.State.Running {
		return
	}
	reason := fmt.Sprintf("container exited with code %d", info.State.ExitCode)
	if info.State.OOMKilled {
		reason = fmt.Sprintf("container killed at the memory limit of %d MiB", s.spec.Limits.MemoryMiB)
	}
	s.mu.Lock()
	s.addr, s.lastDeath = "", reason
	s.mu.Unlock()
}

// revive starts a container that died again.
func (s *dockerService) revive(ctx context.Context) error {
	s.mu.Lock()
	s.restarts++
	s.mu.Unlock()
	return s.boot(ctx)
}

func (s *dockerService) Health() (live, instances int, restarts uint64, lastDeath string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr != "" && !s.closed {
		live = 1
	}
	return live, 1, s.restarts, s.lastDeath
}

func (s *dockerService) Busy() int { return int(s.busy.Load()) }

// Logs returns the container's last output (stderr and stdout).
func (s *dockerService) Logs() []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rc, err := s.e.cli.ContainerLogs(ctx, s.id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "100"})
	if err != nil {
		return nil
	}
	defer rc.Close()
	out := worker.NewLogBuffer(64<<10, nil) // keeps the first 64 KiB, drains the rest
	if _, err := stdcopy.StdCopy(out, out, rc); err != nil && len(out.Bytes()) == 0 {
		return nil
	}
	return out.Bytes()
}

func (s *dockerService) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed, s.addr = true, ""
	s.mu.Unlock()
	s.hc.CloseIdleConnections()
	ctx, cancel := cleanupCtx()
	defer cancel()
	if err := s.e.cli.ContainerRemove(ctx, s.id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container: %w", err)
	}
	return nil
}

func envValue(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
