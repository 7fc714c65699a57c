package httpapi_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/node"
	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/node/httpapi"
	"github.com/bourse-net/bourse/node/httpapi/apitest"
)

// addrListener is a listener whose address is what the test says, so
// that the server's check can be exercised without binding beyond
// loopback.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

// A daemon configured (or mis-wired) to listen beyond loopback without TLS
// does not serve: the token would travel in clear.
func TestServeRefusesPlaintextBeyondLoopback(t *testing.T) {
	srv, err := httpapi.New(&apitest.Backend{}, token, httpapi.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	public := addrListener{ln, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7700}}
	err = srv.Serve(context.Background(), public)
	if !errors.Is(err, httpapi.ErrPlaintextOffLoopback) {
		t.Fatalf("Serve on 192.0.2.1 without TLS = %v, want ErrPlaintextOffLoopback", err)
	}
	unspecified := addrListener{ln, &net.TCPAddr{IP: net.IPv4zero, Port: 7700}}
	if err := srv.Serve(context.Background(), unspecified); !errors.Is(err, httpapi.ErrPlaintextOffLoopback) {
		t.Fatalf("Serve on 0.0.0.0 without TLS = %v", err)
	}
}

// Over TLS the API answers a client that pins the certificate and refuses
// one that pins another.
func TestServeTLSRoundTripWithPinnedCertificate(t *testing.T) {
	dir := t.TempDir()
	cfg := node.DefaultConfig()
	if err := node.CreateAPICert(filepath.Join(dir, node.APICertFile), filepath.Join(dir, node.APIKeyFile), "t"); err != nil {
		t.Fatal(err)
	}
	cert, err := node.LoadAPICert(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := node.APIFingerprint(dir, cfg)
	b := &apitest.Backend{StatusFn: func(context.Context) (api.Status, error) { return api.Status{Height: 1}, nil }}
	srv, err := httpapi.New(b, token, httpapi.Options{Logger: quiet, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
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
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	url := "https://" + ln.Addr().String()
	hc, err := api.PinnedHTTPClient(fp)
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient(url, token, hc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("status over TLS: %v", err)
	}
	hc, _ = api.PinnedHTTPClient(strings.Repeat("0", 64))
	c, _ = api.NewClient(url, token, hc)
	if _, err := c.Status(context.Background()); !errors.Is(err, api.ErrFingerprintMismatch) {
		t.Fatalf("status with a wrong pin = %v, want ErrFingerprintMismatch", err)
	}
	// Plain HTTP to the TLS port gets no API answer.
	c, _ = api.NewClient("http://"+ln.Addr().String(), token, nil)
	if _, err := c.Status(context.Background()); err == nil {
		t.Fatal("plain HTTP to the TLS listener answered")
	}
}
