// The replica daemon's heart: an actor that owns one GeoCore replica and carries out its effects.
//
// The core is a value that steps (`step(input) -> [Effect]`); this actor is the only place it is
// stepped, so it needs no locks. Effects are carried out in the order the core documents
// (ReplicaTypes.swift): the records of `persist` effects are appended to the durable log and
// fsynced before the first effect after them leaves the replica (a message, an execution or a
// reply), so nothing another replica or a client sees can be forgotten by a crash. Several
// records are synced at once when no effect stands between them.
//
// What this actor does not do: sockets (the transport, through MessageSink), signature checks of
// client transactions (ClientSignaturePreverifier, before a message gets here), the clock (the
// daemon calls `tick()` every tick).

import GeoCore
import GeoStore
import GeoWire
import Logging

/// Where a replica's outgoing messages go: the transport in the daemon, a queue in tests.
public protocol MessageSink: Sendable {
    func send(_ message: Message, to node: NodeID)
}

/// The durable log a replica appends its records to (GeoStore's log in the daemon). Owned by one
/// ReplicaNode, never shared.
public protocol DurableLog: AnyObject {
    func append(_ records: [DurableRecord]) throws
    func sync() throws
    /// Releases the log (its lock): nothing is appended after this.
    func close()
}

/// A log that keeps records in memory: for tests and tools that need no durability.
public final class MemoryLog: DurableLog {
    public private(set) var state = DurableState()
    public private(set) var records = 0
    public private(set) var syncs = 0
    public init() {}
    public func append(_ records: [DurableRecord]) throws {
        for record in records { state.apply(record) }
        self.records += records.count
    }
    public func sync() throws { syncs += 1 }
    public func close() {}
}

