// The coordinator layer (DESIGN 2.4): a transaction whose keys live in several shards commits on
// all of them or on none, by a two-phase commit in which the coordinator and every participant is
// a whole shard deciding by its own consensus (ByShard's orchestrate-execute model).
//
// - Statements. A step between shards is a `ShardStatement` (Prepare T, Vote T, Decision T) that
//   the replicas of the sending shard produce while executing their ledger, so every correct
//   replica of that shard produces the same one. Each replica signs it (domain tag
//   `geofabric/shard-statement/v1`, bound to source and target shard) and sends its signature to
//   every replica of the target shard's cluster nearest to its own. A receiver collects f_s + 1
//   matching signatures of one cluster of the source shard (a weak quorum there: one correct
//   replica vouches, and a correct replica only signs what its ledger executed) into a proof.
//   DESIGN's pairwise form (replica i to replica i) would leave a receiver with one signature and
//   need a forward inside the receiving cluster to reach f_s + 1; all-to-all between one sending
//   cluster and one receiving cluster costs n_s x n_r small messages per statement and needs
//   neither the forward nor a timer: every correct receiver assembles the proof itself.
// - Ordering. A receiver with a proof queues it for its primary (a backup sends it there) and
//   watches it like a client request: a primary that sits on it is replaced by a view change.
//   Blocks carry proven statements after their client transactions; backups check every proof
//   before they prepare, other clusters trust the block certificate.
// - Execution (ShardLedger, deterministic, in ledger order):
//   coordinator, on ordering T (the shard of T's first key): a local vote on its own keys; abort
//     answers the client at once, commit locks the keys and produces Prepare(T) for every other
//     shard of T;
//   participant, on ordering Prepare(T): a key locked -> Vote abort(conflict); else its checks
//     (balance, numbers) -> lock the keys and Vote commit, or Vote abort(reason);
//   coordinator, on ordering a Vote: an abort, or the last commit, decides; the decision is
//     applied locally, locks released, produced as Decision(T) for every participant, and the
//     client's home cluster replies (committed, or aborted with the reason);
//   participant, on ordering Decision(T): applies its part (commit) or not, releases its locks.
//   Single-shard transactions keep their fast path; one that touches a locked key is refused.
// - Idempotence: everything is keyed by (coordinator shard, client, request id), never by what a
//   client sends again: the coordinator ledger orders one version of a request (the existing
//   dedupe), and participants act on the coordinator's ordered statement. A statement applies
//   at most once; a stale one (already applied, or for a transaction decided) changes nothing.
// - Nothing waits forever: a coordinator that misses a vote for `voteTimeoutRounds` rounds of its
//   own ledger (deterministic on every replica, unlike ticks) decides abort(timeout), and its
//   primaries propose heartbeat blocks while a transaction waits, so those rounds pass even when
//   idle. Replicas re-send, every `retransmitTicks`, the statements their ledger still waits on
//   (Prepares without a vote, Votes without a decision); a coordinator replica that receives a
//   Vote for a transaction it decided answers with the Decision, which is how a participant
//   holding locks "asks the coordinator".
// - State: locks and transactions in progress are part of the ledger's state, rebuilt by
//   re-executing the ledger on restart like the key-value state; what replicas send and watch is
//   soft state, derived again from the ledger by the retransmission timer.

/// A cross-shard transaction: its coordinator shard and the client's request.
public struct CrossShardID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var coordinator: ShardID
    public var client: ClientID
    public var requestID: UInt64
    public init(coordinator: ShardID, client: ClientID, requestID: UInt64) {
        self.coordinator = coordinator
        self.client = client
        self.requestID = requestID
    }
    public static func < (lhs: CrossShardID, rhs: CrossShardID) -> Bool {
        (lhs.coordinator, lhs.client, lhs.requestID) < (rhs.coordinator, rhs.client, rhs.requestID)
    }
    public var description: String { "xs(\(coordinator.rawValue):\(client.rawValue)#\(requestID))" }
}

/// Why a cross-shard transaction aborted.
public enum CrossShardAbort: UInt8, Hashable, Sendable, CaseIterable {
    /// A key was locked by another cross-shard transaction in progress.
    case conflict = 1
    case insufficientBalance = 2
    /// Not a number, an overflow, the same account twice, or an operation that cannot span shards.
    case badInput = 3
    /// The coordinator missed a vote for `voteTimeoutRounds` rounds.
    case timeout = 4
}

