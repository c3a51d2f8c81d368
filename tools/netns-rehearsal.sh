#!/usr/bin/env bash
# tools/netns-rehearsal.sh: a multi-host rehearsal on one machine, over `geofabric deploy bundles`.
# Every host of the topology (every distinct replica address) is a network namespace holding the
# address the topology gives it, on a veth link to one bridge; each region gets a client namespace
# on the same bridge (10.254.0.N) for `bench --attach`, `status` and `client`. Replicas are started
# from their bundles' `run` scripts only. Delays between regions: this kernel has no netem, so the
# replicas run with the daemon's --emulate-wan (and so should the clients: `bench --emulate-wan`);
# `--wan none` runs without. The root namespace's addresses and routes are not touched.
#
# Usage (as root; needs ip, python3 and the geofabric binary):
#   tools/netns-rehearsal.sh up BUNDLES [--binary PATH] [--wan emulate|none] [--name ID] [--timeout S]
#   tools/netns-rehearsal.sh exec REGION -- COMMAND [ARG...]   # in REGION's client namespace;
#                                            # a leading `geofabric` is the rehearsal's binary
#   tools/netns-rehearsal.sh kill REPLICA                      # SIGKILL: that host goes down
#   tools/netns-rehearsal.sh status
#   tools/netns-rehearsal.sh down                              # SIGTERM to every replica, then
#                                                              # deletes the namespaces
# BUNDLES is the output of `geofabric deploy bundles` for a topology that lists IPv4 addresses
# (10.x.y.z:PORT); the replicas keep their ledgers in their bundle's data/. Every subcommand takes
# --state-dir DIR (default $GEOFABRIC_REHEARSAL_DIR or /tmp/geofabric-netns-rehearsal).
#
# Example:
#   geofabric keys generate prod.yaml --out keys && geofabric deploy bundles prod.yaml --out bundles
#   tools/netns-rehearsal.sh up bundles
#   tools/netns-rehearsal.sh exec oregon -- geofabric bench bundles/s0-oregon-0/topology.yaml --attach --emulate-wan
#   tools/netns-rehearsal.sh down
set -euo pipefail

# Descriptors this script inherited (other than stdin, stdout, stderr and bash's own 255) are
# closed, so that the replicas started in the background do not hold them: a caller that waits
# for a pipe or socket given to this script to close would otherwise wait for the replicas.
for fd in $(ls /proc/$$/fd); do
  [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ] && eval "exec $fd>&-" 2>/dev/null || true
done

program=$(basename "$0")
root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "$program: error: $*" >&2; exit 1; }
note() { echo "$program: $*" >&2; }

command=${1:-}
[ -n "$command" ] || die "expected up, exec, kill, status or down (see the header of $0)"
shift
state_dir=${GEOFABRIC_REHEARSAL_DIR:-/tmp/geofabric-netns-rehearsal}
bundles="" binary="" wan=emulate name=r timeout=60 target="" run=()
while [ $# -gt 0 ]; do
  case "$1" in
    --state-dir) state_dir=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --wan) wan=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --) shift; run=("$@"); break ;;
    -*) die "unknown option $1" ;;
    *) if [ -z "$target" ]; then target=$1; shift; else die "unexpected argument $1"; fi ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
state_dir=$(realpath -m -- "$state_dir")
wan_ns=gf$name-wan

# The plan, one line per replica: replica region host port bundle-directory.
plan() { cat "$state_dir/plan"; }
host_ns() { echo "gf$name-h$(grep -n "^$1\$" "$state_dir/hosts" | cut -d: -f1)"; }
client_ns() { echo "gf$name-c$(grep -n "^$1\$" "$state_dir/regions" | cut -d: -f1)"; }

case "$command" in
up)
  [ -d "$target" ] || die "up needs the bundles directory (geofabric deploy bundles TOPOLOGY --out DIR)"
  [ ! -e "$state_dir/plan" ] || die "$state_dir holds a rehearsal already; run '$program down' first"
  binary=${binary:-${GEOFABRIC:-$root/.build/debug/geofabric}}
  [ -x "$binary" ] || die "no geofabric binary at $binary (--binary PATH)"
  case "$wan" in emulate|none) ;; *) die "--wan is emulate or none (this script does not drive netem)";; esac
  mkdir -p "$state_dir/pids" "$state_dir/logs"
  bundles=$(realpath -- "$target")
  python3 - "$bundles" > "$state_dir/plan" <<'PY'
import json, os, sys
root = sys.argv[1]
for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "bundle.json")
    if not os.path.exists(path):
        continue
    bundle = json.load(open(path))
    host, port = bundle["address"].rsplit(":", 1)
    parts = host.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts) or parts[0] == "127":
        sys.exit(f"{bundle['replica']}: address {bundle['address']} is not a non-loopback IPv4 address; list addresses such as 10.0.1.1:7000 in the topology")
    print(bundle["replica"], bundle["region"], host, port, os.path.join(root, name))
