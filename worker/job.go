package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// JobID names a job. It is the 32-byte id the chain gives a match; its text
// form is lowercase hex.
type JobID [32]byte

// String returns the id as 64 lowercase hex digits.
func (id JobID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits, for logs.
func (id JobID) Short() string { return id.String()[:12] }

// ParseJobID parses 64 hex digits.
func ParseJobID(s string) (JobID, error) {
	var id JobID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("parse job id: want %d hex digits, got %d", 2*len(id), len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return JobID{}, fmt.Errorf("parse job id: %w", err)
	}
	return id, nil
}

// Kind names an executor backend.
type Kind string

// The executor kinds a job may ask for.
const (
	KindWASM   Kind = "wasm"
	KindDocker Kind = "docker"
	KindExec   Kind = "exec"
)

// Resources is an amount of compute: what a provider sells, what a job
// reserves.
type Resources struct {
	CPU       int64 `json:"cpu" cbor:"1,keyasint"`    // millicores (1000 = one core)
	MemoryMiB int64 `json:"memory" cbor:"2,keyasint"` // MiB
	DiskMiB   int64 `json:"disk" cbor:"3,keyasint"`   // MiB of output
	GPUs      int64 `json:"gpus" cbor:"4,keyasint"`   // whole devices
}

// Fits reports whether r fits inside free, and if not, why.
func (r Resources) Fits(free Resources) (bool, string) {
	var short []string
	if r.CPU > free.CPU {
		short = append(short, fmt.Sprintf("cpu %dm > free %dm", r.CPU, free.CPU))
	}
	if r.MemoryMiB > free.MemoryMiB {
		short = append(short, fmt.Sprintf("memory %d MiB > free %d MiB", r.MemoryMiB, free.MemoryMiB))
	}
	if r.DiskMiB > free.DiskMiB {
		short = append(short, fmt.Sprintf("disk %d MiB > free %d MiB", r.DiskMiB, free.DiskMiB))
	}
	if r.GPUs > free.GPUs {
		short = append(short, fmt.Sprintf("gpus %d > free %d", r.GPUs, free.GPUs))
	}
	return len(short) == 0, strings.Join(short, ", ")
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.CPU + o.CPU, r.MemoryMiB + o.MemoryMiB, r.DiskMiB + o.DiskMiB, r.GPUs + o.GPUs}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.CPU - o.CPU, r.MemoryMiB - o.MemoryMiB, r.DiskMiB - o.DiskMiB, r.GPUs - o.GPUs}
}

// Validate rejects negative amounts.
func (r Resources) Validate() error {
	if r.CPU < 0 || r.MemoryMiB < 0 || r.DiskMiB < 0 || r.GPUs < 0 {
		return fmt.Errorf("resources %+v: negative amount", r)
	}
	return nil
}

// Limits is what a job paid for: its resources and its wall-time budget.
type Limits struct {
	Resources
	// Timeout is the wall-time budget, counted from Executor.Start
	// (payload preparation such as compiling or loading an image included)
	// and counted again from the end of the preparation (Run.Begin), as
	// far as Prep allows.
	Timeout time.Duration
	// Prep is how much longer than Timeout a run may take in all because
	// of its preparation: the run ends at the latest Timeout + Prep after
	// Start. Zero (the default) keeps the hard end at Timeout after
	// Start; Begin then only moves where billing starts. A provider sets
	// it below the chain's result grace period, so a slow compile can
	// never make it miss its deadline.
	Prep time.Duration
}

// Validate checks the limits a job may run with.
func (l Limits) Validate() error {
	if err := l.Resources.Validate(); err != nil {
		return err
	}
	switch {
	case l.CPU == 0:
		return errors.New("limits: cpu must be > 0 millicores")
	case l.MemoryMiB == 0:
		return errors.New("limits: memory must be > 0 MiB")
	case l.Timeout <= 0:
		return errors.New("limits: timeout must be > 0")
	}
	return nil
}

// Job is one unit of work handed to an executor.
//
// The executor does not modify a Job; it may keep a reference to Payload
// until the run has finished.
type Job struct {
	ID       JobID
	Executor Kind
	// Payload is the program: a WASM module (wasm), a static executable
	// (exec) or an image tarball as written by `docker save` (docker).
	Payload []byte
	// PayloadHash, when not zero, must equal sha256(Payload); the Runtime
	// checks it before anything runs, unless PayloadVerified.
	PayloadHash [32]byte
	// PayloadVerified says the caller has already checked PayloadHash
	// against Payload (a node keeping verified modules in memory), so a
	// large module is not hashed again on every run.
	PayloadVerified bool
	// PayloadSize and PayloadFrom, with PayloadHash, let the Runtime fetch
	// a payload that is not in Payload yet, through its PayloadFetcher.
	PayloadSize int64
	PayloadFrom string
	// Image is the docker job's image. With an image tarball in Payload
	// it must be the image's ID ("sha256:<config digest>"); otherwise an
	// image ID, a name@sha256:<digest> reference or a local name (see
	// worker/docker). Containers always run by ID.
	Image string
	Args  []string
	Env   map[string]string
	// Limits the job paid for; enforced by the executor.
	Limits Limits
	// RealClock gives a WASM guest the host's clocks and real sleeps;
	// otherwise it sees a fake clock (fixed wall time, monotonic time that
	// ticks per read) so its run is reproducible.
	RealClock bool
	// RealRandom gives a WASM guest the host's random source; otherwise its
	// random_get is a ChaCha8 stream seeded from Seed.
	RealRandom bool
	Seed       uint64
	// Owner is whom the result is for (a provider names the client): the
	// result counts against that owner's quota in the result store (see
	// Store), so one client's results cannot evict another's.
	Owner string
}

// Validate checks what every executor needs from a job.
func (j *Job) Validate() error {
	if j == nil {
		return errors.New("job is nil")
	}
	switch j.Executor {
	case KindWASM, KindExec:
		if len(j.Payload) == 0 {
			return fmt.Errorf("job %s: %s executor needs a payload", j.ID.Short(), j.Executor)
		}
	case KindDocker:
		if len(j.Payload) == 0 && j.Image == "" {
			return fmt.Errorf("job %s: docker executor needs an image or an image tarball payload", j.ID.Short())
		}
	default:
		return fmt.Errorf("job %s: unknown executor %q", j.ID.Short(), j.Executor)
	}
	if err := j.Limits.Validate(); err != nil {
		return fmt.Errorf("job %s: %w", j.ID.Short(), err)
	}
	if j.PayloadHash != ([32]byte{}) && !j.PayloadVerified && sha256.Sum256(j.Payload) != j.PayloadHash {
		return fmt.Errorf("job %s: %w", j.ID.Short(), ErrPayloadHash)
	}
	for k := range j.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("job %s: bad environment variable name %q", j.ID.Short(), k)
		}
	}
	return nil
}

// SortedEnv returns the job's environment as sorted KEY=VALUE pairs plus
// extra, so every backend sees it in the same order.
func (j *Job) SortedEnv(extra ...string) []string {
	out := make([]string, 0, len(j.Env)+len(extra))
	for k, v := range j.Env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return append(out, extra...)
}

// OutputEnv is the environment variable every backend sets to the path, as
// the job sees it, of its output directory ("/out" in wasm and docker).
const OutputEnv = "BOURSE_OUTPUT"
