package node

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"github.com/bourse-net/bourse/chain"
	"github.com/bourse-net/bourse/market"
	"github.com/bourse-net/bourse/worker"
	dockerx "github.com/bourse-net/bourse/worker/docker"
	"github.com/bourse-net/bourse/worker/wasm"
)

// replicaRunner runs the service replicas a provider hosts, one
// worker.Service per lease, in the worker's isolated WASM service runtime.
type replicaRunner struct {
	n      *Node
	exec   *wasm.Executor
	docker *dockerx.Executor // nil unless the provider offers docker

	mu      sync.RWMutex
	running map[chain.LeaseID]*worker.Service
}

func newReplicaRunner(n *Node) (*replicaRunner, error) {
	cache := n.cfg.Provider.WasmCache
	if cache != "" && !filepath.IsAbs(cache) {
		cache = filepath.Join(n.home, cache)
	}
	x, err := wasm.New(context.Background(), wasm.Config{CacheDir: cache, Logger: n.log})
	if err != nil {
		return nil, fmt.Errorf("service runtime: %w", err)
	}
	r := &replicaRunner{n: n, exec: x, running: map[chain.LeaseID]*worker.Service{}}
	if slices.Contains(n.cfg.Provider.Executors, market.ExecDocker) {
		d, err := dockerx.New(dockerx.Config{Logger: n.log})
		if err != nil {
			return nil, fmt.Errorf("service runtime: docker: %w", err)
		}
		r.docker = d
	}
	return r, nil
}

// instancesFor is how many requests a replica of cpu millicores handles
// at once: one per half core, 1 to 4.
func instancesFor(cpu uint64) int { return int(min(max(cpu/500, 1), 4)) }

// start fetches the lease's module from the owner's node and starts its
// replica. Starting a lease that runs already is a no-op.
func (r *replicaRunner) start(ctx context.Context, id chain.LeaseID) error {
	r.mu.RLock()
	_, ok := r.running[id]
	r.mu.RUnlock()
	if ok {
		return nil
	}
	st := r.n.drv.State()
	l, ok, err := st.Lease(id)
	if err != nil || !ok {
		return fmt.Errorf("lease %s: not on chain (%v)", id, err)
	}
	v, ok, err := st.Service(l.Service)
	if err != nil || !ok {
		return fmt.Errorf("service of lease %s: not on chain (%v)", id, err)
	}
	p := v.Spec.Payload
	var hash [32]byte
	copy(hash[:], p.SHA256)
	module, err := (*payloadFetcher)(r.n.market).Fetch(withBlobJob(ctx, market.BidID(id)), hash, int64(p.Size), p.Peer)
	if err != nil {
		return fmt.Errorf("fetch module: %w", err)
	}
	res := toWorkerResources(v.Spec.Resources)
	res.DiskMiB, res.GPUs = 0, 0
	spec := worker.ServiceSpec{ID: id, Module: module, Args: v.Spec.Args, Env: v.Spec.Env,
		Limits: worker.Limits{Resources: res}, Instances: instancesFor(v.Spec.Resources.CPU)}
	var se worker.ServiceExecutor = r.exec
	if v.Spec.Executor == market.ExecDocker {
		if r.docker == nil {
			return fmt.Errorf("lease %s: a docker service, and this provider offers no docker", id)
		}
		spec.Kind, spec.Image, se = worker.KindDocker, v.Spec.Payload.Image, r.docker
	}
	if err := spec.Normalize(); err != nil {
		return err
	}
	b, err := se.StartService(ctx, &spec)
	if err != nil {
		return err
	}
	if spec.Kind == worker.KindDocker {
		spec.Module = nil // loaded; the tarball (up to 1 GiB) is not kept for the lease's life
	}
	svc := worker.NewService(spec, b, nil)
	r.mu.Lock()
	if _, dup := r.running[id]; dup {
		r.mu.Unlock()
		return svc.Close()
	}
	r.running[id] = svc
	r.mu.Unlock()
	return nil
}

func (r *replicaRunner) stop(id chain.LeaseID) {
	r.mu.Lock()
	svc := r.running[id]
	delete(r.running, id)
	r.mu.Unlock()
	if svc != nil {
		if err := svc.Close(); err != nil {
			r.n.log.Warn("services: stop a replica", "lease", id, "err", err)
		}
	}
}

// lookup is the provider handler's view: the replica serving a lease.
func (r *replicaRunner) lookup(id [32]byte) (*worker.Service, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.running[chain.LeaseID(id)]
	return s, ok
}

func (r *replicaRunner) logs(id chain.LeaseID) ([]byte, bool) {
	s, ok := r.lookup(id)
	if !ok {
		return nil, false
	}
	return s.Logs(), true
}

func (r *replicaRunner) closeAll() {
	r.mu.Lock()
	all := r.running
	r.running = map[chain.LeaseID]*worker.Service{}
	r.mu.Unlock()
	for _, s := range all {
		_ = s.Close()
	}
	_ = r.exec.Close(context.Background())
}
