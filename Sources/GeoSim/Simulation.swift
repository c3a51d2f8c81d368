// The deterministic discrete-event simulator. One seed decides everything: message delays and
// losses, client operations, fault timing. Replicas are GeoCore's PBFTReplica, the same code the
// daemon runs; the simulator only plays the network, the clock, the disks and the clients.

import GeoCore
import GeoWire
import HeapModule

/// What to simulate.
public struct SimulationSettings: Sendable {
    public var topology: Topology
    public var seed: UInt64
    /// Simulated run length in microseconds.
    public var duration: UInt64
    /// Closed-loop clients per cluster of the topology, each in its cluster's region. (With the
    /// PBFT baseline they stay in those regions and send to the shard's single cluster.)
    public var clientsPerCluster: Int = 2
    /// GeoBFT (one cluster per region, as the topology says) or the single-cluster PBFT baseline.
    public var protocolKind: ProtocolKind = .geobft
    /// Scheduled faults and repairs: (time in microseconds, action).
    public var actions: [(time: UInt64, action: SimulationAction)] = []
    /// From this time on the network is clean and every crashed replica is back: liveness is judged after it.
    public var healTime: UInt64 = 0
    /// How long after healing a request may take, and how far behind a replica may stay.
    public var livenessBound: UInt64 = 4_000_000
    /// Replace the quorum rule by one that breaks n >= 3f + 1 (to show that the checkers notice).
    public var brokenQuorum = false
    /// Accounts the workload touches.
    public var accounts = 64
    /// Charge CPU time per step with this model (nil: replicas compute for free).
    public var costModel: CostModel?
    /// Cores of each replica's machine (signature verification spreads over them).
    public var cores = 4
    /// Latencies and per-region throughput count only requests completed after this time (whenever sent).
    public var warmup: UInt64 = 0
    /// The bank workload with this fraction of transfers across shards (nil: the mixed key-value
    /// workload of earlier runs, every client on its own shard, cross-shard layer off).
    public var crossShardFraction: Double?
    /// Bank workload: clients stop submitting this long before the end, so that every cross-shard
    /// transaction is decided and applied before the final checks (balance, locks, atomicity).
    public var settleTime: UInt64 = 2_000_000
    /// Bank workload: clients (by index) that sign a second and third version of each cross-shard
    /// request, with the same request id (one with another amount, one with another coordinator).
    public var conflictingClients: Set<Int> = []
    /// Milliseconds a client waits before resending to every replica of its home cluster (nil:
    /// `Topology.clientResendTimeoutMilliseconds`, the real client's rule).
    public var clientTimeoutMilliseconds: Int?
    /// Shards apply their part of a cross-shard transaction even on abort (to show that the
    /// balance and atomicity checkers notice).
    public var brokenCommitRule = false
    /// Record a `TimelineSample` every this many microseconds (nil: none).
    public var timelineInterval: UInt64?

    public init(topology: Topology, seed: UInt64, duration: UInt64) {
        self.topology = topology
        self.seed = seed
        self.duration = duration
    }
}

public enum ProtocolKind: String, CaseIterable, Hashable, Sendable {
    case geobft
    case pbft
}

/// What a run produced.
public struct SimulationReport: Sendable {
    public var seed: UInt64
    public var violations: [Violation]
    /// Client requests completed (f + 1 matching replies).
    public var committed: Int
    /// Of which after the heal time.
    public var committedAfterHeal: Int
    public var heights: [ReplicaID: UInt64]
    /// The view each running replica ended in.
    public var views: [ReplicaID: UInt64]
    public var viewChanges: Int
    /// View changes started, by `ViewChangeReason` (its raw value).
    public var viewChangeReasons: [String: Int] = [:]
    public var messagesSent: Int
    public var messagesDropped: Int
    public var bytesSent: Int
    public var events: Int
    /// Inputs the replicas ignored, by reason, summed over replicas.
    public var rejections: [String: Int]
    /// Client requests resent after a timeout.
    public var clientRetransmissions: Int
    /// Messages sent, by kind.
    public var messagesByKind: [String: Int]
    /// Per region (topology order): requests completed after the warmup, and their latencies in microseconds.
    public var regionCompleted: [String: Int]
    public var regionLatencies: [String: [UInt64]]
    /// The busiest replica's CPU time over the run, as a fraction of the run (1 = saturated).
    public var busiestReplicaUtilisation: Double
    public var ok: Bool { violations.isEmpty }
    /// Bank workload: cross-shard transactions decided, by outcome ("committed", "aborted: conflict", ...).
    public var crossShardOutcomes: [String: Int] = [:]
    /// State snapshots correct replicas took (each compared with the others at its height).
    public var snapshots = 0
    /// Restarts that began from a snapshot rather than from genesis.
    public var restartsFromSnapshot = 0
    /// Snapshots installed by state transfer (after a wiped disk or a long absence).
    public var snapshotsInstalled = 0
    /// The most certified blocks any replica's core held in memory at the end of the run (bounded
    /// by a few windows, whatever the ledger's length).
    public var blocksInMemoryMax = 0
    /// Client signatures the replicas verified (SignatureDuty.swift: f + 1 per transaction
    /// without faults, not n), summed over replicas, and per request completed.
    public var clientVerifications = 0
    public var clientVerificationsPerRequest: Double { committed == 0 ? 0 : Double(clientVerifications) / Double(committed) }
    /// Busy answers clients received (admission control, by a core or at a shell's door), and
    /// the backoffs they waited, per region.
    public var regionBusyAnswers: [String: Int] = [:]
    public var regionBackoffs: [String: Int] = [:]
    /// One sample per `SimulationSettings.timelineInterval`, oldest first.
    public var timeline: [TimelineSample] = []
}

/// What one interval of a run did, and how loaded the busiest machine was at its end: where an
/// overload shows first (a growing inbox) before it shows in view changes.
public struct TimelineSample: Hashable, Sendable, Codable {
    /// End of the interval, microseconds from the start.
    public var time: UInt64
    /// Requests completed, view changes started and client resends in the interval.
    public var committed: Int
    public var viewChanges: Int
    public var clientResends: Int
    /// The most inputs waiting at one replica's machine, and that replica's work queued ahead of
    /// a new input (microseconds).
    public var busiestInbox: Int
    public var busiestReplica: String
    public var busiestBacklogMicroseconds: UInt64
}

public final class Simulation {
    struct Event: Comparable {
        var time: UInt64
        var sequence: UInt64
        var payload: Payload
        static func < (lhs: Event, rhs: Event) -> Bool { (lhs.time, lhs.sequence) < (rhs.time, rhs.sequence) }
        static func == (lhs: Event, rhs: Event) -> Bool { (lhs.time, lhs.sequence) == (rhs.time, rhs.sequence) }
    }

