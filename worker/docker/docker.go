package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/bourse-net/bourse/worker"
)

// GuestOutputDir is where a job's output directory is mounted.
const GuestOutputDir = "/out"

// Config configures an Executor. Zero values are the defaults.
type Config struct {
	// Host is the daemon address (e.g. unix:///var/run/docker.sock).
	// Default: DOCKER_HOST or the platform default.
	Host string
	// AllowPull lets Start pull an image that is not present locally,
	// from the registry its reference names, and only by digest
	// (name@sha256:<digest>): a tag is refused. Off by default: an image
	// must be present or sent as a tarball.
	AllowPull bool
	// Network is the container network mode. Default "none".
	Network string
	// PidsLimit caps processes in a container. Default 64.
	PidsLimit int64
	// User runs the container's process. Default "65534:65534" (nobody).
	User string
	// TmpfsMiB is the size of a writable tmpfs at /tmp. Default 16.
	TmpfsMiB int64
	// LogCap is the bytes kept per log stream. Default worker.DefaultLogCap.
	LogCap int64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Executor runs jobs in containers. See the package doc.
type Executor struct {
	worker.Control // Wait, Cancel and Logs, from runs
	cfg            Config
	log            *slog.Logger
	cli            *client.Client
	runs           *worker.Runs

	loadMu    sync.Mutex // one image load at a time
	guardOnce sync.Once  // the host guard rule of service networks
}

var _ worker.Executor = (*Executor)(nil)

// New returns an executor talking to the daemon; it does not contact the
// daemon (see Available).
func New(cfg Config) (*Executor, error) {
	if cfg.Network == "" {
		cfg.Network = "none"
	}
	if cfg.PidsLimit <= 0 {
		cfg.PidsLimit = 64
	}
	if cfg.User == "" {
		cfg.User = "65534:65534"
	}
	if cfg.TmpfsMiB <= 0 {
		cfg.TmpfsMiB = 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("new docker executor: %w", err)
	}
	runs := worker.NewRuns(cfg.LogCap, 0)
	return &Executor{Control: runs.Control(), cfg: cfg, log: cfg.Logger, cli: cli, runs: runs}, nil
}

// Client returns the Engine API client (tests use it to build images).
func (e *Executor) Client() *client.Client { return e.cli }

// Kind returns worker.KindDocker.
func (e *Executor) Kind() worker.Kind { return worker.KindDocker }

// Available pings the daemon (for at most 3 s); the error wraps
// worker.ErrUnavailable when no daemon answers.
func (e *Executor) Available(ctx context.Context) error {
	if e.runs.Closed() {
		return fmt.Errorf("docker: %w: %w", worker.ErrUnavailable, worker.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := e.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker: %w: no daemon answers at %s: %v", worker.ErrUnavailable, e.cli.DaemonHost(), err)
	}
	return nil
}

// Start implements worker.Executor.
func (e *Executor) Start(ctx context.Context, job *worker.Job, outDir string) error {
	if e.runs.Closed() {
		return worker.ErrClosed
	}
	if err := job.Validate(); err != nil {
		return fmt.Errorf("docker start: %w", err)
	}
	if job.Executor != worker.KindDocker {
		return fmt.Errorf("docker start job %s: executor is %q", job.ID.Short(), job.Executor)
	}
	if err := e.Available(ctx); err != nil {
		return err
	}
	return e.runs.Go(job, outDir, e.run)
}

// Close kills and removes every job's container, waits, and closes the
// client.
func (e *Executor) Close(ctx context.Context) error {
	if err := e.runs.Close(ctx); err != nil {
		return fmt.Errorf("close docker executor: %w", err)
	}
	if err := e.cli.Close(); err != nil {
		return fmt.Errorf("close docker executor: %w", err)
	}
	return nil
}

func failed(format string, a ...any) worker.Outcome {
	return worker.Outcome{State: worker.StateFailed, ExitCode: -1, Reason: fmt.Sprintf(format, a...)}
}

// cleanupCtx bounds daemon calls made after the run's context ended.
func cleanupCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func (e *Executor) run(run *worker.Run) worker.Outcome {
	job := run.Job
	ctx := run.Ctx
	ref, err := e.image(ctx, job)
	if err != nil {
		return failed("image: %v", err)
	}
	// The container runs as an unprivileged user: let it write the output
	// directory.
	if err := os.Chmod(run.OutDir, 0o777); err != nil {
		return failed("output dir: %v", err)
	}
	mem := job.Limits.MemoryMiB << 20
	pids := e.cfg.PidsLimit
	hc := &container.HostConfig{
		NetworkMode:    container.NetworkMode(e.cfg.Network),
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		Privileged:     false,
		SecurityOpt:    []string{"no-new-privileges"},
		LogConfig:      container.LogConfig{Type: "none"},
		Mounts:         []mount.Mount{{Type: mount.TypeBind, Source: run.OutDir, Target: GuestOutputDir}},
		Tmpfs:          map[string]string{"/tmp": fmt.Sprintf("rw,noexec,nosuid,size=%dm", e.cfg.TmpfsMiB)},
		Resources: container.Resources{
			NanoCPUs:   job.Limits.CPU * 1_000_000,
			Memory:     mem,
			MemorySwap: mem, // no swap
			PidsLimit:  &pids,
		},
	}
	cc := &container.Config{
		Image:           ref,
		Cmd:             job.Args,
		Env:             job.SortedEnv(worker.OutputEnv + "=" + GuestOutputDir),
		User:            e.cfg.User,
		NetworkDisabled: e.cfg.Network == "none",
		AttachStdout:    true,
		AttachStderr:    true,
		Labels:          map[string]string{"net.bourse.job": job.ID.String()},
	}
	created, err := e.cli.ContainerCreate(ctx, cc, hc, nil, nil, "bourse-"+job.ID.String()[:24])
	if err != nil {
		return failed("create container: %v", err)
	}
	id := created.ID
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		if err := e.cli.ContainerRemove(cctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			e.log.Warn("docker: remove container", "job", job.ID.Short(), "container", id[:12], "err", err)
		}
	}()

	att, err := e.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return failed("attach: %v", err)
	}
	defer att.Close()
	copyDone := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(run.Stdout, run.Stderr, att.Reader)
		copyDone <- err
	}()

	// The wait outlives the run's context (a killed container must still
	// be waited for). The client's goroutine sends exactly one value, on an
	// unbuffered channel for a result: every path receives it.
	waitCtx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	waitC, waitErrC := e.cli.ContainerWait(waitCtx, id, container.WaitConditionNextExit)
	run.Begin() // the job's clock starts now, not while its image loaded
	if err := e.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		cancelWait()
		select {
		case <-waitC:
		case <-waitErrC:
		}
		att.Close()
		<-copyDone
		return failed("start container: %v", err)
	}

	var status container.WaitResponse
	select {
	case status = <-waitC:
	case err = <-waitErrC:
	case <-ctx.Done():
		kctx, cancel := cleanupCtx()
		if err := e.cli.ContainerKill(kctx, id, "KILL"); err != nil {
			e.log.Warn("docker: kill container", "job", job.ID.Short(), "err", err)
		}
		cancel()
		select {
		case status = <-waitC:
		case err = <-waitErrC:
		}
	}
	// The attach stream ends when the container exits; bound the wait in
	// case the daemon keeps it open.
	select {
	case <-copyDone:
	case <-time.After(5 * time.Second):
		att.Close()
		<-copyDone
	}
	if err != nil {
		return failed("wait for container: %v", err)
	}
	if status.Error != nil && status.Error.Message != "" {
		return failed("wait for container: %s", status.Error.Message)
	}
	code := int(status.StatusCode)
	if e.oomKilled(ctx, id, code) {
		return worker.Outcome{State: worker.StateOOM, ExitCode: code,
			Reason: fmt.Sprintf("%v: killed at the memory limit of %d MiB", worker.ErrOutOfMemory, job.Limits.MemoryMiB)}
	}
	if code != 0 {
		return worker.Outcome{State: worker.StateFailed, ExitCode: code, Reason: fmt.Sprintf("exit code %d", code)}
	}
	return worker.Outcome{State: worker.StateSucceeded}
}

