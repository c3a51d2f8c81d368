// The shard ledger: certified blocks executed in global order, hash-chained.
//
// Round r executes once a certified block of every cluster of the shard is present for r, in
// cluster order (round 1: cluster 0..z-1, round 2: ...). Each executed block extends the chain:
// head_i = H(head_{i-1} || cluster || round || block digest); the certificate stays out of the hash
// because correct replicas may hold different, equally valid signer sets for one block.
// Execution is deterministic and deduplicates client requests: a (client, request id) at or below
// the client's last executed request id is skipped, so a request executes at most once.

/// A client's last executed request and its reply, for deduplication and resending.
public struct LastExecution: Hashable, Sendable {
    public var requestID: UInt64
    /// Nil while a cross-shard transaction ordered here waits for its decision (no reply yet).
    public var result: ExecutionResult?
    public var position: LedgerPosition
    public init(requestID: UInt64, result: ExecutionResult?, position: LedgerPosition) {
        self.requestID = requestID
        self.result = result
        self.position = position
    }
}

/// One block appended to the ledger, with what executing it produced.
public struct ExecutedBlock: Hashable, Sendable {
    public var certified: CertifiedBlock
    public var digest: Digest
    public var height: UInt64
    public var head: Digest
    /// One entry per transaction, in block order: its result, or nil when it was a duplicate and
    /// skipped, or a cross-shard transaction whose answer comes with its decision.
    public var results: [ExecutionResult?]
    /// Cross-shard statements this execution produced, for the replica to sign and send (CrossShard.swift).
    public var outgoing: [ShardStatement] = []
    /// Cross-shard transactions decided here: their home cluster replies.
    public var completions: [CrossShardCompletion] = []
    /// What this execution did to cross-shard transactions (for the simulator's checkers).
    public var events: [CrossShardEvent] = []
    public var position: LedgerPosition {
        LedgerPosition(round: certified.block.round, clusterIndex: certified.block.cluster.index, height: height)
    }
}

/// The shard ledger's executed state after a whole round: what a replica writes as a snapshot at a
/// checkpoint and starts from on restart, re-executing only the blocks after it (so restart time
/// depends on the snapshot interval, not on the ledger's length). The blocks themselves are not
/// in it: they live in the shell's block store.
public struct LedgerSnapshot: Hashable, Sendable {
    public var shard: ShardID
    /// The last round executed (every cluster's block of it).
    public var round: UInt64
    public var height: UInt64
    public var head: Digest
    /// The head of this replica's own cluster's chain of delivered blocks through `round` (what
    /// its checkpoints sign).
    public var localHead: Digest
    public var state: KeyValueStore
    /// Each client's last executed request and reply: what at-most-once execution needs.
    public var lastExecution: [ClientID: LastExecution]
    /// Locks and transactions in progress; nil with a single shard.
    public var crossShard: CrossShardState?

    public init(shard: ShardID, round: UInt64, height: UInt64, head: Digest, localHead: Digest, state: KeyValueStore,
                lastExecution: [ClientID: LastExecution], crossShard: CrossShardState?) {
        self.shard = shard
        self.round = round
        self.height = height
        self.head = head
        self.localHead = localHead
        self.state = state
        self.lastExecution = lastExecution
        self.crossShard = crossShard
    }
}

public struct ShardLedger: Sendable {
    public let shard: ShardID
    public let clusterCount: Int
    public private(set) var height: UInt64 = 0
    public private(set) var head: Digest = .zero
    /// The round being assembled.
    public private(set) var round: UInt64 = 1
    public internal(set) var state = KeyValueStore()
    public internal(set) var lastExecution: [ClientID: LastExecution] = [:]
    /// The cross-shard layer's replicated state (locks, transactions in progress); nil with one shard.
    public internal(set) var crossShard: CrossShardState?
    /// Blocks waiting for their round to complete, by round then cluster index.
    private var waiting: [UInt64: [UInt16: (CertifiedBlock, Digest)]] = [:]

