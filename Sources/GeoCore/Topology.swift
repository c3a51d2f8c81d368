// The typed model of a deployment: what a topology file says, after validation.
//
// GeoTopology builds it from YAML; everything else reads only this model. It is a value with no
// I/O, so the simulator and the daemon read the same thing.

/// One region (a geographic location such as "oregon").
public struct Region: Hashable, Sendable {
    public var name: String
    public init(name: String) { self.name = name }
}

/// The measured link between two regions (or inside one, for `Topology.lan`).
public struct Link: Hashable, Sendable {
    /// Round-trip time in milliseconds; one-way latency is half of it.
    public var rttMilliseconds: Double
    /// Bandwidth in megabits per second.
    public var megabitsPerSecond: Double
    public init(rttMilliseconds: Double, megabitsPerSecond: Double) {
        self.rttMilliseconds = rttMilliseconds
        self.megabitsPerSecond = megabitsPerSecond
    }
}

/// A WAN entry: the link between two distinct regions (symmetric).
public struct WANLink: Hashable, Sendable {
    public var regionA: String
    public var regionB: String
    public var link: Link
    public init(between regionA: String, _ regionB: String, link: Link) {
        self.regionA = regionA
        self.regionB = regionB
        self.link = link
    }
}

/// How keys map to shards.
public enum KeyPlacement: Hashable, Sendable {
    /// Hash buckets `lower...upper` (inclusive) out of `Topology.keyBuckets`.
    case hashBuckets(lower: Int, upper: Int)
    /// Keys that start with one of the prefixes; the longest matching prefix over all shards wins,
    /// and the empty prefix is the catch-all.
    case prefixes([String])
    /// Every key (a topology with a single shard).
    case all
}

/// A replica's place in the deployment.
public struct ReplicaInfo: Hashable, Sendable {
    public var id: ReplicaID
    /// Stable, readable name: `<shard>-<region>-<index>`, for example "s0-oregon-2".
    public var name: String
    /// Dense number across the topology (the frame header's sender field).
    public var number: UInt32
    public var region: String
    public var host: String
    /// Port of the replica protocol (peer and client connections).
    public var port: Int
    /// Port of the HTTP status and metrics endpoint.
    public var statusPort: Int
    public init(id: ReplicaID, name: String, number: UInt32, region: String, host: String, port: Int, statusPort: Int) {
        self.id = id
        self.name = name
        self.number = number
        self.region = region
        self.host = host
        self.port = port
        self.statusPort = statusPort
    }
    public var address: String { "\(host):\(port)" }
}

/// The replicas of one shard in one region.
public struct Cluster: Hashable, Sendable {
    public var id: ClusterID
    public var region: String
    public var quorum: Quorum
    public var replicas: [ReplicaInfo]
    public init(id: ClusterID, region: String, quorum: Quorum, replicas: [ReplicaInfo]) {
        self.id = id
        self.region = region
        self.quorum = quorum
        self.replicas = replicas
    }
    public var n: Int { quorum.n }
    public var f: Int { quorum.f }
}

/// A partition of the key space, replicated by one cluster per region it is placed in.
public struct Shard: Hashable, Sendable {
    public var id: ShardID
    public var name: String
    public var placement: KeyPlacement
    public var clusters: [Cluster]
    public init(id: ShardID, name: String, placement: KeyPlacement, clusters: [Cluster]) {
        self.id = id
        self.name = name
        self.placement = placement
        self.clusters = clusters
    }

    /// The home cluster of a client in `region`: the shard's cluster there, or its first cluster
    /// when it has none there (and with no region). The one place this rule is written: the
    /// client library, the command line and the simulator all ask here.
    public func homeCluster(region: String?) -> Cluster? {
        if let region, let local = clusters.first(where: { $0.region == region }) { return local }
        return clusters.first
    }
}