/// A shard's vote, or the coordinator's decision.
public enum CrossShardVote: Hashable, Sendable {
    case commit
    case abort(CrossShardAbort)
    public var isCommit: Bool { self == .commit }
}

/// One step between shards, as the sending shard's ledger produced it.
public struct ShardStatement: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// Coordinator to participant: the transaction, as the coordinator ordered it.
        case prepare(ClientTransaction)
        /// Participant to coordinator.
        case vote(CrossShardID, CrossShardVote)
        /// Coordinator to participant.
        case decision(CrossShardID, CrossShardVote)
    }
    public var source: ShardID
    public var target: ShardID
    public var kind: Kind
    public init(source: ShardID, target: ShardID, kind: Kind) {
        self.source = source
        self.target = target
        self.kind = kind
    }
    public var id: CrossShardID {
        switch kind {
        case let .prepare(transaction):
            return CrossShardID(coordinator: source, client: transaction.client, requestID: transaction.requestID)
        case let .vote(id, _), let .decision(id, _):
            return id
        }
    }
}

extension ShardStatement: CustomStringConvertible {
    /// "vote xs(1:2#20) commit shard#0->shard#1": for traces and debug summaries.
    public var description: String {
        switch kind {
        case .prepare: return "prepare \(id) \(source)->\(target)"
        case let .vote(id, vote): return "vote \(id) \(vote) \(source)->\(target)"
        case let .decision(id, vote): return "decision \(id) \(vote) \(source)->\(target)"
        }
    }
}

/// A statement with signatures of replicas of one cluster of its source shard: one signature as
/// a replica sends it, f + 1 (that cluster's weak quorum) as a proof. Signers strictly increasing.
public struct ShardStatementProof: Hashable, Sendable {
    public var statement: ShardStatement
    public var cluster: ClusterID
    public var signatures: [CertificateSignature]
    public init(statement: ShardStatement, cluster: ClusterID, signatures: [CertificateSignature]) {
        self.statement = statement
        self.cluster = cluster
        self.signatures = signatures
    }
}

/// A decided cross-shard transaction whose home cluster owes the client an answer.
public struct CrossShardCompletion: Hashable, Sendable {
    public var transaction: ClientTransaction
    /// The coordinator cluster that ordered the transaction (and replies).
    public var homeCluster: UInt16
    public var result: ExecutionResult
    /// Where the transaction was ordered in the coordinator's ledger.
    public var position: LedgerPosition
}

/// What executing a block did to a cross-shard transaction, for checkers.
public enum CrossShardEvent: Hashable, Sendable {
    /// The coordinator decided; `shards` are all of the transaction's shards, coordinator first.
    case decided(CrossShardID, CrossShardVote, shards: [ShardID])
    /// `shard` applied its part of a committed transaction.
    case applied(CrossShardID, shard: ShardID)
    /// `shard` released its locks without applying (abort).
    case discarded(CrossShardID, shard: ShardID)
}

/// What a replica needs to know about the other shards.
public struct CrossShardLayout: Hashable, Sendable {
    public var placement: KeyPlacementTable
    /// The quorum of every cluster of every shard, by shard then cluster index.
    public var quorums: [[Quorum]]
    /// For each shard, the index of its cluster this replica's cluster sends statements to (the
    /// nearest by round-trip time; the same cluster of the same region when there is one).
    public var nearestCluster: [UInt16]
    /// Rounds of the coordinator's ledger a vote may take before the coordinator aborts. When the
    /// coordinator is otherwise idle its primary proposes a heartbeat block every `heartbeatTicks`,
    /// so this is about 3 s (60 x 50 ms). Under load rounds come faster and it is shorter in time:
    /// at 100 rounds a second (one block per 10 ms tick on one machine) 0.6 s, still several times
    /// what a healthy participant's answer takes (its consensus on the Prepare, the Vote's trip,
    /// the coordinator's consensus on it); a participant in a view change may then be aborted,
    /// which is safe. Short enough that locks on an unreachable participant go within seconds.
    public var voteTimeoutRounds: UInt64 = 60
    /// Ticks between re-sends of the statements a ledger still waits on: a quarter of the remote
    /// timeout, the same patience GeoBFT gives a block that is late between regions.
    public var retransmitTicks: UInt64 = 50
    /// Ticks between heartbeat blocks of a primary while its shard coordinates a transaction (so
    /// the rounds that time a vote pass when nothing else is ordered): 50 ms. One per tick (the
    /// first version) cost a whole block of PBFT signatures every 10 ms on every replica of the
    /// shard for as long as any vote was outstanding; on a loaded 2-core machine that starved the
    /// replicas into view changes (`bench --cross-shard` on real processes found it).
    public var heartbeatTicks: UInt64 = 5
    /// Shards that apply their part even when the decision is abort: for one purpose only,
    /// showing that the simulator's balance and atomicity checkers notice. Never set in a deployment.
    public var brokenCommitRuleForCheckerTests = false

