package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

// TestDockerHelloExample builds examples/docker-hello with its own
// Dockerfile and runs it the way its job.yaml asks.
func TestDockerHelloExample(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	dockerfile, err := os.ReadFile("../../examples/docker-hello/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := workertest.Build(buildDir, "github.com/bourse-net/bourse/examples/docker-hello", "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var bc bytes.Buffer
	tw := tar.NewWriter(&bc)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, dockerfile}, {"docker-hello", 0o755, prog}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.data)
	}
	tw.Close()
	tag := fmt.Sprintf("bourse-hello-test:%d", os.Getpid())
	resp, err := e.Client().ImageBuild(context.Background(), &bc, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatal(err)
	}
	err = drainJSON(resp.Body, nil)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("build example image: %v", err)
	}
	defer e.Client().ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})

	j := testJob(tag, "world")
	j.ID = workertest.NewID()
	out := t.TempDir()
	if err := e.Start(context.Background(), j, out); err != nil {
		t.Fatal(err)
	}
	x, err := e.Wait(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	const want = "hello from a container, world!\n"
	if x.State != worker.StateSucceeded || string(x.Stdout) != want {
		t.Fatalf("state %s stdout %q stderr %q reason %q", x.State, x.Stdout, x.Stderr, x.Reason)
	}
	if b, err := os.ReadFile(filepath.Join(out, "greeting.txt")); err != nil || string(b) != want {
		t.Fatalf("greeting.txt: %q, %v", b, err)
	}
}
