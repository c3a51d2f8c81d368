#!/usr/bin/env bash
# Rehearses a multi-host deployment on this machine with the tools an operator uses: fresh keys,
# `geofabric deploy bundles`, every replica started from its bundle's `run` script alone, `status`,
# one `bench --attach --clients-region R` load generator per region at the same time, and
# `bench merge` of their reports. Replicas are stopped with SIGTERM at the end.
#
#   tools/deploy-rehearsal.sh [CLIENTS_PER_REGION] [DURATION_S]
#
# The topology (2 regions x 4 replicas, loopback ports 18680-18687, status 19680-19687) and all
# files live in a temporary directory, kept if GEOFABRIC_KEEP=1. GEOFABRIC: the binary (default:
# .build/release/geofabric; build it with `swift build -c release`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
geofabric=${GEOFABRIC:-$root/.build/release/geofabric}
clients=${1:-32}
duration=${2:-15}
[ -x "$geofabric" ] || { echo "no geofabric binary at $geofabric (swift build -c release, or set GEOFABRIC)" >&2; exit 1; }
work=$(mktemp -d /tmp/geofabric-rehearsal.XXXXXX)
pids=()
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
  if [ "${GEOFABRIC_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
cd "$work"
cat > rehearsal.yaml <<YAML
name: rehearsal-2x4
regions: [oregon, iowa]
wan:
  - {between: [oregon, iowa], rtt_ms: 38, mbit_s: 669}
clients: $(( clients * 2 ))
base_port: 18680
shards:
  - name: s0
    clusters:
      - {region: oregon, replicas: 4}
      - {region: iowa, replicas: 4}
keys: {directory: keys}
YAML
"$geofabric" keys generate rehearsal.yaml --out keys > /dev/null
"$geofabric" deploy bundles rehearsal.yaml --out bundles 2> /dev/null | head -1
for bundle in bundles/*/; do
  name=$(basename "$bundle")
  (cd / && GEOFABRIC="$geofabric" exec "$work/$bundle/run" --log-level warning) > "$name.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 60); do
  "$geofabric" status rehearsal.yaml --timeout 1 2>/dev/null | grep -q "(8/8 replicas answered)" && break
  sleep 0.5
done
"$geofabric" status rehearsal.yaml | head -1
generators=()
for region in oregon iowa; do
  "$geofabric" bench rehearsal.yaml --attach --clients-region "$region" --clients "$clients" \
      --duration "$duration" --warmup 3 --json-file "$region.json" > "$region.txt" 2> "$region.err" &
  generators+=($!)
done
for pid in "${generators[@]}"; do wait "$pid"; done
for region in oregon iowa; do echo "$region: $(head -1 "$region.txt")"; done
"$geofabric" bench merge oregon.json iowa.json --json-file merged.json
"$geofabric" status rehearsal.yaml | head -1