/// Protocol parameters, with the defaults a topology file may leave out.
public struct ProtocolParameters: Hashable, Sendable {
    /// Client transactions per block, at most.
    public var batchSize: Int = 100
    /// How long a primary waits to fill a batch before proposing a partial one.
    public var batchDelayMilliseconds: Int = 2
    /// Rounds that may be in flight at once (PBFT watermark window). At least 2 x checkpointEvery,
    /// so that a replica can keep ordering while the previous checkpoint becomes stable.
    public var window: Int = 64
    /// Rounds between checkpoints.
    public var checkpointEvery: Int = 16
    /// Rounds between state snapshots (a multiple of checkpointEvery): a restarted replica loads
    /// the latest one and re-executes at most this many rounds of blocks.
    public var snapshotEvery: Int = 128
    /// Rounds of blocks kept on disk below the latest snapshot; 0 keeps the whole ledger (the
    /// default: it is the audit trail). Pruned blocks can no longer be served to peers.
    public var retainRounds: Int = 0
    /// Local view-change timeout (doubles on each consecutive view change).
    public var viewTimeoutMilliseconds: Int = 500
    /// Remote view-change timeout: how late a remote cluster's block may be.
    public var remoteTimeoutMilliseconds: Int = 2000
    /// Length of one core tick.
    public var tickMilliseconds: Int = 10
    /// Largest frame body a replica accepts; larger frames are refused before allocation.
    public var maxMessageBytes: Int = 16 * 1024 * 1024
    public init() {}
}

/// Where replica and client keys come from.
public enum KeySource: Hashable, Sendable {
    /// Deterministic keys derived from the topology and identity names. For local use only.
    case development
    /// A directory written by `geofabric keys generate` (absolute, or relative to the topology file).
    case directory(String)
}

/// How replicas and clients talk to each other (the topology's `transport` section).
public struct TransportSettings: Hashable, Sendable {
    /// Mutual TLS 1.3 on every replica-replica and client-replica connection, each side's
    /// certificate pinned to the topology's key for its identity. Off only for a benchmark A/B on
    /// one machine: every command then warns.
    public var tls: Bool = true
    /// An operator's PKI instead of pinned self-signed certificates (nil: self-signed, the default).
    public var authority: OperatorAuthorityFiles?
    public init(tls: Bool = true, authority: OperatorAuthorityFiles? = nil) {
        self.tls = tls
        self.authority = authority
    }
}

/// Where an operator's PKI lives (`transport: {ca: FILE, certificates: DIR}`); paths absolute or
/// relative to the topology file. Each node presents `certificates/replicas/NAME.pem` (or
/// `clients/client-N.pem`): its leaf certificate, issued over its topology identity key, then any
/// intermediates; peers validate the chain against the CA bundle. The private key is the node's
/// identity key, from `keys`: a certificate file holds nothing secret.
public struct OperatorAuthorityFiles: Hashable, Sendable {
    /// PEM file of one or more trusted CA certificates.
    public var caBundle: String
    /// Directory of the nodes' certificate files.
    public var certificates: String
    public init(caBundle: String, certificates: String) {
        self.caBundle = caBundle
        self.certificates = certificates
    }
}

/// A whole deployment.
public struct Topology: Hashable, Sendable {
    public var name: String
    public var regions: [Region]
    public var wan: [WANLink]
    /// The link between two replicas of the same region.
    public var lan: Link
    /// Hash buckets the key space is divided into (for hash placement).
    public var keyBuckets: Int
    public var shards: [Shard]
    public var parameters: ProtocolParameters
    public var keys: KeySource
    /// Clients with keys (ids 0..<clientCount): the fabric is permissioned, so replicas know them.
    public var clientCount: Int
    public var transport: TransportSettings

    public init(name: String, regions: [Region], wan: [WANLink], lan: Link, keyBuckets: Int,
                shards: [Shard], parameters: ProtocolParameters, keys: KeySource, clientCount: Int,
                transport: TransportSettings = TransportSettings()) {
        self.name = name
        self.regions = regions
        self.wan = wan
        self.lan = lan
        self.keyBuckets = keyBuckets
        self.shards = shards
        self.parameters = parameters
        self.keys = keys
        self.clientCount = clientCount
        self.transport = transport
    }

