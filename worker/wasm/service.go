package wasm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/svcwire"
	"github.com/bourse-net/bourse/worker/wasm/wasmfile"
)

var _ worker.ServiceExecutor = (*Executor)(nil)

// How long an instance may take to compile and report ready, and the
// bounds of the pause between replacements of instances that keep dying.
const (
	svcStartTimeout = 2 * time.Minute
	svcBackoffMin   = 50 * time.Millisecond
	svcBackoffMax   = 5 * time.Second
	svcLogTail      = 64 << 10
)

// StartService starts spec.Instances instance processes of a service
// module and returns when all of them are ready (compiled, limits set).
// Each instance is the daemon's binary started again in service mode
// (serviceMain): one long-lived guest reading framed requests on stdin
// (svcwire.Serve) under the same limits as a job process: linear memory
// up to its share of Limits.MemoryMiB, RLIMIT_DATA, threads, descriptors.
// An instance that overruns the request timeout is killed; one that dies
// (a crash, out of memory, a protocol error, its module returning) is
// replaced, with a growing pause if replacements keep dying.
func (e *Executor) StartService(ctx context.Context, spec *worker.ServiceSpec) (worker.ServiceBackend, error) {
	if err := spec.Normalize(); err != nil {
		return nil, err
	}
	if e.runs.Closed() {
		return nil, worker.ErrClosed
	}
	mem := uint64(spec.Limits.MemoryMiB/int64(spec.Instances)) << 20
	if err := wasmfile.Check(spec.Module, wasmfile.ForMemory(mem)); err != nil {
		return nil, fmt.Errorf("module refused: %w", err)
	}
	s := &service{
		e: e, spec: *spec, hash: sha256.Sum256(spec.Module), mem: mem,
		idle: make(chan *instance, spec.Instances), stop: make(chan struct{}),
		logs: &tailBuffer{max: svcLogTail},
	}
	for range spec.Instances {
		in, err := s.spawn(ctx)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.idle <- in
	}
	e.mu.Lock()
	if e.services == nil {
		e.services = map[*service]bool{}
	}
	e.services[s] = true
	e.mu.Unlock()
	return s, nil
}

type service struct {
	e    *Executor
	spec worker.ServiceSpec
	hash [32]byte
	mem  uint64

	idle chan *instance // ready instances
	stop chan struct{}  // closed by Close
	wg   sync.WaitGroup // reapers and replacers
	logs *tailBuffer

	busy     atomic.Int64
	live     atomic.Int64
	restarts atomic.Uint64

	mu        sync.Mutex
	closed    bool
	all       map[*instance]bool
	lastDeath string
	backoff   time.Duration
}

// instance is one service process. Only the request holding it (taken
// from idle) reads and writes its pipes.
type instance struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *bufio.Reader
	dead    chan struct{} // closed once reaped
	started time.Time
	stderr  *tailBuffer // this process' own tail, for its death reason
	wbuf    []byte
	rbuf    []byte
}

func (in *instance) kill() {
	_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
	_ = in.cmd.Process.Kill()
}

// spawn starts one instance and waits until it is ready.
func (s *service) spawn(ctx context.Context) (*instance, error) {
	cmd := exec.Command(s.e.self)
	cmd.Env = []string{serviceEnv + "=1", runnerCacheEnv + "=" + s.e.cacheDir, "GOMAXPROCS=2", "GOTRACEBACK=none"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	own := &tailBuffer{max: 4096}
	cmd.Stderr = io.MultiWriter(own, s.logs)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start service instance: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start service instance: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, worker.ErrServiceClosed
	}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("start service instance %s: %w", s.e.self, err)
	}
	in := &instance{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 64<<10), dead: make(chan struct{}),
		started: time.Now(), stderr: own}
	if s.all == nil {
		s.all = map[*instance]bool{}
	}
	s.all[in] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() { // the reaper: the only caller of Wait
		defer s.wg.Done()
		_ = cmd.Wait()
		close(in.dead)
		s.mu.Lock()
		delete(s.all, in)
		s.mu.Unlock()
	}()

	setup := svcSetup{Hash: s.hash, Payload: s.spec.Module, Args: s.spec.Args, Env: s.spec.Env,
		MemoryBytes: s.mem, Slack: uint64(s.e.cfg.ProcessSlackMiB) << 20}
	sent := make(chan error, 1)
	go func() { sent <- gob.NewEncoder(stdin).Encode(&setup) }() // the module may fill the pipe
	ready := make(chan error, 1)
	go func() {
		b, err := svcwire.ReadFrame(in.out, nil, 0)
		if err == nil && len(b) != 0 {
			err = errors.New("bad ready frame")
		}
		ready <- err
	}()
	ctx, cancel := context.WithTimeout(ctx, svcStartTimeout)
	defer cancel()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.stop:
		err = worker.ErrServiceClosed
	}
	if err != nil {
		in.kill()
		<-in.dead
		<-ready
		return nil, fmt.Errorf("start service instance: %v: %s", err, deathReason(in))
	}
	<-sent
	s.live.Add(1)
	return in, nil
}

