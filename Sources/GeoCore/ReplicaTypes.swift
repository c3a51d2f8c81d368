// The inputs a replica core takes, the effects it hands back, and what it keeps durable.

/// What happens to a replica. The shell authenticates the channel: `from` is the peer the
/// connection is bound to. Signatures inside messages are checked by the core (through its suite).
public enum Input: Sendable {
    /// A client transaction, straight from the client.
    case client(ClientTransaction)
    /// A message from another replica.
    case message(Message, from: ReplicaID)
    /// One tick of the replica's clock (`ProtocolParameters.tickMilliseconds`).
    case tick
}

/// What the shell must do, in the order given. The order is the contract:
/// - `persist` comes before any `send`/`broadcast` that depends on it, and the shell makes it durable
///   (fsync) before carrying out anything after it;
/// - `executed` comes after the `persist(.delivered)` of its block, and `reply` after `executed`,
///   so nothing is acknowledged to a client before it is durable. The shell appends each executed
///   block to its block store, durably before any effect after it leaves;
/// - `snapshot` comes after the `executed` of the last block of its round.
public enum Effect: Hashable, Sendable {
    case persist(DurableRecord)
    case send(Message, to: ReplicaID)
    /// To every other replica of the sender's cluster.
    case broadcast(Message)
    /// A block appended to the shard ledger.
    case executed(ExecutedBlock)
    case reply(Reply)
    /// A client request refused for want of room: the shell sends it to the client.
    case busy(Busy)
    /// The ledger's state after a whole round at a snapshot boundary (`snapshotEveryRounds`):
    /// the shell writes it durably; a restart begins from the latest one.
    case snapshot(LedgerSnapshot)
    /// A peer asked for blocks older than the core keeps in memory: the shell sends it, as
    /// `.certifiedBlock` messages, the blocks of `request.cluster` for rounds
    /// `request.fromRound...request.toRound` that its block store holds (the core keeps no I/O,
    /// and only a window of blocks, so that its memory does not grow with the ledger).
    case serveStored(BlockRequest, to: ReplicaID)
    /// A peer asks for the snapshot at `height` (state transfer): the shell sends it, as a
    /// `.stateTransfer` message, if its snapshot store holds one at that height, or else the
    /// oldest it holds above that height (under load, snapshots rotate faster than a request
    /// travels; the peer checks a newer one against the state checkpoints of its height).
    case serveSnapshot(atOrAbove: UInt64, to: ReplicaID)
    /// State transfer installed this snapshot, checked against f + 1 state checkpoints: the
    /// shell writes it as its latest snapshot, and its block store goes on from the height after
    /// it (the blocks below are not here; peers hold them).
    case installedSnapshot(LedgerSnapshot)
    /// Something the shell reports (logs, metrics) and that changes nothing: the core tells the
    /// shell what happened instead of the shell diffing the core's counters.
    case event(ReplicaEvent)
}

/// What happened in a step, for the shell's logs.
public enum ReplicaEvent: Hashable, Sendable {
    /// This replica asked to leave view `from` for view `to`, and why.
    case viewChangeStarted(from: UInt64, to: UInt64, reason: ViewChangeReason, round: UInt64)
    /// This replica entered view `view` (a new view was accepted or made).
    case enteredView(UInt64, round: UInt64)
    /// This replica finds a remote cluster of its shard late with its block of `round`, and asks
    /// its own cluster to agree (DRvc) on remote view change `attempt`.
    case remoteClusterSuspected(cluster: UInt16, round: UInt64, attempt: UInt64)
    /// This replica ignored an input, and why (the shell counts these).
    case rejected(Rejection)
}

/// What a replica's status shows of its core, as one value (the shell reads no core fields).
public struct ReplicaReport: Sendable, Equatable {
    public var view: UInt64
    public var changingView: Bool
    public var height: UInt64
    public var round: UInt64
    public var head: Digest
    public var snapshotsInstalled: Int
    public var blocksInMemory: Int
    public var crossShardLocks: Int?
    public var crossShardInProgress: Int?
    public var crossShardUnfinished: [String]?
}

extension ReplicaReport {
    /// What `replica`'s status shows of its core.
    public init(_ replica: PBFTReplica, unfinishedShown: Int) {
        var changing = false
        if case .changingView = replica.status { changing = true }
        let ledger = replica.ledger
        self.init(view: replica.view, changingView: changing, height: ledger.height, round: ledger.round, head: ledger.head,
                  snapshotsInstalled: replica.snapshotsInstalled, blocksInMemory: replica.blocksInMemory,
                  crossShardLocks: ledger.crossShard?.locks.count,
                  crossShardInProgress: ledger.crossShard?.transactionsInProgress,
                  crossShardUnfinished: ledger.crossShard?.unfinished(limit: unfinishedShown))
    }
}

extension Reply {
    /// `replica`'s answer, in `view`, to `transaction`.
    init(to transaction: ClientTransaction, from replica: ReplicaID, view: UInt64, result: ExecutionResult, position: LedgerPosition) {
        self.init(client: transaction.client, requestID: transaction.requestID, replica: replica, view: view,
                  result: result, position: position)
    }
}

