package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRenderedConfigLoadsBack(t *testing.T) {
	c := DefaultConfig()
	c.Provider.Enabled = true
	c.Provider.Labels = map[string]string{"gpu": "none", "tier": "a"}
	c.P2P.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"}
	c.Provider.OfferInterval = Duration{1500 * time.Millisecond}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, RenderConfig(c), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Provider.Labels["tier"] != "a" || got.P2P.Bootstrap[0] != c.P2P.Bootstrap[0] ||
		got.Provider.OfferInterval != c.Provider.OfferInterval || !got.Provider.Enabled {
		t.Fatalf("round trip lost fields: %+v", got)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"chain_id", func(c *Config) { c.ChainID = "a/b" }},
		{"api.listen", func(c *Config) { c.API.Listen = "0.0.0.0:7700" }},
		{"api.listen", func(c *Config) { c.API.Listen = "nonsense" }},
		{"api.listen", func(c *Config) { c.API.Listen = "192.0.2.1:7700" }},
		{"api.tls_cert", func(c *Config) { c.API.Listen = "0.0.0.0:7700"; c.API.TLS = true; c.API.TLSCert = "" }},
		{"p2p.announce_addrs", func(c *Config) { c.P2P.AnnounceAddrs = []string{"203.0.113.7:4001"} }},
		{"api.max_upload_mib", func(c *Config) { c.API.MaxUploadMiB = 0 }},
		{"p2p.listen_addrs", func(c *Config) { c.P2P.ListenAddrs = nil }},
		{"provider.executors", func(c *Config) { c.Provider.Enabled = true; c.Provider.Executors = []string{"vm"} }},
		{"provider", func(c *Config) { c.Provider.Enabled = true; c.Provider.CPU = 0 }},
		{"log.level", func(c *Config) { c.Log.Level = "loud" }},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.edit(&c)
		err := c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("want error naming %s, got %v", tc.field, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
}

// The API leaves loopback only with TLS; with it, any address is allowed.
func TestAPIBeyondLoopbackOnlyWithTLS(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:7700", "[::]:7700", "192.0.2.1:7700", "node1.example.org:7700"} {
		c := DefaultConfig()
		c.API.Listen = listen
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "api.tls = true") {
			t.Errorf("%s without TLS: %v", listen, err)
		}
		c.API.TLS = true
		if err := c.Validate(); err != nil {
			t.Errorf("%s with TLS: %v", listen, err)
		}
	}
	for _, listen := range []string{"127.0.0.1:7700", "localhost:7700", "[::1]:7700", "127.0.0.2:7700"} {
		c := DefaultConfig()
		c.API.Listen = listen
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", listen, err)
		}
	}
}

func TestLoadConfigRejectsUnknownAndMalformed(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown field": "chain_id = \"x\"\nfrobnicate = 1\n",
		"bad toml":      "chain_id = \n",
		"bad duration":  "[provider]\noffer_interval = \"soon\"\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := LoadConfig(p); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