    enum Payload {
        case toReplica(ReplicaID, Message, from: Endpoint)
        case toClient(Int, Reply)
        case busyToClient(Int, Busy)
        case replicaTick(ReplicaID)
        /// A replica's machine is free: it takes the next input waiting in its inboxes.
        case replicaFree(ReplicaID)
        case clientTick(Int)
        case action(SimulationAction)
        case livenessMark
        case timelineMark
    }

    final class ReplicaNode {
        let id: ReplicaID
        let region: String
        var regionIndex = 0
        let configuration: PBFTConfiguration
        let suite: SimulatedCrypto
        var core: PBFTReplica?
        var durable = DurableState()
        /// The node's block store: the executed ledger, in order, from height `blockStoreFirst`
        /// (1, or the height after a snapshot state transfer installed); like `durable`, it
        /// survives a crash (not a wipe).
        var blockStore: [CertifiedBlock] = []
        var blockStoreFirst: UInt64 = 1
        var storedHeight: UInt64 { blockStoreFirst - 1 + UInt64(blockStore.count) }
        /// The latest two snapshots, oldest first (as the daemon keeps them).
        var snapshots: [LedgerSnapshot] = []
        var snapshot: LedgerSnapshot? { snapshots.last }
        var snapshotFault: SnapshotFault?
        /// The first snapshot it took (what a `.stale` one serves).
        var firstSnapshot: LedgerSnapshot?
        /// What its peers sent while it was down, per peer, oldest first: as the daemon's
        /// transport keeps the latest frames for a peer it cannot reach (bounded, oldest
        /// dropped) and sends them when the peer is back. A peer that crashes loses its queue.
        var heldWhileDown: [ReplicaID: [Message]] = [:]
        let meter = CostMeter()
        var cpuFreeAt: UInt64 = 0
        /// Inputs that arrived while the machine was busy, in the daemon's order (`InputTurns`).
        var inbox = InputTurns<Payload>()
        var wakeScheduled = false
        /// Client requests refused at the door per period of the core's ticks (their hint).
        var doorRefusals: PeriodCount?
        var busyMicroseconds: Double = 0
        var byzantine: ByzantineBehaviour?
        var history: [Message] = []
        /// The suite the core runs with: metered when the cost model is on.
        func coreSuite(metered: Bool) -> any CryptoSuite {
            metered ? MeteredCrypto(base: suite, meter: meter) : ClientCheckCounter(base: suite, meter: meter)
        }

        init(id: ReplicaID, region: String, configuration: PBFTConfiguration, suite: SimulatedCrypto) {
            self.id = id
            self.region = region
            self.configuration = configuration
            self.suite = suite
        }
    }

    struct ClientNode {
        var core: ClientCore
        var region: String
        var regionIndex = 0
        var shard: ShardID
        var submittedAt: UInt64 = 0
        var completed = 0
        var latencies: [UInt64] = []
    }

    public let settings: SimulationSettings
    /// Called with a line for every message sent and dropped (for debugging a seed).
    public var trace: ((String) -> Void)?
    let topology: Topology
    var random: SeededRandom
    var queue = Heap<Event>()
    var sequence: UInt64 = 0
    public private(set) var now: UInt64 = 0
    var replicas: [ReplicaID: ReplicaNode] = [:]
    var replicaOrder: [ReplicaID] = []
    var clients: [ClientNode] = []
    var faults = NetworkFaults.none
    var partitions: [Partition] = []
    /// Extra one-way delay, in microseconds, on every message to and from a replica.
    var slowLinks: [ReplicaID: UInt64] = [:]
    var linkBusyUntil: [Pair: UInt64] = [:]
    /// Links between regions by index (the topology's lookup by name is too slow for every message).
    var links: [[Link]] = []
    let checker: InvariantChecker
    let tickMicroseconds: UInt64
    var committed = 0
    var committedAfterHeal = 0
    var messagesSent = 0
    /// Messages sent, indexed by MessageKind raw value.
    var sentByKind = [Int](repeating: 0, count: Int(MessageKind.allCases.map(\.rawValue).max() ?? 0) + 1)
    var messagesDropped = 0
    var bytesSent = 0
    var events = 0
    /// What the adversary knows of its own equivocation: which proposal each replica got.
    var equivocations: [VoteStatement: Set<ReplicaID>] = [:]
    /// Per shard: the height its replicas must reach by the end (each shard's ledger is its own).
    var livenessTarget: [ShardID: UInt64]?
    /// Bank workload: the accounts of each shard.
    var accountsByShard: [[[UInt8]]] = []
    var livenessOutstanding: [(client: Int, requestID: UInt64)] = []
    var timeline: [TimelineSample] = []
    /// Client requests the shells answered `busy` before their cores saw them.
    var inboxRefusals = 0
    /// Totals at the last timeline sample.
    var sampled = (committed: 0, viewChanges: 0, resends: 0)

    struct Pair: Hashable {
        var from: Endpoint
        var to: Endpoint
    }

