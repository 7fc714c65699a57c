package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
)

// hostile is job output a provider controls: clear the screen, set the
// window title, write the clipboard (OSC 52), overwrite the line, and a
// C1 escape sequence introducer.
const hostile = "\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07ok\r\tdone\n\u009b31m"

func TestTermSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text\n\tindented\n", "plain text\n\tindented\n"},
		{"héllo, 世界 ✓", "héllo, 世界 ✓"},
		{hostile, `\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07ok\x0d` + "\tdone\n" + `\u009b31m`},
		{"del\x7f nul\x00", `del\x7f nul\x00`},
		{"bad \xff utf-8", `bad \xff utf-8`},
	} {
		if got := termSafe(tc.in); got != tc.want {
			t.Errorf("termSafe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// runTerm runs the CLI with stdout and stderr taken for terminals.
func runTerm(t *testing.T, envv map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), append([]string{"bourse"}, args...), Env{
		Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Getenv:           func(k string) string { return envv[k] },
		IsTerminalWriter: func(io.Writer) bool { return true },
	})
	return out.String(), errb.String(), code
}

// A provider's escape sequences in a job's stdout and stderr reach a
// terminal escaped by 'bourse job logs'; --raw and output to a file or
// pipe keep the bytes.
func TestJobLogsCannotDriveTheTerminal(t *testing.T) {
	b := &apitest.Backend{JobLogsFn: func(_ context.Context, id string) (api.JobLogs, error) {
		return api.JobLogs{ID: id, Stdout: hostile, Stderr: "err " + hostile}, nil
	}}
	env := daemon(t, b)
	out, errs, code := runTerm(t, env, "job", "logs", "j1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if out != termSafe(hostile) || errs != "err "+termSafe(hostile) {
		t.Fatalf("terminal got stdout %q stderr %q", out, errs)
	}
	if strings.ContainsAny(out+errs, "\x1b\x07\r\u009b") {
		t.Fatalf("control characters reached the terminal: %q %q", out, errs)
	}
	out, errs, _ = runTerm(t, env, "job", "logs", "--raw", "j1")
	if out != hostile || errs != "err "+hostile {
		t.Fatalf("--raw: stdout %q stderr %q", out, errs)
	}
	out, errs, _ = run(t, env, "job", "logs", "j1") // buffers: not terminals
	if out != hostile || errs != "err "+hostile {
		t.Fatalf("to a pipe: stdout %q stderr %q", out, errs)
	}
}

// The same holds for the output 'bourse job submit --wait' shows.
func TestSubmitWaitCannotDriveTheTerminal(t *testing.T) {
	result := []byte(hostile)
	sum := sha256.Sum256(result)
	code0 := 0
	final := api.Job{ID: "job1", State: api.StatePaid, Provider: testAddr(2), Escrowed: 100, Paid: 60, Refunded: 40,
		ResultHash: hex.EncodeToString(sum[:]), ResultSize: int64(len(result)), ExitCode: &code0}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.wasm"), wasmBytes(""), 0o644)
	args := []string{"job", "submit", "--wasm", filepath.Join(dir, "a.wasm"), "--max-price", "100", "--wait"}

	env := daemon(t, newJobNode(final, result).Backend)
	out, errs, code := runTerm(t, env, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	if !strings.Contains(out, termSafe(hostile)) || strings.Contains(out, hostile) {
		t.Fatalf("terminal output not escaped: %q", out)
	}
	env = daemon(t, newJobNode(final, result).Backend)
	out, errs, code = runTerm(t, env, append(args, "--raw")...)
	if code != 0 || !strings.Contains(out, hostile) {
		t.Fatalf("--raw: exit %d %s: %q", code, errs, out)
	}
	env = daemon(t, newJobNode(final, result).Backend)
	out, errs, code = run(t, env, args...)
	if code != 0 || !strings.Contains(out, hostile) {
		t.Fatalf("to a pipe: exit %d %s: %q", code, errs, out)
	}
}