    public init(placement: KeyPlacementTable, quorums: [[Quorum]], nearestCluster: [UInt16]) {
        self.placement = placement
        self.quorums = quorums
        self.nearestCluster = nearestCluster
    }

    /// The layout of `cluster` in `topology`; nil with a single shard (no cross-shard layer).
    public init?(topology: Topology, cluster: ClusterID) {
        guard topology.shards.count > 1, let own = topology.cluster(cluster) else { return nil }
        let nearest = topology.shards.map { shard -> UInt16 in
            var best: (index: UInt16, rtt: Double)?
            for candidate in shard.clusters {
                let rtt = topology.link(from: own.region, to: candidate.region)?.rttMilliseconds ?? .infinity
                if best == nil || rtt < best!.rtt { best = (candidate.id.index, rtt) }
            }
            return best?.index ?? 0
        }
        self.init(placement: topology.placementTable, quorums: topology.shards.map { $0.clusters.map(\.quorum) },
                  nearestCluster: nearest)
        let tick = UInt64(max(1, topology.parameters.tickMilliseconds))
        retransmitTicks = max(2, UInt64(topology.parameters.remoteTimeoutMilliseconds) / tick / 4)
        heartbeatTicks = max(1, 50 / tick)
    }

    public func quorum(of cluster: ClusterID) -> Quorum? {
        let shard = Int(cluster.shard.rawValue), index = Int(cluster.index)
        guard shard < quorums.count, index < quorums[shard].count else { return nil }
        return quorums[shard][index]
    }

    /// The shards of `operation`'s keys, in key order, each once; the first is the coordinator.
    public func shards(of operation: Operation) -> [ShardID] {
        var result: [ShardID] = []
        for key in operation.keys {
            let shard = placement.shardID(forKey: key)
            if !result.contains(shard) { result.append(shard) }
        }
        return result
    }
}

/// The cross-shard part of a shard's replicated state.
public struct CrossShardState: Hashable, Sendable {
    // The nested types and fields are public for one reader: the snapshot codec (GeoWire's
    // SnapshotCodec), which writes this state at checkpoints and reads it back on restart.
    public struct Coordination: Hashable, Sendable {
        public var transaction: ClientTransaction
        public var homeCluster: UInt16
        public var position: LedgerPosition
        public var participants: [ShardID]
        public var votes: [ShardID: CrossShardVote]
        public var startedRound: UInt64
        public init(transaction: ClientTransaction, homeCluster: UInt16, position: LedgerPosition, participants: [ShardID],
                    votes: [ShardID: CrossShardVote], startedRound: UInt64) {
            self.transaction = transaction
            self.homeCluster = homeCluster
            self.position = position
            self.participants = participants
            self.votes = votes
            self.startedRound = startedRound
        }
    }

    public struct Participation: Hashable, Sendable {
        public var transaction: ClientTransaction
        public var vote: CrossShardVote
        public init(transaction: ClientTransaction, vote: CrossShardVote) {
            self.transaction = transaction
            self.vote = vote
        }
    }

    public struct WatermarkKey: Hashable, Sendable {
        public var coordinator: ShardID
        public var client: ClientID
        public init(coordinator: ShardID, client: ClientID) {
            self.coordinator = coordinator
            self.client = client
        }
    }

    /// Decisions remembered to answer a participant that asks again: a participant that missed
    /// this many later decisions of its coordinator is beyond help anyway (it also lost the
    /// shards' patience); the bound keeps a client's traffic from growing the state for ever.
    static let decisionsRemembered = 100_000

