package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bourse-net/bourse/internal/latency"
	"github.com/bourse-net/bourse/worker/svcwire"
)

// A service is a long-running replica that answers requests (issue 19):
// the provider starts it for a lease, the gateway sends it requests, and
// it runs until the lease ends. Its instances run in the same isolated
// processes as jobs (see each backend).

// Request is one request to a service (see svcwire for the bounds).
type Request = svcwire.Request

// Response is a service's answer.
type Response = svcwire.Response

// Defaults and bounds of a ServiceSpec.
const (
	DefaultRequestTimeout = 10 * time.Second
	MaxRequestTimeout     = 5 * time.Minute
	MaxServiceInstances   = 64
	DefaultQueueTimeout   = time.Second
)

// Errors of Service.Handle. The gateway tells them apart: ErrServiceBusy
// and ErrServiceClosed mean the request never reached the handler (safe
// to send elsewhere whatever its method); the others mean it may have.
var (
	// ErrServiceBusy: no instance became free within the spec's
	// QueueTimeout or the caller's context (every instance busy or being
	// replaced).
	ErrServiceBusy = errors.New("service busy: no free instance")
	// ErrServiceClosed: the service was closed.
	ErrServiceClosed = errors.New("service closed")
	// ErrHandlerTimeout: the handler did not answer within the request
	// timeout; its instance was killed and is being replaced.
	ErrHandlerTimeout = errors.New("handler timed out")
	// ErrHandlerFailed: the instance died or answered garbage while
	// handling the request (a crash, out of memory, a protocol error);
	// it is being replaced.
	ErrHandlerFailed = errors.New("handler failed")
)

// ServiceSpec describes one replica of a service.
type ServiceSpec struct {
	// ID names the replica; it is the lease id on chain.
	ID [32]byte
	// Kind is the backend: KindWASM ("" too) or KindDocker.
	Kind Kind
	// Module is the WASI preview 1 module; it must serve requests with
	// svcwire.Serve (or speak its framing). For KindDocker it is the
	// image's `docker save` tarball, or empty when the image is present.
	Module []byte
	// Image is the docker image ID (sha256:<64 hex>) for KindDocker; the
	// container serves HTTP on the port in its PORT variable (8080 unless
	// Env sets it). Empty for KindWASM.
	Image string
	// Args are passed after argv[0] "service"; Env is KEY=VALUE.
	Args []string
	Env  []string
	// Limits are the replica's resources, split evenly between its
	// instances (each instance gets MemoryMiB/Instances of linear memory).
	// Timeout is the per-request timeout (default DefaultRequestTimeout);
	// DiskMiB must be 0 (services get no file system).
	Limits Limits
	// Instances is how many requests the replica handles at once, each in
	// a process of its own. Default 1, at most MaxServiceInstances.
	Instances int
	// MaxBody bounds request and response bodies (default
	// svcwire.DefaultMaxBody, at most svcwire.MaxBodyLimit).
	MaxBody int
	// QueueTimeout is how long a request waits for a free instance before
	// it is refused with ErrServiceBusy (default DefaultQueueTimeout), so
	// a gateway can try another replica.
	QueueTimeout time.Duration
}

// Normalize fills defaults and checks the spec.
func (s *ServiceSpec) Normalize() error {
	if s.Kind == "" {
		s.Kind = KindWASM
	}
	if s.Instances == 0 {
		s.Instances = 1
	}
	if s.Limits.Timeout == 0 {
		s.Limits.Timeout = DefaultRequestTimeout
	}
	if s.MaxBody == 0 {
		s.MaxBody = svcwire.DefaultMaxBody
	}
	if s.QueueTimeout == 0 {
		s.QueueTimeout = DefaultQueueTimeout
	}
	switch {
	case s.Kind == KindWASM && len(s.Module) == 0:
		return errors.New("service spec: no module")
	case s.Kind == KindDocker && s.Image == "":
		return errors.New("service spec: a docker service needs its image ID")
	case s.Kind != KindDocker && s.Image != "":
		return fmt.Errorf("service spec: an image is for docker services, not %s", s.Kind)
	case s.Instances < 0 || s.Instances > MaxServiceInstances:
		return fmt.Errorf("service spec: %d instances (1 to %d)", s.Instances, MaxServiceInstances)
	case s.Limits.Timeout < 0 || s.Limits.Timeout > MaxRequestTimeout:
		return fmt.Errorf("service spec: request timeout %v (up to %v)", s.Limits.Timeout, MaxRequestTimeout)
	case s.QueueTimeout < 0 || s.QueueTimeout > MaxRequestTimeout:
		return fmt.Errorf("service spec: queue timeout %v (up to %v)", s.QueueTimeout, MaxRequestTimeout)
	case s.MaxBody < 0 || s.MaxBody > svcwire.MaxBodyLimit:
		return fmt.Errorf("service spec: max body %d (up to %d)", s.MaxBody, svcwire.MaxBodyLimit)
	case s.Limits.DiskMiB != 0:
		return errors.New("service spec: services get no file system; disk must be 0")
	case s.Limits.GPUs != 0:
		return errors.New("service spec: services get no GPUs")
	case s.Limits.CPU <= 0:
		return errors.New("service spec: cpu must be > 0 millicores")
	case s.Limits.MemoryMiB <= 0:
		return errors.New("service spec: memory must be > 0 MiB")
	case s.Limits.MemoryMiB/int64(s.Instances) < 1:
		return fmt.Errorf("service spec: %d MiB cannot be split between %d instances", s.Limits.MemoryMiB, s.Instances)
	}
	return nil
}

