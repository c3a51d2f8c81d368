// Delivery and execution: the cluster's delivered prefix and the shard ledger it feeds.
//
// A sub-machine of the replica. Blocks of this cluster are delivered in round order (each
// extends `localHead`, the chain of the cluster's delivered digests that PBFT checkpoints vouch
// for); blocks of the other clusters of the shard are added as global sharing accepts them; the
// ledger executes each complete round, interleaved round-robin, and stops at every snapshot
// round so that the state there can be taken. What was executed comes back as values, in order,
// and the composer turns them into effects (results, replies, statements, snapshots).
//
// It keeps recent delivered blocks in memory to serve laggards and to re-share; executed blocks
// older than `blocksInMemoryRounds` below the ledger are forgotten (the shell's block store
// serves them).

/// What the ledger did in one call of `execute`, in the order it happened.
enum LedgerOutput: Sendable {
    /// Blocks executed, in ledger order.
    case executed([ExecutedBlock])
    /// The state at a snapshot round, just executed.
    case snapshot(LedgerSnapshot)
}

struct Execution: Sendable {
    let configuration: PBFTConfiguration
    let suite: any CryptoSuite

    private(set) var ledger: ShardLedger
    /// The last round of this cluster delivered (certified and handed to the ledger).
    private(set) var lastDelivered: UInt64 = 0
    /// Head of the chain of this cluster's delivered block digests (what checkpoints vouch for).
    private(set) var localHead: Digest = .zero
    /// This cluster's recent certified blocks, by round: what the replica serves to laggards and
    /// re-shares without I/O (bounded: `forget`).
    private(set) var delivered: [UInt64: CertifiedBlock] = [:]
    /// This cluster's chain head at each snapshot round delivered and not yet executed (what the
    /// snapshot of that round records).
    private var snapshotHeads: [UInt64: Digest] = [:]

    init(configuration: PBFTConfiguration, suite: any CryptoSuite) {
        self.configuration = configuration
        self.suite = suite
        ledger = ShardLedger(shard: configuration.cluster.shard, clusterCount: configuration.clustersInShard,
                             layout: configuration.crossShard)
    }

    var cluster: ClusterID { configuration.cluster }

    // MARK: Delivery

    /// Takes the next block of this cluster into the delivered prefix (not yet the ledger).
    mutating func record(_ block: CertifiedBlock, digest: Digest) {
        precondition(block.block.cluster == cluster && block.block.round == lastDelivered + 1, "delivery is in round order")
        lastDelivered = block.block.round
        localHead = suite.chain(previous: localHead, cluster: cluster, round: block.block.round, digest: digest)
        delivered[block.block.round] = block
        if lastDelivered % configuration.snapshotEveryRounds == 0 { snapshotHeads[lastDelivered] = localHead }
    }

    /// Delivers the next block of this cluster to the ledger.
    mutating func deliver(_ block: CertifiedBlock) {
        let digest = block.certificate.statement.digest
        record(block, digest: digest)
        ledger.add(block, digest: digest)
    }

    /// A block of another cluster of the shard, accepted by global sharing.
    mutating func addRemote(_ block: CertifiedBlock) {
        ledger.add(block, digest: block.certificate.statement.digest)
    }

    // MARK: Execution

    /// Executes every complete round of the ledger, stopping at each snapshot round to take the
    /// snapshot there. Returns what happened in order; empty when no round was complete.
    mutating func execute() -> [LedgerOutput] {
        var outputs: [LedgerOutput] = []
        while true {
            let every = configuration.snapshotEveryRounds
            let boundary = (ledger.round + every - 1) / every * every
            let batch = ledger.executeReady(through: boundary, chain: suite.chain)
            guard !batch.isEmpty else { break }
            outputs.append(.executed(batch))
            guard ledger.round > boundary else { break }
            if let head = snapshotHeads.removeValue(forKey: boundary) {
                outputs.append(.snapshot(ledger.snapshot(localHead: head)))
            }
            snapshotHeads = snapshotHeads.filter { $0.key >= ledger.round }
        }
        return outputs
    }

    /// The round below which executed blocks may leave memory, if any.
    var forgetFloor: UInt64? {
        let keep = configuration.blocksInMemoryRounds
        return ledger.round > keep ? ledger.round - keep : nil
    }

    /// Drops executed blocks of this cluster below `forgetFloor` (they are in the block store).
    /// The map is filtered only once it holds twice what is kept, so the cost is amortised.
    mutating func forget() {
        guard let floor = forgetFloor else { return }
        if delivered.count > 2 * Int(configuration.blocksInMemoryRounds) { delivered = delivered.filter { $0.key >= floor } }
    }

    // MARK: Snapshots and restarts

    /// Replaces the ledger's state with a checked snapshot and goes on from the round after it:
    /// the blocks above it that this replica holds (its own and `remote`) go back to the new ledger.
    /// False when the snapshot is behind the ledger (nothing changes).
    mutating func install(_ snapshot: LedgerSnapshot, remote: [UInt16: [UInt64: CertifiedBlock]]) -> Bool {
        guard snapshot.round >= ledger.round else { return false }
        ledger = ShardLedger(restoring: snapshot, clusterCount: configuration.clustersInShard)
        if lastDelivered < snapshot.round {
            lastDelivered = snapshot.round
            localHead = snapshot.localHead
        }
        for (round, block) in delivered.sorted(by: { $0.key < $1.key }) where round > snapshot.round {
            addRemote(block)
        }
        for blocks in remote.values {
            for (round, block) in blocks.sorted(by: { $0.key < $1.key }) where round > snapshot.round {
                addRemote(block)
            }
        }
        delivered = delivered.filter { $0.key > snapshot.round }
        snapshotHeads = snapshotHeads.filter { $0.key > snapshot.round }
        return true
    }

    /// A restart: the latest snapshot, the block store's blocks after it (in ledger order, executed
    /// without replies), then the blocks the log delivered after those. Remote blocks from the log
    /// come next (`addRemote`), then `finishRestore`.
    mutating func restore(snapshot: LedgerSnapshot?, stored: [CertifiedBlock], logged: [CertifiedBlock]) {
        if let snapshot, snapshot.shard == cluster.shard {
            ledger = ShardLedger(restoring: snapshot, clusterCount: configuration.clustersInShard)
            lastDelivered = snapshot.round
            localHead = snapshot.localHead
        }
        for block in stored {
            let digest = block.certificate.statement.digest
            if block.block.cluster == cluster {
                guard block.block.round == lastDelivered + 1 else { continue }
                record(block, digest: digest)
            }
            ledger.add(block, digest: digest)
        }
        _ = ledger.executeReady(chain: suite.chain)
        for block in logged where block.block.round == lastDelivered + 1 {
            deliver(block)
        }
    }

    /// Ends a restart: executes what is complete and returns it (the shell stores those blocks).
    mutating func finishRestore() -> [ExecutedBlock] {
        let executed = ledger.executeReady(chain: suite.chain)
        forget()
        snapshotHeads = snapshotHeads.filter { $0.key >= ledger.round }
        return executed
    }
}
