package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/testnet"
)

// Built once by TestMain.
var (
	binary   string // the bourse binary
	helloDir string // job.yaml and hello.wasm
	buildErr error
)

func TestMain(m *testing.M) {
	flag.Parse() // testing.Short is only known after flag parsing
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	tmp, err := os.MkdirTemp("", "bourse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildErr = build(tmp)
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// build compiles the binary and the hello example into tmp.
func build(tmp string) error {
	root := repoRoot()
	binary = filepath.Join(tmp, "bourse")
	cmd := exec.Command("go", "build", "-o", binary, "./cmd/bourse")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build bourse: %v\n%s", err, out)
	}
	helloDir = filepath.Join(tmp, "hello")
	if err := os.MkdirAll(helloDir, 0o755); err != nil {
		return err
	}
	cmd = exec.Command("go", "build", "-o", filepath.Join(helloDir, "hello.wasm"), "./examples/hello")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build examples/hello: %v\n%s", err, out)
	}
	spec, err := os.ReadFile(filepath.Join(root, "examples", "hello", "job.yaml"))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(helloDir, "job.yaml"), spec, 0o644)
}

// needBinary skips in -short mode and fails when the build failed.
func needBinary(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: builds the binary and runs a 4-node network as processes; skipped with -short")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// net4 is a running testnet driven through the CLI.
type net4 struct {
	t   testing.TB
	dir string
	nw  *testnet.Network
	cl  []*api.Client
}

// bourse runs the CLI and returns its stdout; a non-zero exit fails the
// test with stderr.
func bourse(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, err := run(args...)
	if err != nil {
		t.Fatalf("bourse %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func run(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Env = append(os.Environ(), "BOURSE_HOME=", "BOURSE_API=", "BOURSE_PASSPHRASE=")
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// freeBase picks a port range nobody uses, from a random start (several
// engineers' tests share the machine).
func freeBase(t testing.TB) int {
	seed := time.Now().UnixNano()
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	for range 100 {
		base := 10000 + r.IntN(22000) // below the kernel's ephemeral range (32768–60999 here)
		free := true
		for i := range 4 {
			for _, p := range []int{base + i, base + 100 + i, base + 200 + i} {
				l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
				if err != nil {
					free = false
					break
				}
				l.Close()
				u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
				if err != nil {
					free = false
					break
				}
				u.Close()
			}
		}
		if free {
			return base
		}
	}
	t.Fatalf("no free ports (seed %d)", seed)
	return 0
}

// up starts a 4-node testnet with `bourse testnet up --detach` (and
// flags) and stops it when the test ends (showing the logs if the test
// failed).
func up(t testing.TB, flags ...string) *net4 {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tn")
	out := bourse(t, append([]string{"testnet", "up", "-n", "4", "--dir", dir, "--detach", "--base-port", strconv.Itoa(freeBase(t)), "--json"}, flags...)...)
	var nw testnet.Network
	if err := json.Unmarshal([]byte(out), &nw); err != nil {
		t.Fatalf("testnet up --json: %v\n%s", err, out)
	}
	n := &net4{t: t, dir: dir, nw: &nw}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range nw.Nodes {
				t.Logf("--- %s log tail ---\n%s", nd.Name, testnet.LogTail(nd.Home, 30))
			}
		}
		if _, errOut, err := run("testnet", "down", "--dir", dir, "--grace", "5s"); err != nil {
			t.Errorf("testnet down: %v\n%s", err, errOut)
		}
	})
	for _, nd := range nw.Nodes {
		cl, err := testnet.Client(nd)
		if err != nil {
			t.Fatal(err)
		}
		n.cl = append(n.cl, cl)
	}
	return n
}

func (n *net4) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	n.t.Cleanup(cancel)
	return ctx
}

// height returns node i's height, or ok false when it does not answer.
func (n *net4) height(i int) (uint64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := n.cl[i].Status(ctx)
	if err != nil {
		return 0, false
	}
	return st.Height, true
}

// waitHeight waits until every node in idx reaches h.
func (n *net4) waitHeight(h uint64, within time.Duration, idx ...int) {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var lag []string
		for _, i := range idx {
			if got, ok := n.height(i); !ok || got < h {
				lag = append(lag, fmt.Sprintf("node%d at %d (up %v)", i, got, ok))
			}
		}
		if len(lag) == 0 {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("waited %s for height %d: %v", within, h, lag)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// maxHeight is the highest height among the answering nodes in idx.
func (n *net4) maxHeight(idx ...int) uint64 {
	var m uint64
	for _, i := range idx {
		if h, ok := n.height(i); ok && h > m {
			m = h
		}
	}
	return m
}

// noFork checks that the nodes in idx hold the same block at every height
// from 1 to the lowest of their heights (every height when few, else
// every height of the last 200 and a sample before).
func (n *net4) noFork(idx ...int) {
	n.t.Helper()
	low := uint64(1 << 62)
	for _, i := range idx {
		h, ok := n.height(i)
		if !ok {
			n.t.Fatalf("node%d does not answer", i)
		}
		low = min(low, h)
	}
	ctx := n.ctx(time.Minute)
	for h := uint64(1); h <= low; h++ {
		if low > 200 && h+200 < low && h%7 != 0 {
			continue
		}
		var first string
		for _, i := range idx {
			b, err := n.cl[i].Block(ctx, h)
			if err != nil {
				n.t.Fatalf("node%d block %d: %v", i, h, err)
			}
			if first == "" {
				first = b.Hash
			} else if b.Hash != first {
				n.t.Fatalf("fork at height %d: node%d has %s, node%d has %s", h, idx[0], first, i, b.Hash)
			}
		}
	}
}