    public init(settings: SimulationSettings) {
        self.settings = settings
        let layout = settings.topology
        topology = settings.protocolKind == .pbft ? layout.pbftBaseline() : layout
        random = SeededRandom(seed: settings.seed)
        tickMicroseconds = UInt64(max(1, topology.parameters.tickMilliseconds)) * 1000
        let clientCount = layout.shards.reduce(0) { $0 + $1.clusters.count } * settings.clientsPerCluster
        let verifier = SimulatedCrypto(owner: nil, clientCount: clientCount)
        let topology = self.topology
        let broken = settings.brokenQuorum
        checker = InvariantChecker(suite: verifier, quorumOf: { cluster in
            guard let quorum = topology.cluster(cluster)?.quorum else { return nil }
            return broken ? Quorum.brokenForCheckerTests(n: quorum.n, f: quorum.n / 2) : quorum
        })

        for shard in topology.shards {
            let quorums = shard.clusters.map { broken ? Quorum.brokenForCheckerTests(n: $0.n, f: $0.n / 2) : $0.quorum }
            for cluster in shard.clusters {
                for replica in cluster.replicas {
                    guard var configuration = PBFTConfiguration(topology: topology, replica: replica.id) else { continue }
                    configuration.quorum = quorums[Int(cluster.id.index)]
                    configuration.shardQuorums = quorums
                    if settings.crossShardFraction == nil {
                        configuration.crossShard = nil
                    } else {
                        configuration.crossShard?.brokenCommitRuleForCheckerTests = settings.brokenCommitRule
                    }
                    let suite = SimulatedCrypto(owner: replica.id, clientCount: clientCount)
                    let node = ReplicaNode(id: replica.id, region: replica.region, configuration: configuration, suite: suite)
                    node.core = PBFTReplica(configuration: configuration, suite: node.coreSuite(metered: settings.costModel != nil))
                    replicas[replica.id] = node
                    replicaOrder.append(replica.id)
                    schedule(at: random.next() % tickMicroseconds, .replicaTick(replica.id))
                }
            }
        }
        // Clients sit where the topology's clusters are; each sends to its shard's cluster in its
        // region (GeoBFT) or to the shard's one cluster (PBFT baseline).
        for shard in layout.shards {
            for cluster in shard.clusters {
                guard let home = topology.shards[Int(shard.id.rawValue)].homeCluster(region: cluster.region) else { continue }
                for _ in 0..<settings.clientsPerCluster {
                    let id = ClientID(UInt32(clients.count))
                    let signer = SimulatedCrypto(owner: nil, clientCount: clientCount)
                    let core = ClientCore(client: id, cluster: home.id, quorum: home.quorum, signer: signer,
                                          timeoutTicks: clientTimeoutTicks(for: cluster.region),
                                          replyPatienceTicks: clientReplyPatienceTicks(for: cluster.region, home: home))
                    clients.append(ClientNode(core: core, region: cluster.region, shard: shard.id))
                    schedule(at: random.next() % (10 * tickMicroseconds), .clientTick(clients.count - 1))
                }
            }
        }
        let regionNames = topology.regions.map(\.name)
        links = regionNames.map { from in regionNames.map { to in topology.link(from: from, to: to) ?? topology.lan } }
        for node in replicas.values { node.regionIndex = regionNames.firstIndex(of: node.region) ?? 0 }
        for index in clients.indices { clients[index].regionIndex = regionNames.firstIndex(of: clients[index].region) ?? 0 }
        for (time, action) in settings.actions { schedule(at: time, .action(action)) }
        accountsByShard = topology.shards.map { _ in [] }
        for index in 0..<settings.accounts {
            let account = Array("acct-\(index)".utf8)
            let shard = Int(topology.shardID(forKey: account).rawValue)
            if shard < accountsByShard.count { accountsByShard[shard].append(account) }
        }
        if settings.duration > settings.livenessBound, settings.duration - settings.livenessBound >= settings.healTime {
            schedule(at: settings.duration - settings.livenessBound, .livenessMark)
        }
        if let interval = settings.timelineInterval, interval > 0 { schedule(at: interval, .timelineMark) }
    }

    /// A client's resend timeout: the real client's rule, unless the settings override it.
    func clientTimeoutTicks(for region: String) -> UInt64 {
        let milliseconds = UInt64(settings.clientTimeoutMilliseconds ?? topology.clientResendTimeoutMilliseconds(region: region))
        return max(2, milliseconds * 1000 / tickMicroseconds)
    }

    /// How long a client waits for the other designated repliers after a first reply: the real client's rule.
    func clientReplyPatienceTicks(for region: String, home: Cluster) -> UInt64 {
        let milliseconds = UInt64(topology.clientReplyPatienceMilliseconds(region: region, cluster: home))
        return max(1, (milliseconds * 1000 + tickMicroseconds - 1) / tickMicroseconds)
    }

    func schedule(at time: UInt64, _ payload: Payload) {
        sequence += 1
        queue.insert(Event(time: time, sequence: sequence, payload: payload))
    }

    /// Runs to the end and checks.
    public func run() -> SimulationReport {
        while let event = queue.popMin() {
            guard event.time <= settings.duration else { break }
            now = event.time
            events += 1
            handle(event.payload)
        }
        now = settings.duration
        finalChecks()
        if let trace {
            for (id, node) in replicas.sorted(by: { $0.key < $1.key }) {
                trace("END \(id): \(node.core?.debugSummary ?? "crashed")")
            }
        }
        var heights: [ReplicaID: UInt64] = [:]
        var views: [ReplicaID: UInt64] = [:]
        var viewChanges = 0
        var viewChangeReasons: [String: Int] = [:]
        var rejections: [String: Int] = [:]
        for (id, node) in replicas {
            heights[id] = node.core?.ledger.height ?? 0
            if let core = node.core { views[id] = core.view }
            viewChanges += node.core?.viewChangesStarted ?? 0
            for (reason, count) in node.core?.viewChangeReasons ?? [:] { viewChangeReasons[reason.rawValue, default: 0] += count }
            for (reason, count) in node.core?.rejections ?? [:] { rejections[reason.rawValue, default: 0] += count }
        }
        var report = SimulationReport(seed: settings.seed, violations: checker.violations, committed: committed,
                                committedAfterHeal: committedAfterHeal, heights: heights, views: views, viewChanges: viewChanges,
                                messagesSent: messagesSent, messagesDropped: messagesDropped, bytesSent: bytesSent, events: events,
                                rejections: rejections, clientRetransmissions: clients.reduce(0) { $0 + $1.core.retransmissions },
                                messagesByKind: Dictionary(uniqueKeysWithValues: MessageKind.allCases.compactMap { kind in
                                    sentByKind[Int(kind.rawValue)] > 0 ? (String(describing: kind), sentByKind[Int(kind.rawValue)]) : nil
                                }),
                                regionCompleted: Dictionary(grouping: clients, by: \.region).mapValues { $0.reduce(0) { $0 + $1.latencies.count } },
                                regionLatencies: Dictionary(grouping: clients, by: \.region).mapValues { $0.flatMap(\.latencies) },
                                busiestReplicaUtilisation: (replicas.values.map(\.busyMicroseconds).max() ?? 0) / Double(max(1, settings.duration)),
                                crossShardOutcomes: checker.crossShardOutcomes())
        report.viewChangeReasons = viewChangeReasons
        report.snapshots = checker.snapshotsObserved
        report.restartsFromSnapshot = restartsFromSnapshot
        report.snapshotsInstalled = snapshotsInstalled
        report.blocksInMemoryMax = replicas.values.compactMap { $0.core?.blocksInMemory }.max() ?? 0
        report.clientVerifications = replicas.values.reduce(0) { $0 + $1.meter.clientVerifications }
        report.timeline = timeline
        report.regionBusyAnswers = Dictionary(grouping: clients, by: \.region).mapValues { $0.reduce(0) { $0 + $1.core.busyAnswers } }
        report.regionBackoffs = Dictionary(grouping: clients, by: \.region).mapValues { $0.reduce(0) { $0 + $1.core.backoffs } }
        return report
    }