// oomKilled reports whether the daemon saw the container killed at its
// memory limit. On cgroup v2 the shim may report the exit before the OOM
// event (containerd/containerd#12714, hashicorp/nomad#13119), so a
// container killed by SIGKILL (137) that ctx did not kill is inspected
// again for up to oomEventWait before it counts as a plain failure.
func (e *Executor) oomKilled(ctx context.Context, id string, code int) bool {
	deadline := time.Now().Add(oomEventWait)
	for {
		ictx, cancel := cleanupCtx()
		info, err := e.cli.ContainerInspect(ictx, id)
		cancel()
		if err == nil && info.State != nil && info.State.OOMKilled {
			return true
		}
		if code != 137 || ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// oomEventWait bounds how long a SIGKILLed container's OOM event may lag
// its exit.
const oomEventWait = time.Second

// image makes the job's image available locally and returns its ID, by
// which the container is created: never a tag, which anyone who loads an
// image could have moved.
//
//   - With a tarball payload, Job.Image must be the image's ID
//     ("sha256:<config digest>"); the tarball may hold that image only,
//     and is loaded without any tag (loadByDigest).
//   - An image ID must be present locally.
//   - A name@sha256:<digest> reference is used if present, else pulled if
//     Config.AllowPull.
//   - A plain name or tag must be present locally (tags are the
//     operator's: no job can move one), and is resolved to its ID once.
func (e *Executor) image(ctx context.Context, job *worker.Job) (string, error) {
	if len(job.Payload) > 0 {
		if !isImageID(job.Image) {
			return "", fmt.Errorf("an image tarball must come with its image ID (sha256:<64 hex digits>) as the image, not %q", job.Image)
		}
		return e.loadByDigest(ctx, job.Payload, job.Image)
	}
	info, err := e.cli.ImageInspect(ctx, job.Image)
	if err == nil {
		return info.ID, nil
	}
	if isImageID(job.Image) {
		return "", fmt.Errorf("image %s is not present locally (send it as an image tarball payload): %v", job.Image, err)
	}
	if !e.cfg.AllowPull {
		return "", fmt.Errorf("image %q is not present locally and pulling is off; send it as an image tarball payload: %v", job.Image, err)
	}
	if !strings.Contains(job.Image, "@sha256:") {
		return "", fmt.Errorf("image %q is not present locally; the provider pulls only by digest (name@sha256:<digest>), never a tag", job.Image)
	}
	rc, perr := e.cli.ImagePull(ctx, job.Image, image.PullOptions{})
	if perr != nil {
		return "", fmt.Errorf("pull %q: %w", job.Image, perr)
	}
	defer rc.Close()
	if err := drainJSON(rc, nil); err != nil {
		return "", fmt.Errorf("pull %q: %w", job.Image, err)
	}
	info, err = e.cli.ImageInspect(ctx, job.Image)
	if err != nil {
		return "", fmt.Errorf("pulled %q: %w", job.Image, err)
	}
	return info.ID, nil
}

// isImageID reports whether ref is an image ID: sha256: and 64 lowercase
// hex digits.
func isImageID(ref string) bool {
	h, ok := strings.CutPrefix(ref, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// loadByDigest loads a tarball that holds exactly the image id, stripped
// of every name it carries (manifest.json's RepoTags, the legacy
// repositories file, an OCI index's annotations), so loading it adds that
// image and never moves a tag; it returns id once the daemon has it.
func (e *Executor) loadByDigest(ctx context.Context, tarball []byte, id string) (string, error) {
	clean, err := untagTarball(tarball, id)
	if err != nil {
		return "", fmt.Errorf("image tarball: %w", err)
	}
	if _, err := e.load(ctx, clean); err != nil {
		return "", err
	}
	info, err := e.cli.ImageInspect(ctx, id)
	if err != nil {
		return "", fmt.Errorf("image tarball loaded, but %s is not there: %w", id, err)
	}
	if info.ID != id {
		return "", fmt.Errorf("image tarball loaded as %s, want %s", info.ID, id)
	}
	return id, nil
}

// maxManifest bounds manifest.json in a tarball.
const maxManifest = 1 << 20

// untagTarball checks that a `docker save` tarball holds one image whose
// config blob hashes to id, and rewrites it without any name: RepoTags
// dropped from manifest.json; repositories, index.json and oci-layout
// (which name images too) left out, so the daemon loads it from
// manifest.json alone.
func untagTarball(tarball []byte, id string) ([]byte, error) {
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	var entries []entry
	blobs := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		data, err := io.ReadAll(tr) // bounded by the payload, in memory already
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", hdr.Name, err)
		}
		name := path.Clean(hdr.Name)
		if hdr.Typeflag == tar.TypeReg {
			blobs[name] = data
		}
		entries = append(entries, entry{hdr, data})
	}
	man, ok := blobs["manifest.json"]
	if !ok {
		return nil, errors.New("no manifest.json: not a docker save tarball")
	}
	if len(man) > maxManifest {
		return nil, fmt.Errorf("manifest.json of %d bytes", len(man))
	}
	var images []map[string]json.RawMessage
	if err := json.Unmarshal(man, &images); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if len(images) != 1 {
		return nil, fmt.Errorf("manifest.json lists %d images; a job's tarball holds its one image", len(images))
	}
	var cfgName string
	if err := json.Unmarshal(images[0]["Config"], &cfgName); err != nil {
		return nil, fmt.Errorf("manifest.json: Config: %w", err)
	}
	cfg, ok := blobs[path.Clean(cfgName)]
	if !ok {
		return nil, fmt.Errorf("manifest.json names config %q, which the tarball does not hold", cfgName)
	}
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(cfg)); got != id {
		return nil, fmt.Errorf("holds image %s, not %s", got, id)
	}
	delete(images[0], "RepoTags")
	man, err := json.Marshal(images)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, en := range entries {
		data := en.data
		switch path.Clean(en.hdr.Name) {
		case "repositories", "index.json", "oci-layout":
			continue
		case "manifest.json":
			data = man
		}
		h := *en.hdr
		h.Size = int64(len(data))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
			data = nil
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// load runs docker load on a tarball and returns the loaded reference.
func (e *Executor) load(ctx context.Context, tarball []byte) (string, error) {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	resp, err := e.cli.ImageLoad(ctx, bytes.NewReader(tarball), client.ImageLoadWithQuiet(true))
	if err != nil {
		return "", fmt.Errorf("load image tarball: %w", err)
	}
	defer resp.Body.Close()
	var ref string
	err = drainJSON(resp.Body, func(stream string) {
		for _, line := range strings.Split(stream, "\n") {
			if r, ok := strings.CutPrefix(line, "Loaded image: "); ok {
				ref = strings.TrimSpace(r)
			} else if r, ok := strings.CutPrefix(line, "Loaded image ID: "); ok && ref == "" {
				ref = strings.TrimSpace(r)
			}
		}
	})
	if err != nil {
		return "", fmt.Errorf("load image tarball: %w", err)
	}
	if ref == "" {
		return "", errors.New("load image tarball: the daemon named no image")
	}
	return ref, nil
}

// drainJSON reads a daemon JSON message stream, passing each "stream"
// field to fn and returning the first error message.
func drainJSON(r io.Reader, fn func(string)) error {
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(r, 16<<20)))
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read daemon messages: %w", err)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
		if msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if fn != nil && msg.Stream != "" {
			fn(msg.Stream)
		}
	}
}
