#!/usr/bin/env python3
"""Where the CPU of a `geofabric bench` run goes, per process, from `perf script -F pid,ip,sym`.

Usage: perf script -i perf.data -F pid,ip,sym | tools/perf_breakdown.py [--top N]

For each process with samples: its share of all samples, and the share of its samples whose call
chain passes through Ed25519 verification (client signatures in the preverifier, protocol
signatures in the PBFT core), signing, socket writes and reads, fsync, frame coding and malloc.
The shares of one process overlap (a sample can be in several), so they do not add to 100%.
"""
import collections
import re
import sys

BUCKETS = [
    ("verify", r"ED25519_verify"),
    ("  client signatures (preverifier)", r"ClientSignaturePreverifier"),
    ("  protocol signatures (PBFT core)", r"PBFTReplica.*(onPrepare|onCommit|onPrePrepare|onCheckpoint|onViewChange|onNewView)"),
    ("sign", r"ED25519_sign|scalarmult_base"),
    ("socket write", r"Socket.*write|writev|sendmsg"),
    ("socket read", r"Socket.*read|readv|recvmsg"),
    ("fsync", r"fsync|fdatasync"),
    ("frame decode", r"FrameCodec.*decode|FrameDecoder"),
    ("frame encode", r"FrameCodec.*encode"),
    ("malloc/free", r"\bmalloc|\bfree|cfree"),
]


def samples(stream):
    current = None
    for line in stream:
        if not line.strip():
            if current:
                yield current
            current = None
        elif not line.startswith(("\t", " " * 8)):
            if current:
                yield current
            current = (line.split()[0], [])
        elif current is not None:
            parts = line.strip().split(None, 1)
            current[1].append(parts[1] if len(parts) > 1 else "?")
    if current:
        yield current


def main():
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 8
    by_pid = collections.defaultdict(list)
    for pid, frames in samples(sys.stdin):
        by_pid[pid].append(frames)
    total = sum(len(v) for v in by_pid.values())
    if total == 0:
        sys.exit("no samples (was perf recorded with -g?)")
    for pid, chains in sorted(by_pid.items(), key=lambda item: -len(item[1]))[:top]:
        try:
            command = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()[:80]
        except OSError:
            command = "(exited)"
        print(f"pid {pid}: {100 * len(chains) / total:4.1f}% of all samples  {command}")
        for name, pattern in BUCKETS:
            regex = re.compile(pattern)
            hits = sum(1 for frames in chains if any(regex.search(frame) for frame in frames))
            if hits:
                print(f"    {name:36s} {100 * hits / len(chains):5.1f}%")


if __name__ == "__main__":
    main()