    /// Every replica, in topology order (shard, cluster, index); `number` is the position here.
    public var allReplicas: [ReplicaInfo] { shards.flatMap { $0.clusters.flatMap(\.replicas) } }

    /// The home cluster, for a client in `region`, of the shard that holds `key`.
    public func homeCluster(forKey key: [UInt8], region: String?) -> Cluster? {
        shard(shardID(forKey: key))?.homeCluster(region: region)
    }

    public func shard(_ id: ShardID) -> Shard? {
        shards.indices.contains(Int(id.rawValue)) ? shards[Int(id.rawValue)] : nil
    }

    public func cluster(_ id: ClusterID) -> Cluster? {
        guard let shard = shard(id.shard), shard.clusters.indices.contains(Int(id.index)) else { return nil }
        return shard.clusters[Int(id.index)]
    }

    public func replica(_ id: ReplicaID) -> ReplicaInfo? {
        guard let cluster = cluster(id.cluster), cluster.replicas.indices.contains(Int(id.index)) else { return nil }
        return cluster.replicas[Int(id.index)]
    }

    /// The readable name of a client, used for its key file and dev key: "client-7".
    public static func clientName(_ client: ClientID) -> String { "client-\(client.rawValue)" }

    public func replica(named name: String) -> ReplicaInfo? { allReplicas.first { $0.name == name } }

    public func replica(number: UInt32) -> ReplicaInfo? {
        var remaining = Int(number)
        for shard in shards {
            for cluster in shard.clusters {
                if remaining < cluster.replicas.count { return cluster.replicas[remaining] }
                remaining -= cluster.replicas.count
            }
        }
        return nil
    }

    /// The longest round trip from `region` to any of `regions` (nil when none is linked).
    public func longestRoundTripMilliseconds(from region: String, to regions: [String]) -> Double? {
        regions.compactMap { link(from: region, to: $0)?.rttMilliseconds }.max()
    }

    /// The link between two regions: the LAN inside one region, the WAN entry between two.
    public func link(from regionA: String, to regionB: String) -> Link? {
        if regionA == regionB { return lan }
        return wan.first {
            ($0.regionA == regionA && $0.regionB == regionB) || ($0.regionA == regionB && $0.regionB == regionA)
        }?.link
    }

    /// The shard that holds `key`.
    public func shardID(forKey key: [UInt8]) -> ShardID { placementTable.shardID(forKey: key) }

    /// Key placement alone, for the replicas' cross-shard layer (which must agree on it).
    public var placementTable: KeyPlacementTable {
        KeyPlacementTable(keyBuckets: keyBuckets, shards: shards.map { ($0.id, $0.placement) })
    }
}

/// Which shard holds a key: the placement of every shard and the bucket count, as a value the
/// core can carry (every replica of every shard must compute the same answer).
public struct KeyPlacementTable: Hashable, Sendable {
    public var keyBuckets: Int
    public var shards: [ShardID]
    public var placements: [KeyPlacement]

    public init(keyBuckets: Int, shards: [(ShardID, KeyPlacement)]) {
        self.keyBuckets = max(1, keyBuckets)
        self.shards = shards.map(\.0)
        self.placements = shards.map(\.1)
    }

    /// One shard holding every key.
    public static let single = KeyPlacementTable(keyBuckets: 1, shards: [(ShardID(0), .all)])

