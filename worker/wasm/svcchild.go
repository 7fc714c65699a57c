package wasm

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/bourse-net/bourse/worker/wasm/wasmfile"
)

// serviceEnv set to 1 makes the binary a service instance process
// (serviceMain) instead of running main.
const serviceEnv = "BOURSE_WASM_SERVICE"

func init() {
	if os.Getenv(serviceEnv) == "1" {
		os.Exit(serviceMain(os.Stdin, os.Stdout))
	}
}

// svcSetup is the first message on a service instance's stdin (gob).
type svcSetup struct {
	Hash        [32]byte
	Payload     []byte
	Args        []string
	Env         []string // KEY=VALUE
	MemoryBytes uint64
	Slack       uint64
}

// serviceMain runs one service instance: it compiles the module, limits
// its own address space, reports ready (a zero uint32 on stdout) and runs
// the guest with the rest of stdin as its stdin and stdout as its stdout,
// so requests and responses cross this process without a copy through
// Go code. The guest's stderr is this process' stderr (the provider keeps
// its tail as the service's log). When the guest exits, so does the
// process: the provider replaces it.
func serviceMain(in io.Reader, out *os.File) int {
	debug.SetMaxThreads(256)
	_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 256, Max: 256})
	br := bufio.NewReaderSize(in, 64<<10)
	var s svcSetup
	if err := gob.NewDecoder(br).Decode(&s); err != nil {
		fmt.Fprintln(os.Stderr, "service instance: read setup:", err)
		return 1
	}
	ctx := context.Background()
	rc := wazero.NewRuntimeConfig()
	if dir := os.Getenv(runnerCacheEnv); dir != "" {
		if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
			rc = rc.WithCompilationCache(c)
		}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		fmt.Fprintln(os.Stderr, "service instance: instantiate wasi:", err)
		return 1
	}
	if sha256.Sum256(s.Payload) != s.Hash {
		fmt.Fprintln(os.Stderr, "service instance: payload does not match its hash")
		return 1
	}
	prepared, err := wasmfile.Prepare(s.Payload, wasmfile.Limits{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "service instance: module refused:", err)
		return 1
	}
	mod, err := rt.CompileModule(ctx, prepared)
	if err != nil {
		fmt.Fprintln(os.Stderr, "service instance: compile module:", err)
		return 1
	}
	s.Payload, prepared = nil, nil
	if _, err := limitData(s.MemoryBytes+s.Slack, 0); err != nil {
		fmt.Fprintln(os.Stderr, "service instance: set limits:", err)
		return 1
	}
	alloc := &allocator{limit: s.MemoryBytes}
	ctx = experimental.WithMemoryAllocator(ctx, alloc)
	mc := wazero.NewModuleConfig().WithName("").
		WithArgs(append([]string{"service"}, s.Args...)...).
		WithStdin(br).WithStdout(out).WithStderr(os.Stderr).
		WithSysWalltime().WithSysNanotime().WithSysNanosleep().
		WithRandSource(rand.Reader)
	for _, kv := range s.Env {
		k, v, _ := strings.Cut(kv, "=")
		mc = mc.WithEnv(k, v)
	}
	var ready [4]byte
	binary.BigEndian.PutUint32(ready[:], 0)
	if _, err := out.Write(ready[:]); err != nil {
		return 1
	}
	inst, err := rt.InstantiateModule(ctx, mod, mc)
	if inst != nil {
		_ = inst.Close(context.Background())
	}
	var exitErr *sys.ExitError
	switch {
	case alloc.refused.Load():
		fmt.Fprintf(os.Stderr, "service instance: out of memory: the %d MiB limit was reached (%v)\n", s.MemoryBytes>>20, err)
	case err == nil:
		fmt.Fprintln(os.Stderr, "service instance: the module returned")
	case errors.As(err, &exitErr):
		fmt.Fprintf(os.Stderr, "service instance: the module exited with code %d\n", exitErr.ExitCode())
	default:
		fmt.Fprintf(os.Stderr, "service instance: trap: %v\n", err)
	}
	return 3
}