    public init(shard: ShardID, clusterCount: Int, layout: CrossShardLayout? = nil) {
        precondition(clusterCount >= 1)
        self.shard = shard
        self.clusterCount = clusterCount
        crossShard = layout.map { CrossShardState(layout: $0) }
    }

    /// The ledger as `snapshot` left it: rounds up to `snapshot.round` executed, nothing waiting.
    public init(restoring snapshot: LedgerSnapshot, clusterCount: Int) {
        precondition(clusterCount >= 1)
        precondition(snapshot.height == snapshot.round * UInt64(clusterCount), "a snapshot holds whole rounds")
        shard = snapshot.shard
        self.clusterCount = clusterCount
        height = snapshot.height
        head = snapshot.head
        round = snapshot.round + 1
        state = snapshot.state
        lastExecution = snapshot.lastExecution
        crossShard = snapshot.crossShard
    }

    /// The executed state, as a snapshot (`localHead` is the replica's, the ledger does not know it).
    public func snapshot(localHead: Digest) -> LedgerSnapshot {
        LedgerSnapshot(shard: shard, round: round - 1, height: height, head: head, localHead: localHead, state: state,
                       lastExecution: lastExecution, crossShard: crossShard)
    }

    /// The height of the block of `cluster` in `round`: every round holds one block per cluster,
    /// executed in cluster order, so positions and heights map one to one.
    public static func height(round: UInt64, cluster: UInt16, clusterCount: Int) -> UInt64 {
        (round - 1) * UInt64(clusterCount) + UInt64(cluster) + 1
    }

    /// Whether the block of `cluster` for `round` is already executed or waiting.
    public func holds(cluster: UInt16, round: UInt64) -> Bool {
        round < self.round || waiting[round]?[cluster] != nil
    }

    /// Adds a certified block (already checked by the caller). Returns false for a duplicate.
    @discardableResult
    public mutating func add(_ block: CertifiedBlock, digest: Digest) -> Bool {
        let round = block.block.round, cluster = block.block.cluster.index
        guard round >= self.round, Int(cluster) < clusterCount, waiting[round]?[cluster] == nil else { return false }
        waiting[round, default: [:]][cluster] = (block, digest)
        return true
    }

    /// Executes every complete round, in order, up to `lastRound` (so a caller can stop at a
    /// snapshot boundary and take the state there).
    public mutating func executeReady(through lastRound: UInt64 = .max,
                                      chain: (Digest, ClusterID, UInt64, Digest) -> Digest) -> [ExecutedBlock] {
        var executed: [ExecutedBlock] = []
        while round <= lastRound, let blocks = waiting[round], blocks.count == clusterCount {
            waiting[round] = nil
            for index in 0..<UInt16(clusterCount) {
                let (certified, digest) = blocks[index]!
                executed.append(execute(certified, digest: digest, chain: chain))
            }
            // Coordinator timeouts count rounds of this ledger, so every replica decides alike.
            if crossShard != nil { expireCoordinations(into: &executed[executed.count - 1]) }
            round += 1
        }
        return executed
    }

    private mutating func execute(_ certified: CertifiedBlock, digest: Digest,
                                  chain: (Digest, ClusterID, UInt64, Digest) -> Digest) -> ExecutedBlock {
        height += 1
        head = chain(head, certified.block.cluster, certified.block.round, digest)
        let position = LedgerPosition(round: certified.block.round, clusterIndex: certified.block.cluster.index, height: height)
        var results: [ExecutionResult?] = []
        results.reserveCapacity(certified.block.transactions.count)
        var executed = ExecutedBlock(certified: certified, digest: digest, height: height, head: head, results: [])
        for transaction in certified.block.transactions {
            if let last = lastExecution[transaction.client], transaction.requestID <= last.requestID {
                results.append(nil)
                continue
            }
            let result = crossShard == nil ? state.execute(transaction.operation)
                : executeSharded(transaction, position: position, into: &executed)
            lastExecution[transaction.client] = LastExecution(requestID: transaction.requestID, result: result, position: position)
            results.append(result)
        }
        if crossShard != nil {
            for proof in certified.block.statements { executeStatement(proof.statement, into: &executed) }
        }
        executed.results = results
        return executed
    }
}
