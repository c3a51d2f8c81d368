#!/usr/bin/env bash
# tools/testbed.sh: a multi-host GeoFabric testbed on this one machine, built from Linux network
# namespaces. Each region that hosts a cluster gets its own namespace (gf-<region>) with one
# address, 10.77.0.X/16, on a veth link to a bridge in the namespace gf-wan; every replica runs in
# its region's namespace (replicas of a region share the address, with different ports). The WAN
# of the topology is applied with netem on the links (prio qdisc, one netem band per peer region,
# a u32 filter on the destination address, rtt/2 each way, the link rate); where the kernel has no
# netem the replicas run with --emulate-wan instead (GeoNet's own delay and rate emulation).
# The root namespace's addresses and routes are not touched.
#
# Usage (as root; needs ip, tc, python3 and the geofabric binary):
#   tools/testbed.sh up TOPOLOGY [--data-dir DIR] [--binary PATH] [--base-port N]
#                               [--wan auto|netem|emulate|none] [--name ID] [--timeout SECONDS]
#   tools/testbed.sh status
#   tools/testbed.sh exec REGION -- COMMAND [ARG...]
#   tools/testbed.sh down
# Every subcommand takes --state-dir DIR (default $GEOFABRIC_TESTBED_DIR or /tmp/geofabric-testbed):
# `up` records everything there, so `status`, `exec` and `down` work from any shell.
#
#   up      reads TOPOLOGY with `geofabric topology validate --json`, writes STATE/topology.yaml
#           (the same file with every cluster's replicas given as "10.77.0.X:PORT", ports from
#           --base-port, default 7000; replica names unchanged), builds the namespaces and links,
#           starts `geofabric replica` for every replica (logs: STATE/logs/<replica>.log, pids:
#           STATE/pids/, ledgers: --data-dir, default STATE/data) and waits until every replica
#           accepts TCP connections (--timeout, default 60 s). On any failure it tears down again.
#           --name ID prefixes the namespaces with gf-ID- so that two testbeds can coexist.
#   status  the namespaces, and per replica its address, pid, alive or not, and its GET /status.
#   exec    runs COMMAND inside REGION's namespace. A leading `geofabric` is replaced by the
#           testbed's binary, and `geofabric client ...` gets --topology STATE/topology.yaml when
#           it has none, so this is enough:
#             tools/testbed.sh exec belgium -- geofabric client put k v --region belgium
#   down    SIGTERM to every replica (SIGKILL after 10 s), then deletes the namespaces (and with
#           them the links). Keeps logs, ledgers and the derived topology. Safe to run twice.
#
# Example:
#   swift build && tools/testbed.sh up topologies/geo-4x4.yaml
#   tools/testbed.sh exec belgium -- geofabric client put greeting hello --region belgium
#   tools/testbed.sh status
#   tools/testbed.sh down
set -euo pipefail

PROGRAM=$(basename "$0")
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUBNET_PREFIX=10.77.0
STOP_GRACE_SECONDS=10

usage() {
    sed -n '2,/^set -euo pipefail$/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die() { echo "$PROGRAM: error: $*" >&2; exit 1; }
note() { echo "$PROGRAM: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Arguments.

command=${1:-}
[ -n "$command" ] || { usage >&2; exit 2; }
shift
case "$command" in
    -h|--help|help) usage; exit 0 ;;
    up|down|status|exec) ;;
    *) echo "$PROGRAM: unknown command '$command' (expected up, down, status or exec)" >&2; usage >&2; exit 2 ;;
esac

state_dir=${GEOFABRIC_TESTBED_DIR:-/tmp/geofabric-testbed}
topology=""
data_dir=""
binary=""
base_port=7000
wan_mode=auto
testbed_name=""
ready_timeout=60
exec_region=""
exec_command=()

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see $PROGRAM --help)"; }

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --state-dir) need_value "$@"; state_dir=$2; shift 2 ;;
        --state-dir=*) state_dir=${1#*=}; shift ;;
        --data-dir|--binary|--base-port|--wan|--name|--timeout)
            [ "$command" = up ] || die "$1 is an option of 'up' only"
            need_value "$@"
            case "$1" in
                --data-dir) data_dir=$2 ;;
                --binary) binary=$2 ;;
                --base-port) base_port=$2 ;;
                --wan) wan_mode=$2 ;;
                --name) testbed_name=$2 ;;
                --timeout) ready_timeout=$2 ;;
            esac
            shift 2 ;;
        --)
            [ "$command" = exec ] || die "'--' is only for 'exec REGION -- COMMAND'"
            shift
            exec_command=("$@")
            break ;;
        -*) die "unknown option '$1' (see $PROGRAM --help)" ;;
        *)
            if [ "$command" = up ] && [ -z "$topology" ]; then topology=$1
            elif [ "$command" = exec ] && [ -z "$exec_region" ]; then exec_region=$1
            else die "unexpected argument '$1' (see $PROGRAM --help)"
            fi
            shift ;;
    esac
