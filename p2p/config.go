package p2p

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Duration is a time.Duration that reads and writes itself as a Go duration
// string ("30s", "5m") so it can sit in config.toml.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("parse duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// DHT modes accepted by Config.DHTMode.
const (
	DHTModeAuto   = "auto"   // server when publicly reachable (AutoNAT decides), client otherwise
	DHTModeServer = "server" // always answer DHT queries (bootstrap nodes, local testnets)
	DHTModeClient = "client" // only query, never serve
)

// Config is the [p2p] section of config.toml. Every field has a default in
// DefaultConfig; Validate names the first bad field.
type Config struct {
	// extra are libp2p options added last: for the package's benchmarks
	// (a bandwidth counter per host), never set by a node.
	extra []libp2p.Option

	// ListenAddrs are the multiaddrs the host listens on.
	// Default: /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1.
	ListenAddrs []string `toml:"listen_addrs"`
	// AnnounceAddrs, when set, are the addresses the host tells peers to
	// dial it on, instead of its listen addresses: the public address of a
	// machine behind a port forward or load balancer, e.g.
	// /ip4/203.0.113.7/tcp/4001 or /dns4/node1.example.org/tcp/4001.
	// Relay circuit addresses the host holds are announced as well. Plain
	// multiaddrs without /p2p/. Default: none (the listen addresses, as
	// libp2p observes them, are announced).
	AnnounceAddrs []string `toml:"announce_addrs"`
	// Bootstrap are full multiaddrs (ending in /p2p/<peer id>) of peers the
	// host keeps connected to, redialling with exponential backoff when they
	// drop. They also seed the DHT. Default: none.
	Bootstrap []string `toml:"bootstrap"`
	// MDNS announces and discovers peers on the local network. Default: true.
	MDNS bool `toml:"mdns"`
	// DHT runs a Kademlia DHT under the protocol prefix /bourse/<chain-id>
	// and uses it to find other nodes of the same chain. Default: true.
	DHT bool `toml:"dht"`
	// DHTMode is "auto", "server" or "client". Default: "auto".
	DHTMode string `toml:"dht_mode"`
	// DiscoveryInterval is the longest wait between two DHT rendezvous
	// lookups. Lookups start at 1s and back off to this. Default: 1m.
	DiscoveryInterval Duration `toml:"discovery_interval"`
	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// ConnHigh connections it trims back to ConnLow, sparing peers tagged as
	// useful (mesh peers, bootstrap peers). Defaults: 64 and 192.
	ConnLow  int `toml:"conn_low"`
	ConnHigh int `toml:"conn_high"`
	// ConnGrace protects new connections from trimming. Default: 30s.
	ConnGrace Duration `toml:"conn_grace"`
	// ReconnectMin and ReconnectMax bound the exponential backoff used to
	// redial a bootstrap peer. Defaults: 1s and 5m.
	ReconnectMin Duration `toml:"reconnect_min"`
	ReconnectMax Duration `toml:"reconnect_max"`
	// NATPortMap asks the gateway for a port mapping (UPnP / NAT-PMP).
	// Default: true.
	NATPortMap bool `toml:"nat_port_map"`
	// AutoNAT runs AutoNAT v2 (asks peers to dial us back to learn whether
	// we are reachable) and serves dial-backs to others. Default: true.
	AutoNAT bool `toml:"autonat"`
	// HolePunching enables DCUtR hole punching through relayed
	// connections. Default: true.
	HolePunching bool `toml:"hole_punching"`
	// RelayClient lets the host use circuit relay v2 to reach and be
	// reached through relays. Default: true.
	RelayClient bool `toml:"relay_client"`
	// RelayService makes this host a circuit relay v2 for others (for
	// publicly reachable nodes that want to help NATed providers). libp2p
	// starts the service once AutoNAT finds the host publicly reachable;
	// with autonat = false the host is taken to be public. Default: false.
	RelayService bool `toml:"relay_service"`
	// StaticRelays are full multiaddrs of relays a NATed host reserves a
	// slot on (AutoRelay). Empty: relays are not reserved automatically.
	StaticRelays []string `toml:"static_relays"`
	// ValidationQueue is the size of the GossipSub validation queue. When it
	// is full, incoming messages are dropped and counted. Default: 256.
	ValidationQueue int `toml:"validation_queue"`
	// ValidationTimeout bounds one validator call. Default: 5s.
	ValidationTimeout Duration `toml:"validation_timeout"`
	// MaxMessageSize caps one gossip message. Default: 1 MiB.
	MaxMessageSize int `toml:"max_message_size"`
	// RequestTimeout bounds one request/response exchange (and each frame
	// of a streamed response) when the caller's context has no earlier
	// deadline. Default: 30s.
	RequestTimeout Duration `toml:"request_timeout"`
	// StreamTimeout bounds a whole inbound streamed exchange (a blob, a
	// range of blocks), however promptly each frame is taken: a peer that
	// reads slowly cannot hold a slot for longer. At least request_timeout.
	// Default: 10m.
	StreamTimeout Duration `toml:"stream_timeout"`
	// MaxInboundRequests caps concurrent inbound requests per protocol,
	// from all peers together; further streams are reset and counted.
	// Default: 64.
	MaxInboundRequests int `toml:"max_inbound_requests"`
	// MaxInboundPerPeer caps concurrent inbound requests per protocol from
	// one peer, so that one peer cannot take the whole max_inbound_requests
	// budget; further streams from it are reset and counted. 1 to
	// max_inbound_requests. Default: 4.
	MaxInboundPerPeer int `toml:"max_inbound_per_peer"`
	// PingInterval is how often connected peers are pinged to keep the
	// latency estimate fresh. Default: 30s.
	PingInterval Duration `toml:"ping_interval"`
	// MarketRate is how many offers, and as many bids, one peer may
	// deliver per second, in bursts of ten seconds' worth; beyond it
	// messages are dropped unvalidated and the peer is penalised (see
	// scoring.go). Default: 200.
	MarketRate float64 `toml:"market_rate"`
	// ScoreInspectInterval is how often peer scores are sampled for
	// PeerScores and metrics. Default: 10s.
	ScoreInspectInterval Duration `toml:"score_inspect_interval"`

	// Registerer receives the host's Prometheus collectors and libp2p's own
	// metrics. Nil: libp2p metrics are off and the host's collectors are
	// only available through Host.Collectors. Never the global registry
	// unless the caller passes it.
	Registerer prometheus.Registerer `toml:"-"`
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		ListenAddrs:          []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
		MDNS:                 true,
		DHT:                  true,
		DHTMode:              DHTModeAuto,
		DiscoveryInterval:    Duration(time.Minute),
		ConnLow:              64,
		ConnHigh:             192,
		ConnGrace:            Duration(30 * time.Second),
		ReconnectMin:         Duration(time.Second),
		ReconnectMax:         Duration(5 * time.Minute),
		NATPortMap:           true,
		AutoNAT:              true,
		HolePunching:         true,
		RelayClient:          true,
		ValidationQueue:      256,
		ValidationTimeout:    Duration(5 * time.Second),
		MaxMessageSize:       1 << 20,
		RequestTimeout:       Duration(30 * time.Second),
		StreamTimeout:        Duration(10 * time.Minute),
		MaxInboundRequests:   64,
		MaxInboundPerPeer:    4,
		PingInterval:         Duration(30 * time.Second),
		ScoreInspectInterval: Duration(10 * time.Second),
		MarketRate:           200,
	}
}

