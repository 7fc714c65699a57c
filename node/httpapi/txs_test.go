package httpapi_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
)

func submitBackend(got *[][]byte, commit *bool) *apitest.Backend {
	return &apitest.Backend{SubmitTxsFn: func(_ context.Context, txs [][]byte, c bool) ([]api.TxResult, error) {
		*got, *commit = txs, c
		out := make([]api.TxResult, len(txs))
		for i := range out {
			out[i] = api.TxResult{Hash: fmt.Sprint(i), Status: api.TxPending}
		}
		return out, nil
	}}
}

// The transactions and the commit flag reach the backend as sent, and the
// answer has one result per transaction.
func TestSubmitTxsRoute(t *testing.T) {
	var got [][]byte
	var commit bool
	h := start(t, submitBackend(&got, &commit), httpapi.Options{})
	txs := [][]byte{{1, 2, 3}, {4}, {5, 6}}
	rs, err := h.c.SubmitTxs(context.Background(), txs, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, txs) || !commit || len(rs) != 3 || rs[2].Hash != "2" {
		t.Fatalf("backend got %v commit %v, client got %+v", got, commit, rs)
	}
}

// Garbage bodies are refused with 400 and a reason before the backend
// sees anything: not JSON, not an object, unknown or doubled fields, a
// transaction that is not base64 or empty, no transactions, trailing data.
func TestSubmitTxsAttackGarbageBodies(t *testing.T) {
	var got [][]byte
	var commit bool
	h := start(t, submitBackend(&got, &commit), httpapi.Options{})
	for _, c := range []struct{ body, want string }{
		{`{"txs": [`, "invalid JSON"},
		{`[1,2]`, "want a JSON object"},
		{`"AQID"`, "want a JSON object"},
		{`{"txs":["AQID"],"memo":1}`, `unknown field "memo"`},
		{`{"txs":["AQID"],"txs":["AQID"]}`, `"txs" given twice`},
		{`{"txs":["not base64!"]}`, "txs[0]: not base64"},
		{`{"txs":["AQID", ""]}`, "txs[1]: empty"},
		{`{"txs":["AQID", 7]}`, "txs[1]: want a base64 string"},
		{`{"txs":"AQID"}`, "want an array"},
		{`{"txs":[]}`, "no transactions"},
		{`{"commit":true}`, "no transactions"},
		{`{"txs":["AQID"],"commit":"yes"}`, `"commit": want true or false`},
		{`{"txs":["AQID"]} {}`, "trailing data"},
		{``, "empty request body"},
	} {
		got = nil
		st, body, _ := h.raw(t, "POST", "/v1/txs", "Bearer "+token, "application/json", []byte(c.body))
		e := errorOf(t, body)
		if st != http.StatusBadRequest || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s: %d %q, want 400 with %q", c.body, st, e.Message, c.want)
		}
		if got != nil {
			t.Errorf("%s: reached the backend", c.body)
		}
	}
}

// api.MaxSubmitTxs transactions are taken; one more is refused without
// reaching the backend, however small each is; a body past
// api.MaxSubmitTxsBody is refused as too large.
func TestSubmitTxsAttackOversizedBatchAtTheBound(t *testing.T) {
	var got [][]byte
	var commit bool
	h := start(t, submitBackend(&got, &commit), httpapi.Options{})
	body := func(n int, each string) []byte {
		var b strings.Builder
		b.WriteString(`{"txs":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + each + `"`)
		}
		b.WriteString(`]}`)
		return []byte(b.String())
	}
	st, resp, _ := h.raw(t, "POST", "/v1/txs", "Bearer "+token, "application/json", body(api.MaxSubmitTxs, "AQ=="))
	if st != http.StatusOK || len(got) != api.MaxSubmitTxs {
		t.Fatalf("at the bound: %d %s, backend got %d", st, resp[:min(len(resp), 200)], len(got))
	}
	got = nil
	st, resp, _ = h.raw(t, "POST", "/v1/txs", "Bearer "+token, "application/json", body(api.MaxSubmitTxs+1, "AQ=="))
	if e := errorOf(t, resp); st != http.StatusBadRequest || !strings.Contains(e.Message, "more than 1000") || got != nil {
		t.Fatalf("one past the bound: %d %q, backend got %d", st, e.Message, len(got))
	}
	// A million tiny elements: refused at the 1001st, not held whole.
	st, resp, _ = h.raw(t, "POST", "/v1/txs", "Bearer "+token, "application/json", body(1_000_000, "AQ=="))
	if st != http.StatusRequestEntityTooLarge && st != http.StatusBadRequest {
		t.Fatalf("a million elements: %d %s", st, resp)
	}
	big := base64.StdEncoding.EncodeToString(make([]byte, api.MaxSubmitTxsBody))
	st, _, _ = h.raw(t, "POST", "/v1/txs", "Bearer "+token, "application/json", body(1, big))
	if st != http.StatusRequestEntityTooLarge {
		t.Fatalf("body past %d bytes: %d", api.MaxSubmitTxsBody, st)
	}
}

// A backend refusing the whole call (too many waiters) is a 503 with its
// reason, through the client.
func TestSubmitTxsUnavailable(t *testing.T) {
	h := start(t, &apitest.Backend{SubmitTxsFn: func(context.Context, [][]byte, bool) ([]api.TxResult, error) {
		return nil, fmt.Errorf("%w: too many waiting", api.ErrUnavailable)
	}}, httpapi.Options{})
	_, err := h.c.SubmitTxs(context.Background(), [][]byte{{1}}, true)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(ae.Message, "too many waiting") {
		t.Fatalf("got %v", err)
	}
}

// FuzzDecodeSubmitTxs: any body decodes to at most MaxSubmitTxs
// non-empty transactions or an error matching ErrBadRequest, never a
// panic.
func FuzzDecodeSubmitTxs(f *testing.F) {
	f.Add([]byte(`{"txs":["AQID"],"commit":true}`))
	f.Add([]byte(`{"txs":["AQID","",null]}`))
	f.Add([]byte(`{"commit":false,"txs":["AQID"]} x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		txs, _, err := httpapi.DecodeSubmitTxs(data)
		if err != nil {
			if !errors.Is(err, api.ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if len(txs) == 0 || len(txs) > api.MaxSubmitTxs {
			t.Fatalf("%d transactions", len(txs))
		}
		for _, tx := range txs {
			if len(tx) == 0 {
				t.Fatal("empty transaction")
			}
		}
	})
}
