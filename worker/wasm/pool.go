package wasm

import (
	"bufio"
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
)

// proc is one job process: the daemon's own binary started again in
// runner mode (see runnerMain), holding one compiled module and running
// one job at a time. A process that finished a job cleanly goes back to
// the executor's idle set to start the next job of the same module
// without compiling; one that was stopped, died or misbehaved is killed.
type proc struct {
	hash  [32]byte
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *gob.Encoder
	out   *bufio.Reader
	tail  *headBuffer
	fresh bool // has not received its module yet
	jobs  int
	used  uint64 // LRU tick, guarded by Executor.mu

	events chan event       // frames of the current job, then io.EOF
	dead   chan struct{}    // closed when the process has exited and been reaped
	status *os.ProcessState // set before dead closes
}

// event is a frame, or the end of the process' output (err).
type event struct {
	typ  byte
	body []byte
	err  error
}

// spawn starts a job process for the module hash.
func (e *Executor) spawn(hash [32]byte) (*proc, error) {
	cmd := exec.Command(e.self)
	// A clean environment: the daemon's (a wallet passphrase, say) is
	// none of the job's business.
	cmd.Env = []string{runnerEnv + "=1", runnerCacheEnv + "=" + e.cacheDir, "GOMAXPROCS=2", "GOTRACEBACK=none"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	tail := &headBuffer{max: 2048}
	cmd.Stderr = tail
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start job process: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start job process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start job process %s: %w", e.self, err)
	}
	p := &proc{
		hash: hash, cmd: cmd, stdin: stdin, enc: gob.NewEncoder(stdin),
		out: bufio.NewReaderSize(stdout, 64<<10), tail: tail, fresh: true,
		events: make(chan event, 64), dead: make(chan struct{}),
	}
	e.procs.Add(1)
	go p.read(e)
	return p, nil
}

// read forwards the process' frames to events until its output ends, then
// reaps it. It owns the process: it is the only caller of cmd.Wait.
func (p *proc) read(e *Executor) {
	defer e.procs.Done()
	var err error
	for {
		typ, body, rerr := readFrame(p.out, nil)
		if rerr != nil {
			err = rerr
			break
		}
		select {
		case p.events <- event{typ: typ, body: body}:
		case <-e.stop:
			err = errors.New("executor closed")
		}
		if err != nil {
			break
		}
	}
	p.kill() // a protocol error or a closed executor ends it too
	_ = p.cmd.Wait()
	p.status = p.cmd.ProcessState
	close(p.dead)
	select {
	case p.events <- event{err: err}:
	default:
	}
}

// drain discards the process' remaining frames until it has been reaped:
// its reader may be blocked handing one over.
func (p *proc) drain() {
	for {
		select {
		case <-p.events:
		case <-p.dead:
			return
		}
	}
}

// kill stops the process and anything it started.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
}

// deathReason says why the process ended without reporting its job, and
// whether it ran out of memory (the Go runtime's "out of memory" when an
// allocation fails under RLIMIT_DATA).
func (p *proc) deathReason() (string, bool) {
	tail := strings.TrimSpace(p.tail.String())
	// The last one is the race detector's runtime (tests under -race).
	oom := strings.Contains(tail, "out of memory") || strings.Contains(tail, "cannot allocate memory") ||
		strings.Contains(tail, "ThreadSanitizer failed to allocate")
	if i := strings.Index(tail, "fatal error:"); i >= 0 {
		tail = tail[i:]
	}
	if j := strings.IndexByte(tail, '\n'); j >= 0 {
		tail = tail[:j]
	}
	st := "unknown status"
	if p.status != nil {
		st = p.status.String()
	}
	if tail == "" {
		return "job process " + st, oom
	}
	return fmt.Sprintf("job process %s: %s", st, tail), oom
}

func decodeResult(b []byte) (result, error) {
	var r result
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return r, fmt.Errorf("%w: result: %v", errFrame, err)
	}
	return r, nil
}

// headBuffer keeps the first max bytes written to it: the job process'
// own stderr (a Go runtime's fatal error), not the guest's.
type headBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *headBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.b); room > 0 {
		t.b = append(t.b, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

func (t *headBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// send writes a request and, after it, the module's raw bytes (see
// request.PayloadLen).
func (p *proc) send(req *request, module []byte) error {
	if err := p.enc.Encode(req); err != nil {
		return err
	}
	if len(module) > 0 {
		_, err := p.stdin.Write(module)
		return err
	}
	return nil
}