    public let layout: CrossShardLayout
    /// Keys locked by a transaction in progress.
    public internal(set) var locks: [[UInt8]: CrossShardID] = [:]
    /// As coordinator: transactions waiting for votes.
    public internal(set) var coordinating: [CrossShardID: Coordination] = [:]
    /// As participant: transactions voted on, waiting for the decision.
    public internal(set) var participating: [CrossShardID: Participation] = [:]
    /// As participant: per coordinator and client, the highest request decided here (a Prepare at
    /// or below it arrives late and is ignored; a coordinator orders a client's requests in order).
    public internal(set) var watermarks: [WatermarkKey: UInt64] = [:]
    /// As coordinator: recent decisions, oldest first in `decisionOrder`.
    public internal(set) var decisions: [CrossShardID: CrossShardVote] = [:]
    public internal(set) var decisionOrder: [CrossShardID] = []

    init(layout: CrossShardLayout) { self.layout = layout }

    /// The state as a snapshot held it (the layout comes from the replica's configuration).
    public init(layout: CrossShardLayout, locks: [[UInt8]: CrossShardID], coordinating: [CrossShardID: Coordination],
                participating: [CrossShardID: Participation], watermarks: [WatermarkKey: UInt64],
                decisions: [CrossShardID: CrossShardVote], decisionOrder: [CrossShardID]) {
        self.layout = layout
        self.locks = locks
        self.coordinating = coordinating
        self.participating = participating
        self.watermarks = watermarks
        self.decisions = decisions
        self.decisionOrder = decisionOrder
    }

    /// No transaction in progress and no lock held (what a settled run must show).
    public var isIdle: Bool { locks.isEmpty && coordinating.isEmpty && participating.isEmpty }
    public var transactionsInProgress: Int { coordinating.count + participating.count }
    public var hasPendingCoordination: Bool { !coordinating.isEmpty }

    /// The transactions in progress, described for an operator (at most `limit`, oldest first by
    /// id): "coordinator of xs(0:3#7) since round 41, waiting for shard#1" or "participant in
    /// xs(1:2#5), voted commit, waiting for the decision". What `/status` shows when a run does
    /// not settle.
    public func unfinished(limit: Int) -> [String] {
        var lines: [String] = []
        for (id, coordination) in coordinating.sorted(by: { $0.key < $1.key }).prefix(limit) {
            let missing = coordination.participants.filter { coordination.votes[$0] == nil }
            lines.append("coordinator of \(id) since round \(coordination.startedRound), waiting for "
                         + missing.map(\.description).joined(separator: ", "))
        }
        for (id, participation) in participating.sorted(by: { $0.key < $1.key }).prefix(max(0, limit - lines.count)) {
            lines.append("participant in \(id), voted \(participation.vote), waiting for the decision")
        }
        return lines
    }

    func decision(of id: CrossShardID) -> CrossShardVote? { decisions[id] }

    func isCoordinating(client: ClientID, requestID: UInt64, shard: ShardID) -> Bool {
        coordinating[CrossShardID(coordinator: shard, client: client, requestID: requestID)] != nil
    }

    mutating func remember(_ id: CrossShardID, _ decision: CrossShardVote) {
        decisions[id] = decision
        decisionOrder.append(id)
        if decisionOrder.count > Self.decisionsRemembered {
            // Drop the oldest half at once: amortised O(1) per decision.
            let dropped = decisionOrder.count / 2
            for old in decisionOrder.prefix(dropped) { decisions[old] = nil }
            decisionOrder.removeFirst(dropped)
        }
    }
}

// MARK: - Execution (in ledger order, on every replica of a shard)

extension ShardLedger {
    /// Executes a client transaction with the cross-shard layer on: the local fast path, a
    /// refusal (wrong shard, locked key), or the coordinator's first step. Nil: the answer comes
    /// with the decision.
    mutating func executeSharded(_ transaction: ClientTransaction, position: LedgerPosition,
                                 into executed: inout ExecutedBlock) -> ExecutionResult? {
        guard let layout = crossShard?.layout else { return state.execute(transaction.operation) }
        let shards = layout.shards(of: transaction.operation)
        guard shards.first == shard else { return .refused(.wrongShard) }
        if shards.count == 1 {
            if case .get = transaction.operation { return state.execute(transaction.operation) }
            if transaction.operation.keys.contains(where: { crossShard!.locks[$0] != nil }) { return .refused(.locked) }
            return state.execute(transaction.operation)
        }
        let id = CrossShardID(coordinator: shard, client: transaction.client, requestID: transaction.requestID)
        let vote = localVote(transaction.operation)
        guard vote == .commit else {
            // Nobody else heard of it: abort here and now.
            executed.events.append(.decided(id, vote, shards: [shard]))
            if case let .abort(reason) = vote { return .crossShardAborted(reason) }
            return nil
        }
        lock(transaction.operation, for: id)
        let participants = Array(shards.dropFirst())
        crossShard!.coordinating[id] = CrossShardState.Coordination(
            transaction: transaction, homeCluster: position.clusterIndex, position: position, participants: participants,
            votes: [:], startedRound: position.round)
        for participant in participants {
            executed.outgoing.append(ShardStatement(source: shard, target: participant, kind: .prepare(transaction)))
        }
        return nil
    }