// LocalConfig returns a configuration for in-process tests and local
// testnets: 127.0.0.1 on ephemeral TCP and QUIC ports, no mDNS (it would
// find unrelated hosts on the machine), DHT in server mode, no NAT
// machinery, and short discovery and scoring intervals.
func LocalConfig() Config {
	c := DefaultConfig()
	c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	c.MDNS = false
	c.DHTMode = DHTModeServer
	c.DiscoveryInterval = Duration(5 * time.Second)
	c.NATPortMap = false
	c.AutoNAT = false
	c.HolePunching = false
	c.RelayClient = false
	c.ReconnectMin = Duration(100 * time.Millisecond)
	c.ReconnectMax = Duration(2 * time.Second)
	c.ScoreInspectInterval = Duration(200 * time.Millisecond)
	return c
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid p2p config")

// ConfigError names the configuration field that is wrong.
type ConfigError struct {
	Field  string // toml name of the field, e.g. "conn_low"
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("p2p config: %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func badField(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks every field and returns a *ConfigError naming the first
// bad one.
func (c *Config) Validate() error {
	if len(c.ListenAddrs) == 0 {
		return badField("listen_addrs", "at least one listen address is required")
	}
	for i, s := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return badField("listen_addrs", "entry %d %q: %v", i, s, err)
		}
	}
	for i, s := range c.AnnounceAddrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return badField("announce_addrs", "entry %d %q: %v", i, s, err)
		}
		if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
			return badField("announce_addrs", "entry %d %q: leave out /p2p/<peer id>; the host adds its own", i, s)
		}
	}
	for i, s := range c.Bootstrap {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			return badField("bootstrap", "entry %d %q must be a multiaddr ending in /p2p/<peer id>: %v", i, s, err)
		}
	}
	for i, s := range c.StaticRelays {
		if _, err := peer.AddrInfoFromString(s); err != nil {
			return badField("static_relays", "entry %d %q must be a multiaddr ending in /p2p/<peer id>: %v", i, s, err)
		}
	}
	switch c.DHTMode {
	case DHTModeAuto, DHTModeServer, DHTModeClient:
	default:
		return badField("dht_mode", "%q is not one of auto, server, client", c.DHTMode)
	}
	if c.DiscoveryInterval < Duration(time.Second) {
		return badField("discovery_interval", "%v is below 1s", time.Duration(c.DiscoveryInterval))
	}
	if c.ConnLow <= 0 {
		return badField("conn_low", "must be positive, got %d", c.ConnLow)
	}
	if c.ConnHigh <= c.ConnLow {
		return badField("conn_high", "must be above conn_low (%d), got %d", c.ConnLow, c.ConnHigh)
	}
	if c.ConnGrace < 0 {
		return badField("conn_grace", "must not be negative")
	}
	if c.ReconnectMin <= 0 {
		return badField("reconnect_min", "must be positive")
	}
	if c.ReconnectMax < c.ReconnectMin {
		return badField("reconnect_max", "must be at least reconnect_min")
	}
	if c.ValidationQueue <= 0 {
		return badField("validation_queue", "must be positive, got %d", c.ValidationQueue)
	}
	if c.ValidationTimeout <= 0 {
		return badField("validation_timeout", "must be positive")
	}
	if c.MaxMessageSize < 1024 || c.MaxMessageSize > 16<<20 {
		return badField("max_message_size", "must be between 1 KiB and 16 MiB, got %d", c.MaxMessageSize)
	}
	if c.RequestTimeout <= 0 {
		return badField("request_timeout", "must be positive")
	}
	if c.StreamTimeout < c.RequestTimeout {
		return badField("stream_timeout", "%v is below request_timeout (%v)", time.Duration(c.StreamTimeout), time.Duration(c.RequestTimeout))
	}
	if c.MaxInboundRequests <= 0 {
		return badField("max_inbound_requests", "must be positive, got %d", c.MaxInboundRequests)
	}
	if c.MaxInboundPerPeer <= 0 || c.MaxInboundPerPeer > c.MaxInboundRequests {
		return badField("max_inbound_per_peer", "must be 1 to max_inbound_requests (%d), got %d", c.MaxInboundRequests, c.MaxInboundPerPeer)
	}
	if c.PingInterval < Duration(time.Second) {
		return badField("ping_interval", "%v is below 1s", time.Duration(c.PingInterval))
	}
	if !(c.MarketRate >= 1 && c.MarketRate <= 1e6) {
		return badField("market_rate", "%v is not in 1..1000000 messages per second", c.MarketRate)
	}
	if c.ScoreInspectInterval < Duration(10*time.Millisecond) {
		return badField("score_inspect_interval", "%v is below 10ms", time.Duration(c.ScoreInspectInterval))
	}
	return nil
}