    func handle(_ payload: Payload) {
        switch payload {
        case let .toReplica(id, message, from):
            guard let node = replicas[id] else { return }
            guard node.core != nil else {
                if case let .replica(sender) = from {
                    node.heldWhileDown[sender, default: []].append(message)
                    // The transport keeps only the latest frames for a peer that is down.
                    if node.heldWhileDown[sender, default: []].count > Self.heldWhileDownMax {
                        node.heldWhileDown[sender]?.removeFirst()
                    }
                }
                return
            }
            if node.cpuFreeAt > now || !node.inbox.isEmpty {
                // The machine is busy: the message waits in its queue.
                let fromClient: Bool
                if case .client = from { fromClient = true } else { fromClient = false }
                if fromClient, case let .clientTransaction(transaction) = message, let core = node.core,
                   case let backlog = InboxAdmission.backlogLimit(of: core), node.inbox.clientCount >= backlog {
                    refuseAtTheDoor(transaction, at: node, backlog: backlog)
                    return
                }
                node.inbox.append(payload, fromClient: fromClient)
                if !node.wakeScheduled {
                    node.wakeScheduled = true
                    schedule(at: max(now, node.cpuFreeAt), .replicaFree(id))
                }
                return
            }
            process(payload, at: node)
        case let .replicaFree(id):
            guard let node = replicas[id] else { return }
            node.wakeScheduled = false
            guard node.core != nil else {
                node.inbox.removeAll()
                return
            }
            if node.cpuFreeAt <= now, let next = node.inbox.next() { process(next, at: node) }
            if !node.inbox.isEmpty {
                node.wakeScheduled = true
                schedule(at: max(now, node.cpuFreeAt), .replicaFree(id))
            }
        case let .toClient(index, reply):
            let effects = clients[index].core.onReply(reply)
            carryOut(effects, ofClient: index)
        case let .busyToClient(index, busy):
            carryOut(clients[index].core.onBusy(busy), ofClient: index)
        case let .replicaTick(id):
            schedule(at: now + tickMicroseconds, .replicaTick(id))
            guard let node = replicas[id], node.core != nil else { return }
            let effects = node.core!.step(.tick)
            carryOut(effects, of: node, delay: charge(node, effects))
            if node.byzantine == .forgedCertificates, random.next() % 4 == 0 { forgeCertificate(node) }
            if node.byzantine == .replay, !node.history.isEmpty, random.next() % 4 == 0 {
                let old = node.history[Int(random.next() % UInt64(node.history.count))]
                for peer in peers(of: node) { send(old, from: .replica(node.id), to: .replica(peer)) }
            }
        case let .clientTick(index):
            schedule(at: now + tickMicroseconds, .clientTick(index))
            if !clients[index].core.isBusy {
                if settings.crossShardFraction != nil {
                    guard now + settings.settleTime < settings.duration else { return }
                    submitBankOperation(index)
                    return
                }
                let operation = nextOperation()
                clients[index].submittedAt = now
                carryOut(clients[index].core.submit(operation), ofClient: index)
            } else {
                carryOut(clients[index].core.tick(), ofClient: index)
            }
        case let .action(action):
            apply(action)
        case .timelineMark:
            if let interval = settings.timelineInterval { schedule(at: now + interval, .timelineMark) }
            sampleTimeline()
        case .livenessMark:
            livenessTarget = Dictionary(uniqueKeysWithValues: topology.shards.map { ($0.id, checker.maxHeight(of: $0.id)) })
            livenessOutstanding = clients.indices.compactMap { index in
                clients[index].core.isBusy ? (index, clients[index].core.nextRequestID - 1) : nil
            }
        }
    }

    /// A message reaches the replica's core: what the machine does once it takes the input.
    func process(_ payload: Payload, at node: ReplicaNode) {
        guard case let .toReplica(_, message, from) = payload else { return }
        let input: Input
        switch (message, from) {
        case let (.clientTransaction(transaction), .client): input = .client(transaction)
        case let (_, .replica(sender)): input = .message(message, from: sender)
        default: return
        }
        if node.byzantine == .votesForEverything, case let .prePrepare(prePrepare) = message {
            voteForEverything(node, prePrepare)
        }
        if node.byzantine == .censoring, case let .clientTransaction(transaction) = message, transaction.client == ClientID(0) {
            return
        }
        if node.byzantine == .withholdsVotes, case .shardStatement = message { return }
        let effects = node.core!.step(input)
        carryOut(effects, of: node, delay: charge(node, effects))
    }

    func nextOperation() -> Operation {
        let account = { (random: inout SeededRandom, count: Int) -> [UInt8] in Array("acct-\(random.next() % UInt64(count))".utf8) }
        let choice = random.next() % 10
        switch choice {
        case 0...3: return .add(key: account(&random, settings.accounts), delta: Int64(1 + random.next() % 100))
        case 4...7:
            return .transfer(from: account(&random, settings.accounts), to: account(&random, settings.accounts), amount: 1 + random.next() % 50)
        case 8: return .put(key: account(&random, settings.accounts), value: random.bytes(count: 8))
        default: return .get(key: account(&random, settings.accounts))
        }
    }

    /// Bank workload: a mint (1 in 10: where money enters, so the checker knows the total) or a
    /// transfer, across shards with the configured probability; sent to the client's cluster of
    /// the coordinator shard (the shard of the first key) in its region, else that shard's first.
    func submitBankOperation(_ index: Int) {
        let shards = accountsByShard.indices.filter { !accountsByShard[$0].isEmpty }
        guard !shards.isEmpty else { return }
        func pick(_ shard: Int) -> [UInt8] { accountsByShard[shard][Int(random.next() % UInt64(accountsByShard[shard].count))] }
        let operation: Operation
        if random.next() % 10 == 0 {
            operation = .add(key: pick(shards[Int(random.next() % UInt64(shards.count))]), delta: Int64(1 + random.next() % 500))
        } else {
            let fromShard = shards[Int(random.next() % UInt64(shards.count))]
            var toShard = fromShard
            if shards.count > 1, probability(settings.crossShardFraction ?? 0) {
                let others = shards.filter { $0 != fromShard }
                toShard = others[Int(random.next() % UInt64(others.count))]
            }
            operation = .transfer(from: pick(fromShard), to: pick(toShard), amount: 1 + random.next() % 50)
        }
        let coordinator = topology.shardID(forKey: operation.keys[0])
        let shard = topology.shards[Int(coordinator.rawValue)]
        guard let home = shard.homeCluster(region: clients[index].region) else { return }
        clients[index].submittedAt = now
        clients[index].shard = coordinator
        carryOut(clients[index].core.submit(operation, to: home.id, quorum: home.quorum), ofClient: index)
        if settings.conflictingClients.contains(index), case let .transfer(from, to, amount) = operation,
           topology.shardID(forKey: to) != coordinator {
            // Same request id, other contents: another amount to the same coordinator cluster, and
            // the reverse transfer to the other shard's cluster (another coordinator).
            let requestID = clients[index].core.nextRequestID - 1
            let signer = SimulatedCrypto(owner: nil, clientCount: clients.count)
            let client = clients[index].core.client
            let otherShard = topology.shards[Int(topology.shardID(forKey: to).rawValue)]
            guard let otherHome = otherShard.homeCluster(region: clients[index].region) else { return }
            let versions = [(signer.signTransaction(client: client, requestID: requestID, operation: .transfer(from: from, to: to, amount: amount + 1)), home),
                            (signer.signTransaction(client: client, requestID: requestID, operation: .transfer(from: to, to: from, amount: amount)), otherHome)]
            for (version, cluster) in versions {
                for replica in cluster.replicas { send(.clientTransaction(version), from: .client(client), to: .replica(replica.id)) }
            }
        }
    }

