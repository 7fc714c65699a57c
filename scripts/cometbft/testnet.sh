#!/usr/bin/env bash
# A 4-validator CometBFT v0.38 kvstore network on loopback, for comparing
# with Bourse on the same machine in the same run (see README, Performance).
# CometBFT is built from its Go module:
#   GOBIN=/tmp/cmt go install github.com/cometbft/cometbft/cmd/cometbft@v0.38.17
# Usage: scripts/cometbft/testnet.sh up|down [DIR] [tuned]
#   tuned: timeout_commit 50ms and 10 ms gossip sleeps, as in issue 21.
set -euo pipefail
CMT=${CMT:-/tmp/cmt/cometbft}
DIR=${2:-/tmp/cmt-testnet}
case "$1" in
up)
  rm -rf "$DIR"
  "$CMT" testnet --v 4 --o "$DIR" --starting-ip-address 127.0.0.1 >/dev/null
  ids=()
  for i in 0 1 2 3; do ids+=("$("$CMT" show-node-id --home "$DIR/node$i")"); done
  peers=""
  for i in 0 1 2 3; do peers+="${ids[$i]}@127.0.0.1:$((36656 + 10 * i)),"; done
  peers=${peers%,}
  for i in 0 1 2 3; do
    c="$DIR/node$i/config/config.toml"
    sed -i -e "s#^laddr = \"tcp://0.0.0.0:26656\"#laddr = \"tcp://127.0.0.1:$((36656 + 10 * i))\"#" \
      -e "s#^laddr = \"tcp://127.0.0.1:26657\"#laddr = \"tcp://127.0.0.1:$((36657 + 10 * i))\"#" \
      -e "s#^proxy_app = .*#proxy_app = \"kvstore\"#" \
      -e "s#^persistent_peers = .*#persistent_peers = \"$peers\"#" \
      -e "s#^allow_duplicate_ip = .*#allow_duplicate_ip = true#" \
      -e "s#^addr_book_strict = .*#addr_book_strict = false#" \
      -e "s#^pprof_laddr = .*#pprof_laddr = \"\"#" \
      -e "s#^prometheus = .*#prometheus = false#" "$c"
    if [ "${3:-}" = tuned ]; then
      sed -i -e 's#^timeout_commit = .*#timeout_commit = "50ms"#' \
        -e 's#^peer_gossip_sleep_duration = .*#peer_gossip_sleep_duration = "10ms"#' "$c"
    fi
    "$CMT" start --home "$DIR/node$i" --log_level error >"$DIR/node$i.log" 2>&1 &
    echo $! >"$DIR/node$i.pid"
  done
  echo "CometBFT RPC on 127.0.0.1:36657, 36667, 36677, 36687"
  ;;
down)
  for f in "$DIR"/node*.pid; do kill "$(cat "$f")" 2>/dev/null || true; done
  ;;
esac
