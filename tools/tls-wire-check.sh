#!/usr/bin/env bash
# The wire checks of issue 14 on one machine, against `geofabric up` of a topology given by count
# on 127.0.0.1 (default topologies/local-1x4.yaml, replica ports base_port.. , default 7000):
#
#   1. tcpdump on lo while `geofabric client put tlsprobe VALUE` runs: occurrences of VALUE in the
#      capture (0 with TLS; run it again on a copy with `transport: {tls: false}` to see them);
#   2. `openssl s_client -tls1_3` to replica 1: the TLS 1.3 handshake completes, then the replica
#      refuses it for lack of a client certificate (alert 116, certificate required);
#   3. a plaintext GEOH Hello to replica 1: the bytes it answers (0: no plaintext answer);
#   and the replica's geofabric_wire_errors_total lines afterwards.
#
#   tools/tls-wire-check.sh [TOPOLOGY] [VALUE]
#
# Needs tcpdump (apt-get install tcpdump), openssl and python3; uses `geofabric` from PATH, or
# $GEOFABRIC. Runs as root (tcpdump); stops the deployment and removes its data at the end.
set -euo pipefail
topology=${1:-topologies/local-1x4.yaml}
value=${2:-tls-probe-$RANDOM$RANDOM}
tool=${GEOFABRIC:-geofabric}
work=$(mktemp -d)
read -r port status_port < <("$tool" topology validate "$topology" --json 2>/dev/null | python3 -c '
import json, sys
replica = json.load(sys.stdin)["shards"][0]["clusters"][0]["replicas"][1]
print(replica["address"].rsplit(":", 1)[1], replica["status_port"])')
base=$((port - 1))
"$tool" up "$topology" --data-dir "$work/data" > "$work/up.log" 2>&1 &
up=$!
cleanup() { kill "$up" 2>/dev/null || true; wait "$up" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$status_port/status" > /dev/null 2>&1 && break
  sleep 0.5
done
tcpdump -i lo -U -w "$work/capture.pcap" "tcp portrange $base-$((base + 64))" > /dev/null 2>&1 &
dump=$!
sleep 1
"$tool" client put tlsprobe "$value" "$topology"
sleep 1
kill "$dump"; wait "$dump" 2>/dev/null || true
echo "1. capture: $(stat -c %s "$work/capture.pcap") bytes; occurrences of $value: $(grep -o -a -- "$value" "$work/capture.pcap" | wc -l)"
echo "2. openssl s_client -connect 127.0.0.1:$port -tls1_3:"
(sleep 2; printf x) | timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_3 2>&1 \
  | grep -E "^New,|Peer signature type|subject=|alert" | sed 's/^/   /' || true
python3 - "$port" <<'EOF'
import os, socket, sys
port = int(sys.argv[1])
hello = b"GEOH" + bytes([1]) + (1).to_bytes(2, "little") + bytes(32) + (0x80000003).to_bytes(4, "little") + os.urandom(32)
with socket.create_connection(("127.0.0.1", port)) as s:
    s.sendall(hello)
    s.settimeout(5)
    answer = b""
    try:
        while chunk := s.recv(4096):
            answer += chunk
    except OSError:
        pass
print(f"3. plaintext GEOH Hello to 127.0.0.1:{port}: {len(answer)} bytes answered")
EOF
curl -s "http://127.0.0.1:$status_port/metrics" | grep '^geofabric_wire_errors_total' | sed 's/^/   /' || true
