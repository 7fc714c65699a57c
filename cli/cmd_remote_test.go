package cli

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
)

// spy is an HTTP server on loopback that records the Authorization
// headers it receives.
func spy(t *testing.T) (url string, seen func() []string) {
	var mu sync.Mutex
	var got []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
}

// Pointing --api at some other address must not hand that address the
// home's token: before, the CLI sent api.token to whatever --api named.
func TestHomeTokenIsNotSentToAnotherAPIAddress(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	mustRun(t, map[string]string{"BOURSE_PASSPHRASE": "pw"}, "init", "--home", home)
	url, seen := spy(t)
	mustFail(t, map[string]string{"BOURSE_HOME": home, "BOURSE_API": url}, 1, "refusing to send the API token of "+home, "chain", "status")
	if got := seen(); len(got) != 0 {
		t.Fatalf("the other address received %d requests (Authorization %q)", len(got), got)
	}
	// Without a home there is no token to leak, and the CLI says what to do.
	mustFail(t, map[string]string{"BOURSE_HOME": filepath.Join(home, "none"), "BOURSE_API": url}, 1, "BOURSE_API_TOKEN", "chain", "status")
}

// A token is never sent in clear to an address beyond loopback, even when
// given explicitly. 192.0.2.1 is TEST-NET-1: the CLI refuses before any
// dial.
func TestTokenIsNotSentOverPlainHTTPBeyondLoopback(t *testing.T) {
	for _, addr := range []string{"192.0.2.1:7700", "http://192.0.2.1:7700", "http://node1.example.invalid:7700"} {
		mustFail(t, map[string]string{"BOURSE_API": addr, "BOURSE_API_TOKEN": "secret", "HOME": t.TempDir()}, 1,
			"refusing to send the API token over plain HTTP beyond loopback", "chain", "status")
	}
	if _, err := api.NewClient("http://192.0.2.1:7700", "secret", nil); err == nil {
		t.Fatal("api.NewClient accepted plain HTTP beyond loopback")
	}
}

// tlsDaemon serves the real API over TLS with a certificate made as init
// makes it, and returns its https URL and the certificate's fingerprint.
func tlsDaemon(t *testing.T, token string, b httpapi.Backend) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := node.DefaultConfig()
	if err := node.CreateAPICert(filepath.Join(dir, cfg.API.TLSCert), filepath.Join(dir, cfg.API.TLSKey), "t"); err != nil {
		t.Fatal(err)
	}
	cert, err := node.LoadAPICert(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := node.APIFingerprint(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := httpapi.New(b, token, httpapi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TLS: tlsConfig(cert)})
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
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "https://" + ln.Addr().String(), fp
}

// The API over TLS: a pinned fingerprint works (in either common
// spelling), a wrong pin is refused before the token is sent, and an https
// address without a pin is refused with the next step.
func TestRemoteAPIOverTLSWithPinnedFingerprint(t *testing.T) {
	b := &apitest.Backend{StatusFn: func(context.Context) (api.Status, error) { return api.Status{Height: 42}, nil }}
	url, fp := tlsDaemon(t, "remote-token", b)
	env := map[string]string{"BOURSE_API": url, "BOURSE_API_TOKEN": "remote-token", "HOME": t.TempDir()}

	out := mustRun(t, env, "chain", "status", "--json", "--api-fingerprint", fp)
	if !strings.Contains(out, `"height": 42`) {
		t.Fatalf("chain status over TLS = %s", out)
	}
	var colons []string
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, strings.ToUpper(fp[i:i+2]))
	}
	env["BOURSE_API_FINGERPRINT"] = strings.Join(colons, ":") // as openssl prints it
	mustRun(t, env, "chain", "status")
	// The host:port form with a pin means https.
	env["BOURSE_API"] = strings.TrimPrefix(url, "https://")
	mustRun(t, env, "chain", "status")

	wrong := strings.Repeat("ab", 32)
	env["BOURSE_API_FINGERPRINT"] = wrong
	mustFail(t, env, 1, "does not match the pinned fingerprint", "chain", "status")
	delete(env, "BOURSE_API_FINGERPRINT")
	env["BOURSE_API"] = url
	mustFail(t, env, 1, "no certificate fingerprint to pin", "chain", "status")
	mustFail(t, env, 2, "64 hex digits", "chain", "status", "--api-fingerprint", "abc")
}

// A wrong pin is refused before any request: the token never reaches a
// server that is not the pinned one.
func TestWrongPinNeverSendsTheToken(t *testing.T) {
	var got []string
	var mu sync.Mutex
	b := &apitest.Backend{StatusFn: func(context.Context) (api.Status, error) { return api.Status{}, nil }}
	srv, _ := httpapi.New(b, "t", httpapi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	env := map[string]string{"BOURSE_API": ts.URL, "BOURSE_API_TOKEN": "secret", "BOURSE_API_FINGERPRINT": strings.Repeat("00", 32), "HOME": t.TempDir()}
	mustFail(t, env, 1, "does not match the pinned fingerprint", "chain", "status")
	if len(got) != 0 {
		t.Fatalf("the unpinned server received %q", got)
	}
}

// A home whose API runs with api.tls needs no flags: the CLI uses https
// and pins the home's own certificate.
func TestCLIPinsItsHomesOwnCertificate(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	mustRun(t, map[string]string{"BOURSE_PASSPHRASE": "pw"}, "init", "--home", home, "--api-listen", addr, "--api-tls")
	cfg, err := node.LoadConfig(filepath.Join(home, node.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := node.LoadAPICert(home, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := node.ReadAPIToken(home)
	b := &apitest.Backend{StatusFn: func(context.Context) (api.Status, error) { return api.Status{Height: 9}, nil }}
	srv, _ := httpapi.New(b, tok, httpapi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TLS: tlsConfig(cert)})
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken again: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	out := mustRun(t, map[string]string{"BOURSE_HOME": home}, "chain", "status", "--json")
	if !strings.Contains(out, `"height": 9`) {
		t.Fatalf("chain status = %s", out)
	}
}

func tlsConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
}