    public func shardID(forKey key: [UInt8]) -> ShardID {
        let bucket = Int(KeyHash.fnv1a64(key) % UInt64(keyBuckets))
        var best: (shard: ShardID, length: Int)?
        for (shard, placement) in zip(shards, placements) {
            switch placement {
            case .all:
                return shard
            case let .hashBuckets(lower, upper):
                if bucket >= lower && bucket <= upper { return shard }
            case let .prefixes(prefixes):
                for prefix in prefixes {
                    let prefixBytes = Array(prefix.utf8)
                    if key.starts(with: prefixBytes), prefixBytes.count > (best?.length ?? -1) {
                        best = (shard, prefixBytes.count)
                    }
                }
            }
        }
        // Validation guarantees complete placement; the first shard is a safe answer otherwise.
        return best?.shard ?? ShardID(0)
    }
}

/// A stable hash for key placement. Swift's `Hasher` is seeded per process, so two replicas would
/// place keys differently; FNV-1a is a few lines, stable everywhere, and spreads keys well enough
/// for bucket placement (it is not used for anything adversarial).
public enum KeyHash {
    public static func fnv1a64<C: Sequence>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

extension Topology {
    /// The PBFT baseline of this deployment: each shard's replicas, all of them, as one PBFT
    /// cluster (in cluster order, so the primary sits in the shard's first region). Replicas keep
    /// their regions, so the WAN between them is the same; only the protocol changes.
    ///
    /// `view_timeout_ms` is the patience of a cluster inside one region; the baseline's cluster
    /// spans the WAN, where its normal case alone (a request's trip to the primary, three phases)
    /// takes several round trips. So its view timeout adds 4 of the longest round trips between
    /// its regions, the same allowance the clients' resend timeout makes
    /// (`clientResendTimeoutMilliseconds`): without it the baseline's first block on real
    /// processes outlasted 500 ms and its backups replaced a primary that was only starting up.
    public func pbftBaseline() -> Topology {
        var baseline = self
        let spans = shards.map { shard in
            let regions = shard.clusters.map(\.region)
            return regions.compactMap { longestRoundTripMilliseconds(from: $0, to: regions) }.max() ?? 0
        }
        baseline.parameters.viewTimeoutMilliseconds += Int(((spans.max() ?? 0) * 4).rounded(.up))
        var number: UInt32 = 0
        baseline.shards = shards.map { shard in
            let id = ClusterID(shard: shard.id, index: 0)
            let all = shard.clusters.flatMap(\.replicas)
            let replicas = all.enumerated().map { offset, replica -> ReplicaInfo in
                var moved = replica
                moved.id = ReplicaID(cluster: id, index: UInt16(offset))
                moved.number = number
                number += 1
                return moved
            }
            let cluster = Cluster(id: id, region: shard.clusters.first?.region ?? "", quorum: Quorum(n: replicas.count)!, replicas: replicas)
            return Shard(id: shard.id, name: shard.name, placement: shard.placement, clusters: [cluster])
        }
        return baseline
    }
}

/// Every replica of a topology under its three names: `ReplicaID` (the core's), the wire's
/// replica number (frame headers, transport identities) and its readable name. Built once, so
/// that no hop walks the topology to convert one into another.
public struct ReplicaDirectory: Sendable {
    /// In topology order.
    public let replicas: [ReplicaInfo]
    private let byNumber: [UInt32: ReplicaInfo]
    private let numbers: [ReplicaID: UInt32]
    private let names: [String: UInt32]

    public init(_ topology: Topology) {
        replicas = topology.allReplicas
        byNumber = Dictionary(replicas.map { ($0.number, $0) }, uniquingKeysWith: { first, _ in first })
        numbers = Dictionary(replicas.map { ($0.id, $0.number) }, uniquingKeysWith: { first, _ in first })
        names = Dictionary(replicas.map { ($0.name, $0.number) }, uniquingKeysWith: { first, _ in first })
    }

    public func replica(number: UInt32) -> ReplicaInfo? { byNumber[number] }

    public func number(of id: ReplicaID) -> UInt32? { numbers[id] }

    /// The transport's identity of a replica.
    public func node(of id: ReplicaID) -> NodeID? { numbers[id].map { NodeID.replica(number: $0) } }

    public func replica(named name: String) -> ReplicaInfo? { names[name].flatMap { byNumber[$0] } }
}
