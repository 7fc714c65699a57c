package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/wallet"
)

// run calls the command line as a user would, with an injected environment.
func run(t *testing.T, envv map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), append([]string{"bourse"}, args...), Env{
		Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Getenv: func(k string) string { return envv[k] },
	})
	return out.String(), errb.String(), code
}

func init() {
	// Tests do not need expensive key derivation.
	wallet.DefaultScrypt = wallet.LightScrypt
}

func TestInitAndWalletJSON(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	env := map[string]string{"BOURSE_PASSPHRASE": "pw", "BOURSE_HOME": home}

	out, errs, code := run(t, env, "init", "--json", "--chain-id", "test-1")
	if code != 0 {
		t.Fatalf("init exit %d: %s", code, errs)
	}
	var res struct {
		Home    string `json:"home"`
		ChainID string `json:"chain_id"`
		PeerID  string `json:"peer_id"`
		Wallet  struct{ Name, Address string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("init --json: %v\n%s", err, out)
	}
	if !strings.HasPrefix(res.Wallet.Address, "bo1") || !strings.HasPrefix(res.PeerID, "12D3") {
		t.Fatalf("init --json = %s", out)
	}
	for name, mode := range map[string]os.FileMode{node.APITokenFile: 0o600, node.NodeKeyFile: 0o600, node.ConfigFile: 0o600} {
		st, err := os.Stat(filepath.Join(home, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v err %v", name, st.Mode().Perm(), err)
		}
	}
	cfg, err := node.LoadConfig(filepath.Join(home, node.ConfigFile))
	if err != nil || cfg.ChainID != "test-1" {
		t.Fatalf("written config: %+v %v", cfg.ChainID, err)
	}

	// Global flags work after the command too.
	out, errs, code = run(t, map[string]string{"BOURSE_PASSPHRASE": "pw"}, "wallet", "new", "--json", "--home", home, "bob")
	if code != 0 {
		t.Fatalf("wallet new exit %d: %s", code, errs)
	}
	var k keyJSON
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.Name != "bob" || !strings.HasPrefix(k.Address, "bo1") {
		t.Fatalf("wallet new --json = %q (%v)", out, err)
	}
	if strings.Contains(out, "seed") || strings.Contains(out, "private") {
		t.Fatalf("wallet new printed secret material: %s", out)
	}

	out, _, code = run(t, env, "--json", "wallet", "list")
	var keys []keyJSON
	if code != 0 || json.Unmarshal([]byte(out), &keys) != nil || len(keys) != 2 || keys[0].Name != "bob" || keys[1].Name != "default" {
		t.Fatalf("wallet list = %s", out)
	}
	out, _, code = run(t, env, "wallet", "address")
	if code != 0 || strings.TrimSpace(out) != res.Wallet.Address {
		t.Fatalf("wallet address = %q, want %s", out, res.Wallet.Address)
	}

	// The passphrase opens the key that init made; another does not.
	ks := node.Keystore(home)
	if _, err := ks.Unlock("default", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Unlock("default", "nope"); err == nil {
		t.Fatal("wrong passphrase accepted")
	}
}

func TestErrorsForPeople(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	withPass := map[string]string{"BOURSE_PASSPHRASE": "pw", "BOURSE_HOME": home}
	noPass := map[string]string{"BOURSE_HOME": home}
	cases := []struct {
		name  string
		env   map[string]string
		args  []string
		code  int
		needs string // in stderr
	}{
		{"unknown command", noPass, []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown subcommand", noPass, []string{"wallet", "frob"}, 2, `unknown command "frob" for 'bourse wallet'`},
		{"unknown flag", noPass, []string{"wallet", "list", "--frob"}, 2, "see 'bourse wallet list --help'"},
		{"no home", noPass, []string{"wallet", "list"}, 1, "run 'bourse init' first"},
		{"no passphrase", noPass, []string{"init"}, 1, "set BOURSE_PASSPHRASE or pass --passphrase-file"},
		{"init takes no args", withPass, []string{"init", "extra"}, 2, "no arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := run(t, c.env, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errs)
			}
			if !strings.Contains(errs, c.needs) {
				t.Fatalf("stderr %q lacks %q", errs, c.needs)
			}
			if strings.Count(strings.TrimSpace(errs), "\n") > 0 || strings.Contains(errs, "goroutine") {
				t.Fatalf("error is not one line: %q", errs)
			}
			if out != "" {
				t.Fatalf("stdout on error: %q", out)
			}
		})
	}

	// An existing home is refused and left untouched.
	if _, errs, code := run(t, withPass, "init"); code != 0 {
		t.Fatal(errs)
	}
	before, _ := os.ReadFile(filepath.Join(home, node.APITokenFile))
	_, errs, code := run(t, withPass, "init")
	if code != 1 || !strings.Contains(errs, "already initialised") {
		t.Fatalf("second init: exit %d %q", code, errs)
	}
	after, _ := os.ReadFile(filepath.Join(home, node.APITokenFile))
	if !bytes.Equal(before, after) {
		t.Fatal("second init changed the api token")
	}
	// A wrong passphrase is reported as such.
	if _, err := node.Keystore(home).Unlock("default", "wrong"); err == nil {
		t.Fatal("wrong passphrase unlocked")
	}
}

func TestPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "pass")
	if err := os.WriteFile(pf, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "h")
	if _, errs, code := run(t, nil, "init", "--home", home, "--passphrase-file", pf); code != 0 {
		t.Fatal(errs)
	}
	if _, err := node.Keystore(home).Unlock("default", "from-file"); err != nil {
		t.Fatalf("key not encrypted with the file's passphrase: %v", err)
	}
}

func TestVersionJSON(t *testing.T) {
	out, _, code := run(t, nil, "version", "--json")
	var v versionInfo
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Version == "" || v.Go == "" {
		t.Fatalf("version --json = %q", out)
	}
}

func TestCompletion(t *testing.T) {
	out, _, code := run(t, nil, "completion", "bash")
	if code != 0 || !strings.Contains(out, "complete -o bashdefault") {
		t.Fatalf("completion bash = %d %q", code, out)
	}
	// The app answers urfave's completion protocol with its commands
	// (urfave/cli peeks at os.Args to tell flag completion from command
	// completion, so the test sets it as a shell would).
	saved := os.Args
	os.Args = []string{"bourse", "--generate-bash-completion"}
	defer func() { os.Args = saved }()
	out, _, code = run(t, nil, "--generate-bash-completion")
	if code != 0 || !strings.Contains(out, "job") || !strings.Contains(out, "testnet") {
		t.Fatalf("completions = %d %q", code, out)
	}
	if _, errs, code := run(t, nil, "completion", "fish"); code != 2 || !strings.Contains(errs, "bash or zsh") {
		t.Fatalf("completion fish = %d %q", code, errs)
	}
}