// deathReason is the last line the instance process wrote to stderr
// (serviceMain's own report, or the Go runtime's fatal error), with its
// exit status.
func deathReason(in *instance) string {
	tail := strings.TrimSpace(in.stderr.String())
	if i := strings.LastIndex(tail, "service instance:"); i >= 0 {
		tail = tail[i:]
	} else if i := strings.Index(tail, "fatal error:"); i >= 0 {
		tail = tail[i:]
	}
	if j := strings.IndexByte(tail, '\n'); j >= 0 {
		tail = tail[:j]
	}
	st := "running"
	if in.cmd.ProcessState != nil {
		st = in.cmd.ProcessState.String()
	}
	if tail == "" {
		return "instance process " + st
	}
	return "instance process " + st + ": " + tail
}

// Handle implements worker.ServiceBackend.
func (s *service) Handle(ctx context.Context, req *worker.Request) (*worker.Response, error) {
	var in *instance
	queue := time.NewTimer(s.spec.QueueTimeout)
	defer queue.Stop()
	for in == nil {
		select {
		case in = <-s.idle:
		case <-s.stop:
			return nil, worker.ErrServiceClosed
		case <-queue.C:
			return nil, fmt.Errorf("%w: waited %v", worker.ErrServiceBusy, s.spec.QueueTimeout)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", worker.ErrServiceBusy, ctx.Err())
		}
		select {
		case <-in.dead: // died while idle: replace it and take another
			s.lost(in, "died while idle")
			in = nil
		default:
		}
	}
	s.busy.Add(1)
	defer s.busy.Add(-1)

	var err error
	in.wbuf, err = svcwire.AppendRequest(append(in.wbuf[:0], 0, 0, 0, 0), req, s.spec.MaxBody)
	if err != nil {
		s.idle <- in
		return nil, fmt.Errorf("%w: %v", worker.ErrHandlerFailed, err)
	}
	svcwire.AppendFrameHeader(in.wbuf[:0], len(in.wbuf)-4)

	tctx, cancel := context.WithTimeout(ctx, s.spec.Limits.Timeout)
	defer cancel()
	killed := atomic.Bool{}
	stop := context.AfterFunc(tctx, func() { killed.Store(true); in.kill() })
	_, err = in.stdin.Write(in.wbuf)
	var msg []byte
	if err == nil {
		msg, err = svcwire.ReadFrame(in.out, in.rbuf, svcwire.MaxResponseSize(s.spec.MaxBody))
	}
	var resp *worker.Response
	if err == nil {
		in.rbuf = msg
		resp, err = svcwire.DecodeResponse(msg, s.spec.MaxBody)
	}
	if !stop() || killed.Load() {
		if err == nil {
			err = errors.New("killed at the deadline")
		}
		in.kill()
		<-in.dead
		reason := fmt.Sprintf("request timeout of %v", s.spec.Limits.Timeout)
		if ctx.Err() != nil {
			reason = "caller gave up: " + ctx.Err().Error()
		}
		s.lost(in, reason)
		return nil, fmt.Errorf("%w: %s", worker.ErrHandlerTimeout, reason)
	}
	if err != nil {
		in.kill()
		<-in.dead
		reason := fmt.Sprintf("%v (%s)", err, deathReason(in))
		s.lost(in, reason)
		return nil, fmt.Errorf("%w: %s", worker.ErrHandlerFailed, reason)
	}
	// Copy out of the instance's buffer: it is reused by the next request.
	resp.Body = append([]byte(nil), resp.Body...)
	s.idle <- in
	return resp, nil
}

// lost records a dead instance and starts its replacement.
func (s *service) lost(in *instance, reason string) {
	s.live.Add(-1)
	s.mu.Lock()
	s.lastDeath = reason
	if s.closed {
		s.mu.Unlock()
		return
	}
	// An instance that dies young makes the next replacement wait longer.
	if time.Since(in.started) < 2*time.Second {
		s.backoff = min(max(s.backoff*2, svcBackoffMin), svcBackoffMax)
	} else {
		s.backoff = 0
	}
	wait := s.backoff
	s.wg.Add(1)
	s.mu.Unlock()
	s.restarts.Add(1)
	go s.replace(wait)
}

// replace starts a new instance after wait, retrying until it is ready
// or the service closes.
func (s *service) replace(wait time.Duration) {
	defer s.wg.Done()
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.stop:
				t.Stop()
				return
			}
		}
		in, err := s.spawn(context.Background())
		if err == nil {
			s.idle <- in
			return
		}
		if errors.Is(err, worker.ErrServiceClosed) {
			return
		}
		s.mu.Lock()
		s.lastDeath = err.Error()
		s.mu.Unlock()
		s.e.log.Warn("service instance did not start", "err", err)
		wait = min(max(wait*2, svcBackoffMin), svcBackoffMax)
	}
}

// Health implements worker.ServiceBackend.
func (s *service) Health() (int, int, uint64, string) {
	s.mu.Lock()
	last := s.lastDeath
	s.mu.Unlock()
	return int(s.live.Load()), s.spec.Instances, s.restarts.Load(), last
}

// Busy implements worker.ServiceBackend.
func (s *service) Busy() int { return int(s.busy.Load()) }

// Logs implements worker.ServiceBackend.
func (s *service) Logs() []byte { return []byte(s.logs.String()) }

// Close kills every instance and waits for them.
func (s *service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	for in := range s.all {
		in.kill()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.e.mu.Lock()
	delete(s.e.services, s)
	s.e.mu.Unlock()
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, b...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
