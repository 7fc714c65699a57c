package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
	"github.com/bourse-net/bourse/wallet"
	"github.com/prometheus/client_golang/prometheus"
)

const token = "s3cret-token"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type harness struct {
	b   *apitest.Backend
	srv *httpapi.Server
	ts  *httptest.Server
	c   *api.Client
}

func start(t *testing.T, b *apitest.Backend, opts httpapi.Options) *harness {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	srv, err := httpapi.New(b, token, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		ts.Close()
	})
	c, err := api.NewClient(ts.URL, token, ts.Client())
	if err != nil {
		t.Fatal(err)
	}
	return &harness{b: b, srv: srv, ts: ts, c: c}
}

// raw sends a request and returns status, body and headers.
func (h *harness) raw(t *testing.T, method, path, auth, ctype string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, h.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

// errorOf decodes a JSON error body, failing if it is not one.
func errorOf(t *testing.T, body []byte) api.Error {
	t.Helper()
	var eb api.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("not a JSON error body (%v): %s", err, body)
	}
	return eb.Error
}

// everyRoute lists a request for each route, valid apart from auth.
var everyRoute = []struct{ method, path, body string }{
	{"GET", "/v1/status", ""},
	{"GET", "/v1/chain/blocks/latest", ""},
	{"GET", "/v1/chain/blocks/3", ""},
	{"GET", "/v1/chain/txs/" + strings.Repeat("ab", 32), ""},
	{"GET", "/v1/chain/validators", ""},
	{"GET", "/v1/accounts/" + addr(1).String(), ""},
	{"GET", "/v1/market/offers", ""},
	{"GET", "/v1/market/bids", ""},
	{"GET", "/v1/market/matches", ""},
	{"GET", "/v1/market/matches/" + strings.Repeat("cd", 32), ""},
	{"GET", "/v1/market/stats", ""},
	{"POST", "/v1/jobs", ""},
	{"POST", "/v1/jobs/dry-run", `{"payload":"a","max_price":1}`},
	{"GET", "/v1/jobs", ""},
	{"GET", "/v1/jobs/j1", ""},
	{"GET", "/v1/jobs/j1/logs", ""},
	{"GET", "/v1/jobs/j1/result", ""},
	{"POST", "/v1/jobs/j1/cancel", ""},
	{"POST", "/v1/wallet/send", `{"to":"` + addr(2).String() + `","amount":5}`},
	{"GET", "/v1/provider", ""},
	{"POST", "/v1/provider/register", `{"collateral":5}`},
	{"POST", "/v1/stake/bond", `{"amount":5}`},
	{"POST", "/v1/stake/unbond", `{"amount":5}`},
	{"GET", "/v1/events", ""},
	{"GET", "/metrics", ""},
	{"GET", "/v1/openapi.yaml", ""},
	{"GET", "/v1/nope", ""},
}

func addr(i byte) wallet.Address {
	seed := make([]byte, 32)
	seed[0] = i
	k, err := wallet.KeyFromSeed(seed)
	if err != nil {
		panic(err)
	}
	return k.Address()
}

func TestUnauthorized(t *testing.T) {
	var calls atomic.Int64
	b := &apitest.Backend{StatusFn: func(context.Context) (api.Status, error) {
		calls.Add(1)
		return api.Status{}, nil
	}}
	reg := prometheus.NewRegistry()
	h := start(t, b, httpapi.Options{Gatherer: reg, Registerer: reg})
	auths := []string{"", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, "bearer " + token, token}
	for _, r := range everyRoute {
		for _, a := range auths {
			code, body, hdr := h.raw(t, r.method, r.path, a, "application/json", []byte(r.body))
			if code != http.StatusUnauthorized {
				t.Fatalf("%s %s with auth %q: %d, want 401", r.method, r.path, a, code)
			}
			if e := errorOf(t, body); e.Code != api.CodeUnauthorized || !strings.Contains(e.Message, "api.token") {
				t.Fatalf("%s %s: error %+v", r.method, r.path, e)
			}
			if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%s %s: no WWW-Authenticate", r.method, r.path)
			}
		}
	}
	if calls.Load() != 0 {
		t.Fatalf("backend called %d times without auth", calls.Load())
	}
	if code, _, _ := h.raw(t, "GET", "/v1/status", "Bearer "+token, "", nil); code != 200 || calls.Load() != 1 {
		t.Fatalf("right token: %d, calls %d", code, calls.Load())
	}
	if code, body, _ := h.raw(t, "GET", "/metrics", "Bearer "+token, "", nil); code != 200 || !bytes.Contains(body, []byte(`bourse_api_requests_total{code="401",route="GET /v1/status"}`)) {
		t.Fatalf("metrics with token: %d %s", code, body)
	}
}

