package cli

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
)

// 'bourse tx send' reads hex lines, posts them in batches of at most
// MaxSubmitTxs, prints one line per transaction, and fails when the daemon
// rejected any.
func TestTxSend(t *testing.T) {
	var calls []int
	var commits []bool
	env := daemon(t, &apitest.Backend{SubmitTxsFn: func(_ context.Context, txs [][]byte, commit bool) ([]api.TxResult, error) {
		calls, commits = append(calls, len(txs)), append(commits, commit)
		out := make([]api.TxResult, len(txs))
		for i, tx := range txs {
			out[i] = api.TxResult{Hash: hex.EncodeToString(tx), Status: api.TxPending}
			if tx[0] == 0xff {
				out[i] = api.TxResult{Hash: hex.EncodeToString(tx), Status: api.TxRejected, Error: "bad signature"}
			}
		}
		return out, nil
	}})
	var lines []string
	for i := range 1500 {
		lines = append(lines, hex.EncodeToString([]byte{1, byte(i), byte(i >> 8)}))
	}
	file := filepath.Join(t.TempDir(), "txs.hex")
	if err := os.WriteFile(file, []byte("# signed elsewhere\n"+strings.Join(lines, "\n")+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := run(t, env, "tx", "send", file, "--commit")
	if code != 0 || len(calls) != 2 || calls[0] != api.MaxSubmitTxs || calls[1] != 500 || !commits[0] {
		t.Fatalf("exit %d (%s), calls %v commits %v", code, errs, calls, commits)
	}
	if n := strings.Count(out, " pending\n"); n != 1500 {
		t.Fatalf("%d pending lines:\n%.300s", n, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.hex")
	os.WriteFile(bad, []byte("01\nff01\n"), 0o600)
	out, errs, code = run(t, env, "tx", "send", bad)
	if code != 1 || !strings.Contains(out, "ff01 rejected: bad signature") || !strings.Contains(errs, "1 of 2 transactions rejected") {
		t.Fatalf("exit %d, out %q, err %q", code, out, errs)
	}
	os.WriteFile(bad, []byte("zz\n"), 0o600)
	if _, errs, code = run(t, env, "tx", "send", bad); code != 2 || !strings.Contains(errs, "line 1: not a hex-encoded transaction") {
		t.Fatalf("garbage line: exit %d, %q", code, errs)
	}
}
