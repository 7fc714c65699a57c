// Package workertest holds the contract suite every worker.Executor
// backend must pass, the program it runs (testprog) and build helpers for
// tests that need Go programs compiled for wasip1 or natively.
package workertest

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// TestProg is the import path of the suite's program.
const TestProg = "github.com/bourse-net/bourse/worker/workertest/testprog"

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// Build compiles the Go package pkg for goos/goarch (static, CGO off) into
// dir and returns the binary's path. Builds are cached per process by
// (pkg, goos, goarch, dir), so calling it from many tests is cheap.
func Build(dir, pkg, goos, goarch string) (string, error) {
	key := strings.Join([]string{dir, pkg, goos, goarch}, "|")
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[key]; ok {
		return p, nil
	}
	sum := sha256.Sum256([]byte(key))
	out := filepath.Join(dir, fmt.Sprintf("%s-%s-%s-%x", filepath.Base(pkg), goos, goarch, sum[:4]))
	if goos == "wasip1" {
		out += ".wasm"
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s for %s/%s: %v\n%s", pkg, goos, goarch, err, b)
	}
	built[key] = out
	return out, nil
}

// CacheDir returns a wazero compilation cache directory shared by test
// runs (under the user's cache directory), so only the first run of the
// test suites pays for compiling the test programs cold. The cache is keyed
// by module hash and wazero version, so sharing it is safe.
func CacheDir() string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "bourse-test", "wazero")
}

var (
	precompiled = map[string]bool{}
	toolPath    string
)

const precompilePkg = "github.com/bourse-net/bourse/worker/workertest/precompile"

// BuildWasm builds pkg for wasip1/wasm into dir and compiles it into the
// wazero cache at cacheDir with a helper built without the race detector
// (see package precompile), so executors using cacheDir start it from the
// file cache. It returns the module's bytes.
func BuildWasm(dir, cacheDir, pkg string) ([]byte, error) {
	p, err := Build(dir, pkg, "wasip1", "wasm")
	if err != nil {
		return nil, err
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if toolPath == "" {
		out := filepath.Join(dir, "precompile.test")
		cmd := exec.Command("go", "test", "-c", "-o", out, precompilePkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build precompile tool: %v\n%s", err, b)
		}
		toolPath = out
	}
	if key := cacheDir + "|" + p; !precompiled[key] {
		cmd := exec.Command(toolPath)
		cmd.Env = append(os.Environ(), "BOURSE_PRECOMPILE_CACHE="+cacheDir, "BOURSE_PRECOMPILE_FILES="+p)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("precompile %s: %v\n%s", pkg, err, out)
		}
		precompiled[key] = true
	}
	return os.ReadFile(p)
}
