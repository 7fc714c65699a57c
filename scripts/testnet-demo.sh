#!/usr/bin/env bash
# The main job of `make testnet`: a local 4-node network and the hello job
# end to end. The network keeps running afterwards; `make testnet-down`
# stops it.
set -euo pipefail
bin=${1:-bin/bourse}
dir=${2:-.testnet}
if [ ! -x "$bin" ]; then
  echo "make testnet: $bin is missing; run 'make build' first." >&2
  exit 1
fi
if [ ! -f examples/hello/hello.wasm ]; then
  echo "make testnet: examples/hello/hello.wasm is missing; run 'make examples' first." >&2
  exit 1
fi
exec "$bin" testnet demo -n 4 --dir "$dir" --spec examples/hello/job.yaml