done

state_dir=$(realpath -m -- "$state_dir")
state_file=$state_dir/testbed.env
plan_file=$state_dir/plan.tsv

require_root() {
    [ "$(id -u)" -eq 0 ] || die "'$command' needs root (network namespaces); try: sudo $0 $command ..."
}
require_tool() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"
}

# ---------------------------------------------------------------------------------------------
# State: STATE/testbed.env (shell assignments written by `up`), STATE/plan.tsv (regions and
# replicas), STATE/pids/<replica>.pid, STATE/logs/<replica>.log.

load_state() {
    [ -f "$state_file" ] || return 1
    # shellcheck disable=SC1090
    source "$state_file"
}

# The namespaces a testbed in the state directory uses: the bridge's, then one per region.
state_namespaces() {
    echo "$TESTBED_WAN_NS"
    awk -F'\t' '$1 == "region" { print $4 }' "$plan_file" 2>/dev/null || true
}

netns_exists() { ip netns list 2>/dev/null | awk '{ print $1 }' | grep -Fxq -- "$1"; }

# True when PID is alive and is the geofabric replica NAME (not a recycled pid).
is_replica_pid() {
    local pid=$1 name=$2
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Fq -- "replica --topology" || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -Fxq -- "$name"
}

replica_pid() { cat "$state_dir/pids/$1.pid" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------
# down

teardown() {
    trap '' PIPE  # a closed stderr must not stop a teardown halfway
    load_state || { note "nothing to tear down: no testbed recorded in $state_dir"; return 0; }
    local name pid waited remaining=() ns found=no
    # Replicas: SIGTERM, then SIGKILL after a bound.
    if [ -f "$plan_file" ]; then
        while IFS=$'\t' read -r kind name _; do
            [ "$kind" = replica ] || continue
            pid=$(replica_pid "$name")
            if is_replica_pid "$pid" "$name"; then
                kill -TERM "$pid" 2>/dev/null || true
                remaining+=("$name:$pid")
                found=yes
            fi
        done <"$plan_file"
    fi
    waited=0
    while [ ${#remaining[@]} -gt 0 ] && [ $waited -lt $((STOP_GRACE_SECONDS * 10)) ]; do
        local still=()
        for entry in "${remaining[@]}"; do
            is_replica_pid "${entry#*:}" "${entry%%:*}" && still+=("$entry")
        done
        remaining=("${still[@]+"${still[@]}"}")
        [ ${#remaining[@]} -gt 0 ] || break
        sleep 0.1
        waited=$((waited + 1))
    done
    for entry in "${remaining[@]+"${remaining[@]}"}"; do
        note "replica ${entry%%:*} (pid ${entry#*:}) did not stop in ${STOP_GRACE_SECONDS}s: SIGKILL"
        kill -KILL "${entry#*:}" 2>/dev/null || true
    done
    rm -f "$state_dir"/pids/*.pid
    # Anything else still running inside the testbed's namespaces (an `exec` shell, a client)
    # would keep the namespace alive after its name is gone: stop it too.
    for ns in $(state_namespaces); do
        netns_exists "$ns" || continue
        local pids
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        if [ -n "$pids" ]; then
            note "stopping processes still in $ns: $(echo $pids)"
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null || true
            sleep 1
            # shellcheck disable=SC2086
            kill -KILL $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null || true
        fi
    done
    # Namespaces: deleting a namespace deletes its veth ends, and a veth pair goes with either end.
    for ns in $(state_namespaces); do
        if netns_exists "$ns"; then
            found=yes
            ip netns delete "$ns" || note "could not delete namespace $ns"
        fi
    done
    if [ $found = yes ]; then
        note "testbed down (logs and ledgers kept in $state_dir)"
    else
        note "testbed already down: no replica or namespace of $state_dir was left"
    fi
}

# ---------------------------------------------------------------------------------------------
# status

show_status() {
    load_state || die "no testbed recorded in $state_dir (run '$PROGRAM up TOPOLOGY' first, or pass --state-dir)"
    echo "testbed: $TESTBED_TOPOLOGY_NAME from $TESTBED_SOURCE"
    echo "state:   $state_dir   topology: $TESTBED_DERIVED   data: $TESTBED_DATA_DIR"
    echo "wan:     $TESTBED_WAN"
    echo "namespaces:"
    local ns kind region ip name rns port sport pid alive json summary
    for ns in $(state_namespaces); do
        if netns_exists "$ns"; then echo "  $ns  present"; else echo "  $ns  absent"; fi
    done
    echo "replicas:"
    printf '  %-22s %-12s %-18s %-8s %-6s %s\n' REPLICA REGION ADDRESS PID ALIVE STATUS
    while IFS=$'\t' read -r kind name region ip port sport; do
        [ "$kind" = replica ] || continue
        rns=$(awk -F'\t' -v r="$region" '$1 == "region" && $2 == r { print $4 }' "$plan_file")
        pid=$(replica_pid "$name")
        alive=no
        summary=-
        if is_replica_pid "$pid" "$name"; then
            alive=yes
            json=$(http_get "$rns" "$ip" "$sport" /status || true)
            if [ -n "$json" ]; then
                summary=$(python3 -c '
import json, sys
try:
    s = json.loads(sys.argv[1])
    print("height %s view %s round %s %s peers %s/%s" % (s["height"], s["view"], s["round"], s["status"],
          s["peers_connected"], s["peers_total"]))
except Exception:
    print("unreadable")' "$json")
            fi
        fi
        printf '  %-22s %-12s %-18s %-8s %-6s %s\n' "$name" "$region" "$ip:$port" "${pid:--}" "$alive" "$summary"
    done <"$plan_file"
}

# GET PATH from IP:PORT inside namespace NS; prints the body of a 200 answer.
http_get() {
    ip netns exec "$1" timeout 3 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$3" "$1" >&3
        response=$(cat <&3)
        case "$response" in "HTTP/1."?" 200"*) printf "%s\n" "${response#*$'"'"'\r\n\r\n'"'"'}" ;; *) exit 1 ;; esac
    ' _ "$2" "$3" "$4" 2>/dev/null
}

# True when IP:PORT accepts a TCP connection from inside namespace NS.
tcp_accepts() {
    ip netns exec "$1" timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$2" "$3" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# exec

run_exec() {
    load_state || die "no testbed recorded in $state_dir (run '$PROGRAM up TOPOLOGY' first, or pass --state-dir)"
    [ -n "$exec_region" ] || die "usage: $PROGRAM exec REGION -- COMMAND [ARG...]"
    [ ${#exec_command[@]} -gt 0 ] || die "no command: $PROGRAM exec $exec_region -- COMMAND [ARG...]"
    local ns
    ns=$(awk -F'\t' -v r="$exec_region" '$1 == "region" && $2 == r { print $4 }' "$plan_file")
    if [ -z "$ns" ]; then
        die "no namespace for region '$exec_region'; the testbed's regions: $(awk -F'\t' '$1 == "region" { printf "%s ", $2 }' "$plan_file")"
    fi
    netns_exists "$ns" || die "namespace $ns does not exist (is the testbed up? '$PROGRAM status')"
    local argv=("${exec_command[@]}")
    if [ "${argv[0]}" = geofabric ]; then
        argv[0]=$TESTBED_BINARY
        if [ "${argv[1]:-}" = client ]; then
            local has_topology=no arg
            for arg in "${argv[@]}"; do
                case "$arg" in --topology|--topology=*) has_topology=yes ;; esac
            done
            [ $has_topology = yes ] || argv+=(--topology "$TESTBED_DERIVED")
        fi
    fi
    exec ip netns exec "$ns" "${argv[@]}"
}

# ---------------------------------------------------------------------------------------------
# up: the plan. Reads the validated topology (JSON) and the topology file's text; writes the
# derived topology and the plan. The file's text is changed only where a cluster's replicas are
# given (and a relative key directory), so names, WAN, shards, protocol and keys stay as they are.

make_plan() {
    python3 - "$@" <<'PYTHON'
import json, os, re, sys

source, validated, base_port, derived, plan, prefix = sys.argv[1:7]
base_port = int(base_port)

def fail(message):
    sys.stderr.write("testbed.sh: error: %s\n" % message)
    sys.exit(1)

info = json.load(open(validated))
text = open(source, encoding="utf-8").read()

clusters = [c for shard in info["shards"] for c in shard["clusters"]]
regions = []
for c in clusters:
    if c["region"] not in regions:
        regions.append(c["region"])
if len(regions) > 254:
    fail("%d regions host clusters; the testbed has addresses for 254" % len(regions))
if "wan" in regions:
    fail("a region called 'wan' would share its namespace name with the bridge's")
address_of = {r: "%s.%d" % ("10.77.0", i + 1) for i, r in enumerate(regions)}

# Ports: base_port + the replica's position in the topology; status port = port + the offset.
port = base_port
cluster_addresses, replicas = [], []
for c in clusters:
    addresses = []
    for r in c["replicas"]:
        offset = r["status_port"] - int(r["address"].rsplit(":", 1)[1])
        if port > 65535 or port + offset > 65535 or port + offset < 1:
            fail("port %d (status %d) for %s is out of range: choose a smaller --base-port" % (port, port + offset, r["name"]))
        addresses.append("%s:%d" % (address_of[c["region"]], port))
        replicas.append((r["name"], c["region"], address_of[c["region"]], port, port + offset))
        port += 1
    cluster_addresses.append(addresses)

# A copy of the text with comments blanked and the insides of quoted strings replaced by 'x',
# position for position, so that keys are found only where YAML would see them.
def mask(text):
    out, i, n = list(text), 0, len(text)
    state = None
    while i < n:
        ch = text[i]
        if state is None:
            if ch == "#" and (i == 0 or text[i - 1] in " \t\n"):
                state = "comment"; out[i] = " "
            elif ch in "\"'":
                j = i - 1
                while j >= 0 and text[j] in " \t":
                    j -= 1
                if j < 0 or text[j] in ":[{,-\n":
                    state = ch
        elif state == "comment":
            if ch == "\n":
                state = None
            else:
                out[i] = " "
        elif state == '"':
            if ch == "\\" and i + 1 < n:
                out[i] = out[i + 1] = "x"; i += 2; continue
            if ch == '"':
                state = None
            elif ch != "\n":
                out[i] = "x"
        elif state == "'":
            if ch == "'":
                state = None
            elif ch != "\n":
                out[i] = "x"
        i += 1
    return "".join(out)

masked = mask(text)
edits = []  # (start, end, replacement)

key = re.compile(r"(?:^|(?<=[\s{,]))replicas[ \t]*:(?=[ \t\r\n]|$)", re.M)
spans = []
for m in key.finditer(masked):
    i = m.end()
    while i < len(masked) and masked[i] in " \t":
        i += 1
    if i < len(masked) and masked[i].isdigit():
        j = i
        while j < len(masked) and masked[j].isdigit():
            j += 1
        spans.append((i, j, int(masked[i:j]), ""))
    elif i < len(masked) and masked[i] == "[":
        depth, j = 0, i
        while j < len(masked):
            if masked[j] == "[": depth += 1
            elif masked[j] == "]":
                depth -= 1
                if depth == 0: break
            j += 1
        if j >= len(masked):
            fail("%s: an unclosed replicas list" % source)
        inner = masked[i + 1:j].strip()
        count = 0 if not inner else inner.rstrip(",").count(",") + 1
        spans.append((i, j + 1, count, ""))
    elif i >= len(masked) or masked[i] in "\r\n":
        # A block sequence: the following "- item" lines indented at least as far as the key.
        line_start = masked.rfind("\n", 0, m.start()) + 1
        column = m.start() - line_start
        pos = masked.find("\n", i)
        end, count = i, 0
        while pos != -1 and pos < len(masked):
            nxt = masked.find("\n", pos + 1)
            line = masked[pos + 1: nxt if nxt != -1 else len(masked)]
            stripped = line.strip()
            indent = len(line) - len(line.lstrip(" "))
            if stripped == "":
                pos = nxt if nxt != -1 else -1
                continue
            if indent >= column and stripped.startswith("-"):
                count += 1
                end = nxt if nxt != -1 else len(masked)
                pos = nxt if nxt != -1 else -1
                continue
            break
        spans.append((i, end, count, " "))
    else:
        fail("%s: cannot read the replicas value at offset %d (expected a count or a list)" % (source, i))

if len(spans) != len(clusters):
    fail("%s: found %d 'replicas:' entries, the topology has %d clusters; cannot rewrite the addresses"
         % (source, len(spans), len(clusters)))
for (start, end, count, lead), c, addresses in zip(spans, clusters, cluster_addresses):
    if count != c["n"]:
        fail("%s: the cluster in %s has %d replicas but its 'replicas:' entry reads as %d"
             % (source, c["region"], c["n"], count))
    edits.append((start, end, lead + "[" + ", ".join('"%s"' % a for a in addresses) + "]"))

# A relative key directory is relative to the topology file: make it absolute.
directory = re.compile(r"(?:^|(?<=[\s{,]))directory[ \t]*:[ \t]*", re.M)
for m in directory.finditer(masked):
    i = m.end()
    if i < len(text) and text[i] in "\"'":
        j = masked.find(text[i], i + 1)
        raw = text[i:j + 1]
        value = json.loads(raw) if raw[0] == '"' else raw[1:-1].replace("''", "'")
        j += 1
    else:
        j = i
        while j < len(masked) and masked[j] not in ",}\r\n":
            j += 1
        while j > i and masked[j - 1] in " \t":
            j -= 1
        value = text[i:j]
    if value and not os.path.isabs(value):
        value = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(source)), value))
    edits.append((i, j, json.dumps(value)))

result = text
for start, end, replacement in sorted(edits, reverse=True):
    result = result[:start] + replacement + result[end:]
with open(derived, "w", encoding="utf-8") as f:
    f.write("# Derived by tools/testbed.sh from %s: every replica at its region's namespace address.\n"
            % os.path.abspath(source))
    f.write(result)

# The WAN, for netem: PyYAML when present, else the flow mappings {between: [A, B], rtt_ms: R, mbit_s: M}.
links, wan_note = {}, ""
try:
    import yaml
    for entry in (yaml.safe_load(text) or {}).get("wan") or []:
        a, b = entry["between"]
        links[frozenset((str(a), str(b)))] = (float(entry["rtt_ms"]), float(entry["mbit_s"]))
except ImportError:
    comments_blank = "".join(t if m != " " or t in " \t\r\n" else " " for t, m in zip(text, mask(text)))
    for m in re.finditer(r"\{[^{}]*\}", comments_blank):
        body = m.group(0)
        between = re.search(r"between\s*:\s*\[\s*[\"']?([^\"',\]\s]+)[\"']?\s*,\s*[\"']?([^\"',\]\s]+)[\"']?\s*\]", body)
        rtt = re.search(r"rtt_ms\s*:\s*([0-9.]+)", body)
        rate = re.search(r"mbit_s\s*:\s*([0-9.]+)", body)
        if between and rtt and rate:
            links[frozenset(between.groups())] = (float(rtt.group(1)), float(rate.group(1)))
except Exception as error:
    wan_note = "could not read the WAN (%s)" % error
missing = [(a, b) for i, a in enumerate(regions) for b in regions[i + 1:] if frozenset((a, b)) not in links]
if missing and not wan_note:
    wan_note = "could not read the WAN entry for %s-%s from the file (without PyYAML only flow entries {between: ...} are read)" % missing[0]

with open(plan, "w") as f:
    for i, r in enumerate(regions):
        f.write("region\t%s\t%s\t%s%s\n" % (r, address_of[r], prefix, r))
    for name, region, address, p, sp in replicas:
        f.write("replica\t%s\t%s\t%s\t%d\t%d\n" % (name, region, address, p, sp))
    if wan_note:
        f.write("wanerror\t%s\n" % wan_note)
    else:
        for i, a in enumerate(regions):
            for b in regions[i + 1:]:
                rtt, rate = links[frozenset((a, b))]
                f.write("wan\t%s\t%s\t%s\t%s\n" % (a, b, rtt, rate))
PYTHON
}

# Checks that the derived topology validates and keeps every cluster's region, size and replica
# names, with the planned addresses.
check_derived() {
    python3 - "$1" "$2" "$plan_file" <<'PYTHON'
import json, sys
original, derived, plan = (json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3])
planned = {}
for line in open(plan):
    fields = line.rstrip("\n").split("\t")
    if fields[0] == "replica":
        planned[fields[1]] = ("%s:%s" % (fields[3], fields[4]), int(fields[5]))
def shape(info):
    return [(s["name"], c["region"], c["n"], c["f"], [r["name"] for r in c["replicas"]])
            for s in info["shards"] for c in s["clusters"]]
problems = []
if original["name"] != derived["name"]:
    problems.append("the name changed: %s -> %s" % (original["name"], derived["name"]))
if shape(original) != shape(derived):
    problems.append("the shards, clusters or replica names changed")
for s in derived["shards"]:
    for c in s["clusters"]:
        for r in c["replicas"]:
            if planned.get(r["name"]) != (r["address"], r["status_port"]):
                problems.append("%s is at %s (status %s), planned %s" % (r["name"], r["address"], r["status_port"], planned.get(r["name"])))
if problems:
    sys.stderr.write("testbed.sh: error: the derived topology does not match the original: %s\n" % "; ".join(problems))
    sys.exit(1)
PYTHON
}

# netem on REGION's link: one prio band per peer region, with netem (rtt/2, the link's rate) and a
# u32 filter on the peer's address. Egress only: the peer's own link delays the way back.
apply_netem() {
    local region=$1 ns=$2 peers=() kind a b rtt rate peer_ip band handle k=0
    while IFS=$'\t' read -r kind a b rtt rate; do
        [ "$kind" = wan ] || continue
        if [ "$a" = "$region" ]; then peers+=("$b:$rtt:$rate")
        elif [ "$b" = "$region" ]; then peers+=("$a:$rtt:$rate")
        fi
    done <"$plan_file"
    [ ${#peers[@]} -gt 0 ] || return 0
    [ ${#peers[@]} -le 13 ] || { note "$region has ${#peers[@]} peer regions; prio has bands for 13"; return 1; }
    ip netns exec "$ns" tc qdisc add dev eth0 root handle 1: prio bands $((3 + ${#peers[@]})) || return 1
    for entry in "${peers[@]}"; do
        IFS=: read -r peer rtt rate <<<"$entry"
        peer_ip=$(awk -F'\t' -v r="$peer" '$1 == "region" && $2 == r { print $3 }' "$plan_file")
        band=$(printf '%x' $((4 + k)))
        handle=$(printf '%x' $((0x10 + k)))
        ip netns exec "$ns" tc qdisc add dev eth0 parent "1:$band" handle "$handle:" \
            netem delay "$(awk -v r="$rtt" 'BEGIN { printf "%.3f", r / 2 }')ms" rate "${rate}mbit" limit 100000 || return 1
        ip netns exec "$ns" tc filter add dev eth0 parent 1: protocol ip prio 1 u32 \
            match ip dst "$peer_ip/32" flowid "1:$band" || return 1
        k=$((k + 1))
    done
}

netem_available() {
    local ns=$1
    modprobe sch_netem >/dev/null 2>&1 || true
    if ip netns exec "$ns" tc qdisc add dev eth0 root netem delay 1ms >/dev/null 2>&1; then
        ip netns exec "$ns" tc qdisc del dev eth0 root >/dev/null 2>&1 || true
        return 0
    fi
    return 1
}

bring_up() {
    require_root
    require_tool ip "install iproute2"
    require_tool python3 "install python3 (the topology is read with its json module)"
    [ -n "$topology" ] || die "usage: $PROGRAM up TOPOLOGY [options] (see $PROGRAM --help)"
    [ -f "$topology" ] || die "no topology file '$topology'"
    case "$wan_mode" in auto|netem|emulate|none) ;; *) die "--wan must be auto, netem, emulate or none, not '$wan_mode'" ;; esac
    [[ "$base_port" =~ ^[0-9]+$ ]] && [ "$base_port" -ge 1 ] && [ "$base_port" -le 65535 ] || die "--base-port must be a port number, not '$base_port'"
    [[ "$ready_timeout" =~ ^[0-9]+$ ]] && [ "$ready_timeout" -ge 1 ] || die "--timeout must be a whole number of seconds, not '$ready_timeout'"
    [[ -z "$testbed_name" || "$testbed_name" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--name may use letters, digits and - _ . only"
    if [ -z "$binary" ]; then
        binary=${GEOFABRIC_BINARY:-}
        [ -n "$binary" ] || { [ -x "$REPO_ROOT/.build/debug/geofabric" ] && binary=$REPO_ROOT/.build/debug/geofabric; } || true
        [ -n "$binary" ] || binary=$(command -v geofabric || true)
        [ -n "$binary" ] || die "no geofabric binary: build it (swift build) or pass --binary PATH"
    fi
    [ -x "$binary" ] || die "the binary '$binary' is not an executable file (swift build, or --binary PATH)"
    binary=$(realpath -- "$binary")

    if load_state; then
        local name pid
        while IFS=$'\t' read -r kind name _; do
            [ "$kind" = replica ] || continue
            pid=$(replica_pid "$name")
            ! is_replica_pid "$pid" "$name" || die "a testbed is already running from $state_dir (replica $name, pid $pid): '$PROGRAM down' first"
        done <"$plan_file"
        for ns in $(state_namespaces); do
            ! netns_exists "$ns" || die "namespace $ns of an earlier testbed in $state_dir still exists: '$PROGRAM down' first"
        done
    fi

    local prefix=gf-
    [ -z "$testbed_name" ] || prefix=gf-$testbed_name-
    mkdir -p "$state_dir/logs" "$state_dir/pids"
    rm -f "$state_dir"/pids/*.pid
    [ -n "$data_dir" ] || data_dir=$state_dir/data
    mkdir -p "$data_dir"
    data_dir=$(realpath -- "$data_dir")
    local source derived=$state_dir/topology.yaml
    source=$(realpath -- "$topology")

    "$binary" topology validate "$source" --json >"$state_dir/original.json" \
        || die "'$binary topology validate $source' refused the topology (above)"
    make_plan "$source" "$state_dir/original.json" "$base_port" "$derived" "$plan_file" "$prefix" || exit 1
    "$binary" topology validate "$derived" --json >"$state_dir/derived.json" \
        || die "the derived topology $derived does not validate (above)"
    check_derived "$state_dir/original.json" "$state_dir/derived.json" || exit 1
    local topology_name
    topology_name=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["name"])' "$state_dir/original.json")

    local wan_ns=${prefix}wan
    local kind region ip ns name port sport
    for ns in "$wan_ns" $(awk -F'\t' '$1 == "region" { print $4 }' "$plan_file"); do
        ! netns_exists "$ns" || die "namespace $ns already exists (another testbed? '$PROGRAM down --state-dir DIR' it, or use --name ID)"
    done

    {
        printf 'TESTBED_TOPOLOGY_NAME=%q\n' "$topology_name"
        printf 'TESTBED_SOURCE=%q\n' "$source"
        printf 'TESTBED_DERIVED=%q\n' "$derived"
        printf 'TESTBED_BINARY=%q\n' "$binary"
        printf 'TESTBED_DATA_DIR=%q\n' "$data_dir"
        printf 'TESTBED_WAN_NS=%q\n' "$wan_ns"
        printf 'TESTBED_WAN=%q\n' "being set up"
    } >"$state_file"

    # From here on a failure tears everything down again.
    trap 'status=$?; if [ $status -ne 0 ]; then note "up failed: tearing down"; teardown || true; fi' EXIT
    trap 'exit 130' INT TERM HUP

    ip netns add "$wan_ns"
    ip -n "$wan_ns" link set lo up
    ip -n "$wan_ns" link add gfbr0 type bridge
    ip -n "$wan_ns" link set gfbr0 up
    local index=0
    while IFS=$'\t' read -r kind region ip ns; do
        [ "$kind" = region ] || continue
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip -n "$wan_ns" link add "r$index" type veth peer name eth0 netns "$ns"
        ip -n "$wan_ns" link set "r$index" master gfbr0 up
        ip -n "$ns" addr add "$ip/16" dev eth0
        ip -n "$ns" link set eth0 up
        index=$((index + 1))
    done <"$plan_file"

    # The WAN: netem where the kernel has it, else GeoNet's emulation.
    local first_ns wan_description emulate=()
    first_ns=$(awk -F'\t' '$1 == "region" { print $4; exit }' "$plan_file")
    local region_count
    region_count=$(awk -F'\t' '$1 == "region"' "$plan_file" | wc -l)
    local wan_error
    wan_error=$(awk -F'\t' '$1 == "wanerror" { print $2 }' "$plan_file")
    local mode=$wan_mode
    if [ "$mode" = auto ] || [ "$mode" = netem ]; then
        if [ "$region_count" -lt 2 ]; then
            mode=none
        elif [ -n "$wan_error" ]; then
            [ "$mode" = auto ] || die "--wan netem: $wan_error"
            note "$wan_error: using the replicas' --emulate-wan instead of netem"
            mode=emulate
        elif ! netem_available "$first_ns"; then
            [ "$mode" = auto ] || die "--wan netem: the netem qdisc is not available in this kernel (modprobe sch_netem)"
            note "the netem qdisc is not available in this kernel: replicas run with --emulate-wan (GeoNet's delay and rate emulation) instead"
            mode=emulate
        else
            mode=netem
        fi
    fi
    case "$mode" in
        netem)
            local netem_failed=""
            while IFS=$'\t' read -r kind region ip ns; do
                [ "$kind" = region ] || continue
                apply_netem "$region" "$ns" || { netem_failed=$ns; break; }
            done <"$plan_file"
            if [ -z "$netem_failed" ]; then
                wan_description="netem on the veth links (rtt/2 each way, link rates)"
            else
                [ "$wan_mode" = auto ] || die "netem on $netem_failed failed (above)"
                note "netem on $netem_failed failed (above): replicas run with --emulate-wan instead"
                while IFS=$'\t' read -r kind region ip ns; do
                    [ "$kind" = region ] || continue
                    ip netns exec "$ns" tc qdisc del dev eth0 root >/dev/null 2>&1 || true
                done <"$plan_file"
                emulate=(--emulate-wan)
                wan_description="replicas' --emulate-wan (GeoNet emulation; netem failed)"
            fi ;;
        emulate)
            emulate=(--emulate-wan)
            wan_description="replicas' --emulate-wan (GeoNet emulation)" ;;
        none)
            if [ "$region_count" -lt 2 ]; then wan_description="none (one region)"; else wan_description="none (--wan none)"; fi ;;
    esac
    sed -i "s/^TESTBED_WAN=.*/TESTBED_WAN=$(printf '%q' "$wan_description" | sed 's/[\/&]/\\&/g')/" "$state_file"

    # The replicas, one process each, in their region's namespace.
    local count=0
    while IFS=$'\t' read -r kind name region ip port sport; do
        [ "$kind" = replica ] || continue
        ns=$(awk -F'\t' -v r="$region" '$1 == "region" && $2 == r { print $4 }' "$plan_file")
        # A daemon keeps no descriptor of its starter open: whoever waits for this script's end
        # through an inherited pipe or socket (Foundation's Process does) must not wait for it.
        (
            for fd in /proc/$BASHPID/fd/*; do
                fd=${fd##*/}
                [ "$fd" -le 2 ] || eval "exec $fd>&-" 2>/dev/null || true
            done
            exec ip netns exec "$ns" setsid "$binary" replica --topology "$derived" --replica "$name" \
                --data-dir "$data_dir" "${emulate[@]+"${emulate[@]}"}" \
                </dev/null >>"$state_dir/logs/$name.log" 2>&1
        ) &
        echo $! >"$state_dir/pids/$name.pid"
        count=$((count + 1))
    done <"$plan_file"
    note "started $count replicas of $topology_name in $region_count region namespace(s); WAN: $wan_description"

    # Ready: every replica accepts TCP connections on its address (probed from the first region's
    # namespace, so across the bridge for the other regions).
    local deadline=$((SECONDS + ready_timeout)) pending
    while :; do
        pending=()
        while IFS=$'\t' read -r kind name region ip port sport; do
            [ "$kind" = replica ] || continue
            local pid
            pid=$(replica_pid "$name")
            if ! kill -0 "$pid" 2>/dev/null; then
                note "replica $name exited during start-up; the end of $state_dir/logs/$name.log:"
                tail -n 15 "$state_dir/logs/$name.log" >&2 || true
                die "replica $name did not come up"
            fi
            tcp_accepts "$first_ns" "$ip" "$port" || pending+=("$name ($ip:$port)")
        done <"$plan_file"
        [ ${#pending[@]} -gt 0 ] || break
        if [ $SECONDS -ge $deadline ]; then
            note "not accepting connections after ${ready_timeout}s: ${pending[*]}"
            name=${pending[0]%% *}
            note "the end of $state_dir/logs/$name.log:"
            tail -n 15 "$state_dir/logs/$name.log" >&2 || true
            die "replica ${pending[0]} did not come up in ${ready_timeout}s"
        fi
        sleep 0.2
    done
    trap - EXIT INT TERM HUP

    echo "testbed up: $count replicas of $topology_name (state: $state_dir)"
    echo "  topology: $derived"
    echo "  wan:      $wan_description"
    while IFS=$'\t' read -r kind region ip ns; do
        [ "$kind" = region ] || continue
        echo "  $ns  $ip  $(awk -F'\t' -v r="$region" '$1 == "replica" && $3 == r { printf "%s ", $2 }' "$plan_file")"
    done <"$plan_file"
    local example_region
    example_region=$(awk -F'\t' '$1 == "region" { r = $2 } END { print r }' "$plan_file")
    echo "  try:      $0 exec $example_region -- geofabric client put greeting hello --region $example_region"
    echo "  stop:     $0 down${state_dir:+ --state-dir $state_dir}"
}

case "$command" in
    up) bring_up ;;
    down) require_root; teardown ;;
    status) show_status ;;
    exec) require_root; run_exec ;;
esac
