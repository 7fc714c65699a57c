package wasm

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/bourse-net/bourse/worker"
	"github.com/bourse-net/bourse/worker/svcwire"
	"github.com/bourse-net/bourse/worker/workertest"
)

// The two request models of issue 19, measured in one process on wazero
// with the svc-hello example (worker/RATIONALE.md reports the figures).

const svcHelloPkg = "github.com/bourse-net/bourse/examples/svc-hello"

func helloFrame(b testing.TB) []byte {
	msg, err := svcwire.AppendRequest([]byte{0, 0, 0, 0}, &svcwire.Request{Method: "GET", Target: "/bench"}, 0)
	if err != nil {
		b.Fatal(err)
	}
	svcwire.AppendFrameHeader(msg[:0], len(msg)-4)
	return msg
}

func benchRuntime(b *testing.B) (wazero.Runtime, wazero.CompiledModule) {
	ctx := context.Background()
	c, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		b.Fatal(err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(c))
	b.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	mod, err := rt.CompileModule(ctx, module(b, svcHelloPkg))
	if err != nil {
		b.Fatal(err)
	}
	return rt, mod
}

// BenchmarkServiceModelPerRequest: a handler instantiated per request (the
// module compiled once), the request on stdin, the response on stdout.
func BenchmarkServiceModelPerRequest(b *testing.B) {
	rt, mod := benchRuntime(b)
	req := helloFrame(b)
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		mc := wazero.NewModuleConfig().WithName("").WithArgs("service").WithEnv(svcwire.ServeEnv, "oneshot").
			WithStdin(bytes.NewReader(req)).WithStdout(&out).WithSysWalltime().WithSysNanotime()
		inst, err := rt.InstantiateModule(context.Background(), mod, mc)
		if err != nil {
			b.Fatal(err)
		}
		inst.Close(context.Background())
		if out.Len() == 0 {
			b.Fatal("no response")
		}
	}
}

// BenchmarkServiceModelLoop: one long-lived instance reading framed
// requests in a loop; a request is a write and a read on in-memory pipes.
func BenchmarkServiceModelLoop(b *testing.B) {
	rt, mod := benchRuntime(b)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		mc := wazero.NewModuleConfig().WithName("").WithArgs("service").
			WithStdin(inR).WithStdout(outW).WithSysWalltime().WithSysNanotime()
		inst, _ := rt.InstantiateModule(context.Background(), mod, mc)
		if inst != nil {
			inst.Close(context.Background())
		}
		outW.Close()
	}()
	req := helloFrame(b)
	br := bufio.NewReader(outR)
	var buf []byte
	for b.Loop() {
		if _, err := inW.Write(req); err != nil {
			b.Fatal(err)
		}
		msg, err := svcwire.ReadFrame(br, buf, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		buf = msg
	}
	inW.Close()
	<-done
}

// BenchmarkServiceHelloWarm: the provider's real path, Service.Handle on
// a warm instance (a process of its own, requests over pipes).
func BenchmarkServiceHelloWarm(b *testing.B) {
	e := newExecutor(b)
	defer e.Close(context.Background())
	s, err := e.StartService(context.Background(), &worker.ServiceSpec{
		ID: workertest.NewID(), Module: module(b, svcHelloPkg),
		Limits: worker.Limits{Resources: worker.Resources{CPU: 1000, MemoryMiB: 64}, Timeout: 10 * time.Second},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	req := &worker.Request{Method: "GET", Target: "/bench"}
	for b.Loop() {
		if r, err := s.Handle(context.Background(), req); err != nil || r.Status != 200 {
			b.Fatal(r, err)
		}
	}
}
