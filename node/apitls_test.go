package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bourse-net/bourse/node/api"
)

// A daemon with api.tls serves HTTPS with the home's certificate: a client
// pinning that certificate gets answers, a plain-HTTP client does not.
func TestDaemonServesItsAPIOverTLS(t *testing.T) {
	tn := newTestNet(t, 1, func(_ int, c *Config) { c.API.TLS = true })
	n := tn.start(0)
	fp, err := APIFingerprint(tn.homes[0], tn.cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := ReadAPIToken(tn.homes[0])
	hc, _ := api.PinnedHTTPClient(fp)
	c, err := api.NewClient("https://"+n.APIAddr(), tok, hc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st, err := c.Status(ctx); err != nil || st.ChainID != tn.chainID {
		t.Fatalf("status over TLS: %+v %v", st, err)
	}
	plain, _ := api.NewClient("http://"+n.APIAddr(), tok, nil)
	if _, err := plain.Status(ctx); err == nil {
		t.Fatal("plain HTTP answered on the TLS port")
	}
	other, _ := api.PinnedHTTPClient(strings.Repeat("ab", 32))
	c, _ = api.NewClient("https://"+n.APIAddr(), tok, other)
	if _, err := c.Status(ctx); !errors.Is(err, api.ErrFingerprintMismatch) {
		t.Fatalf("wrong pin: %v", err)
	}
}

// The daemon does not start with an API beyond loopback in plain HTTP.
func TestDaemonRefusesPlaintextAPIBeyondLoopback(t *testing.T) {
	tn := newTestNet(t, 1, nil)
	cfg := tn.cfgs[0]
	cfg.API.Listen = "0.0.0.0:0"
	_, err := New(context.Background(), Options{Home: tn.homes[0], Passphrase: testPass, Config: &cfg, Logger: tn.logger(0)})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "api.listen" || !strings.Contains(err.Error(), "api.tls = true") {
		t.Fatalf("New with api.listen 0.0.0.0 and no TLS = %v", err)
	}
}
