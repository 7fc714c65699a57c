package precompile

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/bourse-net/bourse/worker/wasm/wasmfile"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("BOURSE_PRECOMPILE_CACHE"); dir != "" {
		if err := run(dir, strings.Split(os.Getenv("BOURSE_PRECOMPILE_FILES"), "\n")); err != nil {
			fmt.Fprintln(os.Stderr, "precompile:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(dir string, files []string) error {
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return err
	}
	defer cache.Close(ctx)
	// As the WASM executor's job processes: no termination checks (a job
	// is stopped by killing its process) and the module as
	// wasmfile.Prepare gives it.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	defer rt.Close(ctx)
	for _, f := range files {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if p, err := wasmfile.Prepare(b, wasmfile.Limits{}); err == nil {
			b = p
		}
		m, err := rt.CompileModule(ctx, b)
		if err != nil {
			return fmt.Errorf("compile %s: %w", f, err)
		}
		m.Close(ctx)
	}
	return nil
}

// TestRun: the tool compiles a minimal module into the cache and rejects
// garbage.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/empty.wasm"
	bad := dir + "/bad.wasm"
	os.WriteFile(good, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	os.WriteFile(bad, []byte("garbage"), 0o644)
	if err := run(dir+"/cache", []string{good}); err != nil {
		t.Fatal(err)
	}
	if err := run(dir+"/cache", []string{bad}); err == nil {
		t.Fatal("garbage compiled")
	}
}
