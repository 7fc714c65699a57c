package node

import (
	"errors"
	"fmt"
	"github.com/bourse-net/bourse/chain/mempool"
	"net"
	"os"
	"strings"
	"time"

	"github.com/bourse-net/bourse/node/api"
	"github.com/bourse-net/bourse/p2p"
	"github.com/pelletier/go-toml/v2"
)

// Config is the daemon's configuration, read from config.toml in the home.
// Every field has a default (DefaultConfig) and is checked by Validate.
type Config struct {
	// ChainID names the chain this node joins; it scopes every signature and
	// every network protocol. Default "bourse-local".
	ChainID string `toml:"chain_id"`
	// Moniker is a human-readable node name shown to peers. Default: host name.
	Moniker string `toml:"moniker"`
	// PublicBlobs serves every payload and result this node publishes to
	// any peer that asks for its hash. Default false: a payload goes only
	// to the provider its job was matched to, a result only to its
	// job's client (see node/blobauth.go); everyone else is told "not
	// found".
	PublicBlobs bool `toml:"public_blobs"`
	// HoldAck keeps this node's client from acknowledging a result it
	// fetched and checked: the provider is then paid when the challenge
	// window ends, and until then 'bourse job verify ID --challenge' can
	// still send a wrong WASM result to referees. Default false: the node
	// acks at once (chain/settle.go).
	HoldAck bool `toml:"hold_ack"`

	Wallet   WalletConfig   `toml:"wallet"`
	API      APIConfig      `toml:"api"`
	P2P      p2p.Config     `toml:"p2p"`
	Chain    ChainConfig    `toml:"chain"`
	Provider ProviderConfig `toml:"provider"`
	Gateway  GatewayConfig  `toml:"gateway"`
	Log      LogConfig      `toml:"log"`
}

// GatewayConfig is the node's HTTP ingress for services: every node routes
// requests for any service to one of its replicas (issue 19).
type GatewayConfig struct {
	// Enabled runs the gateway. Default true.
	Enabled bool `toml:"enabled"`
	// Listen is host:port. Default "127.0.0.1:8480". A non-loopback
	// address needs public = true.
	Listen string `toml:"listen"`
	// Public allows a non-loopback listen address. Default false.
	Public bool `toml:"public"`
	// Domain: a request for <name>.<domain> goes to service <name>;
	// /svc/<name>/... works whatever the host. Default "svc.localhost".
	Domain string `toml:"domain"`
}

// WalletConfig chooses the key the daemon signs with.
type WalletConfig struct {
	// Key is the keystore name (or bo1 address) of the node's signing key:
	// its votes, offers, bids and results. Default "default".
	Key string `toml:"key"`
}

// APIConfig is the HTTP API.
type APIConfig struct {
	// Listen is host:port. Default "127.0.0.1:7700". An address other than
	// loopback (0.0.0.0, a LAN or public address) needs tls = true: the
	// bearer token never crosses a network in clear.
	Listen string `toml:"listen"`
	// TLS serves the API over HTTPS with the certificate below. Clients
	// pin its SHA-256 fingerprint (`bourse node id` prints it; the CLI
	// takes --api-fingerprint or BOURSE_API_FINGERPRINT). Default false;
	// required when listen is not a loopback address.
	TLS bool `toml:"tls"`
	// TLSCert and TLSKey are the PEM certificate and key, relative to the
	// home. `bourse init` makes a self-signed pair; the daemon makes one
	// if neither file exists. Defaults "api.crt" and "api.key".
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// MaxUploadMiB caps a payload upload. Default 64.
	MaxUploadMiB int `toml:"max_upload_mib"`
}

// ChainConfig locates the genesis and sets how the chain is checked.
type ChainConfig struct {
	// Genesis is the genesis file, relative to the home. Default
	// "genesis.json".
	Genesis string `toml:"genesis"`
	// CheckInvariants re-checks the state's invariants (supply conserved,
	// counters equal to their records, indexes complete) after every block
	// and halts the node at the first violation. It scans the whole state
	// each block: on in local testnets and tests, off by default.
	CheckInvariants bool `toml:"check_invariants"`

	// mempool bounds the node's mempool; tests in this package set it, a
	// node runs with the mempool's defaults.
	mempool mempool.Config
}

// ProviderConfig sells capacity. A node is a provider when Enabled is true.
type ProviderConfig struct {
	Enabled bool `toml:"enabled"`
	// CPU to sell in millicores (1000 = one core). Default 1000.
	CPU uint64 `toml:"cpu_millicores"`
	// MemoryMiB to sell. Default 1024.
	MemoryMiB uint64 `toml:"memory_mib"`
	// DiskMiB of scratch and output space to sell. Default 1024.
	DiskMiB uint64 `toml:"disk_mib"`
	// Executors offered: "wasm" (default), "docker", "exec" (plain
	// processes; only enable on a machine you trust every client of).
	Executors []string `toml:"executors"`
	// Prices in base units: per cpu-second (per 1000 millicores for one
	// second), per GiB-second of memory, and a fixed part per job.
	PricePerCPUSecond uint64 `toml:"price_per_cpu_second"`
	PricePerGiBSecond uint64 `toml:"price_per_gib_second"`
	PricePerJob       uint64 `toml:"price_per_job"`
	// Region and Labels are matched against job constraints.
	Region string            `toml:"region"`
	Labels map[string]string `toml:"labels"`
	// WasmCache holds compiled WebAssembly modules, keyed by module hash,
	// so a repeated module starts fast. Relative to the home. Default
	// "cache/wasm".
	WasmCache string `toml:"wasm_cache"`
	// OfferInterval is how often the offer is re-gossiped (a heartbeat);
	// offers expire after three intervals. Default "2s".
	OfferInterval Duration `toml:"offer_interval"`
}