    /// Executes a proven statement of another shard (checked before it was ordered).
    mutating func executeStatement(_ statement: ShardStatement, into executed: inout ExecutedBlock) {
        guard statement.target == shard, statement.source != shard, let layout = crossShard?.layout else { return }
        switch statement.kind {
        case let .prepare(transaction):
            let id = statement.id
            let shards = layout.shards(of: transaction.operation)
            // Only the coordinator the placement names may ask, and only a shard the transaction touches.
            guard shards.first == statement.source, shards.contains(shard) else { return }
            guard !isStale(statement) else { return }
            let vote = localVote(transaction.operation)
            if vote == .commit { lock(transaction.operation, for: id) }
            crossShard!.participating[id] = CrossShardState.Participation(transaction: transaction, vote: vote)
            executed.outgoing.append(ShardStatement(source: shard, target: statement.source, kind: .vote(id, vote)))
        case let .vote(id, vote):
            guard id.coordinator == shard, var coordination = crossShard!.coordinating[id],
                  coordination.participants.contains(statement.source), coordination.votes[statement.source] == nil else { return }
            coordination.votes[statement.source] = vote
            crossShard!.coordinating[id] = coordination
            if case .abort = vote {
                decide(id, vote, into: &executed)
            } else if coordination.votes.count == coordination.participants.count {
                decide(id, .commit, into: &executed)
            }
        case let .decision(id, decision):
            guard id.coordinator == statement.source else { return }
            let key = CrossShardState.WatermarkKey(coordinator: id.coordinator, client: id.client)
            crossShard!.watermarks[key] = max(crossShard!.watermarks[key] ?? 0, id.requestID)
            guard let participation = crossShard!.participating.removeValue(forKey: id) else { return }
            let apply = participation.vote == .commit && (decision == .commit || layout.brokenCommitRuleForCheckerTests)
            finish(id, participation.transaction.operation, apply: apply, into: &executed)
        }
    }

    /// Whether executing `statement` now would change nothing (applied already, or too late).
    public func isStale(_ statement: ShardStatement) -> Bool {
        guard let crossShard else { return true }
        let id = statement.id
        switch statement.kind {
        case .prepare:
            let key = CrossShardState.WatermarkKey(coordinator: id.coordinator, client: id.client)
            return crossShard.participating[id] != nil || id.requestID <= crossShard.watermarks[key] ?? 0
        case .vote:
            guard let coordination = crossShard.coordinating[id] else { return true }
            return coordination.votes[statement.source] != nil
        case .decision:
            let key = CrossShardState.WatermarkKey(coordinator: id.coordinator, client: id.client)
            return crossShard.participating[id] == nil && id.requestID <= crossShard.watermarks[key] ?? 0
        }
    }

    /// The statements this shard's ledger still waits on an answer to, for re-sending: Prepares
    /// of transactions without the participant's vote, Votes without the decision.
    public func outstandingStatements() -> [ShardStatement] {
        guard let crossShard else { return [] }
        var statements: [ShardStatement] = []
        for (_, coordination) in crossShard.coordinating.sorted(by: { $0.key < $1.key }) {
            for participant in coordination.participants where coordination.votes[participant] == nil {
                statements.append(ShardStatement(source: shard, target: participant, kind: .prepare(coordination.transaction)))
            }
        }
        for (id, participation) in crossShard.participating.sorted(by: { $0.key < $1.key }) {
            statements.append(ShardStatement(source: shard, target: id.coordinator, kind: .vote(id, participation.vote)))
        }
        return statements
    }

    /// The coordinator's decision on `id`, while it is remembered.
    public func decision(of id: CrossShardID) -> CrossShardVote? { crossShard?.decision(of: id) }

    /// Whether a client's request is a cross-shard transaction this shard still coordinates.
    public func isAwaitingDecision(client: ClientID, requestID: UInt64) -> Bool {
        crossShard?.isCoordinating(client: client, requestID: requestID, shard: shard) ?? false
    }

