package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

var buildDir string

func TestMain(m *testing.M) { workertest.Main(m, "bourse-docker-test-", &buildDir) }

const testLogCap = 256 << 10

// newOrSkip returns an executor, or skips the test when no daemon answers.
func newOrSkip(t *testing.T) *Executor {
	t.Helper()
	e, err := New(Config{LogCap: testLogCap})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Available(context.Background()); err != nil {
		e.Close(context.Background())
		t.Skipf("no docker daemon: %v", err)
	}
	return e
}

// buildImage builds FROM scratch + the static test program and tags it;
// the image is removed when the test ends.
func buildImage(t *testing.T, e *Executor) string {
	t.Helper()
	return buildImageTagged(t, e, fmt.Sprintf("bourse-worker-test:%d", os.Getpid()), "")
}

// imageID returns the ID of a local image.
func imageID(t *testing.T, e *Executor, ref string) string {
	t.Helper()
	info, err := e.Client().ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}

// buildImageTagged builds FROM scratch + the test program, with extra
// Dockerfile lines, tagged tag.
func buildImageTagged(t *testing.T, e *Executor, tag, extra string) string {
	t.Helper()
	return buildProgImage(t, e, tag, workertest.TestProg, extra)
}

// saveImage returns the `docker save` tarball of a local image.
func saveImage(t *testing.T, e *Executor, ref string) []byte {
	t.Helper()
	rc, err := e.Client().ImageSave(context.Background(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tarball, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return tarball
}

// buildProgImage builds FROM scratch + the static program pkg (at
// /testprog), with extra Dockerfile lines, tagged tag.
func buildProgImage(t *testing.T, e *Executor, tag, pkg, extra string) string {
	t.Helper()
	bin, err := workertest.Build(buildDir, pkg, "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY testprog /testprog\nENTRYPOINT [\"/testprog\"]\n" + extra)},
		{"testprog", 0o755, prog},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.data)
	}
	tw.Close()
	ctx := context.Background()
	resp, err := e.Client().ImageBuild(ctx, &ctxTar, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("build test image: %v", err)
	}
	err = drainJSON(resp.Body, nil)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("build test image: %v", err)
	}
	t.Cleanup(func() {
		_, _ = e.Client().ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return tag
}

func testJob(img string, args ...string) *worker.Job {
	return &worker.Job{Executor: worker.KindDocker, Image: img, Args: args,
		Limits: worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 256, DiskMiB: 16}, Timeout: time.Minute}}
}

// containersOf counts the containers this test binary's jobs created
// (other processes may share the daemon).
func containersOf(t *testing.T, e *Executor) int {
	t.Helper()
	list, err := e.Client().ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "net.bourse.job"))})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range list {
		if id, err := worker.ParseJobID(c.Labels["net.bourse.job"]); err == nil && workertest.Issued(id) {
			n++
		}
	}
	return n
}

func TestContract(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	img := buildImage(t, e)
	before := containersOf(t, e)
	t.Run("suite", func(t *testing.T) {
		workertest.Run(t, workertest.Harness{
			New: func(t *testing.T) worker.Executor { return newOrSkip(t) },
			Job: func(t *testing.T, args ...string) *worker.Job { return testJob(img, args...) },
			Invalid: func(t *testing.T) *worker.Job {
				return testJob("bourse-no-such-image:absent", "hello")
			},
			Sandboxed: true,
			OOMState:  worker.StateOOM,
			LogCap:    testLogCap,
		})
	})
	if n := containersOf(t, e); n != before {
		t.Fatalf("containers leaked: %d before, %d after", before, n)
	}
}

// TestImageTarballPayload: an image sent as a `docker save` tarball is
// loaded and run; a tarball that is not one fails with a reason.
func TestImageTarballPayload(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	img := buildImage(t, e)
	tarball := saveImage(t, e, img)
	cases := []struct {
		name    string
		image   string
		payload []byte
		state   worker.State
		stdout  string
	}{
		{"saved image", imageID(t, e, img), tarball, worker.StateSucceeded, "hello from tarball\n"},
		{"saved image named by tag", img, tarball, worker.StateFailed, ""},
		{"saved image under another ID", "sha256:" + strings.Repeat("0", 64), tarball, worker.StateFailed, ""},
		{"not a tarball", imageID(t, e, img), []byte("garbage"), worker.StateFailed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := testJob(c.image, "hello", "from", "tarball")
			j.ID, j.Payload = workertest.NewID(), c.payload
			if err := e.Start(context.Background(), j, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			x, err := e.Wait(context.Background(), j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if x.State != c.state || string(x.Stdout) != c.stdout || (c.state != worker.StateSucceeded && !strings.Contains(x.Reason, "image")) {
				t.Fatalf("got state=%s stdout=%q reason=%q", x.State, x.Stdout, x.Reason)
			}
		})
	}
}

func TestUnavailableDaemon(t *testing.T) {
	e, err := New(Config{Host: "unix:///nonexistent/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	if err := e.Available(context.Background()); !errors.Is(err, worker.ErrUnavailable) {
		t.Fatalf("Available = %v", err)
	}
	j := testJob("x", "hello")
	j.ID = workertest.NewID()
	if err := e.Start(context.Background(), j, t.TempDir()); err == nil {
		t.Fatal("Start without a daemon succeeded")
	}
}