    func sampleTimeline() {
        let viewChanges = replicas.values.reduce(0) { $0 + ($1.core?.viewChangesStarted ?? 0) }
        let resends = clients.reduce(0) { $0 + $1.core.retransmissions }
        let busiest = replicaOrder.compactMap { replicas[$0] }.max { lhs, rhs in
            (lhs.inbox.replicaCount + lhs.inbox.clientCount, lhs.cpuFreeAt) < (rhs.inbox.replicaCount + rhs.inbox.clientCount, rhs.cpuFreeAt)
        }
        timeline.append(TimelineSample(time: now, committed: committed - sampled.committed, viewChanges: viewChanges - sampled.viewChanges,
                                       clientResends: resends - sampled.resends,
                                       busiestInbox: busiest.map { $0.inbox.replicaCount + $0.inbox.clientCount } ?? 0,
                                       busiestReplica: busiest.map { "\($0.id)" } ?? "-",
                                       busiestBacklogMicroseconds: busiest.map { $0.cpuFreeAt > now ? $0.cpuFreeAt - now : 0 } ?? 0))
        sampled = (committed, viewChanges, resends)
    }

    /// The shell's admission control (InboxAdmission): a client request past what may wait for the
    /// machine is answered `busy` unread; reading it and sending the answer still take the machine.
    func refuseAtTheDoor(_ transaction: ClientTransaction, at node: ReplicaNode, backlog: Int) {
        guard let core = node.core else { return }
        var refusals = node.doorRefusals ?? InboxAdmission.refusalCount(for: core)
        refusals.add(1, now: core.now)
        node.doorRefusals = refusals
        let busy = InboxAdmission.busy(refusing: transaction, at: core, backlog: backlog, refusedAtDoor: refusals.recent(now: core.now))
        inboxRefusals += 1
        if let model = settings.costModel {
            var work = CostMeter.Counts()
            work.messages = 2
            work.messageBytes = EncodedSize.frame(.clientTransaction(transaction)) + EncodedSize.frame(.busy(busy))
            let cost = model.cost(of: work, cores: settings.cores)
            node.busyMicroseconds += cost
            node.cpuFreeAt = max(now, node.cpuFreeAt) + UInt64(cost.rounded(.up))
        }
        send(.busy(busy), from: .replica(node.id), to: .client(busy.client), extraDelay: node.cpuFreeAt > now ? node.cpuFreeAt - now : 0)
    }

    // MARK: Effects

    func peers(of node: ReplicaNode) -> [ReplicaID] {
        (0..<node.configuration.n).map { node.configuration.replica(UInt16($0)) }.filter { $0 != node.id }
    }

    /// Charges a step's work to its replica's machine; returns the microseconds it took.
    func charge(_ node: ReplicaNode, _ effects: [Effect]) -> UInt64 {
        guard let model = settings.costModel else { return 0 }
        var work = node.meter.take()
        work.messages += 1
        for effect in effects {
            switch effect {
            case let .send(message, _):
                work.messages += 1
                work.messageBytes += EncodedSize.frame(message)
            case let .broadcast(message):
                work.messages += node.configuration.n - 1
                work.messageBytes += EncodedSize.frame(message) * (node.configuration.n - 1)
            case let .reply(reply):
                work.messages += 1
                work.messageBytes += EncodedSize.frame(.reply(reply))
            case let .busy(busy):
                work.messages += 1
                work.messageBytes += EncodedSize.frame(.busy(busy))
            case let .serveStored(request, _):
                let count = Int(min(request.toRound - request.fromRound + 1, 1_024))
                work.messages += count
            case .serveSnapshot:
                work.messages += 1
            case .persist, .executed, .snapshot, .installedSnapshot, .event:
                break
            }
        }
        let cost = model.cost(of: work, cores: settings.cores)
        node.busyMicroseconds += cost
        // Ticks are not queued behind messages (timers fire regardless), but their work still
        // waits for the machine: it starts when the machine is free.
        let start = max(now, node.cpuFreeAt)
        node.cpuFreeAt = start + UInt64(cost.rounded(.up))
        return node.cpuFreeAt - now
    }

    /// Appends an executed block to the node's block store; once a round's last block is in, the
    /// log may forget the round's blocks (as the daemon's shell records).
    func store(_ block: ExecutedBlock, at node: ReplicaNode) {
        guard block.height == node.storedHeight + 1 else {
            precondition(block.height <= node.storedHeight, "the ledger executes heights in order")
            return
        }
        node.blockStore.append(block.certified)
        let clusters = UInt64(node.configuration.clustersInShard)
        if block.height % clusters == 0 { node.durable.apply(.ledgerStored(throughRound: block.height / clusters)) }
    }

    var restartsFromSnapshot = 0
    var snapshotsInstalled = 0

