// A digest of everything in a topology that replicas and clients must agree on: two processes
// started from different topology files (another replica list, other quorums or parameters) refuse
// to talk to each other at the handshake instead of failing later in confusing ways.
//
// The digest covers a canonical text rendering of the model, not the YAML file: comments, key
// order and spacing of the file do not matter, only what the loader made of it.

import GeoCore

public enum TopologyFingerprint {
    /// SHA-256 of the canonical rendering (`canonicalText`).
    public static func digest(of topology: Topology) -> Digest {
        Hashing.sha256(Array(canonicalText(of: topology).utf8))
    }

    /// One line per fact, in topology order. Versioned, so a change of the rendering is a change
    /// of every fingerprint rather than a silent collision.
    public static func canonicalText(of topology: Topology) -> String {
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
            let placement: String
            switch shard.placement {
            case .all: placement = "all"
            case let .hashBuckets(lower, upper): placement = "hash \(lower) \(upper)"
            case let .prefixes(prefixes): placement = "prefixes " + prefixes.map { "\($0.utf8.count):\($0)" }.joined(separator: ",")
            }
            lines.append("shard \(shard.id.rawValue) \(shard.name) \(placement)")
            for cluster in shard.clusters {
                lines.append("cluster \(cluster.id.index) \(cluster.region) n \(cluster.n) f \(cluster.f)")
                for replica in cluster.replicas {
                    lines.append("replica \(replica.number) \(replica.name) \(replica.host) \(replica.port) \(replica.statusPort)")
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
