#!/usr/bin/env bash
# The main job of `make testnet`: a local network and an example job end to end.
set -euo pipefail
bin=${1:-bin/bourse}
dir=${2:-.testnet}
if ! "$bin" testnet up --help >/dev/null 2>&1 || "$bin" testnet up --help 2>&1 | grep -q 'not available yet'; then
  echo "make testnet: the local testnet is not built yet in this version of Bourse." >&2
  echo "What works today: 'bin/bourse init', 'bin/bourse wallet new|list|address', 'bin/bourse version', and 'make test'." >&2
  exit 1
fi
exec "$bin" testnet demo --dir "$dir"
