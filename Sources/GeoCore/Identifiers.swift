// Identifiers of everything that takes part in GeoFabric.
//
// Every id is a small fixed-width integer so that it encodes in a fixed number of bytes on the
// wire and hashes without allocation. Names (such as "s0-oregon-2") are for people; ids are for
// the protocol. The topology maps one to the other.

/// A shard: a partition of the key space. Index into `Topology.shards`.
public struct ShardID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }
    public static func < (lhs: ShardID, rhs: ShardID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "shard#\(rawValue)" }
}

/// A cluster of one shard: the shard's replicas in one region. Index into `Shard.clusters`;
/// the cluster order is the order of blocks inside a GeoBFT round (cluster 1..z).
public struct ClusterID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var shard: ShardID
    public var index: UInt16
    public init(shard: ShardID, index: UInt16) {
        self.shard = shard
        self.index = index
    }
    public static func < (lhs: ClusterID, rhs: ClusterID) -> Bool {
        (lhs.shard.rawValue, lhs.index) < (rhs.shard.rawValue, rhs.index)
    }
    public var description: String { "cluster#\(shard.rawValue).\(index)" }
}

/// A replica: the `index`-th member of one cluster. The primary of view v is index v mod n.
public struct ReplicaID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var cluster: ClusterID
    public var index: UInt16
    public init(cluster: ClusterID, index: UInt16) {
        self.cluster = cluster
        self.index = index
    }
    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool {
        (lhs.cluster, lhs.index) < (rhs.cluster, rhs.index)
    }
    public var description: String { "replica#\(cluster.shard.rawValue).\(cluster.index).\(index)" }
}

/// A client of the fabric. Clients are permissioned: their public keys are known to replicas.
public struct ClientID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (lhs: ClientID, rhs: ClientID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "client#\(rawValue)" }
}

/// The sender of a frame, as it appears in the frame header: either a replica, numbered densely
/// across the whole topology, or a client. The top bit tells which, so one 32-bit field serves both.
public struct NodeID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    static let clientBit: UInt32 = 0x8000_0000

    /// The replica with global number `number` (its position in `Topology.allReplicas`).
    public static func replica(number: UInt32) -> NodeID {
        precondition(number < clientBit, "replica number out of range")
        return NodeID(rawValue: number)
    }
    public static func client(_ client: ClientID) -> NodeID {
        precondition(client.rawValue < clientBit, "client id out of range")
        return NodeID(rawValue: client.rawValue | clientBit)
    }
    public var isClient: Bool { rawValue & Self.clientBit != 0 }
    /// The global replica number, or nil for a client.
    public var replicaNumber: UInt32? { isClient ? nil : rawValue }
    /// The client id, or nil for a replica.
    public var client: ClientID? { isClient ? ClientID(rawValue & ~Self.clientBit) : nil }
    public var description: String {
        if let client { return "node(\(client))" }
        return "node(replica \(rawValue))"
    }
}