func TestNewRefusesEmptyToken(t *testing.T) {
	if _, err := httpapi.New(&apitest.Backend{}, " ", httpapi.Options{}); err == nil {
		t.Fatal("empty token accepted")
	}
	if _, err := httpapi.New(nil, token, httpapi.Options{}); err == nil {
		t.Fatal("nil backend accepted")
	}
}

func TestBadJSON(t *testing.T) {
	var called atomic.Bool
	b := &apitest.Backend{
		SendFn: func(context.Context, wallet.Address, uint64) (api.TxResult, error) {
			called.Store(true)
			return api.TxResult{}, nil
		},
		BondFn: func(context.Context, uint64) (api.TxResult, error) { called.Store(true); return api.TxResult{}, nil },
		ProviderRegisterFn: func(context.Context, uint64) (api.TxResult, error) {
			called.Store(true)
			return api.TxResult{}, nil
		},
		DryRunFn: func(context.Context, api.JobSpec) (api.DryRun, error) { called.Store(true); return api.DryRun{}, nil },
	}
	h := start(t, b, httpapi.Options{})
	good := addr(3).String()
	cases := []struct {
		name, path, ctype, body string
		status                  int
		msg                     string
	}{
		{"garbage", "/v1/wallet/send", "application/json", `{"to": "x", amount}`, 400, "invalid JSON at byte"},
		{"not json at all", "/v1/stake/bond", "application/json", `hello`, 400, "invalid JSON"},
		{"truncated", "/v1/stake/bond", "application/json", `{"amount": 1`, 400, "unexpected end"},
		{"empty", "/v1/stake/bond", "application/json", ``, 400, "empty request body"},
		{"unknown field", "/v1/wallet/send", "application/json", `{"to":"` + good + `","amount":1,"memo":"x"}`, 400, `unknown field "memo"`},
		{"wrong type", "/v1/stake/bond", "application/json", `{"amount":"ten"}`, 400, `field "amount"`},
		{"negative amount", "/v1/stake/bond", "application/json", `{"amount":-1}`, 400, `field "amount"`},
		{"array", "/v1/stake/bond", "application/json", `[1,2]`, 400, "want an object"},
		{"trailing", "/v1/stake/bond", "application/json", `{"amount":1}{"amount":2}`, 400, "data after"},
		{"zero amount", "/v1/stake/bond", "application/json", `{"amount":0}`, 400, "must be positive"},
		{"zero collateral", "/v1/provider/register", "", `{"collateral":0}`, 400, "must be positive"},
		{"bad address", "/v1/wallet/send", "application/json", `{"to":"bo1nope","amount":1}`, 400, `to "bo1nope"`},
		{"wrong content type", "/v1/stake/bond", "text/plain", `{"amount":1}`, 415, "application/json"},
		{"bad spec", "/v1/jobs/dry-run", "application/json", `{"executor":"jvm","payload":"a","max_price":1}`, 400, "unknown executor"},
		{"spec unknown field", "/v1/jobs/dry-run", "application/json", `{"payload":"a","max_price":1,"x":1}`, 400, "field x not found"},
		{"too big", "/v1/stake/bond", "application/json", `{"amount":1` + strings.Repeat(" ", 1<<20) + `}`, 413, "1 MiB limit"},
		{"body on cancel", "/v1/jobs/abc/cancel", "", `{"force":true}`, 400, "takes no request body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body, _ := h.raw(t, "POST", c.path, "Bearer "+token, c.ctype, []byte(c.body))
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, body)
			}
			e := errorOf(t, body)
			if !strings.Contains(e.Message, c.msg) {
				t.Fatalf("message %q lacks %q", e.Message, c.msg)
			}
			if called.Load() {
				t.Fatal("backend was called with bad input")
			}
		})
	}
}

