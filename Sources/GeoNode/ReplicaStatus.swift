// What `GET /status` answers: one replica's place in the deployment and how far its ledger is.
//
// The JSON keys are part of the operator interface (scripts and `geofabric status --json` read
// them), so they are spelled out in CodingKeys rather than derived from the Swift names.

/// Whether a replica is ordering blocks or replacing its primary.
public enum ReplicaMode: String, Codable, Sendable, Hashable, CaseIterable {
    case normal
    case viewChange = "view-change"
}

/// One replica's status, as served by `GET /status` and read back by `StatusClient`.
public struct ReplicaStatus: Codable, Sendable, Hashable {
    /// The replica's readable name, for example "s0-oregon-2".
    public var replica: String
    /// The name of the replica's shard.
    public var shard: String
    public var region: String
    /// Index of the replica's cluster within its shard (the cluster order of a GeoBFT round).
    public var cluster: Int
    /// The replica's current PBFT view in its cluster.
    public var view: UInt64
    /// Blocks in the replica's shard ledger.
    public var height: UInt64
    /// The next GeoBFT round the replica will execute.
    public var round: UInt64
    /// Lower-case hex of the shard ledger's head hash, so replicas can be compared by eye.
    public var head: String
    public var status: ReplicaMode
    /// Peers (replicas of the topology other than this one) with an open link.
    public var peersConnected: Int
    public var peersTotal: Int
    public var committedTransactions: UInt64
    public var uptimeSeconds: Double
    /// Keys locked by cross-shard transactions in progress; nil in a topology of one shard.
    public var crossShardLocks: Int?
    /// Cross-shard transactions this replica's shard coordinates or takes part in and has not
    /// finished; nil in a topology of one shard. Both return to 0 once the shards are idle.
    public var crossShardInProgress: Int?
    /// The oldest of those, described (at most `unfinishedShown`); nil in a topology of one shard.
    public var crossShardUnfinished: [String]?
    public static let unfinishedShown = 4
    /// Height of the latest state snapshot this replica wrote or installed (0: none yet).
    public var snapshotHeight: UInt64?
    /// Snapshots this replica installed by state transfer since it started.
    public var snapshotsInstalled: Int?
    /// Certified blocks its core holds in memory (bounded by a few windows; older ones are on disk).
    public var blocksInMemory: Int?
    /// The name of the topology the replica runs, and its topology hash (lower-case hex of the
    /// binding digest, `TopologyFingerprint`): `status` and `up` check both, so a replica of
    /// another deployment on the same address is named, not counted. Optional so that a status
    /// document of an older replica still decodes (and is then refused as unidentified).
    public var topology: String?
    public var topologyHash: String?
    /// The replica's process id: `up` checks that the process answering is the one it started,
    /// not an earlier deployment of the same topology still holding the ports.
    public var pid: Int32?
    /// Client signatures this replica verified since it started (f + 1 replicas of the home
    /// cluster verify each; GeoCore's SignatureDuty): `bench` divides the cluster's sum by the
    /// transactions committed to report verifications per transaction.
    public var clientSignatureVerifications: UInt64?
    /// The core's state that decides its timers and proposals, in one line (PBFTReplica's
    /// `debugSummary`): for an operator asking why a replica makes no progress.
    public var core: String?

    public init(
        replica: String, shard: String, region: String, cluster: Int, view: UInt64, height: UInt64,
        round: UInt64, head: String, status: ReplicaMode, peersConnected: Int, peersTotal: Int,
        committedTransactions: UInt64, uptimeSeconds: Double, crossShardLocks: Int? = nil, crossShardInProgress: Int? = nil,
        crossShardUnfinished: [String]? = nil
    ) {
        self.replica = replica
        self.shard = shard
        self.region = region
        self.cluster = cluster
        self.view = view
        self.height = height
        self.round = round
        self.head = head
        self.status = status
        self.peersConnected = peersConnected
        self.peersTotal = peersTotal
        self.committedTransactions = committedTransactions
        self.uptimeSeconds = uptimeSeconds
        self.crossShardLocks = crossShardLocks
        self.crossShardInProgress = crossShardInProgress
        self.crossShardUnfinished = crossShardUnfinished
    }

    enum CodingKeys: String, CodingKey {
        case replica, shard, region, cluster, view, height, round, head, status
        case peersConnected = "peers_connected"
        case peersTotal = "peers_total"
        case committedTransactions = "committed_transactions"
        case uptimeSeconds = "uptime_s"
        case crossShardLocks = "cross_shard_locks"
        case crossShardInProgress = "cross_shard_in_progress"
        case crossShardUnfinished = "cross_shard_unfinished"
        case snapshotHeight = "snapshot_height"
        case snapshotsInstalled = "snapshots_installed"
        case blocksInMemory = "blocks_in_memory"
        case topology
        case topologyHash = "topology_hash"
        case pid
        case clientSignatureVerifications = "client_signature_verifications"
        case core
    }
}
