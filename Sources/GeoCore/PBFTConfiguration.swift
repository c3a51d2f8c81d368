// The parameters one PBFT replica runs with, derived from the topology.

public struct PBFTConfiguration: Hashable, Sendable {
    public var cluster: ClusterID
    public var quorum: Quorum
    /// This replica's index in its cluster.
    public var index: UInt16
    public var batchSize: Int
    /// Ticks a primary waits to fill a batch before proposing a partial one (at least one).
    public var batchDelayTicks: UInt64 = 1
    /// Rounds that may be in flight above the stable checkpoint (the watermark window).
    public var window: UInt64
    public var checkpointEvery: UInt64
    /// Ticks without progress before a view change (doubles with each consecutive one).
    public var viewTimeoutTicks: UInt64
    /// Ticks between two block requests of a lagging replica.
    public var fetchIntervalTicks: UInt64
    /// Client transactions a primary queues at most; past it a client must retry.
    public var pendingLimit: Int
    /// Clusters in the shard (for the shard ledger); 1 for a single-cluster shard or the PBFT baseline.
    public var clustersInShard: Int

    public init(cluster: ClusterID, quorum: Quorum, index: UInt16, batchSize: Int, window: UInt64, checkpointEvery: UInt64,
                viewTimeoutTicks: UInt64, fetchIntervalTicks: UInt64, pendingLimit: Int, clustersInShard: Int = 1) {
        self.cluster = cluster
        self.quorum = quorum
        self.index = index
        self.batchSize = batchSize
        self.window = window
        self.checkpointEvery = checkpointEvery
        self.viewTimeoutTicks = viewTimeoutTicks
        self.fetchIntervalTicks = fetchIntervalTicks
        self.pendingLimit = pendingLimit
        self.clustersInShard = clustersInShard
    }

    /// The configuration of `replica` in `topology`.
    public init?(topology: Topology, replica: ReplicaID) {
        guard let cluster = topology.cluster(replica.cluster), Int(replica.index) < cluster.n,
              let shard = topology.shard(replica.cluster.shard) else { return nil }
        let parameters = topology.parameters
        let tick = UInt64(max(1, parameters.tickMilliseconds))
        let viewTicks = max(2, UInt64(parameters.viewTimeoutMilliseconds) / tick)
        self.init(cluster: cluster.id, quorum: cluster.quorum, index: replica.index, batchSize: parameters.batchSize,
                  window: UInt64(parameters.window), checkpointEvery: UInt64(parameters.checkpointEvery),
                  viewTimeoutTicks: viewTicks, fetchIntervalTicks: max(1, viewTicks / 8),
                  pendingLimit: parameters.batchSize * parameters.window, clustersInShard: shard.clusters.count)
        batchDelayTicks = max(1, (UInt64(parameters.batchDelayMilliseconds) + tick - 1) / tick)
    }

    public var n: Int { quorum.n }
    public var me: ReplicaID { ReplicaID(cluster: cluster, index: index) }
    public func primary(of view: UInt64) -> UInt16 { UInt16(view % UInt64(quorum.n)) }
    public func replica(_ index: UInt16) -> ReplicaID { ReplicaID(cluster: cluster, index: index) }
}