func TestBadPathsAndQueries(t *testing.T) {
	h := start(t, &apitest.Backend{}, httpapi.Options{})
	cases := []struct {
		method, path string
		status       int
		code, msg    string
	}{
		{"GET", "/v1/chain/blocks/minus1", 400, api.CodeBadRequest, "block height"},
		{"GET", "/v1/chain/blocks/-1", 400, api.CodeBadRequest, "block height"},
		{"GET", "/v1/chain/txs/xyz", 400, api.CodeBadRequest, "64 hex digits"},
		{"GET", "/v1/accounts/nobody", 400, api.CodeBadRequest, "address"},
		{"GET", "/v1/jobs/a.b", 400, api.CodeBadRequest, "job id"},
		{"GET", "/v1/jobs?state=sleeping", 400, api.CodeBadRequest, "unknown job state"},
		{"GET", "/v1/jobs?limit=x", 400, api.CodeBadRequest, "limit"},
		{"GET", "/v1/market/matches?from=9&to=3", 400, api.CodeBadRequest, "above"},
		{"GET", "/v1/market/stats?from=-2", 400, api.CodeBadRequest, "from"},
		{"GET", "/v1/nothing", 404, api.CodeNotFound, "no such endpoint"},
		{"GET", "/", 404, api.CodeNotFound, "no such endpoint"},
		{"DELETE", "/v1/status", 405, api.CodeMethodNotAllowed, "use GET"},
		{"GET", "/v1/wallet/send", 405, api.CodeMethodNotAllowed, "use POST"},
		{"GET", "/metrics", 503, api.CodeUnavailable, "no metrics"},
	}
	for _, c := range cases {
		code, body, _ := h.raw(t, c.method, c.path, "Bearer "+token, "", nil)
		if code != c.status {
			t.Errorf("%s %s: %d, want %d (%s)", c.method, c.path, code, c.status, body)
			continue
		}
		if e := errorOf(t, body); e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s %s: %+v, want %s containing %q", c.method, c.path, e, c.code, c.msg)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	var mode atomic.Int64
	errs := []struct {
		err    error
		status int
		code   string
		target error
	}{
		{fmt.Errorf("block 9: %w", api.ErrNotFound), 404, api.CodeNotFound, api.ErrNotFound},
		{fmt.Errorf("apply: %w", api.BadRequest("height %d is odd", 9)), 400, api.CodeBadRequest, api.ErrBadRequest},
		{fmt.Errorf("cancel job: %w", api.ErrConflict), 409, api.CodeConflict, api.ErrConflict},
		{fmt.Errorf("provider: %w", api.ErrUnavailable), 503, api.CodeUnavailable, api.ErrUnavailable},
		{errors.New("disk on fire"), 500, api.CodeInternal, nil},
	}
	b := &apitest.Backend{BlockFn: func(context.Context, uint64) (api.Block, error) {
		i := mode.Load()
		if i == int64(len(errs)) {
			panic("backend bug")
		}
		return api.Block{}, errs[i].err
	}}
	h := start(t, b, httpapi.Options{})
	for i, e := range errs {
		mode.Store(int64(i))
		_, err := h.c.Block(context.Background(), 9)
		var ae *api.Error
		if !errors.As(err, &ae) {
			t.Fatalf("%v: client error %T %v", e.err, err, err)
		}
		if ae.Status != e.status || ae.Code != e.code || ae.Message != e.err.Error() {
			t.Errorf("%v: got %+v, want %d %s", e.err, ae, e.status, e.code)
		}
		if e.target != nil && !errors.Is(err, e.target) {
			t.Errorf("%v: errors.Is(%v) false", e.err, e.target)
		}
	}
	mode.Store(int64(len(errs)))
	_, err := h.c.Block(context.Background(), 9)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 500 || ae.Message != "internal error" {
		t.Fatalf("panic: %v", err)
	}
	// The server still answers afterwards.
	mode.Store(0)
	if _, err := h.c.Block(context.Background(), 9); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("after panic: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	b := &apitest.Backend{StatusFn: func(ctx context.Context) (api.Status, error) {
		<-ctx.Done()
		return api.Status{}, fmt.Errorf("status: %w", ctx.Err())
	}}
	h := start(t, b, httpapi.Options{RequestTimeout: 20 * time.Millisecond})
	_, err := h.c.Status(context.Background())
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusGatewayTimeout || ae.Code != api.CodeTimeout {
		t.Fatalf("slow backend: %v", err)
	}
}