    /// Coordinator: every transaction that waited `voteTimeoutRounds` rounds for a vote aborts.
    mutating func expireCoordinations(into executed: inout ExecutedBlock) {
        guard let crossShard, !crossShard.coordinating.isEmpty else { return }
        let expired = crossShard.coordinating.filter { round >= $0.value.startedRound + crossShard.layout.voteTimeoutRounds }
        for id in expired.keys.sorted() { decide(id, .abort(.timeout), into: &executed) }
    }

    /// Coordinator: applies the decision here, tells every participant, answers the client.
    mutating func decide(_ id: CrossShardID, _ decision: CrossShardVote, into executed: inout ExecutedBlock) {
        guard let coordination = crossShard!.coordinating.removeValue(forKey: id) else { return }
        crossShard!.remember(id, decision)
        executed.events.append(.decided(id, decision, shards: [shard] + coordination.participants))
        let broken = crossShard!.layout.brokenCommitRuleForCheckerTests
        finish(id, coordination.transaction.operation, apply: decision == .commit || broken, into: &executed)
        for participant in coordination.participants {
            executed.outgoing.append(ShardStatement(source: shard, target: participant, kind: .decision(id, decision)))
        }
        let result: ExecutionResult
        if case let .abort(reason) = decision { result = .crossShardAborted(reason) } else { result = .crossShardCommitted }
        let transaction = coordination.transaction
        if let last = lastExecution[transaction.client], last.requestID == transaction.requestID {
            lastExecution[transaction.client]?.result = result
        }
        executed.completions.append(CrossShardCompletion(transaction: transaction, homeCluster: coordination.homeCluster,
                                                         result: result, position: coordination.position))
    }

    /// This shard's vote on its keys of `operation`: locks first, then the operation's own checks.
    func localVote(_ operation: Operation) -> CrossShardVote {
        guard let crossShard else { return .abort(.badInput) }
        let mine = operation.keys.filter { crossShard.layout.placement.shardID(forKey: $0) == shard }
        if mine.contains(where: { crossShard.locks[$0] != nil }) { return .abort(.conflict) }
        guard case let .transfer(from, to, amount) = operation, from != to, amount <= UInt64(Int64.max) else {
            return .abort(.badInput)
        }
        if mine.contains(from) {
            guard let balance = state.number(from) else { return .abort(.badInput) }
            guard balance >= Int64(amount) else { return .abort(.insufficientBalance) }
        }
        if mine.contains(to) {
            guard let balance = state.number(to), !balance.addingReportingOverflow(Int64(amount)).overflow else {
                return .abort(.badInput)
            }
        }
        return .commit
    }

    mutating func lock(_ operation: Operation, for id: CrossShardID) {
        for key in operation.keys where crossShard!.layout.placement.shardID(forKey: key) == shard {
            crossShard!.locks[key] = id
        }
    }

    /// Applies this shard's part (commit) or not (abort), and releases this transaction's locks.
    mutating func finish(_ id: CrossShardID, _ operation: Operation, apply: Bool, into executed: inout ExecutedBlock) {
        let mine = operation.keys.filter { crossShard!.layout.placement.shardID(forKey: $0) == shard }
        for key in mine where crossShard!.locks[key] == id { crossShard!.locks[key] = nil }
        guard apply, case let .transfer(from, to, amount) = operation else {
            executed.events.append(.discarded(id, shard: shard))
            return
        }
        // The checks of the vote still hold: the keys were locked since.
        if mine.contains(from) { _ = state.execute(.add(key: from, delta: -Int64(amount))) }
        if mine.contains(to) { _ = state.execute(.add(key: to, delta: Int64(amount))) }
        executed.events.append(.applied(id, shard: shard))
    }
}

// MARK: - Checking proofs

public enum ShardStatementCheck {
    /// f + 1 valid signatures of distinct replicas of one cluster of the statement's source shard,
    /// for a statement addressed to `target`.
    public static func isValid(_ proof: ShardStatementProof, layout: CrossShardLayout, target: ShardID, suite: any CryptoSuite) -> Bool {
        let statement = proof.statement
        guard statement.target == target, statement.source != target, proof.cluster.shard == statement.source,
              let quorum = layout.quorum(of: proof.cluster) else { return false }
        return CertificateCheck.hasQuorum(proof.signatures.map { ($0.replicaIndex, $0.signature) }, of: .shardStatement(statement),
                                          cluster: proof.cluster, threshold: quorum.weak, quorum: quorum, suite: suite)
    }
}