    func carryOut(_ effects: [Effect], of node: ReplicaNode, delay: UInt64 = 0) {
        for effect in effects {
            switch effect {
            case let .persist(record):
                node.durable.apply(record)
            case let .send(message, to):
                sendFromReplica(node, message, to: [to], delay: delay)
            case let .broadcast(message):
                sendFromReplica(node, message, to: peers(of: node), delay: delay)
            case let .executed(block):
                store(block, at: node)
                if node.byzantine == nil { checker.observe(block, at: node.id, time: now) }
            case let .snapshot(snapshot):
                node.snapshots = Array((node.snapshots + [snapshot]).suffix(2))
                if node.firstSnapshot == nil { node.firstSnapshot = snapshot }
                if node.byzantine == nil && node.snapshotFault == nil { checker.observe(snapshot, at: node.id, time: now) }
            case let .installedSnapshot(snapshot):
                node.snapshots = [snapshot]
                node.blockStore = []
                node.blockStoreFirst = snapshot.height + 1
                node.durable.apply(.ledgerStored(throughRound: snapshot.round))
                snapshotsInstalled += 1
                if node.byzantine == nil && node.snapshotFault == nil { checker.observe(snapshot, at: node.id, time: now) }
            case let .serveSnapshot(height, to):
                // As the daemon's snapshot store: the one at that height, or the oldest above it.
                guard var served = node.snapshots.first(where: { $0.height >= height }) else { continue }
                switch node.snapshotFault {
                case .forged?:
                    var values = served.state.values
                    values[Array("forged".utf8)] = KeyValueStore.encode(1_000_000)
                    served.state = KeyValueStore(values: values)
                case .stale?:
                    if let first = node.firstSnapshot, first.height < height { served = first }
                case nil:
                    break
                }
                sendFromReplica(node, .stateTransfer(served), to: [to], delay: delay)
            case let .serveStored(request, to):
                let clusters = node.configuration.clustersInShard
                guard Int(request.cluster.index) < clusters, request.fromRound >= 1, request.toRound >= request.fromRound else { continue }
                for round in request.fromRound...min(request.toRound, request.fromRound + 1_023) {
                    let height = ShardLedger.height(round: round, cluster: request.cluster.index, clusterCount: clusters)
                    guard height <= node.storedHeight else { break }
                    guard height >= node.blockStoreFirst else { continue }
                    sendFromReplica(node, .certifiedBlock(node.blockStore[Int(height - node.blockStoreFirst)]), to: [to], delay: delay)
                }
            case let .reply(reply):
                guard Int(reply.client.rawValue) < clients.count else { continue }
                send(.reply(reply), from: .replica(node.id), to: .client(reply.client), extraDelay: delay)
            case let .busy(busy):
                send(.busy(busy), from: .replica(node.id), to: .client(busy.client), extraDelay: delay)
            case .event:
                break
            }
        }
    }

    func carryOut(_ effects: [ClientEffect], ofClient index: Int) {
        for effect in effects {
            switch effect {
            case let .send(transaction, to):
                send(.clientTransaction(transaction), from: .client(clients[index].core.client), to: .replica(to))
            case let .completed(requestID, _, position, _):
                committed += 1
                if now >= settings.healTime { committedAfterHeal += 1 }
                clients[index].completed += 1
                // Every request completed in the measured window counts, whenever it was sent: counting
                // only those sent after the warmup left out the first latency's worth of the window,
                // which under overload (1.5 s latencies in a 4 s window) hid a third of the throughput.
                if now >= settings.warmup { clients[index].latencies.append(now - clients[index].submittedAt) }
                checker.acknowledge(client: clients[index].core.client, requestID: requestID, shard: clients[index].shard,
                                    height: position.height, time: now)
            }
        }
    }

    /// A replica's outgoing message, passed through its Byzantine behaviour if it has one.
    func sendFromReplica(_ node: ReplicaNode, _ message: Message, to destinations: [ReplicaID], delay: UInt64 = 0) {
        guard let behaviour = node.byzantine else {
            for destination in destinations { send(message, from: .replica(node.id), to: .replica(destination), extraDelay: delay) }
            return
        }
        if node.history.count < 64 { node.history.append(message) } else { node.history[Int(random.next() % 64)] = message }
        let isPrimary = node.core?.isPrimary ?? false
        var extraDelay: UInt64 = delay
        var outgoing = message
        switch behaviour {
        case .silent:
            return
        case .silentPrimary:
            if isPrimary { return }
        case .slowPrimary:
            if isPrimary { extraDelay += UInt64(topology.parameters.viewTimeoutMilliseconds) * 1000 / 3 }
        case .equivocatingPrimary:
            if case let .prePrepare(prePrepare) = message, isPrimary {
                equivocate(node, prePrepare, to: destinations)
                return
            }
        case .forgedSignatures:
            outgoing = Byzantine.forge(message, random: &random)
        case .wrongBinding:
            outgoing = Byzantine.misbind(message, suite: node.suite)
        case .votesForEverything:
            switch message {
            case .prepare, .commit: return  // it votes through voteForEverything only
            default: break
            }
        case .nonForwarding:
            // A receiver that keeps remote blocks to itself.
            if case let .certifiedBlock(block) = message, block.block.cluster != node.id.cluster { return }
        case .selectiveSharing:
            // A primary that shares its cluster's blocks with the first other cluster only.
            if case let .certifiedBlock(block) = message, block.block.cluster == node.id.cluster, isPrimary {
                let favoured = node.id.cluster.index == 0 ? 1 : 0
                for destination in destinations where destination.cluster == node.id.cluster || Int(destination.cluster.index) == favoured {
                    send(message, from: .replica(node.id), to: .replica(destination))
                }
                return
            }
        case .forgedClientTransaction:
            if case let .prePrepare(prePrepare) = message, isPrimary {
                outgoing = .prePrepare(forgeClientTransaction(node, prePrepare))
            }
        case .replay, .censoring, .forgedCertificates, .withholdsVotes:
            break
        }
        for destination in destinations { send(outgoing, from: .replica(node.id), to: .replica(destination), extraDelay: extraDelay) }
    }

    /// The proposal with one more client transaction, whose signature is forged (it replaces the
    /// last one when the block is full), signed by the primary as a proposal of its own.
    func forgeClientTransaction(_ node: ReplicaNode, _ prePrepare: PrePrepare) -> PrePrepare {
        var block = prePrepare.block
        let victim = ClientID(UInt32(random.next() % UInt64(max(1, node.suite.clientCount))))
        var forged = node.suite.signTransaction(client: victim, requestID: 1 << 40 | random.next() % (1 << 20),
                                                operation: .put(key: Array("forged".utf8), value: Array("by the primary".utf8)))
        forged.signature = Byzantine.randomSignature(&random)
        if block.transactions.count >= node.configuration.batchSize { block.transactions.removeLast() }
        block.transactions.append(forged)
        let digest = node.suite.digest(of: block)
        let statement = VoteStatement(cluster: block.cluster, view: prePrepare.view, round: block.round, digest: digest)
        return PrePrepare(view: prePrepare.view, digest: digest, block: block, signature: node.suite.sign(.prePrepare(statement)))
    }

