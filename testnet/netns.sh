#!/usr/bin/env bash
# A local testnet with one Linux network namespace per node, for trying
# partitions by hand (root, iproute2, iptables). The Go package
# testnet/netns does the same for tests; see testnet/README.md.
#
#   testnet/netns.sh up     [-n 4] [--dir .testnet-ns] [--bin bin/bourse]
#   testnet/netns.sh status
#   testnet/netns.sh cut    0,1 2,3      # nodes 0,1 and 2,3 drop each other's packets
#   testnet/netns.sh loss   2 10         # node 2 drops 10% of its packets, in and out
#   testnet/netns.sh slow   2 500kbit 100ms   # node 2's link: token bucket, queue up to 100ms
#   testnet/netns.sh delay  2 100ms      # netem, where the kernel has it
#   testnet/netns.sh unplug 3 | plug 3   # the bridge end of node 3's cable down / up
#   testnet/netns.sh heal                # every fault above undone
#   testnet/netns.sh exec   1 bourse --home .testnet-ns/node1 wallet balance
#   testnet/netns.sh down                # daemons killed, namespaces removed (data stays)
#
# Homes come from `bourse testnet gen --containers` (P2P on 0.0.0.0:26700,
# peers by name); each namespace gets an /etc/netns/<ns>/hosts naming the
# others, which `ip netns exec` mounts over /etc/hosts. Node i is
# 10.98.0.<i+1> on bridge br0 in the namespace bourse-ns-hub.
set -euo pipefail

DIR=${BOURSE_NETNS_DIR:-.testnet-ns}
BIN=${BOURSE_BIN:-bin/bourse}
N=4
HUB=bourse-ns-hub
NET=10.98.0.

die() { echo "netns.sh: $*" >&2; exit 1; }
ns() { echo "bourse-ns-h$1"; }
addr() { echo "$NET$(($1 + 1))"; }
count() { cat "$DIR/netns.count" 2>/dev/null || die "no namespace testnet in $DIR (run: $0 up)"; }
need() {
  [ "$(id -u)" = 0 ] || die "needs root"
  for t in ip tc iptables; do command -v $t >/dev/null || die "$t missing (apt-get install iproute2 iptables)"; done
}
# filters NODE: the iptables rules of node NODE, from $DIR/netns.faults.
apply() {
  local i=$1 rules="*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
"
  while read -r kind a b; do
    case $kind in
      cut) if [ "$a" = "$i" ]; then rules+="-A INPUT -i eth0 -s $(addr "$b")/32 -j DROP
-A OUTPUT -o eth0 -d $(addr "$b")/32 -j DROP
"; fi ;;
      loss) if [ "$a" = "$i" ]; then p=$(awk "BEGIN{printf \"%.4f\", $b/100}")
        rules+="-A INPUT -i eth0 -m statistic --mode random --probability $p -j DROP
-A OUTPUT -o eth0 -m statistic --mode random --probability $p -j DROP
"; fi ;;
    esac
  done < "$DIR/netns.faults"
  printf '%sCOMMIT\n' "$rules" | ip netns exec "$(ns "$i")" iptables-restore -w
}

cmd=${1:-}; shift || true
case $cmd in
up)
  while [ $# -gt 0 ]; do
    case $1 in
      -n) N=$2; shift 2 ;; --dir) DIR=$2; shift 2 ;; --bin) BIN=$2; shift 2 ;;
      *) die "up: unknown argument $1" ;;
    esac
  done
  need
  [ -x "$BIN" ] || die "no bourse binary at $BIN (make build, or --bin)"
  ip netns list | grep -q "^$HUB" && die "a namespace testnet is up already ($0 down first)"
  "$BIN" testnet gen -n "$N" --dir "$DIR" --containers >/dev/null
  DIR=$(cd "$DIR" && pwd); BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
  echo "$N" > "$DIR/netns.count"; : > "$DIR/netns.faults"
  ip netns add $HUB; ip -n $HUB link set lo up
  ip -n $HUB link add br0 type bridge; ip -n $HUB link set br0 up
  hosts="127.0.0.1 localhost"$'\n'
  for ((i = 0; i < N; i++)); do hosts+="$(addr $i) node$i"$'\n'; done
  for ((i = 0; i < N; i++)); do
    s=$(ns $i)
    ip netns add "$s"; ip -n "$s" link set lo up
    ip -n $HUB link add "v$i" type veth peer name eth0 netns "$s"
    ip -n $HUB link set "v$i" master br0; ip -n $HUB link set "v$i" up
    ip -n "$s" addr add "$(addr $i)/24" dev eth0; ip -n "$s" link set eth0 up
    mkdir -p "/etc/netns/$s"; printf '%s' "$hosts" > "/etc/netns/$s/hosts"
    h="$DIR/node$i"
    ip netns exec "$s" setsid "$BIN" daemon --home "$h" --passphrase-file "$h/passphrase" >> "$h/daemon.out" 2>&1 < /dev/null &
    echo "node$i: namespace $s, $(addr $i), home $h"
  done
  echo "started; '$0 status' shows heights; '$0 down' removes it all"
  ;;