/// What a replica signs in one slot; it never signs two different digests for one.
public struct SignSlot: Hashable, Sendable {
    public enum Phase: UInt8, Sendable { case prePrepare, prepare, commit }
    public var phase: Phase
    public var view: UInt64
    public var round: UInt64
    public init(phase: Phase, view: UInt64, round: UInt64) {
        self.phase = phase
        self.view = view
        self.round = round
    }
}

/// One change to a replica's durable state.
public enum DurableRecord: Hashable, Sendable {
    /// The replica entered `view` (normal) or started changing to it (not normal).
    case view(UInt64, normal: Bool)
    /// The replica is about to sign `digest` in `slot`.
    case signed(SignSlot, Digest)
    /// The replica prepared a round (kept for view changes: a crash must not forget it).
    case prepared(PreparedProof)
    /// A certified block of the replica's own cluster, delivered in round order.
    case delivered(CertifiedBlock)
    /// A certified block of another cluster of the shard, received and checked.
    case remote(CertifiedBlock)
    /// A stable checkpoint; state below it may be dropped.
    case stable(CheckpointProof)
    /// Written by the shell, not the core: its block store durably holds every executed block of
    /// the rounds up to this one, so the log may forget their `delivered` and `remote` records.
    case ledgerStored(throughRound: UInt64)
}

/// Everything a replica must find again after a crash: the fold of its DurableRecords.
/// The daemon keeps it in GeoStore; the simulator keeps it in memory across a simulated crash.
public struct DurableState: Hashable, Sendable {
    /// The last view the replica entered (a NewView, or view 0).
    public var view: UInt64 = 0
    /// The view it was changing to, when above `view`.
    public var targetView: UInt64 = 0
    public var signed: [SignSlot: Digest] = [:]
    public var prepared: [UInt64: PreparedProof] = [:]
    public var delivered: [CertifiedBlock] = []
    public var remote: [CertifiedBlock] = []
    public var stable: CheckpointProof?
    /// Blocks of rounds up to this one are in the block store (see `ledgerStored`).
    public var ledgerStoredRound: UInt64 = 0

    public init() {}

    public mutating func apply(_ record: DurableRecord) {
        switch record {
        case let .view(view, normal):
            if normal {
                self.view = max(self.view, view)
                targetView = max(targetView, self.view)
            } else {
                targetView = max(targetView, view)
            }
        case let .signed(slot, digest):
            signed[slot] = digest
        case let .prepared(proof):
            if let existing = prepared[proof.round], existing.view >= proof.view { return }
            prepared[proof.round] = proof
        case let .delivered(block):
            if block.block.round > ledgerStoredRound { delivered.append(block) }
        case let .remote(block):
            if block.block.round > ledgerStoredRound { remote.append(block) }
        case let .ledgerStored(round):
            guard round > ledgerStoredRound else { return }
            ledgerStoredRound = round
            delivered.removeAll { $0.block.round <= round }
            remote.removeAll { $0.block.round <= round }
        case let .stable(proof):
            guard proof.statement.round > (stable?.statement.round ?? 0) else { return }
            stable = proof
            let round = proof.statement.round
            signed = signed.filter { $0.key.round > round }
            prepared = prepared.filter { $0.key > round }
        }
    }
}

/// Why a replica started a view change: what the simulator and the metrics count, so that a run
/// with view changes says which timer fired.
public enum ViewChangeReason: String, Hashable, Sendable, CaseIterable {
    /// A request (or statement) this replica watched waited a whole timeout: the primary censors it.
    case requestTimeout = "request-timeout"
    /// Outstanding work and no block delivered for a timeout.
    case noProgress = "no-progress"
    /// In a view change whose new primary did not deliver a NewView in time: the next view.
    case newViewLate = "new-view-late"
    /// f + 1 peers asked for a later view.
    case joined
    /// f + 1 peers vote in a later view this replica missed.
    case peersInLaterView = "peers-in-later-view"
    /// Another cluster of the shard asked (remote view change).
    case remoteRequest = "remote-request"
}

/// Why a replica ignored an input (counted by the shell; never fatal). The sub-machines throw it
/// before they change any state; the composer counts it.
public enum Rejection: String, Hashable, Sendable, CaseIterable, Error {
    case badClientSignature = "bad_client_signature"
    case badSignature = "bad_signature"
    case wrongCluster = "wrong_cluster"
    case senderMismatch = "sender_mismatch"
    case staleView = "stale_view"
    case outsideWindow = "outside_window"
    case notPrimary = "not_primary"
    case badDigest = "bad_digest"
    case conflictingProposal = "conflicting_proposal"
    case invalidBlock = "invalid_block"
    case invalidCertificate = "invalid_certificate"
    case invalidViewChange = "invalid_view_change"
    case invalidNewView = "invalid_new_view"
    case queueFull = "queue_full"
    /// A client request refused by admission control (answered `busy`).
    case busy
    case invalidSnapshot = "invalid_snapshot"
    case unexpected = "unexpected"
}