    /// Sends the real proposal to half the backups and a conflicting one to the others, then
    /// commits to both.
    func equivocate(_ node: ReplicaNode, _ prePrepare: PrePrepare, to destinations: [ReplicaID]) {
        var other = prePrepare.block
        // The conflicting block drops the last transaction (a no-op block has none to drop, so
        // for it both "proposals" are the same block).
        if !other.transactions.isEmpty { other.transactions.removeLast() }
        let digest = node.suite.digest(of: other)
        let statement = VoteStatement(cluster: other.cluster, view: prePrepare.view, round: other.round, digest: digest)
        let conflicting = PrePrepare(view: prePrepare.view, digest: digest, block: other, signature: node.suite.sign(.prePrepare(statement)))
        // The adversary coordinates its replicas: accomplices get both proposals, and every
        // replica gets the primary's Commit for the proposal it was shown.
        for (offset, destination) in destinations.enumerated() {
            let shown: [PrePrepare] = replicas[destination]?.byzantine != nil ? [prePrepare, conflicting]
                : [offset % 2 == 0 ? prePrepare : conflicting]
            for proposal in shown {
                equivocations[proposal.statement, default: []].insert(destination)
                send(.prePrepare(proposal), from: .replica(node.id), to: .replica(destination))
                let commit = Commit(statement: proposal.statement, replicaIndex: node.id.index,
                                    signature: node.suite.sign(.commit(proposal.statement)))
                send(.commit(commit), from: .replica(node.id), to: .replica(destination))
            }
        }
    }

    /// Sends every other cluster a certified block for the round its ledger waits on, with a
    /// certificate that is wrong in one of three ways.
    func forgeCertificate(_ node: ReplicaNode) {
        guard let core = node.core else { return }
        // A round its cluster has not delivered yet, so receivers cannot already hold the real block.
        let round = core.lastDelivered + 1
        let block = Block(cluster: node.id.cluster, round: round, transactions: [])
        let digest = node.suite.digest(of: block)
        let statement = VoteStatement(cluster: node.id.cluster, view: core.view, round: round, digest: digest)
        let own = CertificateSignature(replicaIndex: node.id.index, signature: node.suite.sign(.commit(statement)))
        var signatures: [CertificateSignature]
        var claimed = statement
        switch random.next() % 3 {
        case 0:
            signatures = [own]  // too few signers
        case 1:
            // Signers of another cluster: genuine signatures, but by replicas the certificate does not name.
            let other = ClusterID(shard: node.id.cluster.shard, index: node.id.cluster.index == 0 ? 1 : 0)
            signatures = (0..<UInt16(node.configuration.n)).map {
                CertificateSignature(replicaIndex: $0, signature: SimulatedCrypto(owner: ReplicaID(cluster: other, index: $0), clientCount: 0)
                    .sign(.commit(VoteStatement(cluster: other, view: core.view, round: round, digest: digest))))
            }
        default:
            // Bound to another round: its own genuine vote for round + 1, claimed for this round.
            var shifted = statement
            shifted.round += 1
            signatures = (0..<UInt16(node.configuration.n)).map {
                CertificateSignature(replicaIndex: $0, signature: node.suite.sign(.commit(shifted)))
            }
            claimed = statement
        }
        let forged = CertifiedBlock(block: block, certificate: CommitCertificate(statement: claimed, signatures: signatures))
        for (id, other) in replicas where other.id.cluster.shard == node.id.cluster.shard && other.id.cluster != node.id.cluster {
            send(.certifiedBlock(forged), from: .replica(node.id), to: .replica(id))
        }
    }

    /// A replica that prepares and commits everything it sees; when the adversary knows which
    /// replicas were shown this proposal, its votes go to them (so each side of an equivocation
    /// sees a consistent accomplice).
    func voteForEverything(_ node: ReplicaNode, _ prePrepare: PrePrepare) {
        let statement = prePrepare.statement
        let prepare = Prepare(statement: statement, replicaIndex: node.id.index, signature: node.suite.sign(.prepare(statement)))
        let commit = Commit(statement: statement, replicaIndex: node.id.index, signature: node.suite.sign(.commit(statement)))
        let targets = equivocations[statement].map { Array($0).filter { $0 != node.id }.sorted() } ?? peers(of: node)
        for peer in targets {
            send(.prepare(prepare), from: .replica(node.id), to: .replica(peer))
            send(.commit(commit), from: .replica(node.id), to: .replica(peer))
        }
    }

    // MARK: Network

    func region(of endpoint: Endpoint) -> String {
        switch endpoint {
        case let .replica(id): return replicas[id]?.region ?? ""
        case let .client(id): return Int(id.rawValue) < clients.count ? clients[Int(id.rawValue)].region : ""
        }
    }

    func regionIndex(of endpoint: Endpoint) -> Int {
        switch endpoint {
        case let .replica(id): return replicas[id]?.regionIndex ?? 0
        case let .client(id): return Int(id.rawValue) < clients.count ? clients[Int(id.rawValue)].regionIndex : 0
        }
    }

    func isBlocked(from: Endpoint, to: Endpoint) -> Bool {
        if partitions.isEmpty { return false }
        for partition in partitions {
            let fromInside = contains(partition, from), toInside = contains(partition, to)
            if fromInside != toInside && (!partition.oneWay || fromInside) { return true }
        }
        return false
    }

    func contains(_ partition: Partition, _ endpoint: Endpoint) -> Bool {
        if partition.regions.contains(region(of: endpoint)) { return true }
        if case let .replica(id) = endpoint { return partition.replicas.contains(id) }
        return false
    }

    func probability(_ p: Double) -> Bool {
        p > 0 && Double(random.next() >> 11) / Double(1 << 53) < p
    }

    func slowness(of endpoint: Endpoint) -> UInt64 {
        if case let .replica(id) = endpoint { return slowLinks[id] ?? 0 }
        return 0
    }

    func send(_ message: Message, from: Endpoint, to: Endpoint, extraDelay: UInt64 = 0) {
        messagesSent += 1
        let kind = Int(MessageKind(of: message).rawValue)
        if kind < sentByKind.count { sentByKind[kind] += 1 }
        guard !isBlocked(from: from, to: to), !probability(faults.loss) else {
            messagesDropped += 1
            trace?("\(now) DROP \(from) -> \(to): \(Self.summary(message))")
            return
        }
        trace?("\(now) SEND \(from) -> \(to): \(Self.summary(message))")
        let size = EncodedSize.frame(message)
        bytesSent += size
        let link = links[regionIndex(of: from)][regionIndex(of: to)]
        let latency = UInt64(link.rttMilliseconds * 500)
        let transmit = UInt64(Double(size * 8) / link.megabitsPerSecond)
        let pair = Pair(from: from, to: to)
        let start = max(now, linkBusyUntil[pair] ?? 0)
        linkBusyUntil[pair] = start + transmit
        let jitter = UInt64(Double(latency) * faults.jitter * Double(random.next() % 1000) / 1000)
        let slow = slowLinks.isEmpty ? 0 : slowness(of: from) + slowness(of: to)
        let arrival = start + transmit + latency + jitter + extraDelay + slow
        deliver(message, from: from, to: to, at: arrival)
        if probability(faults.duplication) {
            deliver(message, from: from, to: to, at: arrival + latency / 2 + random.next() % (latency + 1))
        }
    }