PY
  [ -s "$state_dir/plan" ] || die "no bundle.json under $bundles"
  plan | awk '{print $3}' | sort -u > "$state_dir/hosts"
  plan | awk '{print $2}' | awk '!seen[$0]++' > "$state_dir/regions"
  grep -q '^10\.254\.' "$state_dir/hosts" && die "10.254.0.0/16 is the client namespaces' range; the topology uses it"
  printf 'binary=%q\nwan=%q\nname=%q\n' "$binary" "$wan" "$name" > "$state_dir/env"
  trap 'note "up failed; tearing down"; "$0" down --state-dir "$state_dir" --name "$name" >/dev/null 2>&1 || true' ERR
  ip netns add "$wan_ns"
  ip -n "$wan_ns" link set lo up
  ip -n "$wan_ns" link add br0 type bridge
  ip -n "$wan_ns" link set br0 up
  link=0
  attach() {  # namespace address
    link=$((link + 1))
    ip netns add "$1"
    ip -n "$wan_ns" link add "p$link" type veth peer name eth0 netns "$1"
    ip -n "$wan_ns" link set "p$link" master br0 up
    ip -n "$1" link set lo up
    ip -n "$1" addr add "$2/8" dev eth0
    ip -n "$1" link set eth0 up
  }
  while read -r host; do attach "$(host_ns "$host")" "$host"; done < "$state_dir/hosts"
  index=0
  while read -r region; do index=$((index + 1)); attach "$(client_ns "$region")" "10.254.0.$index"; done < "$state_dir/regions"
  flags=()
  [ "$wan" = emulate ] && flags=(--emulate-wan)
  while read -r replica region host port bundle; do
    ip netns exec "$(host_ns "$host")" env GEOFABRIC="$binary" "$bundle/run" --log-level warning "${flags[@]}" \
      < /dev/null > "$state_dir/logs/$replica.log" 2>&1 &
    echo $! > "$state_dir/pids/$replica"
  done < <(plan)
  topology=$(plan | head -1 | awk '{print $5}')/topology.yaml
  first=$(head -1 "$state_dir/regions")
  count=$(wc -l < "$state_dir/plan")
  deadline=$((SECONDS + timeout))
  until ip netns exec "$(client_ns "$first")" "$binary" status "$topology" --timeout 1 2>/dev/null | grep -q "($count/$count replicas answered)"; do
    [ $SECONDS -lt $deadline ] || die "not every replica answered within $timeout s (logs: $state_dir/logs)"
    sleep 0.5
  done
  trap - ERR
  echo "$count replicas on $(wc -l < "$state_dir/hosts") hosts in $(wc -l < "$state_dir/regions") regions answer; WAN: $wan; topology: $topology"
  ;;
exec)
  [ -n "$target" ] && [ ${#run[@]} -gt 0 ] || die "exec REGION -- COMMAND"
  # shellcheck disable=SC1091
  source "$state_dir/env"
  grep -q "^$target\$" "$state_dir/regions" || die "no region $target (regions: $(tr '\n' ' ' < "$state_dir/regions"))"
  [ "${run[0]}" = geofabric ] && run[0]=$binary
  exec ip netns exec "$(client_ns "$target")" "${run[@]}"
  ;;
kill)
  [ -f "$state_dir/pids/$target" ] || die "no replica $target"
  kill -KILL "$(cat "$state_dir/pids/$target")" 2>/dev/null || true
  echo "$target killed"
  ;;
status)
  while read -r replica region host port bundle; do
    pid=$(cat "$state_dir/pids/$replica")
    if kill -0 "$pid" 2>/dev/null; then alive=running; else alive=down; fi
    echo "$replica $region $host:$port pid $pid $alive"
  done < <(plan)
  ;;
down)
  if [ -d "$state_dir/pids" ]; then
    for file in "$state_dir"/pids/*; do [ -f "$file" ] && kill -TERM "$(cat "$file")" 2>/dev/null || true; done
    for _ in $(seq 1 100); do
      alive=0
      for file in "$state_dir"/pids/*; do [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null && alive=1; done
      [ $alive = 0 ] && break
      sleep 0.1
    done
    for file in "$state_dir"/pids/*; do [ -f "$file" ] && kill -KILL "$(cat "$file")" 2>/dev/null || true; done
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^gf$name-" || true); do ip netns del "$ns"; done
  rm -rf "$state_dir/pids" "$state_dir/plan" "$state_dir/hosts" "$state_dir/regions" "$state_dir/env"
  echo "down"
  ;;
*) die "unknown command $command" ;;
esac
