#!/usr/bin/env bash
# Service benchmark, side by side in one run (issue 19): requests/s and
# latency percentiles with wrk for the svc-hello WASM handler
#   direct  - served over plain HTTP by one replica, no gateway;
#   nginx   - nginx 1.22 as reverse proxy, round robin over the 3 replicas' HTTP fronts;
#   gateway - Bourse's gateway ingress to the 3 replicas over libp2p (svc/1).
# Installs wrk and nginx from Debian if missing (needs root for apt-get).
# Each runs twice: for throughput (threads × connections) and for latency (one connection).
# Usage: scripts/svc-bench.sh [duration, default 10s] [connections, default 16] [threads, default 2]
# SVCBENCH_FLAGS is passed to scripts/svcbench (e.g. "-transport tcp").
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
CONNS=${2:-16}
THREADS=${3:-2}
GO=${GO:-go}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d)
cleanup() {
  [ -n "${ngpid:-}" ] && kill -QUIT "$ngpid" 2>/dev/null || true
  [ -n "${benchpid:-}" ] && kill "$benchpid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

GOOS=wasip1 GOARCH=wasm $GO build -trimpath -o "$work/svc-hello.wasm" ./examples/svc-hello
$GO build -o "$work/svcbench" ./scripts/svcbench
"$work/svcbench" -module "$work/svc-hello.wasm" ${SVCBENCH_FLAGS:-} </dev/null >"$work/urls" 2>"$work/bench.log" &
benchpid=$!
for _ in $(seq 300); do grep -q '^ready' "$work/urls" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$work/urls" || { cat "$work/bench.log"; exit 1; }
direct=$(awk '$1=="direct"{print $2}' "$work/urls")
gateway=$(awk '$1=="gateway"{print $2}' "$work/urls")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
  echo "worker_processes 2; daemon off; pid $work/nginx.pid; error_log $work/nginx.err warn;"
  echo "events { worker_connections 1024; }"
  echo "http { access_log off; upstream replicas {"
  awk '$1=="replica"{sub("http://","",$2); print "  server " $2 ";"}' "$work/urls"
  echo "  keepalive 64; }"
  echo "  server { listen 127.0.0.1:$port; location / { proxy_pass http://replicas; proxy_http_version 1.1; proxy_set_header Connection \"\"; } } }"
} >"$work/nginx.conf"
"$NGINX" -c "$work/nginx.conf" -p "$work" &
ngpid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/x" >/dev/null 2>&1 && break; sleep 0.1; done

run() { # name url threads conns
  curl -sf "$2/warm" >/dev/null
  wrk -t1 -c4 -d2s "$2/warm" >/dev/null # warm-up
  local out; out=$(wrk -t"$3" -c"$4" -d"$DUR" --latency "$2/bench")
  local rps p50 p99 errs
  rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/{printf "%s ", $0}' <<<"$out")
  printf "| %-8s | %10s | %8s | %8s | %s\n" "$1" "$rps" "$p50" "$p99" "${errs:-none}"
}
for load in "$THREADS $CONNS" "1 1"; do
  set -- $load
  echo
  echo "svc-hello, $(nproc) cores, wrk -t$1 -c$2 -d$DUR --latency, load average $(cut -d' ' -f1 /proc/loadavg)"
  echo "| path     |      req/s |      p50 |      p99 | errors"
  echo "|----------|-----------:|---------:|---------:|-------"
  run direct "$direct" "$1" "$2"
  run nginx "http://127.0.0.1:$port" "$1" "$2"
  run gateway "$gateway" "$1" "$2"
done
kill -TERM "$benchpid"
wait "$benchpid" 2>/dev/null || true
benchpid=
grep -v '^$' "$work/bench.log" || true
