package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
)

// FuzzRequests throws arbitrary bodies, content types and paths at the
// server: the answer is always a JSON error or a success, never a 5xx or a
// panic.
func FuzzRequests(f *testing.F) {
	f.Add("POST", "/v1/wallet/send", "application/json", []byte(`{"to":"bo1","amount":1}`))
	f.Add("POST", "/v1/txs", "application/json", []byte(`{"txs":["AQID"],"commit":true}`))
	f.Add("POST", "/v1/jobs", "multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"spec\"\r\n\r\n{}\r\n--x--\r\n"))
	f.Add("POST", "/v1/jobs/dry-run", "", []byte("payload: a\nmax_price: 1\n"))
	f.Add("GET", "/v1/chain/blocks/18446744073709551616", "", []byte(nil))
	f.Add("POST", "/v1/stake/bond", "application/json; charset=utf-8", []byte(`{"amount":1e99}`))
	srv, err := httpapi.New(fullBackend(nil, map[string]any{}), token, httpapi.Options{Logger: quiet, MaxUpload: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	srv2, _ := httpapi.New(&apitest.Backend{SubmitJobFn: func(context.Context, api.JobSpec, []byte) (api.Job, error) {
		return api.Job{ID: "x", State: api.StateSubmitted}, nil
	}}, token, httpapi.Options{Logger: quiet, MaxUpload: 1 << 16})
	f.Fuzz(func(t *testing.T, method, path, ctype string, body []byte) {
		if len(path) == 0 || path[0] != '/' {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://127.0.0.1"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", ctype)
		for _, s := range []*httpapi.Server{srv, srv2} {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
				t.Fatalf("%s %s (%q) %q: %d %s", method, path, ctype, body, w.Code, w.Body)
			}
			if w.Code >= 400 && !bytes.HasPrefix(w.Body.Bytes(), []byte(`{"error":{"code":`)) {
				t.Fatalf("%s %s: %d without a JSON error: %s", method, path, w.Code, w.Body)
			}
			req.Body = http.NoBody
		}
	})
}

func BenchmarkStatus(b *testing.B) {
	srv, _ := httpapi.New(fullBackend(nil, map[string]any{}), token, httpapi.Options{Logger: quiet})
	req := httptest.NewRequest("GET", "/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