// ServiceBackend runs the instances of one replica; an Executor that
// can run services implements ServiceExecutor. Handle must be safe for
// concurrent use and return the errors above (wrapped).
type ServiceBackend interface {
	Handle(ctx context.Context, req *Request) (*Response, error)
	// Health reports the live instances, the configured ones, how many
	// were replaced, and the last reason one died.
	Health() (live, instances int, restarts uint64, lastDeath string)
	// Busy is how many requests are in an instance now.
	Busy() int
	// Logs returns the last bytes the instances wrote to stderr.
	Logs() []byte
	Close() error
}

// ServiceExecutor is implemented by executors that can run services.
type ServiceExecutor interface {
	StartService(ctx context.Context, spec *ServiceSpec) (ServiceBackend, error)
}

// Service is one running replica: requests go through Handle, which
// counts them. Safe for concurrent use.
type Service struct {
	spec    ServiceSpec
	backend ServiceBackend
	release func()
	started time.Time

	requests, errors, timeouts, busy atomic.Uint64
	bytesIn, bytesOut                atomic.Uint64
	lat                              latency.Hist
	closeOnce                        sync.Once
	closeErr                         error
	closed                           atomic.Bool
}

// NewService wraps a backend; release (may be nil) runs once on Close.
func NewService(spec ServiceSpec, b ServiceBackend, release func()) *Service {
	return &Service{spec: spec, backend: b, release: release, started: time.Now()}
}

// ID returns the replica's id (its lease).
func (s *Service) ID() [32]byte { return s.spec.ID }

// MaxBody is the replica's body bound.
func (s *Service) MaxBody() int { return s.spec.MaxBody }

// Handle sends one request to a free instance and returns its response.
// Errors wrap ErrServiceBusy, ErrServiceClosed, ErrHandlerTimeout or
// ErrHandlerFailed.
func (s *Service) Handle(ctx context.Context, req *Request) (*Response, error) {
	if s.closed.Load() {
		return nil, ErrServiceClosed
	}
	start := time.Now()
	resp, err := s.backend.Handle(ctx, req)
	s.requests.Add(1)
	s.bytesIn.Add(uint64(req.Size()))
	if err != nil {
		s.errors.Add(1)
		switch {
		case errors.Is(err, ErrHandlerTimeout):
			s.timeouts.Add(1)
		case errors.Is(err, ErrServiceBusy):
			s.busy.Add(1)
		}
		return nil, err
	}
	s.bytesOut.Add(uint64(resp.Size()))
	s.lat.Observe(time.Since(start))
	return resp, nil
}

// Load is the share of instances busy now, 0..1: what a provider reports
// to gateways.
func (s *Service) Load() float64 {
	_, n, _, _ := s.backend.Health()
	if n == 0 {
		return 1
	}
	return min(float64(s.backend.Busy())/float64(n), 1)
}

// Logs returns the last bytes the instances wrote to stderr.
func (s *Service) Logs() []byte { return s.backend.Logs() }

// ServiceStats are a replica's counters since it started.
type ServiceStats struct {
	Requests  uint64          `json:"requests"`
	Errors    uint64          `json:"errors"`
	Timeouts  uint64          `json:"timeouts"`
	Busy      uint64          `json:"busy"` // refused: no free instance in time
	BytesIn   uint64          `json:"bytes_in"`
	BytesOut  uint64          `json:"bytes_out"`
	Latency   latency.Summary `json:"latency"` // of answered requests, in the provider
	Live      int             `json:"live_instances"`
	Instances int             `json:"instances"`
	Restarts  uint64          `json:"restarts"`
	LastDeath string          `json:"last_death,omitempty"`
	Uptime    time.Duration   `json:"uptime_ns"`
}

// Stats returns the replica's counters.
func (s *Service) Stats() ServiceStats {
	live, n, restarts, last := s.backend.Health()
	return ServiceStats{
		Requests: s.requests.Load(), Errors: s.errors.Load(), Timeouts: s.timeouts.Load(), Busy: s.busy.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), Latency: s.lat.Summary(),
		Live: live, Instances: n, Restarts: restarts, LastDeath: last, Uptime: time.Since(s.started),
	}
}

// Close stops every instance and releases the replica's capacity. It is
// idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.backend.Close()
		if s.release != nil {
			s.release()
		}
	})
	return s.closeErr
}

// StartService reserves the replica's resources and starts it on the
// backend its spec names. Errors: an invalid spec, a backend that is not
// enabled or cannot run services (ErrUnavailable), capacity
// (ErrInsufficientCapacity), a module that does not start, or a closed
// runtime (ErrClosed). On error nothing stays reserved.
func (r *Runtime) StartService(ctx context.Context, spec ServiceSpec) (*Service, error) {
	if err := spec.Normalize(); err != nil {
		return nil, fmt.Errorf("start service: %w", err)
	}
	id := JobID(spec.ID)
	exec, ok := r.execs[spec.Kind]
	if !ok {
		return nil, fmt.Errorf("start service %s: executor %q not enabled: %w", id.Short(), spec.Kind, ErrUnavailable)
	}
	se, ok := exec.(ServiceExecutor)
	if !ok {
		return nil, fmt.Errorf("start service %s: executor %q cannot run services: %w", id.Short(), spec.Kind, ErrUnavailable)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("start service %s: %w", id.Short(), ErrClosed)
	}
	if err := r.cap.Reserve(id, spec.Limits.Resources); err != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("start service: %w", err)
	}
	r.mu.Unlock()
	b, err := se.StartService(ctx, &spec)
	if err != nil {
		r.cap.Release(id)
		return nil, fmt.Errorf("start service %s: %w", id.Short(), err)
	}
	r.log.Info("service started", "lease", id.Short(), "executor", spec.Kind, "instances", spec.Instances,
		"cpu", spec.Limits.CPU, "memory_mib", spec.Limits.MemoryMiB)
	return NewService(spec, b, func() { r.cap.Release(id) }), nil
}
