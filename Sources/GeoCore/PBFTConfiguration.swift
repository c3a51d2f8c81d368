// The parameters one PBFT replica runs with, derived from the topology.

public struct PBFTConfiguration: Hashable, Sendable {
    public var cluster: ClusterID
    public var quorum: Quorum
    /// This replica's index in its cluster.
    public var index: UInt16
    public var batchSize: Int
    /// Ticks a primary waits to fill a batch before proposing a partial one (at least one).
    public var batchDelayTicks: UInt64 = 1
    /// A primary proposes a partial batch only while fewer than this many of its blocks are
    /// proposed and not yet committed here; full batches and the blocks GeoBFT or the cross-shard
    /// layer need go out regardless. Idle, a transaction is proposed at once; under load the
    /// transactions that arrive while blocks are in flight wait for one of them to commit and go
    /// out together, so fewer, fuller blocks carry the load (each block costs every replica its
    /// Prepare and Commit signatures, their verification and an fsync, whatever it carries).
    /// Measured (BENCHMARKS.md): on real processes `bench` local-1x4 with 128 clients, interleaved,
    /// unlimited 2,102 / 1,772 / 2,123 txn/s against 2,249 / 1,986 / 2,523 with 2, and 1 and 4
    /// close to 2; in the simulator (latency-bound there, not CPU-bound) 1 cost GeoBFT 8% while 2
    /// left it unchanged.
    public var partialBatchesInFlight: UInt64 = 2
    /// Rounds that may be in flight above the stable checkpoint (the watermark window).
    public var window: UInt64
    public var checkpointEvery: UInt64
    /// Ticks without progress before a view change (doubles with each consecutive one).
    public var viewTimeoutTicks: UInt64
    /// Ticks between two block requests of a lagging replica.
    public var fetchIntervalTicks: UInt64
    /// Client transactions a primary queues at most; past it a client must retry.
    public var pendingLimit: Int
    /// The quorum of every cluster of the shard, by cluster index (this cluster's included): remote
    /// certificates are checked against their own cluster's n and f.
    public var shardQuorums: [Quorum]
    /// Ticks a remote cluster's block may be late before a remote view change is asked for.
    public var remoteTimeoutTicks: UInt64 = 200
    /// The other shards, for cross-shard transactions (CrossShard.swift); nil with one shard.
    public var crossShard: CrossShardLayout?
    /// Rounds of the shard ledger between two state snapshots (`Effect.snapshot`): a restart
    /// re-executes at most this many rounds of blocks after the latest one.
    public var snapshotEveryRounds: UInt64
    /// Every replica answers every client (ReplyDuty) in a cluster spread over regions (the PBFT
    /// baseline): its client takes the nearest f + 1 replies, where f + 1 designated repliers may
    /// all be across the WAN.
    public var everyoneReplies = false

    public init(cluster: ClusterID, quorum: Quorum, index: UInt16, batchSize: Int, window: UInt64, checkpointEvery: UInt64,
                viewTimeoutTicks: UInt64, fetchIntervalTicks: UInt64, pendingLimit: Int, shardQuorums: [Quorum]? = nil) {
        self.cluster = cluster
        self.quorum = quorum
        self.index = index
        self.batchSize = batchSize
        self.window = window
        self.checkpointEvery = checkpointEvery
        self.viewTimeoutTicks = viewTimeoutTicks
        self.fetchIntervalTicks = fetchIntervalTicks
        self.pendingLimit = pendingLimit
        self.shardQuorums = shardQuorums ?? [quorum]
        snapshotEveryRounds = checkpointEvery * 8
        precondition(Int(cluster.index) < self.shardQuorums.count, "the cluster must be one of its shard's")
    }

    /// Who verifies each client signature in this cluster (SignatureDuty.swift).
    public var signatureDuty: SignatureDuty { SignatureDuty(quorum: quorum) }
    /// Ticks a prepared replica waits for the Prepares that vouch for a block's client signatures
    /// before it verifies the rest itself (SignatureDuty.swift).
    public var vouchPatienceTicks: UInt64 { max(2, viewTimeoutTicks / 16) }

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
                  pendingLimit: parameters.batchSize * parameters.window, shardQuorums: shard.clusters.map(\.quorum))
        remoteTimeoutTicks = max(2, UInt64(parameters.remoteTimeoutMilliseconds) / tick)
        batchDelayTicks = max(1, (UInt64(parameters.batchDelayMilliseconds) + tick - 1) / tick)
        crossShard = CrossShardLayout(topology: topology, cluster: cluster.id)
        everyoneReplies = Set(cluster.replicas.map(\.region)).count > 1
        snapshotEveryRounds = UInt64(max(1, parameters.snapshotEvery))
    }

    public var n: Int { quorum.n }
    public var clustersInShard: Int { shardQuorums.count }
    public var me: ReplicaID { ReplicaID(cluster: cluster, index: index) }
    public func primary(of view: UInt64) -> UInt16 { UInt16(view % UInt64(quorum.n)) }
    public func replica(_ index: UInt16) -> ReplicaID { ReplicaID(cluster: cluster, index: index) }
}

extension PBFTConfiguration {
    /// Blocks asked for, and served, per request: at least a window, so catching up outpaces the cluster.
    var fetchBatch: UInt64 { max(window, 64) }
    /// Blocks kept in memory below the ledger's next round, so that peers catching up within a
    /// few windows and re-sharing are served without I/O; the block store serves older ones.
    var blocksInMemoryRounds: UInt64 { 2 * fetchBatch }
}

extension PBFTConfiguration {
    /// The next peer of the cluster after `peer`, never this replica: block requests rotate over
    /// the peers, so one silent or lying peer cannot keep a replica behind.
    func nextPeer(after peer: UInt16) -> UInt16 {
        var next = peer
        repeat { next = UInt16((Int(next) + 1) % quorum.n) } while next == index
        return next
    }
}
