#!/usr/bin/env bash
# How long a replica takes to come back: from starting its process on an existing data directory
# to answering GET /status with the height its ledger had (the replica recovers before it serves
# /status, so the first answer carries the recovered height). What a snapshot bounds: the replica
# loads its latest snapshot and re-executes only the blocks after it, however long the ledger.
#
#   tools/restart-time.sh TOPOLOGY REPLICA DATA_DIR [EXPECTED_HEIGHT]
#
# DATA_DIR holds one directory per replica (as `up --data-dir` or `bench --data-dir D --keep-data`
# leave them: D/geobft). Prints the seconds, the height and the replica's recovery log line; exits
# 1 if the replica does not answer within 60 s or answers below EXPECTED_HEIGHT. Uses `geofabric`
# from PATH, or $GEOFABRIC.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
topology=$1 replica=$2 data=$3 expected=${4:-0}
tool=${GEOFABRIC:-geofabric}
port=$("$tool" topology validate "$topology" --json | python3 -c '
import json, sys
name = sys.argv[1]
for shard in json.load(sys.stdin)["shards"]:
    for cluster in shard["clusters"]:
        for replica in cluster["replicas"]:
            if replica["name"] == name:
                print(replica["status_port"])
' "$replica")
[ -n "$port" ] || { echo "no replica named $replica in $topology" >&2; exit 1; }

log=$(mktemp)
start=$(date +%s.%N)
"$tool" replica "$topology" --replica "$replica" --data-dir "$data" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
height=""
for _ in $(seq 1 6000); do
  if answer=$(curl -s --max-time 1 "http://127.0.0.1:$port/status" 2>/dev/null) && [ -n "$answer" ]; then
    height=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["height"])' "$answer")
    break
  fi
  kill -0 $pid 2>/dev/null || { echo "the replica exited:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.01
done
end=$(date +%s.%N)
[ -n "$height" ] || { echo "no /status answer within 60 s" >&2; exit 1; }
seconds=$(python3 -c "print(f'{$end - $start:.2f}')")
echo "restart: /status answered after $seconds s at height $height"
grep -E "recovered (log|ledger)" "$log" | sed 's/^/  /' || true
if [ "$height" -lt "$expected" ]; then
  echo "below the expected height $expected" >&2
  exit 1
fi