status)
  n=$(count)
  for ((i = 0; i < n; i++)); do
    out=$(ip netns exec "$(ns $i)" "$BIN" --home "$DIR/node$i" chain status --json 2>&1 | tr -d '\n' | grep -o '"height": *[0-9]*' || echo "down")
    echo "node$i $(addr $i): $out"
  done
  grep . "$DIR/netns.faults" || echo "no faults"
  ;;
cut)
  n=$(count); [ $# -ge 2 ] || die "cut A,B C,D [...]: groups of node numbers"
  groups=("$@")
  for ((x = 0; x < ${#groups[@]}; x++)); do for ((y = x + 1; y < ${#groups[@]}; y++)); do
    for a in ${groups[$x]//,/ }; do for b in ${groups[$y]//,/ }; do
      [ "$a" -lt "$n" ] && [ "$b" -lt "$n" ] || die "no node $a or $b"
      printf 'cut %s %s\ncut %s %s\n' "$a" "$b" "$b" "$a" >> "$DIR/netns.faults"
    done; done
  done; done
  for ((i = 0; i < n; i++)); do apply $i; done
  ;;
loss)
  [ $# -eq 2 ] || die "loss NODE PERCENT"
  grep -v "^loss $1 " "$DIR/netns.faults" > "$DIR/netns.faults.new" || true
  echo "loss $1 $2" >> "$DIR/netns.faults.new"; mv "$DIR/netns.faults.new" "$DIR/netns.faults"
  apply "$1"
  ;;
slow)
  [ $# -eq 3 ] || die "slow NODE RATE LATENCY (e.g. slow 2 500kbit 100ms)"
  tc -n "$(ns "$1")" qdisc replace dev eth0 root tbf rate "$2" burst 16kb latency "$3"
  echo "qdisc $1 tbf $2 $3" >> "$DIR/netns.faults"
  ;;
delay)
  [ $# -eq 2 ] || die "delay NODE TIME (e.g. delay 2 100ms)"
  tc -n "$(ns "$1")" qdisc replace dev eth0 root netem delay "$2" || die "no netem in this kernel: use slow"
  echo "qdisc $1 netem $2" >> "$DIR/netns.faults"
  ;;
unplug|plug)
  [ $# -eq 1 ] || die "$cmd NODE"
  state=down; [ "$cmd" = plug ] && state=up
  ip -n $HUB link set "v$1" $state
  ;;
heal)
  n=$(count); : > "$DIR/netns.faults"
  for ((i = 0; i < n; i++)); do
    apply $i
    tc -n "$(ns $i)" qdisc del dev eth0 root 2>/dev/null || true
    ip -n $HUB link set "v$i" up
  done
  ;;
exec)
  [ $# -ge 2 ] || die "exec NODE COMMAND..."
  s=$(ns "$1"); shift
  exec ip netns exec "$s" "$@"
  ;;
down)
  n=$(count)
  for ((i = 0; i < n; i++)); do
    s=$(ns $i)
    for p in $(ip netns pids "$s" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
  done
  sleep 2
  for ((i = 0; i < n; i++)); do
    s=$(ns $i)
    for p in $(ip netns pids "$s" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$s" 2>/dev/null || true; rm -rf "/etc/netns/$s"
  done
  ip netns del $HUB 2>/dev/null || true
  rm -f "$DIR/netns.count" "$DIR/netns.faults"
  echo "down; the data stays in $DIR"
  ;;
*)
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  [ -z "$cmd" ] || exit 2
  ;;
esac