func wasmModule(extra string) []byte { return apitest.WasmModule(extra) }

func multipartBody(t *testing.T, parts map[string][]byte) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, name := range api.SortedKeys(parts) {
		w, err := mw.CreateFormField(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(parts[name])
	}
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

func TestSubmitJob(t *testing.T) {
	var got struct {
		spec    api.JobSpec
		payload []byte
		calls   int
	}
	b := &apitest.Backend{SubmitJobFn: func(_ context.Context, s api.JobSpec, p []byte) (api.Job, error) {
		got.spec, got.payload = s, p
		got.calls++
		return api.Job{ID: "j1", State: api.StateBidding, Spec: s}, nil
	}}
	const maxUpload = 4 << 10
	h := start(t, b, httpapi.Options{MaxUpload: maxUpload})
	spec := api.JobSpec{Name: "hello", Payload: "hello.wasm", MaxPrice: 100, Args: []string{"world"}}.WithDefaults()
	payload := wasmModule("code")
	job, err := h.c.SubmitJob(context.Background(), spec, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	if job.ID != "j1" || job.State != api.StateBidding || !reflect.DeepEqual(got.spec, spec) || !bytes.Equal(got.payload, payload) {
		t.Fatalf("job %+v; backend got %+v %q", job, got.spec, got.payload)
	}

	specJSON, _ := json.Marshal(spec)
	dockerJSON := []byte(`{"executor":"docker","image":"x:1","max_price":5}`)
	cases := []struct {
		name   string
		parts  map[string][]byte
		ctype  string
		status int
		msg    string
	}{
		{"no spec", map[string][]byte{"payload": payload}, "", 400, `missing the "spec" part`},
		{"bad spec yaml", map[string][]byte{"spec": []byte("{{{"), "payload": payload}, "", 400, "job spec"},
		{"spec unknown executor", map[string][]byte{"spec": []byte(`{"executor":"jvm","payload":"a","max_price":1}`), "payload": payload}, "", 400, "unknown executor"},
		{"negative cpu", map[string][]byte{"spec": []byte(`{"payload":"a","max_price":1,"resources":{"cpu":-5,"memory":1}}`), "payload": payload}, "", 400, "negative"},
		{"not wasm", map[string][]byte{"spec": specJSON, "payload": []byte("MZ\x90\x00 not wasm")}, "", 400, "not a WebAssembly"},
		{"missing payload", map[string][]byte{"spec": specJSON}, "", 400, "needs a WebAssembly module"},
		{"docker payload that is no image tarball", map[string][]byte{"spec": dockerJSON, "payload": payload}, "", 400, "not a tar archive"},
		{"extra part", map[string][]byte{"spec": specJSON, "payload": payload, "notes": []byte("x")}, "", 400, "unknown multipart part"},
		{"oversize payload", map[string][]byte{"spec": specJSON, "payload": wasmModule(strings.Repeat("x", maxUpload))}, "", 413, "4 KiB limit"},
		{"oversize spec", map[string][]byte{"spec": bytes.Repeat([]byte(" "), api.MaxSpecSize+1), "payload": payload}, "", 413, "job spec is larger"},
		{"json instead of multipart", nil, "application/json", 415, "multipart/form-data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got.calls = 0
			body, ct := multipartBody(t, c.parts)
			if c.ctype != "" {
				body, ct = specJSON, c.ctype
			}
			code, resp, _ := h.raw(t, "POST", "/v1/jobs", "Bearer "+token, ct, body)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, resp)
			}
			if e := errorOf(t, resp); !strings.Contains(e.Message, c.msg) {
				t.Fatalf("message %q lacks %q", e.Message, c.msg)
			}
			if got.calls != 0 {
				t.Fatal("backend SubmitJob called with bad input")
			}
		})
	}
	// Docker jobs need no payload part.
	var dspec api.JobSpec
	json.Unmarshal(dockerJSON, &dspec)
	if _, err := h.c.SubmitJob(context.Background(), dspec.WithDefaults(), nil); err != nil || got.payload != nil {
		t.Fatalf("docker submit: %v, payload %q", err, got.payload)
	}
}

