package p2p

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func TestDefaultAndLocalConfigAreValid(t *testing.T) {
	for name, c := range map[string]Config{"default": DefaultConfig(), "local": LocalConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	d := DefaultConfig()
	if !d.MDNS || !d.DHT || d.ConnLow >= d.ConnHigh || len(d.ListenAddrs) != 2 {
		t.Errorf("unexpected defaults: %+v", d)
	}
	l := LocalConfig()
	if l.MDNS {
		t.Error("LocalConfig must not run mDNS")
	}
	for _, a := range l.ListenAddrs {
		if !strings.HasPrefix(a, "/ip4/127.0.0.1/") {
			t.Errorf("LocalConfig listens on %s", a)
		}
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	const peerAddr = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWFpF1ooxtEBsyf2n1GyaRojG6rdbR5P7dbMiHTrDFkySi"
	tests := []struct {
		field  string
		mutate func(*Config)
	}{
		{"listen_addrs", func(c *Config) { c.ListenAddrs = nil }},
		{"listen_addrs", func(c *Config) { c.ListenAddrs = []string{"127.0.0.1:4001"} }},
		{"bootstrap", func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"} }}, // no /p2p/
		{"announce_addrs", func(c *Config) { c.AnnounceAddrs = []string{"203.0.113.7:4001"} }},
		{"announce_addrs", func(c *Config) { c.AnnounceAddrs = []string{peerAddr} }}, // /p2p/ is the host's to add
		{"static_relays", func(c *Config) { c.StaticRelays = []string{"nonsense"} }},
		{"dht_mode", func(c *Config) { c.DHTMode = "sometimes" }},
		{"discovery_interval", func(c *Config) { c.DiscoveryInterval = Duration(time.Millisecond) }},
		{"conn_low", func(c *Config) { c.ConnLow = 0 }},
		{"conn_high", func(c *Config) { c.ConnHigh = c.ConnLow }},
		{"conn_grace", func(c *Config) { c.ConnGrace = -1 }},
		{"reconnect_min", func(c *Config) { c.ReconnectMin = 0 }},
		{"reconnect_max", func(c *Config) { c.ReconnectMax = c.ReconnectMin - 1 }},
		{"validation_queue", func(c *Config) { c.ValidationQueue = 0 }},
		{"validation_timeout", func(c *Config) { c.ValidationTimeout = 0 }},
		{"max_message_size", func(c *Config) { c.MaxMessageSize = 10 }},
		{"max_message_size", func(c *Config) { c.MaxMessageSize = 1 << 30 }},
		{"request_timeout", func(c *Config) { c.RequestTimeout = 0 }},
		{"max_inbound_requests", func(c *Config) { c.MaxInboundRequests = -1 }},
		{"max_inbound_per_peer", func(c *Config) { c.MaxInboundPerPeer = 0 }},
		{"max_inbound_per_peer", func(c *Config) { c.MaxInboundPerPeer = c.MaxInboundRequests + 1 }},
		{"stream_timeout", func(c *Config) { c.StreamTimeout = c.RequestTimeout - 1 }},
		{"ping_interval", func(c *Config) { c.PingInterval = 0 }},
		{"score_inspect_interval", func(c *Config) { c.ScoreInspectInterval = 0 }},
		{"market_rate", func(c *Config) { c.MarketRate = 0 }},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		c.Bootstrap = []string{peerAddr}
		if err := c.Validate(); err != nil {
			t.Fatalf("baseline: %v", err)
		}
		tc.mutate(&c)
		err := c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want a ConfigError for that field", tc.field, err)
		}
	}
}

// The [p2p] section of config.toml round-trips, durations as strings.
func TestConfigTOML(t *testing.T) {
	in := `
listen_addrs = ["/ip4/0.0.0.0/tcp/5001"]
bootstrap = ["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWFpF1ooxtEBsyf2n1GyaRojG6rdbR5P7dbMiHTrDFkySi"]
mdns = false
conn_low = 10
conn_high = 20
discovery_interval = "90s"
validation_queue = 1024
`
	c := DefaultConfig()
	if err := toml.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MDNS || c.ConnLow != 10 || c.ConnHigh != 20 || time.Duration(c.DiscoveryInterval) != 90*time.Second ||
		c.ValidationQueue != 1024 || !c.DHT || len(c.Bootstrap) != 1 {
		t.Fatalf("decoded %+v", c)
	}
	out, err := toml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := toml.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back.DiscoveryInterval != c.DiscoveryInterval || back.ConnHigh != c.ConnHigh || back.ReconnectMax != c.ReconnectMax {
		t.Fatalf("round trip changed the config:\n%s", out)
	}
	bad := DefaultConfig()
	if err := toml.Unmarshal([]byte(`request_timeout = "soon"`), &bad); err == nil {
		t.Fatal("accepted a bad duration")
	}
}