// LogConfig controls logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Default "info".
	Level string `toml:"level"`
	// File, relative to the home, receives a copy of the log. Default
	// "daemon.log"; empty disables it.
	File string `toml:"file"`
}

// Duration is a time.Duration written as "2s" in TOML.
type Duration struct{ time.Duration }

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// DefaultConfig is the configuration `bourse init` writes.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "bourse-node"
	}
	return Config{
		ChainID: "bourse-local",
		Moniker: host,
		Wallet:  WalletConfig{Key: "default"},
		API:     APIConfig{Listen: "127.0.0.1:7700", MaxUploadMiB: 64, TLSCert: APICertFile, TLSKey: APIKeyFile},
		P2P:     p2p.DefaultConfig(),
		Chain:   ChainConfig{Genesis: "genesis.json"},
		Provider: ProviderConfig{
			CPU: 1000, MemoryMiB: 1024, DiskMiB: 1024,
			Executors:         []string{"wasm"},
			PricePerCPUSecond: 1000, PricePerGiBSecond: 100, PricePerJob: 10,
			OfferInterval: Duration{2 * time.Second},
			WasmCache:     "cache/wasm",
		},
		Gateway: GatewayConfig{Enabled: true, Listen: "127.0.0.1:8480", Domain: "svc.localhost"},
		Log:     LogConfig{Level: "info", File: "daemon.log"},
	}
}

// FieldError names the configuration field that is wrong.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("config %s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	if c.ChainID == "" || len(c.ChainID) > 64 || strings.ContainsAny(c.ChainID, "/ \t\n") {
		return fieldErr("chain_id", "%q: must be 1-64 characters without '/' or spaces", c.ChainID)
	}
	if c.Wallet.Key == "" {
		return fieldErr("wallet.key", "must name a key in the keystore")
	}
	host, port, err := net.SplitHostPort(c.API.Listen)
	if err != nil {
		return fieldErr("api.listen", "%q: %v", c.API.Listen, err)
	}
	if !api.IsLoopbackHost(host) && !c.API.TLS {
		return fieldErr("api.listen", "%q is not a loopback address: set api.tls = true to serve the API over TLS beyond this machine, or listen on 127.0.0.1", c.API.Listen)
	}
	if c.API.TLS && (c.API.TLSCert == "" || c.API.TLSKey == "") {
		return fieldErr("api.tls_cert", "api.tls needs tls_cert and tls_key (defaults %q and %q)", APICertFile, APIKeyFile)
	}
	if port == "" {
		return fieldErr("api.listen", "%q: missing port", c.API.Listen)
	}
	if c.API.MaxUploadMiB < 1 || c.API.MaxUploadMiB > 4096 {
		return fieldErr("api.max_upload_mib", "%d: must be in 1..4096", c.API.MaxUploadMiB)
	}
	if err := c.P2P.Validate(); err != nil {
		var ce *p2p.ConfigError
		if errors.As(err, &ce) {
			return &FieldError{Field: "p2p." + ce.Field, Err: errors.New(ce.Reason)}
		}
		return &FieldError{Field: "p2p", Err: err}
	}
	if c.Chain.Genesis == "" {
		return fieldErr("chain.genesis", "must name the genesis file")
	}
	if p := c.Provider; p.Enabled {
		if p.CPU == 0 || p.MemoryMiB == 0 {
			return fieldErr("provider", "cpu_millicores and memory_mib must be positive to sell capacity")
		}
		if len(p.Executors) == 0 {
			return fieldErr("provider.executors", "name at least one of wasm, docker, exec")
		}
		for _, e := range p.Executors {
			switch e {
			case "wasm", "docker", "exec":
			default:
				return fieldErr("provider.executors", "unknown executor %q (want wasm, docker or exec)", e)
			}
		}
		if p.OfferInterval.Duration < 100*time.Millisecond {
			return fieldErr("provider.offer_interval", "%s: must be at least 100ms", p.OfferInterval)
		}
	}
	if g := c.Gateway; g.Enabled {
		host, port, err := net.SplitHostPort(g.Listen)
		if err != nil || port == "" {
			return fieldErr("gateway.listen", "%q: want host:port", g.Listen)
		}
		if !api.IsLoopbackHost(host) && !g.Public {
			return fieldErr("gateway.listen", "%q is not a loopback address: set gateway.public = true to serve services beyond this machine", g.Listen)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	return nil
}

// LoadConfig reads and validates a config file. Fields missing from the
// file keep their defaults; unknown fields are an error.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config: %w", err)
	}
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return c, fmt.Errorf("config %s: %s", path, strings.TrimSpace(sm.String()))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return c, fmt.Errorf("config %s:%d:%d: %v", path, row, col, de)
		}
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
