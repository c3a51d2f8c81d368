#!/usr/bin/env bash
# Profiles `geofabric bench` with perf: starts the benchmark, records every CPU (with call chains)
# for a few seconds once it is past its warmup, and prints where each process spent its samples
# (tools/perf_breakdown.py). The replicas' pids are gone when it prints; the biggest process
# without a command line after the benchmark is usually the primary.
#
# Usage: tools/profile-bench.sh [bench arguments...]      e.g. tools/profile-bench.sh topologies/local-1x4.yaml
# Needs: perf (apt-get install linux-perf), a release build (swift build -c release), root or
# kernel.perf_event_paranoid <= 0.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${GEOFABRIC_BINARY:-.build/release/geofabric}   # another build, for an A/B: GEOFABRIC_BINARY=/tmp/geofabric-old
[[ -x $binary ]] || { echo "build first: swift build -c release" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
out=$(mktemp -d /tmp/geofabric-profile.XXXXXX)
"$binary" bench "$@" --duration 14 --warmup 3 > "$out/bench.txt" 2>&1 &
bench=$!
sleep 6
perf record -a -g -F 999 -o "$out/perf.data" -- sleep 5 2> "$out/perf-record.txt"
perf script -i "$out/perf.data" -F pid,ip,sym 2>/dev/null | tools/perf_breakdown.py
wait "$bench" || true
grep -E '^(geobft|pbft) on|bound:' "$out/bench.txt" || cat "$out/bench.txt"
echo "perf data and the bench report: $out"