func TestJobResult(t *testing.T) {
	content := []byte("the answer is 42\n")
	sum := sha256.Sum256(content)
	var lie atomic.Bool
	b := &apitest.Backend{JobResultFn: func(_ context.Context, id string) (io.ReadCloser, api.ResultInfo, error) {
		switch id {
		case "pending":
			return nil, api.ResultInfo{}, fmt.Errorf("job %s has no result yet: %w", id, api.ErrConflict)
		case "gone":
			return nil, api.ResultInfo{}, fmt.Errorf("job %s: %w", id, api.ErrNotFound)
		}
		body := content
		if lie.Load() {
			body = []byte("the answer is 43\n")
		}
		return io.NopCloser(bytes.NewReader(body)), api.ResultInfo{Size: int64(len(body)), Hash: hex.EncodeToString(sum[:])}, nil
	}}
	h := start(t, b, httpapi.Options{})
	ctx := context.Background()
	rc, info, err := h.c.JobResult(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(data, content) || info.Hash != hex.EncodeToString(sum[:]) || info.Size != int64(len(content)) {
		t.Fatalf("result %q %+v %v", data, info, err)
	}
	lie.Store(true)
	rc, _, err = h.c.JobResult(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, api.ErrResultCorrupt) {
		t.Fatalf("tampered result read: %v", err)
	}
	if _, _, err := h.c.JobResult(ctx, "pending"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("pending: %v", err)
	}
	if _, _, err := h.c.JobResult(ctx, "gone"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("gone: %v", err)
	}
}

func TestEvents(t *testing.T) {
	b := &apitest.Backend{}
	h := start(t, b, httpapi.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := h.c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the subscription (the handler subscribes before it answers).
	if b.Subscribers() != 1 {
		t.Fatalf("subscribers = %d after the stream opened", b.Subscribers())
	}
	want := []api.Event{
		{Type: api.EventBlock, Block: &api.Block{Height: 7, Hash: "aa", Txs: []api.TxSummary{{Hash: "bb", Type: "match"}}}},
		{Type: api.EventJob, Job: &api.Job{ID: "j1", State: api.StateMatched, Provider: addr(4).String()}},
		{Type: api.EventJob, Job: &api.Job{ID: "j1", State: api.StatePaid, Error: "multi\nline"}},
	}
	for _, ev := range want {
		if n := b.Publish(ev); n != 1 {
			t.Fatalf("published to %d subscribers", n)
		}
		got, err := stream.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normEvent(got), normEvent(ev)) {
			t.Fatalf("event\n got  %+v\n want %+v", got, ev)
		}
	}
	// Shutdown ends the stream: the client sees EOF, the backend
	// subscription is released.
	if err := h.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Next(); err == nil {
		t.Fatal("stream still open after shutdown")
	}
	stream.Close()
}

func normEvent(e api.Event) string {
	b, _ := json.Marshal(e)
	return string(b)
}

func TestServeAndShutdown(t *testing.T) {
	b := &apitest.Backend{StatusFn: func(context.Context) (api.Status, error) { return api.Status{Height: 11}, nil }}
	srv, err := httpapi.New(b, token, httpapi.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	c, _ := api.NewClient(ln.Addr().String(), token, nil)
	st, err := c.Status(context.Background())
	if err != nil || st.Height != 11 {
		t.Fatalf("status %+v %v", st, err)
	}
	stream, err := c.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	if _, err := stream.Next(); err == nil {
		t.Fatal("event stream survived the shutdown")
	}
	_, err = c.Status(context.Background())
	var ue *api.UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "is `bourse daemon` running?") {
		t.Fatalf("after shutdown: %v", err)
	}
}

func TestUnreachableMessage(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	a := ln.Addr().String()
	ln.Close()
	c, _ := api.NewClient(a, token, nil)
	c.Home = "/srv/node"
	_, err := c.Status(context.Background())
	want := "cannot reach the daemon at " + a + ": is `bourse daemon` running? (start it with `bourse daemon --home /srv/node`)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
