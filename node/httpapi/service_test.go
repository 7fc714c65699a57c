package httpapi_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
)

// svcBackend adds the service calls to the fake backend.
type svcBackend struct {
	*apitest.Backend
	deployed []api.ServiceSpec
	module   []byte
	scaled   uint32
}

func (b *svcBackend) DeployService(_ context.Context, spec api.ServiceSpec, module []byte) (api.Service, error) {
	b.deployed, b.module = append(b.deployed, spec), module
	return api.Service{Name: spec.Name, Replicas: spec.Replicas.Initial}, nil
}
func (b *svcBackend) Services(context.Context, bool) ([]api.Service, error) { return nil, nil }
func (b *svcBackend) Service(_ context.Context, name string) (api.Service, error) {
	if name != "hello" {
		return api.Service{}, api.ErrNotFound
	}
	return api.Service{Name: name}, nil
}
func (b *svcBackend) ServiceStats(context.Context, string) (api.ServiceStats, error) {
	return api.ServiceStats{Fairness: 1}, nil
}
func (b *svcBackend) ServiceLogs(context.Context, string) (api.ServiceLogs, error) {
	return api.ServiceLogs{}, nil
}
func (b *svcBackend) ScaleService(_ context.Context, name string, n uint32) (api.Service, error) {
	b.scaled = n
	return api.Service{Name: name, Replicas: n}, nil
}
func (b *svcBackend) CloseService(_ context.Context, name string) (api.Service, error) {
	return api.Service{Name: name, Status: "closed"}, nil
}

var _ httpapi.ServiceBackend = (*svcBackend)(nil)

func svcMultipart(t *testing.T, parts map[string]string) (*bytes.Buffer, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for name, v := range parts {
		w, err := mw.CreateFormField(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(v))
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func TestServiceRoutes(t *testing.T) {
	b := &svcBackend{Backend: &apitest.Backend{}}
	srv, err := httpapi.New(b, token, httpapi.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, ctype string, body *bytes.Buffer) (int, string) {
		t.Helper()
		if body == nil {
			body = &bytes.Buffer{}
		}
		req, _ := http.NewRequest(method, path, body)
		req.Header.Set("Authorization", "Bearer "+token)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := newRecorder()
		srv.ServeHTTP(rec, req)
		return rec.code, rec.buf.String()
	}
	spec := "kind: service\nname: hello\nprice_per_period: 10\nbudget: 100\nreplicas: {min: 1, max: 3, initial: 2}\n"
	body, ct := svcMultipart(t, map[string]string{"spec": spec, "payload": "\x00asm"})
	if code, out := do("POST", "/v1/services", ct, body); code != 200 || len(b.deployed) != 1 || b.deployed[0].Replicas.Initial != 2 || string(b.module) != "\x00asm" {
		t.Fatalf("deploy: %d %s", code, out)
	}
	for _, c := range []struct {
		name  string
		parts map[string]string
		ctype string
		want  string
		code  int
	}{
		{"no module", map[string]string{"spec": spec}, "", "module", 400},
		{"bad spec", map[string]string{"spec": "kind: service\nname: Bad\nprice_per_period: 1\nbudget: 1\n", "payload": "x"}, "", "name", 400},
		{"unknown part", map[string]string{"spec": spec, "payload": "x", "extra": "y"}, "", "unknown multipart part", 400},
		{"json body", nil, "application/json", "multipart/form-data", 415},
	} {
		var body *bytes.Buffer
		ct := c.ctype
		if c.parts != nil {
			body, ct = svcMultipart(t, c.parts)
		}
		code, out := do("POST", "/v1/services", ct, body)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, code, out, c.code, c.want)
		}
	}
	if code, out := do("POST", "/v1/services/hello/scale", "application/json", bytes.NewBufferString(`{"replicas":3}`)); code != 200 || b.scaled != 3 {
		t.Fatalf("scale: %d %s", code, out)
	}
	for _, bad := range []string{`{"replicas":0}`, `{"replicas":17}`, `{"replicas":2,"x":1}`, `not json`} {
		if code, out := do("POST", "/v1/services/hello/scale", "application/json", bytes.NewBufferString(bad)); code != 400 {
			t.Errorf("scale %s: %d %s, want 400", bad, code, out)
		}
	}
	if code, _ := do("GET", "/v1/services/nosuch", "", nil); code != 404 {
		t.Fatalf("unknown service: %d", code)
	}
	if code, out := do("POST", "/v1/services/hello/close", "", nil); code != 200 || !strings.Contains(out, "closed") {
		t.Fatalf("close: %d %s", code, out)
	}
	// A backend without services answers 503 with the reason.
	plain, err := httpapi.New(&apitest.Backend{}, token, httpapi.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "/v1/services", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := newRecorder()
	plain.ServeHTTP(rec, req)
	if rec.code != 503 || !strings.Contains(rec.buf.String(), "does not run services") {
		t.Fatalf("no service backend: %d %s", rec.code, rec.buf.String())
	}
}

type recorder struct {
	hdr  http.Header
	code int
	buf  bytes.Buffer
}

func newRecorder() *recorder                    { return &recorder{hdr: http.Header{}, code: 200} }
func (r *recorder) Header() http.Header         { return r.hdr }
func (r *recorder) Write(b []byte) (int, error) { return r.buf.Write(b) }
func (r *recorder) WriteHeader(c int)           { r.code = c }