public actor ReplicaNode {
    public let info: ReplicaInfo
    public let topology: Topology
    /// Replica identities, numbers and names, built once (no per-message walk of the topology).
    let directory: ReplicaDirectory
    var core: PBFTReplica
    let log: any DurableLog
    /// The executed ledger and its snapshots (the core keeps only a window of blocks).
    let ledgerStore: any LedgerStore
    /// The last round whose blocks the ledger store holds durably and the log was told of.
    var ledgerStoredRound: UInt64 = 0
    /// Blocks appended to the ledger store since its last fsync, and the height that fsync covered.
    var unsyncedBlocks = 0
    var ledgerStoreSyncedHeight: UInt64 = 0
    /// A bound on what the log keeps of executed blocks when snapshots are far apart.
    static let blocksBetweenStoreSyncs = 1_024
    /// Height of the latest snapshot written or installed.
    public private(set) var snapshotHeight: UInt64 = 0
    /// Blocks the restart re-executed from the ledger store (after its snapshot) and from the log.
    public let blocksReplayedAtStart: Int
    let sink: any MessageSink
    var logger: Logger
    let peers: [NodeID]
    /// When each of our cluster's client requests arrived here, for the commit latency; bounded by
    /// `arrivalsMax` (a client that never gets an answer must not grow it).
    var arrivals: [ClientRequest: ContinuousClock.Instant] = [:]
    static let arrivalsMax = 100_000
    let clock = ContinuousClock()

    public private(set) var committedTransactions = 0
    /// Admission control at the door: what the core last said of its room (InboundQueue.swift).
    public nonisolated let door = AdmissionDoor()
    /// Commit latencies (seconds) observed since the last `drainLatencies()`.
    var latencies: [Double] = []
    static let latenciesMax = 100_000
    /// Inputs the shell refused before the core saw them (unknown sender, wrong kind), by reason.
    public private(set) var shellRejections: [String: Int] = [:]
    /// Set when the durable log failed: the replica stops rather than run on without durability.
    public private(set) var failure: String?

    struct ClientRequest: Hashable {
        var client: ClientID
        var requestID: UInt64
    }

    /// A replica of `topology`, restarted from what it made durable: its log's state
    /// (`recovered`), its latest snapshot and the stored blocks after it. Blocks the restart
    /// executed from the log alone are appended to the ledger store before anything else.
    public init(topology: Topology, replica: ReplicaInfo, suite: any CryptoSuite, log: sending any DurableLog,
                ledgerStore: sending (any LedgerStore)? = nil, recovered: DurableState?, snapshot: LedgerSnapshot? = nil,
                storedBlocks: [CertifiedBlock] = [], sink: any MessageSink, logger: Logger) {
        guard let configuration = PBFTConfiguration(topology: topology, replica: replica.id) else {
            preconditionFailure("\(replica.name) is not a replica of \(topology.name)")
        }
        self.info = replica
        self.topology = topology
        directory = ReplicaDirectory(topology)
        let store = ledgerStore ?? MemoryLedgerStore(clusterCount: configuration.clustersInShard)
        var executed: [ExecutedBlock] = []
        if (recovered.map { $0 != DurableState() } ?? false) || snapshot != nil || !storedBlocks.isEmpty {
            (core, executed) = PBFTReplica.recover(configuration: configuration, suite: suite, durable: recovered ?? DurableState(),
                                                   snapshot: snapshot, storedBlocks: storedBlocks)
        } else {
            core = PBFTReplica(configuration: configuration, suite: suite)
        }
        self.ledgerStore = store
        ledgerStoredRound = recovered?.ledgerStoredRound ?? 0
        ledgerStoreSyncedHeight = store.storedHeight
        snapshotHeight = snapshot?.height ?? 0
        blocksReplayedAtStart = storedBlocks.count + executed.count
        self.log = log
        self.sink = sink
        var logger = logger
        logger[metadataKey: "replica"] = "\(replica.name)"
        logger[metadataKey: "shard"] = "\(replica.id.cluster.shard.rawValue)"
        logger[metadataKey: "cluster"] = "\(replica.id.cluster.index)"
        self.logger = logger
        peers = topology.cluster(replica.id.cluster)?.replicas.filter { $0.id != replica.id }.map { NodeID.replica(number: $0.number) } ?? []
        if !executed.isEmpty {
            do {
                for block in executed where block.height > store.storedHeight { try store.append(block.certified, height: block.height) }
                try store.sync()
                ledgerStoreSyncedHeight = store.storedHeight
            } catch {
                failure = "ledger store: \(error)"
                self.logger.critical("cannot store the blocks the restart executed; stopping this replica", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: Inputs

    /// A message from an authenticated peer (the transport bound the connection to `node`).
    public func receive(_ message: Message, from node: NodeID) {
        if let client = node.client {
            guard case let .clientTransaction(transaction) = message else { return refuse("client_sent_replica_message") }
            guard transaction.client == client else { return refuse("sender_mismatch") }
            if transaction.client.rawValue < topology.clientCount, arrivals.count < Self.arrivalsMax {
                let key = ClientRequest(client: transaction.client, requestID: transaction.requestID)
                if arrivals[key] == nil { arrivals[key] = clock.now }
            }
            step(.client(transaction))
        } else if let number = node.replicaNumber, let peer = directory.replica(number: number) {
            step(.message(message, from: peer.id))
        } else {
            refuse("unknown_sender")
        }
    }

    public func tick() { step(.tick) }

    /// Stops stepping and releases the durable log, so the replica can be opened again.
    public func close() {
        guard failure == nil else { return }
        flush()
        // A clean stop leaves the store synced and the log told, so the next start replays little.
        if (try? syncLedgerStore()) != nil, (try? noteStoredRounds()) != nil { try? log.sync() }
        failure = "closed"
        log.close()
        ledgerStore.close()
    }

    func refuse(_ reason: String) { shellRejections[reason, default: 0] += 1 }

    // MARK: Effects

    func step(_ input: Input) {
        guard failure == nil else { return }
        let effects = core.step(input)
        let refusedAtDoor = door.recentRefusals(now: core.now, period: core.configuration.viewTimeoutTicks)
        let backlog = InboxAdmission.backlogLimit(of: core)
        door.publish(limit: backlog, replica: core.configuration.me, view: core.view,
                     retryAfterTicks: InboxAdmission.retryAfter(at: core, backlog: backlog, refusedAtDoor: refusedAtDoor), now: core.now)
        for case let .event(event) in effects {
            switch event {
            case let .viewChangeStarted(from, to, reason, round):
                logger.notice("view change started", metadata: ["from": "\(from)", "to": "\(to)", "reason": "\(reason.rawValue)", "round": "\(round)"])
            case let .enteredView(view, round):
                logger.info("entered view", metadata: ["view": "\(view)", "round": "\(round)"])
            case let .remoteClusterSuspected(cluster, round, attempt):
                logger.notice("remote cluster late", metadata: ["cluster": "\(cluster)", "round": "\(round)", "attempt": "\(attempt)"])
            case let .rejected(reason):
                coreRejections[reason, default: 0] += 1
            }
            if case .viewChangeStarted = event { viewChangesStarted += 1 }
        }
        hold(effects)
    }

    // Group commit: the effects of every input that arrives while a flush is pending are held, and
    // one flush appends all their records, fsyncs once, then carries out the rest in order. No
    // effect leaves before the records that precede it are durable (it only leaves later), and
    // under load one fsync covers many messages instead of one each.
    var held: [Effect] = []
    var flushScheduled = false
    /// Effects held at most before a flush is forced inline (bounds memory under a burst).
    static let heldMax = 4_096

    func hold(_ effects: [Effect]) {
        guard !effects.isEmpty else { return }
        held.append(contentsOf: effects)
        if held.count >= Self.heldMax {
            flush()
        } else if !flushScheduled {
            flushScheduled = true
            // Runs after the inputs already queued on this actor: they join this flush.
            Task { self.flush() }
        }
    }

    /// Makes the held records durable with one fsync, then sends, executes and replies.
    public func flush() {
        flushScheduled = false
        guard !held.isEmpty else { return }
        let effects = held
        held = []
        carryOut(effects)
    }

    func carryOut(_ effects: [Effect]) {
        let durable = effects.contains { effect in
            switch effect {
            case .persist, .executed, .snapshot, .installedSnapshot: return true
            default: return false
            }
        }
        if durable {
            guard makeDurable(effects) else { return }
        }
        for effect in effects {
            switch effect {
            case .persist, .snapshot, .installedSnapshot, .event:
                break
            case let .serveSnapshot(height, to: replica):
                guard let peer = directory.node(of: replica) else { continue }
                do {
                    if let snapshot = try ledgerStore.snapshot(atOrAbove: height) {
                        // One frame carries one snapshot: a state larger than a frame cannot be
                        // transferred yet (chunking is to come); the peer falls back to blocks.
                        let bytes = EncodedSize.body(.stateTransfer(snapshot))
                        guard bytes <= topology.parameters.maxMessageBytes else {
                            logger.warning("a snapshot is too large to transfer in one frame", metadata: [
                                "height": "\(height)", "bytes": "\(bytes)", "max_message_bytes": "\(topology.parameters.maxMessageBytes)"])
                            continue
                        }
                        sink.send(.stateTransfer(snapshot), to: peer)
                    }
                } catch {
                    logger.error("cannot read a snapshot for a peer", metadata: ["height": "\(height)", "error": "\(error)"])
                }
            case let .serveStored(request, to: replica):
                guard let peer = directory.node(of: replica), request.fromRound <= request.toRound else { continue }
                do {
                    for block in try ledgerStore.blocks(cluster: request.cluster.index, rounds: request.fromRound...request.toRound) {
                        sink.send(.certifiedBlock(block), to: peer)
                    }
                } catch {
                    // A read failure serves nothing (the peer asks another replica); the store
                    // refuses writes after a failure, which stops the replica at its next block.
                    logger.error("cannot read stored blocks for a peer", metadata: ["error": "\(error)"])
                }
            case let .send(message, to: replica):
                guard let peer = directory.node(of: replica) else { continue }
                sink.send(message, to: peer)
            case let .broadcast(message):
                for peer in peers { sink.send(message, to: peer) }
            case let .executed(block):
                committedTransactions += block.results.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
            case let .reply(reply):
                let key = ClientRequest(client: reply.client, requestID: reply.requestID)
                if let arrived = arrivals.removeValue(forKey: key), latencies.count < Self.latenciesMax {
                    let elapsed = clock.now - arrived
                    latencies.append(elapsed.seconds)
                }
                sink.send(.reply(reply), to: .client(reply.client))
            case let .busy(busy):
                sink.send(.busy(busy), to: .client(busy.client))
            }
        }
    }

    /// Appends the records to the log and fsyncs it, and appends the executed blocks to the ledger
    /// store. The store is fsynced only before a snapshot is written and every
    /// `blocksBetweenStoreSyncs` blocks, not before each reply: until the log is told the store
    /// holds a round (`ledgerStored`, appended after a store sync), the log keeps that round's
    /// blocks, and a restart executes them again and appends them to the store. So one fsync per
    /// batch, as before the store existed, and a crash loses nothing acknowledged. An installed
    /// snapshot restarts the store after it. On failure the replica stops (a replica that cannot
    /// persist what it signs could sign two things for one slot after a restart).
    func makeDurable(_ effects: [Effect]) -> Bool {
        do {
            var records: [DurableRecord] = []
            for effect in effects {
                switch effect {
                case let .persist(record):
                    records.append(record)
                case let .executed(block) where block.height > ledgerStore.storedHeight:
                    try ledgerStore.append(block.certified, height: block.height)
                    unsyncedBlocks += 1
                case let .snapshot(snapshot):
                    // The blocks a snapshot covers are durable before it is.
                    try syncLedgerStore()
                    do {
                        try ledgerStore.write(snapshot)
                        snapshotHeight = snapshot.height
                    } catch {
                        // Not fatal: the blocks are in the store, so a restart replays more,
                        // and the next snapshot may succeed. (A failed block or log write is.)
                        logger.error("cannot write a snapshot; going on without it", metadata: [
                            "height": "\(snapshot.height)", "error": "\(error)"])
                    }
                case let .installedSnapshot(snapshot):
                    try ledgerStore.install(snapshot)
                    unsyncedBlocks = 0
                    ledgerStoreSyncedHeight = ledgerStore.storedHeight
                    snapshotHeight = snapshot.height
                    logger.notice("installed a snapshot by state transfer", metadata: ["height": "\(snapshot.height)", "round": "\(snapshot.round)"])
                default:
                    break
                }
            }
            if !records.isEmpty { try log.append(records) }
            try log.sync()
            if unsyncedBlocks >= Self.blocksBetweenStoreSyncs { try syncLedgerStore() }
            try noteStoredRounds()
            return true
        } catch {
            failure = "durable log: \(error)"
            logger.critical("the durable log failed; stopping this replica", metadata: ["error": "\(error)"])
            return false
        }
    }

    func syncLedgerStore() throws {
        guard unsyncedBlocks > 0 else { return }
        try ledgerStore.sync()
        unsyncedBlocks = 0
        ledgerStoreSyncedHeight = ledgerStore.storedHeight
    }

    /// Tells the log which whole rounds the ledger store holds durably (it may forget their blocks).
    func noteStoredRounds() throws {
        let storedRound = ledgerStoreSyncedHeight / UInt64(max(1, core.configuration.clustersInShard))
        guard storedRound > ledgerStoredRound else { return }
        try log.append([.ledgerStored(throughRound: storedRound)])
        ledgerStoredRound = storedRound
    }

    // MARK: Observation

    /// What the core reports of itself (the shell reads no core fields).
    public var report: ReplicaReport { ReplicaReport(core, unfinishedShown: ReplicaStatus.unfinishedShown) }
    public var view: UInt64 { report.view }
    public var isChangingView: Bool { report.changingView }
    public var height: UInt64 { report.height }
    public var head: Digest { report.head }
    public var round: UInt64 { report.round }
    public var snapshotsInstalled: Int { report.snapshotsInstalled }
    public var blocksInMemory: Int { report.blocksInMemory }
    /// View changes this replica started and inputs its core ignored, counted from the core's events.
    public private(set) var viewChangesStarted = 0
    public private(set) var coreRejections: [Rejection: Int] = [:]
    /// The value of `key` in this replica's copy of the shard state.
    public func value(of key: [UInt8]) -> [UInt8]? { core.ledger.state.value(key) }

    /// Commit latencies observed since the last call, in seconds.
    public func drainLatencies() -> [Double] {
        defer { latencies = [] }
        return latencies
    }

    // MARK: Status and metrics

    let startedAt = ContinuousClock.now
    /// What was already added to the metrics' counters (they only go up; the core keeps totals).
    var reported = (viewChanges: 0, committed: 0, rejections: [Rejection: Int](), shell: [String: Int](), door: 0)

    /// The document GET /status serves.
    public func status(peersConnected: Int, peersTotal: Int) -> ReplicaStatus {
        let uptime = ContinuousClock.now - startedAt
        let core = report
        var status = ReplicaStatus(
            replica: info.name, shard: topology.shard(info.id.cluster.shard)?.name ?? "?", region: info.region,
            cluster: Int(info.id.cluster.index), view: core.view, height: core.height, round: core.round,
            head: core.head.hex, status: core.changingView ? .viewChange : .normal, peersConnected: peersConnected,
            peersTotal: peersTotal, committedTransactions: UInt64(committedTransactions),
            uptimeSeconds: uptime.seconds, crossShardLocks: core.crossShardLocks,
            crossShardInProgress: core.crossShardInProgress, crossShardUnfinished: core.crossShardUnfinished)
        status.snapshotHeight = snapshotHeight
        status.snapshotsInstalled = core.snapshotsInstalled
        status.blocksInMemory = core.blocksInMemory
        status.core = self.core.debugSummary
        return status
    }

    /// Brings `metrics` up to date with what the core told (called before each scrape).
    public func refresh(_ metrics: NodeMetrics) {
        let core = report
        metrics.setHeight(core.height)
        metrics.setView(core.view)
        if viewChangesStarted > reported.viewChanges {
            for _ in reported.viewChanges..<viewChangesStarted { metrics.viewChangeStarted() }
            reported.viewChanges = viewChangesStarted
        }
        if committedTransactions > reported.committed {
            metrics.committed(committedTransactions - reported.committed)
            reported.committed = committedTransactions
        }
        for (reason, count) in coreRejections where count > reported.rejections[reason, default: 0] {
            metrics.rejected(reason: reason, count: count - reported.rejections[reason, default: 0])
            reported.rejections[reason] = count
        }
        for (reason, count) in shellRejections where count > reported.shell[reason, default: 0] {
            metrics.rejected(reason: reason, count: count - reported.shell[reason, default: 0])
            reported.shell[reason] = count
        }
        let refusedAtDoor = door.refused
        if refusedAtDoor > reported.door {
            metrics.rejected(reason: Rejection.busy.rawValue, count: refusedAtDoor - reported.door)
            reported.door = refusedAtDoor
        }
        for latency in drainLatencies() { metrics.observeCommitLatency(seconds: latency) }
    }
}

/// GeoStore's log is the daemon's durable log.
extension ReplicaLog: DurableLog {}
