package node

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// configTemplate is config.toml as `bourse init` writes it: every field with
// its meaning and default.
var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{
	"q": strconv.Quote, "list": tomlList, "labels": tomlLabels,
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
# The HTTP API; loopback only. Clients need the token in api.token.
listen = {{q .API.Listen}}
# Largest payload upload, MiB.
max_upload_mib = {{.API.MaxUploadMiB}}

[p2p]
# Multiaddrs to listen on (TCP and QUIC).
listen = {{list .P2P.Listen}}
# Peers to join through: /ip4/1.2.3.4/tcp/4001/p2p/12D3Koo...
bootstrap = {{list .P2P.Bootstrap}}
# Find peers on the local network.
mdns = {{.P2P.MDNS}}
# Kademlia DHT for wide-area discovery.
dht = {{.P2P.DHT}}

[chain]
# Genesis file, relative to this home.
genesis = {{q .Chain.Genesis}}

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
# How often the offer is re-gossiped; offers expire after three intervals.
offer_interval = {{q .Provider.OfferInterval.String}}

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

// RenderConfig writes c as a commented config.toml.
func RenderConfig(c Config) []byte {
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, c); err != nil {
		panic(err) // the template is static and every field renders
	}
	return b.Bytes()
}
