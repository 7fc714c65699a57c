package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

const svcDockerHello = "github.com/bourse-net/bourse/examples/svc-docker-hello"

func serviceSpec(img string, module []byte) *worker.ServiceSpec {
	s := &worker.ServiceSpec{ID: workertest.NewID(), Kind: worker.KindDocker, Image: img, Module: module,
		Env:    []string{"GREETING=hi"},
		Limits: worker.Limits{Resources: worker.Resources{CPU: 500, MemoryMiB: 64}}, Instances: 2}
	if err := s.Normalize(); err != nil {
		panic(err)
	}
	return s
}

func get(t *testing.T, b worker.ServiceBackend, target string) (*worker.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return b.Handle(ctx, &worker.Request{Method: "GET", Target: target, Header: [][2]string{{"X-Test", "1"}, {"Connection", "close"}}})
}

// TestDockerServiceAnswersAndComesBackAfterACrash: a replica from an image
// tarball (loaded by ID, no tag) answers over HTTP on its published
// loopback port; a request that crashes the container fails as a handler
// failure, and the next request finds the container started again.
func TestDockerServiceAnswersAndComesBackAfterACrash(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	tag := buildProgImage(t, e, "bourse-svc-test:"+strings.ToLower(workertest.NewID().Short()), svcDockerHello, "USER 65534:65534\n")
	tarball := saveImage(t, e, tag)
	b, err := e.StartService(context.Background(), serviceSpec(imageID(t, e, tag), tarball))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	resp, err := get(t, b, "/docker?x=1")
	if err != nil || resp.Status != 200 || string(resp.Body) != "hi, docker!\n" {
		t.Fatalf("hello: %+v %v", resp, err)
	}
	if live, n, _, _ := b.Health(); live != 1 || n != 1 {
		t.Fatalf("health: %d of %d live", live, n)
	}
	if _, err := get(t, b, "/crash"); !errors.Is(err, worker.ErrHandlerFailed) {
		t.Fatalf("crash: %v, want a handler failure", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := get(t, b, "/again")
		if err == nil && resp.Status == 200 && string(resp.Body) == "hi, again!\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the crashed replica did not come back: %+v %v", resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, _, restarts, why := b.Health(); restarts == 0 || !strings.Contains(why, "exited") {
		t.Fatalf("health after the crash: %d restarts, last death %q", restarts, why)
	}
	if !strings.Contains(string(b.Logs()), "asked to crash") {
		t.Fatalf("logs: %q", b.Logs())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, b, "/x"); !errors.Is(err, worker.ErrServiceClosed) {
		t.Fatalf("after close: %v", err)
	}
}

// TestDockerServiceAttackTarballUnderAnotherIDIsRefused: a service whose
// tarball does not hold the image it names never starts.
func TestDockerServiceAttackTarballUnderAnotherIDIsRefused(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	if _, err := e.StartService(context.Background(), serviceSpec("sha256:"+strings.Repeat("0", 64), []byte("garbage"))); err == nil {
		t.Fatal("a garbage tarball started a service")
	}
	if _, err := e.StartService(context.Background(), serviceSpec("bourse-hello:latest", nil)); err == nil || !strings.Contains(err.Error(), "image") {
		t.Fatalf("a tag, not an ID: %v", err)
	}
}

// TestDockerServiceAttackReplicaCannotReachAnotherReplica: a hostile
// container on the service network (a job run there, dialling) cannot
// open a connection to another client's replica, though the provider
// reaches that replica at the same address.
func TestDockerServiceAttackReplicaCannotReachAnotherReplica(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	tag := buildProgImage(t, e, "bourse-svc-test:"+strings.ToLower(workertest.NewID().Short()), svcDockerHello, "USER 65534:65534\n")
	b, err := e.StartService(context.Background(), serviceSpec(imageID(t, e, tag), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if resp, err := get(t, b, "/provider"); err != nil || resp.Status != 200 {
		t.Fatalf("the provider cannot reach its replica: %+v %v", resp, err)
	}
	addr := b.(*dockerService).addr
	hostile, err := New(Config{LogCap: testLogCap, Network: ServiceNetwork})
	if err != nil {
		t.Fatal(err)
	}
	defer hostile.Close(context.Background())
	j := testJob(buildImage(t, e), "dial", addr)
	j.ID, j.Limits.Timeout = workertest.NewID(), 5*time.Second // a connection on a local bridge takes far less
	if err := hostile.Start(context.Background(), j, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	x, err := hostile.Wait(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if x.State == worker.StateSucceeded || strings.Contains(string(x.Stdout), "connected") {
		t.Fatalf("a container on the service network connected to a replica at %s: %s %q", addr, x.State, x.Stdout)
	}
}

// createNetworkUnchecked makes a network named name over the raw API with
// CheckDuplicate off, as two providers racing to create it may on a
// daemon that checks names only best-effort. It skips the test when the
// daemon refuses a second network of one name (API 1.44 and later).
func createNetworkUnchecked(t *testing.T, e *Executor, name string, labels map[string]string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"Name": name, "CheckDuplicate": false, "Driver": "bridge", "Internal": true, "Labels": labels})
	req, _ := http.NewRequest("POST", "http://docker/networks/create", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", "/var/run/docker.sock")
	}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Skipf("raw docker API: %v", err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 || json.Unmarshal(raw, &out) != nil || out.ID == "" {
		t.Skipf("the daemon refuses a second network named %s (%d %s): nothing to heal there", name, resp.StatusCode, raw)
	}
	t.Cleanup(func() { e.Client().NetworkRemove(context.Background(), out.ID) })
	return out.ID
}

// TestDockerServiceNetworkRaceLeavesOneNetwork: providers sharing a docker
// daemon that each created the service network leave two of one name,
// which made every replica fail to start ("is ambiguous"). The oldest is
// kept and the others removed; a duplicate bourse did not make is named
// in the error, never removed.
func TestDockerServiceNetworkRaceLeavesOneNetwork(t *testing.T) {
	e := newOrSkip(t)
	defer e.Close(context.Background())
	ctx := context.Background()
	name := "bourse-dedupe-test-" + strings.ToLower(workertest.NewID().Short())
	labels := map[string]string{serviceNetworkLabel: "services"}
	first := createNetworkUnchecked(t, e, name, labels)
	createNetworkUnchecked(t, e, name, labels)
	createNetworkUnchecked(t, e, name, labels)
	if _, err := e.Client().NetworkInspect(ctx, name, network.InspectOptions{}); err == nil {
		t.Fatal("three networks of one name inspect without ambiguity: the test cannot show the fix")
	}
	if err := e.dedupeNetwork(ctx, name); err != nil {
		t.Fatal(err)
	}
	nw, err := e.Client().NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil || nw.ID != first {
		t.Fatalf("after dedupe: %s (%v), want the first, %s", nw.ID, err, first)
	}
	foreign := createNetworkUnchecked(t, e, name, nil)
	err = e.dedupeNetwork(ctx, name)
	if err == nil || !strings.Contains(err.Error(), foreign) {
		t.Fatalf("a duplicate bourse did not make: %v", err)
	}
	if _, err := e.Client().NetworkInspect(ctx, foreign, network.InspectOptions{}); err != nil {
		t.Fatalf("the foreign network was removed: %v", err)
	}
}
