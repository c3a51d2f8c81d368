// The topology hash: a digest of what replicas and clients of one deployment must agree on, and
// what a replica's data directory was written under. Peers whose hashes differ refuse each other at
// the handshake (and say so to both sides); a log, block store or snapshot written under another
// hash is refused at start.
//
// It covers the safety-relevant part of a topology only (README, "What a topology edit may
// change"): the deployment's name (development keys derive from it), the shards, their key
// placement and bucket count, the clusters (order, region, n, f), every replica's number, name
// and protocol address, every replica's public key, and the protocol parameters that shape what a
// replica signs, stores and accepts: batch_size (a backup refuses a larger block, also a
// re-proposal after a restart), window, checkpoint_every, snapshot_every (every replica of a
// cluster must checkpoint and snapshot at the same rounds) and max_message_bytes (the log's and
// the block store's record bound). Timings (view, remote and tick timeouts, the batch delay), the
// WAN and LAN figures, the client count, retain_rounds, status ports, where the key directory
// lies and `transport.tls` are left out, so they may change across a restart. The block format
// version is in it too (a build that hashes blocks differently is another protocol).
//
// The digest covers a canonical text rendering of the model, not the YAML file: comments, key
// order and spacing of the file do not matter, only what the loader made of it.

import GeoCore

public enum TopologyFingerprint {
    /// SHA-256 of the canonical rendering (`canonicalText`) with the replicas' public keys.
    /// `blockFormat` other than this build's only recognises a data directory of an older build.
    public static func digest(of topology: Topology, keys: KeyRing, blockFormat: Int = BlockHeader.formatVersion) -> Digest {
        Hashing.sha256(Array(canonicalText(of: topology, replicaKeys: keys.replicaKeys, blockFormat: blockFormat).utf8))
    }

    /// One line per fact, in topology order. Versioned, so a change of the rendering is a change
    /// of every fingerprint rather than a silent collision.
    /// The block format (what a block digest covers, BlockHeader.swift) is bound too: replicas
    /// that compute digests differently must not talk, nor read each other's data. Format 1 (one
    /// hash over the whole block) had no line of its own, so its text is the v2 binding's as it was.
    public static func canonicalText(of topology: Topology, replicaKeys: [VerifyingKey],
                                     blockFormat: Int = BlockHeader.formatVersion) -> String {
        var lines = ["geofabric-topology-binding/v2", "name \(topology.name)", "buckets \(topology.keyBuckets)"]
        if blockFormat >= 2 { lines.append("block-format \(blockFormat)") }
        let p = topology.parameters
        lines.append("protocol batch \(p.batchSize) window \(p.window) checkpoint \(p.checkpointEvery) "
            + "snapshot \(p.snapshotEvery) max \(p.maxMessageBytes)")
        for shard in topology.shards {
            lines.append("shard \(shard.id.rawValue) \(shard.name) \(placementText(shard.placement))")
            for cluster in shard.clusters {
                lines.append("cluster \(cluster.id.index) \(cluster.region) n \(cluster.n) f \(cluster.f)")
                for replica in cluster.replicas {
                    let key = replicaKeys.indices.contains(Int(replica.number))
                        ? Hex.encode(replicaKeys[Int(replica.number)].bytes) : "none"
                    lines.append("replica \(replica.number) \(replica.name) \(replica.host) \(replica.port) key \(key)")
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A shard's placement as both formats write it.
    static func placementText(_ placement: KeyPlacement) -> String {
        switch placement {
        case .all: return "all"
        case let .hashBuckets(lower, upper): return "hash \(lower) \(upper)"
        case let .prefixes(prefixes): return "prefixes " + prefixes.map { "\($0.utf8.count):\($0)" }.joined(separator: ",")
        }
    }

    /// The hash GeoFabric wrote into logs and handshakes before the binding above (format v1: the
    /// whole topology, timeouts and WAN figures included). Only to recognise an old data
    /// directory and say so; nothing is accepted under it.
    public static func legacyDigest(of topology: Topology) -> Digest {
        var lines = ["geofabric-topology/v1", "name \(topology.name)"]
        lines.append("regions " + topology.regions.map(\.name).joined(separator: ","))
        for link in topology.wan {
            lines.append("wan \(link.regionA) \(link.regionB) \(link.link.rttMilliseconds) \(link.link.megabitsPerSecond)")
        }
        lines.append("lan \(topology.lan.rttMilliseconds) \(topology.lan.megabitsPerSecond)")
        lines.append("buckets \(topology.keyBuckets) clients \(topology.clientCount)")
        let p = topology.parameters
        lines.append("protocol batch \(p.batchSize) delay \(p.batchDelayMilliseconds) window \(p.window) checkpoint \(p.checkpointEvery) "
            + "view \(p.viewTimeoutMilliseconds) remote \(p.remoteTimeoutMilliseconds) tick \(p.tickMilliseconds) max \(p.maxMessageBytes)")
        switch topology.keys {
        case .development: lines.append("keys dev")
        case let .directory(path): lines.append("keys dir \(path)")
        }
        for shard in topology.shards {
            lines.append("shard \(shard.id.rawValue) \(shard.name) \(placementText(shard.placement))")
            for cluster in shard.clusters {
                lines.append("cluster \(cluster.id.index) \(cluster.region) n \(cluster.n) f \(cluster.f)")
                for replica in cluster.replicas {
                    lines.append("replica \(replica.number) \(replica.name) \(replica.host) \(replica.port) \(replica.statusPort)")
                }
            }
        }
        return Hashing.sha256(Array((lines.joined(separator: "\n") + "\n").utf8))
    }
}
