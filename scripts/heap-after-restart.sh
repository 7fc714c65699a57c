#!/usr/bin/env bash
# The heap each node of a stopped testnet holds 30 s after it starts again:
# how much of a node's memory grows with the chain's history (see README,
# Performance). The testnet directory is copied, so it can be reused.
# Usage: scripts/heap-after-restart.sh BIN TESTNET_DIR
#   BIN          a bourse binary (e.g. bin/bourse, or one built from an older commit)
#   TESTNET_DIR  a stopped testnet ('bourse testnet up', load, 'bourse testnet down')
set -euo pipefail
BIN=$1
DATA=$2
D=$(mktemp -d /tmp/heap-after-restart.XXXXXX)
trap '"$BIN" testnet down --dir "$D" >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
cp -a "$DATA"/. "$D"
BOURSE_PPROF=1 "$BIN" testnet start --dir "$D" >/dev/null 2>&1
sleep 30
for home in "$D"/node*; do
  heap=$(curl -s "http://$(cat "$home/pprof.addr")/debug/pprof/heap?debug=1&gc=1" | awk '/^# HeapAlloc/ {print $4}')
  pid=$(pgrep -f "daemon --home $home " | head -1)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  echo "$(basename "$home"): heap $((heap / 1024)) KiB, RSS $rss KiB"
done
