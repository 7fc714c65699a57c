package wasm

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/workertest"
)

const svcProg = "github.com/bourse-net/bourse/worker/workertest/svcprog"

func startService(t *testing.T, e *Executor, instances int, timeout time.Duration) worker.ServiceBackend {
	t.Helper()
	spec := &worker.ServiceSpec{
		ID: workertest.NewID(), Module: module(t, svcProg), Instances: instances,
		Limits: worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 64 * int64(instances)}, Timeout: timeout},
	}
	s, err := e.StartService(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func get(t *testing.T, s worker.ServiceBackend, path string) (*worker.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.Handle(ctx, &worker.Request{Method: "GET", Target: path})
}

// waitHealthy polls until every instance is live again.
func waitHealthy(t *testing.T, s worker.ServiceBackend) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		live, n, _, _ := s.Health()
		if live == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d instances live after 30 s", live, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServiceAnswers(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	s := startService(t, e, 2, 10*time.Second)
	r, err := get(t, s, "/hello")
	if err != nil || r.Status != 200 || string(r.Body) != "hello" {
		t.Fatalf("hello: %+v %v", r, err)
	}
	body := bytes.Repeat([]byte("x"), 200<<10) // larger than a pipe buffer
	r, err = s.Handle(context.Background(), &worker.Request{Method: "POST", Target: "/echo", Body: body})
	if err != nil || !bytes.Equal(r.Body, body) || r.Header.Get("x-method") != "POST" {
		t.Fatalf("echo: %v", err)
	}
	// Two instances serve two requests at once.
	var wg sync.WaitGroup
	start := time.Now()
	for range 2 {
		wg.Go(func() {
			if r, err := get(t, s, "/sleep?ms=300"); err != nil || r.Status != 200 {
				t.Errorf("sleep: %+v %v", r, err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("two sleeps of 300 ms on two instances took %v", d)
	}
}

// TestServiceAttackHandlers: a handler that loops, allocates without
// bound, crashes, exits, or writes garbage on its stdout fails that one
// request with the right error; its instance is killed and replaced,
// and the service answers the next request.
func TestServiceAttackHandlers(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	s := startService(t, e, 1, 2*time.Second)
	cases := []struct {
		path string
		want error
		why  string
	}{
		{"/loop", worker.ErrHandlerTimeout, "request timeout"},
		{"/alloc", worker.ErrHandlerFailed, "out of memory"},
		{"/crash", worker.ErrHandlerFailed, "exit status"},
		{"/exit", worker.ErrHandlerFailed, "module returned"},
		{"/garbage", worker.ErrHandlerFailed, ""},
	}
	for i, c := range cases {
		_, err := get(t, s, c.path)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: %v, want %v with %q", c.path, err, c.want, c.why)
		}
		waitHealthy(t, s)
		if _, _, restarts, _ := s.Health(); restarts != uint64(i+1) {
			t.Errorf("%s: %d restarts, want %d", c.path, restarts, i+1)
		}
		if r, err := get(t, s, "/hello"); err != nil || r.Status != 200 {
			t.Fatalf("after %s: %+v %v", c.path, r, err)
		}
	}
	// A response over the bound is refused in the module (500), not a crash.
	if r, err := get(t, s, "/big"); err != nil || r.Status != 500 {
		t.Errorf("big: %+v %v", r, err)
	}
	if !strings.Contains(string(s.Logs()), "crash requested") {
		t.Errorf("logs miss the panic: %q", s.Logs())
	}
}

// TestServiceBusyAttackSlowHandler: with its only instance held by a slow
// request, another request waits no longer than its own context.
func TestServiceBusyAttackSlowHandler(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	s := startService(t, e, 1, 10*time.Second)
	done := make(chan error, 1)
	go func() { _, err := get(t, s, "/sleep?ms=2000"); done <- err }()
	for s.Busy() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Handle(ctx, &worker.Request{Method: "GET", Target: "/hello"}); !errors.Is(err, worker.ErrServiceBusy) {
		t.Errorf("second request: %v, want ErrServiceBusy", err)
	}
	if err := <-done; err != nil {
		t.Errorf("slow request: %v", err)
	}
}

func TestServiceRefusesBadSpecs(t *testing.T) {
	e := newExecutor(t)
	defer e.Close(context.Background())
	mod := module(t, svcProg)
	lim := worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 64}}
	for name, spec := range map[string]worker.ServiceSpec{
		"no module":                       {Limits: lim},
		"garbage module":                  {Module: []byte("\x00asm\x01\x00\x00\x00garbage"), Limits: lim},
		"disk":                            {Module: mod, Limits: worker.Limits{Resources: worker.Resources{CPU: 1, MemoryMiB: 64, DiskMiB: 1}}},
		"memory too small for the module": {Module: mod, Limits: worker.Limits{Resources: worker.Resources{CPU: 1, MemoryMiB: 1}}},
		"too many instances":              {Module: mod, Limits: lim, Instances: worker.MaxServiceInstances + 1},
	} {
		if s, err := e.StartService(context.Background(), &spec); err == nil {
			s.Close()
			t.Errorf("%s: started", name)
		}
	}
}

func TestServiceCloseKillsInstances(t *testing.T) {
	e := newExecutor(t)
	s := startService(t, e, 2, 10*time.Second)
	go get(t, s, "/loop")
	for s.Busy() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil { // closes the service too
		t.Fatal(err)
	}
	if _, err := get(t, s, "/hello"); !errors.Is(err, worker.ErrServiceClosed) {
		t.Errorf("after close: %v", err)
	}
}
