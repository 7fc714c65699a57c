package node

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/bourse-net/bourse/p2p"
	"github.com/pelletier/go-toml/v2"
)

// configTemplate is config.toml as `bourse init` writes it: every field with
// its meaning and default.
var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{
	"q": strconv.Quote, "list": tomlList, "labels": tomlLabels, "p2p": tomlP2P,
}).Parse(`# Bourse node configuration. Every field is shown with its default.
# Docs: README.md and ` + "`bourse --help`" + `.

# The chain this node joins; it scopes every signature and protocol.
chain_id = {{q .ChainID}}
# A human-readable name for this node.
moniker = {{q .Moniker}}

[wallet]
# Keystore name (or bo1 address) of the key the daemon signs with. The
# passphrase comes from BOURSE_PASSPHRASE or the daemon's --passphrase-file.
key = {{q .Wallet.Key}}

[api]
# The HTTP API. Clients need the token in api.token. Beyond loopback
# (e.g. "0.0.0.0:7700") only with tls = true: clients then pin the
# certificate's fingerprint, which 'bourse node id' prints.
listen = {{q .API.Listen}}
tls = {{.API.TLS}}
# PEM certificate and key of the API, relative to this home ('bourse init'
# makes a self-signed pair).
tls_cert = {{q .API.TLSCert}}
tls_key = {{q .API.TLSKey}}
# Largest payload upload, MiB.
max_upload_mib = {{.API.MaxUploadMiB}}

[p2p]
# The libp2p network: listen addresses, bootstrap peers (full multiaddrs
# ending in /p2p/<peer id>), mDNS, the Kademlia DHT, NAT traversal, gossip
# limits. Every field is documented in the p2p package (p2p/config.go).
{{p2p .P2P}}

[chain]
# Genesis file, relative to this home.
genesis = {{q .Chain.Genesis}}
# Re-check the state's invariants (supply, escrow, indexes) after every
# block and halt at the first violation: a full scan per block.
check_invariants = {{.Chain.CheckInvariants}}

[provider]
# Sell capacity on the market. Register collateral first:
#   bourse provider register --collateral AMOUNT
enabled = {{.Provider.Enabled}}
# Capacity to sell: millicores (1000 = one core), memory and disk in MiB.
cpu_millicores = {{.Provider.CPU}}
memory_mib = {{.Provider.MemoryMiB}}
disk_mib = {{.Provider.DiskMiB}}
# Executors offered: "wasm", "docker" (needs a Docker daemon), "exec"
# (plain processes: only on a machine you trust every client of).
executors = {{list .Provider.Executors}}
# Prices in base units: per cpu-second, per GiB-second of memory, per job.
price_per_cpu_second = {{.Provider.PricePerCPUSecond}}
price_per_gib_second = {{.Provider.PricePerGiBSecond}}
price_per_job = {{.Provider.PricePerJob}}
# Matched against job constraints.
region = {{q .Provider.Region}}
labels = {{labels .Provider.Labels}}
# Compiled WebAssembly modules, relative to this home.
wasm_cache = {{q .Provider.WasmCache}}
# How often the offer is re-gossiped; offers expire after three intervals.
offer_interval = {{q .Provider.OfferInterval.String}}

[gateway]
# The service gateway: routes HTTP requests for any service to one of its
# replicas (/svc/<name>/... or Host <name>.<domain>). Beyond loopback only
# with public = true.
enabled = {{.Gateway.Enabled}}
listen = {{q .Gateway.Listen}}
public = {{.Gateway.Public}}
domain = {{q .Gateway.Domain}}

[log]
# debug, info, warn or error.
level = {{q .Log.Level}}
# A copy of the log, relative to this home; "" disables it.
file = {{q .Log.File}}
`))

func tomlList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func tomlLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s = %s", strconv.Quote(k), strconv.Quote(m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func tomlP2P(c p2p.Config) (string, error) {
	b, err := toml.Marshal(c)
	return strings.TrimSpace(string(b)), err
}

// RenderConfig writes c as a commented config.toml.
func RenderConfig(c Config) []byte {
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, c); err != nil {
		panic(err) // the template is static and every field renders
	}
	return b.Bytes()
}
