//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/testnet/netns"
)

// guideHost is one machine of docs/operators.md: a network namespace with
// its own address, and a home in it.
type guideHost struct {
	name, home string
	i          int
}

// TestOperatorsGuideFormsANetworkOnNamespaces follows docs/operators.md
// as three new operators would, each on a machine of its own (a network
// namespace with its own address: real packets between them), with only
// the commands the guide gives: init with announced addresses, node id
// exported as JSON, one genesis assembled from the exports, its hash
// compared, init --genesis --bootstrap, the daemons started, providers
// registered, and the hello job submitted with --wait until it is paid.
func TestOperatorsGuideFormsANetworkOnNamespaces(t *testing.T) {
	needBinary(t)
	if err := netns.Available(); err != nil {
		t.Skip("namespace testnet:", err)
	}
	nt, err := netns.New(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nt.Close() })
	dir := t.TempDir()
	pass := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(pass, []byte("a long passphrase for the guide\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hosts := []guideHost{{"alpha", "", 0}, {"beta", "", 1}, {"gamma", "", 2}}
	for k := range hosts {
		hosts[k].home = filepath.Join(dir, hosts[k].name)
	}
	// cli runs the binary on host h (inside its namespace), as its
	// operator would, and returns stdout.
	cli := func(h guideHost, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		full := append([]string{binary, "--home", h.home}, args...)
		cmd := nt.Command(h.i, full...)
		cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
		cmd.Env = append(os.Environ(), "BOURSE_HOME=", "BOURSE_API=", "BOURSE_API_TOKEN=", "BOURSE_PASSPHRASE=a long passphrase for the guide")
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: bourse %s: %v\nstdout:\n%s\nstderr:\n%s", h.name, strings.Join(args, " "), err, out.String(), errOut.String())
		}
		return out.String()
	}

	// 1. Create a home on every machine, announcing its address.
	for _, h := range hosts {
		addr := nt.Host(h.i).Addr
		args := []string{"init", "--chain-id", "acme-1", "--moniker", h.name,
			"--announce", "/ip4/" + addr + "/tcp/4001", "--announce", "/ip4/" + addr + "/udp/4001/quic-v1"}
		if h.name != "alpha" {
			args = append(args, "--provider")
		}
		cli(h, args...)
	}
	// 2. Export each node's identity.
	type identity struct {
		PeerID         string   `json:"peer_id"`
		BootstrapAddrs []string `json:"bootstrap_addrs"`
	}
	ids := map[string]identity{}
	for _, h := range hosts {
		raw := cli(h, "node", "id", "--json")
		var id identity
		if err := json.Unmarshal([]byte(raw), &id); err != nil || id.PeerID == "" || len(id.BootstrapAddrs) == 0 {
			t.Fatalf("%s: node id --json: %v\n%s", h.name, err, raw)
		}
		for _, a := range id.BootstrapAddrs {
			if !strings.Contains(a, "/ip4/"+nt.Host(h.i).Addr+"/") {
				t.Fatalf("%s announces %s, not its own address %s", h.name, a, nt.Host(h.i).Addr)
			}
		}
		ids[h.name] = id
		if err := os.WriteFile(filepath.Join(dir, h.name+".json"), []byte(raw), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// 3. Alpha assembles the genesis (local timeouts: one LAN).
	alpha := hosts[0]
	gen := filepath.Join(dir, "genesis.json")
	cli(alpha, "genesis", "new", gen, "--chain-id", "acme-1", "--timeouts", "local")
	for _, h := range hosts {
		cli(alpha, "genesis", "add-validator", gen, "--from", filepath.Join(dir, h.name+".json"), "--stake", "1000000", "--balance", "1000000000")
	}
	cli(alpha, "genesis", "validate", gen)
	// 4. Every operator computes the hash of the file it received.
	want := strings.TrimSpace(cli(alpha, "genesis", "hash", gen))
	for _, h := range hosts[1:] {
		copyFile(t, gen, filepath.Join(dir, h.name+"-genesis.json"))
		if got := strings.TrimSpace(cli(h, "genesis", "hash", filepath.Join(dir, h.name+"-genesis.json"))); got != want {
			t.Fatalf("%s computes genesis hash %s, alpha %s", h.name, got, want)
		}
	}
	// 5. Join: the genesis and the others' bootstrap addresses.
	for _, h := range hosts {
		args := []string{"init", "--genesis", gen}
		for _, o := range hosts {
			if o.name != h.name {
				args = append(args, "--bootstrap", ids[o.name].BootstrapAddrs[0])
			}
		}
		cli(h, args...)
	}
	// 6. Start every daemon.
	for _, h := range hosts {
		log, err := os.Create(filepath.Join(dir, h.name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := nt.Command(h.i, binary, "--home", h.home, "daemon", "--passphrase-file", pass)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.Env = append(os.Environ(), "BOURSE_HOME=", "BOURSE_API=", "BOURSE_PASSPHRASE=")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			log.Close()
			if t.Failed() {
				b, _ := os.ReadFile(log.Name())
				t.Logf("%s daemon log (tail):\n%s", h.name, tail(string(b), 3000))
			}
		})
	}
	// Blocks start once all three validators are connected.
	deadline := time.Now().Add(2 * time.Minute)
	for _, h := range hosts {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			cmd := nt.Command(h.i, binary, "--home", h.home, "chain", "status", "--json")
			cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
			cmd.Env = append(os.Environ(), "BOURSE_HOME=", "BOURSE_API=", "BOURSE_API_TOKEN=")
			out, err := cmd.Output()
			cancel()
			var st api.Status
			if err == nil && json.Unmarshal(out, &st) == nil && st.Height >= 3 && st.Peers >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: chain status %s (%v): the network did not form", h.name, out, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// 7. Beta and gamma sell capacity; alpha runs the hello job.
	for _, h := range hosts[1:] {
		cli(h, "provider", "register", "--collateral", "5000", "--json")
	}
	for {
		var ps api.ProviderStatus
		raw := cli(hosts[1], "provider", "status", "--json")
		if err := json.Unmarshal([]byte(raw), &ps); err == nil && ps.Registered && ps.Offer != nil {
			break
		}
		if time.Now().After(deadline.Add(time.Minute)) {
			t.Fatalf("beta never offered: %s", raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	raw := cli(alpha, "job", "submit", "--wasm", filepath.Join(helloDir, "hello.wasm"), "--arg", "world",
		"--cpu", "250", "--max-price", "2000000", "--wait", "--json")
	var job api.Job
	if err := json.Unmarshal([]byte(lastJSON(raw)), &job); err != nil {
		t.Fatalf("job submit --wait --json: %v\n%s", err, raw)
	}
	if job.State != api.StatePaid || job.Paid == 0 {
		t.Fatalf("the guide's job ended %s (paid %d): %s", job.State, job.Paid, job.Error)
	}
	t.Logf("job %s paid %d to %s over real packets", job.ID, job.Paid, job.Provider)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lastJSON is the last JSON object of out (--wait --json may print one
// per state on the way).
func lastJSON(out string) string {
	out = strings.TrimSpace(out)
	if i := strings.LastIndex(out, "\n{"); i >= 0 {
		return out[i+1:]
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