    static func summary(_ message: Message) -> String {
        switch message {
        case let .clientTransaction(t): return "request \(t.client) #\(t.requestID)"
        case let .reply(r): return "reply \(r.client) #\(r.requestID) height \(r.position.height)"
        case let .busy(b): return "busy \(b.client) #\(b.requestID) retry after \(b.retryAfterTicks)"
        case let .prePrepare(p):
            let statements = p.block.statements.isEmpty ? "" : " statements \(p.block.statements.map(\.statement.description))"
            return "preprepare v\(p.view) r\(p.block.round) \(p.block.transactions.map { "\($0.client)#\($0.requestID)" })" + statements
        case let .viewChange(v): return "viewChange to \(v.newView) from \(v.replicaIndex) checkpoint \(v.checkpoint.statement.round) prepared \(v.prepared.map(\.round))"
        case let .newView(v): return "newView \(v.view) with \(v.viewChanges.count) view changes"
        case let .blockRequest(r): return "blockRequest \(r.cluster) \(r.fromRound)...\(r.toRound)"
        case let .certifiedBlock(b): return "certifiedBlock \(b.block.cluster) r\(b.block.round) v\(b.certificate.statement.view)"
        case let .shardStatement(proof): return "shardStatement \(proof.statement) signers \(proof.signatures.count)"
        case let .remoteViewChange(r): return "remoteViewChange \(r.phase) target \(r.target) round \(r.round) attempt \(r.attempt)"
        default: return String(describing: MessageKind(of: message))
        }
    }

    func deliver(_ message: Message, from: Endpoint, to: Endpoint, at time: UInt64) {
        switch to {
        case let .replica(id): schedule(at: time, .toReplica(id, message, from: from))
        case let .client(id):
            if case let .reply(reply) = message { schedule(at: time, .toClient(Int(id.rawValue), reply)) }
            if case let .busy(busy) = message { schedule(at: time, .busyToClient(Int(id.rawValue), busy)) }
        }
    }

    // MARK: Faults

    /// Frames a transport keeps for one peer that is down, the latest (TransportConfiguration's
    /// `peerDownQueueFramesMax`).
    static let heldWhileDownMax = 1_024

    /// A replica that crashes loses the frames it queued for peers that were down.
    func forgetQueues(of sender: ReplicaID) {
        for node in replicas.values { node.heldWhileDown[sender] = nil }
    }

    func apply(_ action: SimulationAction) {
        switch action {
        case let .crash(id):
            forgetQueues(of: id)
            replicas[id]?.core = nil
            // What waited in its inboxes is lost with the process.
            replicas[id]?.inbox.removeAll()
        case let .wipe(id):
            guard let node = replicas[id] else { return }
            forgetQueues(of: id)
            node.core = nil
            node.inbox.removeAll()
            node.durable = DurableState()
            node.blockStore = []
            node.blockStoreFirst = 1
            node.snapshots = []
            // What it executed before is gone with its disk: it may execute it again.
            checker.forget(id)
        case let .snapshotFault(id, fault):
            replicas[id]?.snapshotFault = fault
        case let .restart(id):
            guard let node = replicas[id], node.core == nil else { return }
            // As the daemon does: the latest snapshot, the stored blocks after it, the log.
            let from = Int((node.snapshot?.height ?? 0) + 1 - node.blockStoreFirst)
            let recovered = PBFTReplica.recover(configuration: node.configuration,
                                                suite: node.coreSuite(metered: settings.costModel != nil),
                                                durable: node.durable, snapshot: node.snapshot,
                                                storedBlocks: Array(node.blockStore[max(0, from)...]))
            node.core = recovered.replica
            for block in recovered.executed { store(block, at: node) }
            if node.snapshot != nil { restartsFromSnapshot += 1 }
            // Its peers' queued frames arrive first, each peer's in order.
            for (sender, messages) in node.heldWhileDown.sorted(by: { $0.key < $1.key }) {
                for message in messages { schedule(at: now, .toReplica(id, message, from: .replica(sender))) }
            }
            node.heldWhileDown = [:]
        case let .partition(partition):
            partitions.append(partition)
        case .healPartitions:
            partitions = []
        case let .network(newFaults):
            faults = newFaults
        case let .slowLink(id, milliseconds):
            slowLinks[id] = milliseconds > 0 ? UInt64(milliseconds) * 1000 : nil
        case let .byzantine(id, behaviour):
            replicas[id]?.byzantine = behaviour
        }
    }

    func finalChecks() {
        checker.checkDurability(time: now)
        if settings.crossShardFraction != nil { checkBank() }
        guard let targets = livenessTarget else { return }
        for (id, node) in replicas where node.byzantine == nil {
            let target = targets[id.cluster.shard] ?? 0
            let height = node.core?.ledger.height ?? 0
            if node.core != nil && height < target {
                checker.record(.liveness, now, "\(id) is at height \(height), behind the height \(target) reached \(Double(settings.livenessBound) / 1e6) s before the end")
            }
        }
        for (index, requestID) in livenessOutstanding where clients[index].core.nextRequestID - 1 == requestID && clients[index].core.isBusy {
            checker.record(.liveness, now, "\(clients[index].core.client) request \(requestID) outstanding since before \(Double(settings.duration - settings.livenessBound) / 1e6) s never completed")
        }
        if !clients.isEmpty && committedAfterHeal == 0 {
            checker.record(.liveness, now, "no request completed after the heal time")
        }
    }
}

extension Simulation {
    /// Bank workload, at the end of a settled run: on each shard, the correct replica furthest
    /// along holds the shard's balances; over all shards they add up to the money minted, no
    /// correct replica that caught up holds a lock or a transaction in progress, and every
    /// decided transaction was applied on all of its shards or on none.
    func checkBank() {
        var total: Int64 = 0
        for shard in topology.shards {
            let running = replicas.values.filter { $0.id.cluster.shard == shard.id && $0.byzantine == nil && $0.core != nil }
            guard let top = running.max(by: { ($0.core!.ledger.height, $1.id) < ($1.core!.ledger.height, $0.id) }) else { continue }
            let state = top.core!.ledger.state
            for key in state.values.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) { total &+= state.number(key) ?? 0 }
            let height = top.core!.ledger.height
            for node in running.sorted(by: { $0.id < $1.id }) where node.core!.ledger.height == height {
                if let crossShard = node.core!.ledger.crossShard, !crossShard.isIdle {
                    checker.record(.locks, now, "\(node.id) still holds \(crossShard.locks.count) locks and \(crossShard.transactionsInProgress) cross-shard transactions in progress after the run settled")
                }
            }
        }
        if total != checker.minted {
            checker.record(.conservation, now, "the shards' balances add up to \(total), but \(checker.minted) was minted")
        }
        checker.checkAtomicity(time: now)
    }
}
