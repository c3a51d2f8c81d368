// Checkers observe; they never drive. They see what correct replicas execute and what clients
// are told, and record every violation of:
// - agreement: no two correct replicas hold different blocks (or heads) at one shard-ledger height;
// - validity: only correctly signed client transactions execute, each at most once per replica;
// - certificates: every executed block carries a valid commit certificate;
// - durability: every result a client accepted is in the ledger at the height it was told;
// - liveness (after faults heal): requests complete within a bound, and replicas catch up;
// - state: the snapshots correct replicas take at one height hold the same state (key-value
//   values, clients' last replies, cross-shard locks and transactions in progress);
// - with the bank workload (cross-shard transactions): atomicity (a transaction is applied on all
//   of its shards or on none, as its coordinator decided), conservation (the balances of all
//   shards add up to the money minted) and locks (none held once the run settled).

import GeoCore

public struct Violation: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable {
        case agreement, validity, certificate, durability, liveness, atomicity, conservation, locks, state
    }
    public var kind: Kind
    /// Simulated time in microseconds.
    public var time: UInt64
    public var detail: String
    public var description: String { "\(kind.rawValue) at \(Double(time) / 1_000_000) s: \(detail)" }
}

struct HeightRecord {
    var digest: Digest
    var head: Digest
    var keys: Set<RequestKey>
    var replica: ReplicaID
}

/// A certificate, identified cheaply: its statement and a fingerprint of its signers and signatures.
struct CertificateKey: Hashable {
    var statement: VoteStatement
    var print: UInt64
    init(_ certificate: CommitCertificate) {
        statement = certificate.statement
        var fingerprint = Fingerprint()
        for signer in certificate.signatures {
            fingerprint.add(UInt64(signer.replicaIndex))
            fingerprint.add(signer.signature.bytes)
        }
        print = fingerprint.value
    }
}

struct RequestKey: Hashable {
    var client: ClientID
    var requestID: UInt64
}

public final class InvariantChecker {
    let suite: SimulatedCrypto
    let quorumOf: (ClusterID) -> Quorum?
    public private(set) var violations: [Violation] = []
    var heights: [ShardID: [UInt64: HeightRecord]] = [:]
    var executedKeys: [ReplicaID: Set<RequestKey>] = [:]
    public private(set) var replicaHeights: [ReplicaID: UInt64] = [:]
    /// Certificates and blocks already checked (checking each once keeps long sweeps fast).
    var checkedCertificates = Set<CertificateKey>()
    var checkedBlocks = Set<Digest>()
    /// (client, request) -> (shard, height) a client was told.
    var acknowledged: [(RequestKey, ShardID, UInt64, UInt64)] = []
    static let violationLimit = 100
    /// Bank workload: money entered by executed adds (each ledger height counted once).
    public private(set) var minted: Int64 = 0
    /// Cross-shard transactions: the decision and its shards, and which shards applied or discarded.
    var decided: [CrossShardID: (vote: CrossShardVote, shards: [ShardID])] = [:]
    var applied: [CrossShardID: Set<ShardID>] = [:]
    var discarded: [CrossShardID: Set<ShardID>] = [:]

    init(suite: SimulatedCrypto, quorumOf: @escaping (ClusterID) -> Quorum?) {
        self.suite = suite
        self.quorumOf = quorumOf
    }

    /// Per shard and height: a fingerprint of the first snapshot state seen there, and whose.
    var snapshotStates: [ShardID: [UInt64: (print: Int, replica: ReplicaID)]] = [:]
    public private(set) var snapshotsObserved = 0

    /// A snapshot a correct replica took: its state must equal every other snapshot at its height.
    func observe(_ snapshot: LedgerSnapshot, at replica: ReplicaID, time: UInt64) {
        snapshotsObserved += 1
        let print = StateFingerprint(snapshot).hashValue
        if let first = snapshotStates[snapshot.shard]?[snapshot.height] {
            if first.print != print {
                record(.state, time, "\(replica)'s state at height \(snapshot.height) differs from \(first.replica)'s")
            }
        } else {
            snapshotStates[snapshot.shard, default: [:]][snapshot.height] = (print, replica)
        }
    }

    /// A replica lost its disk: what it executed before no longer counts against it.
    func forget(_ replica: ReplicaID) {
        executedKeys[replica] = nil
        replicaHeights[replica] = nil
    }

    func record(_ kind: Violation.Kind, _ time: UInt64, _ detail: String) {
        guard violations.count < Self.violationLimit else { return }
        violations.append(Violation(kind: kind, time: time, detail: detail))
    }

    /// A correct replica appended `block` to its shard ledger.
    func observe(_ block: ExecutedBlock, at replica: ReplicaID, time: UInt64) {
        let shard = block.certified.block.cluster.shard
        replicaHeights[replica] = block.height
        var keys = Set<RequestKey>()
        let checkSignatures = checkedBlocks.insert(block.digest).inserted
        for (transaction, result) in zip(block.certified.block.transactions, block.results) {
            if checkSignatures && !suite.isValid(transaction) {
                record(.validity, time, "\(replica) executed a transaction with an invalid client signature (\(transaction.client))")
            }
            let key = RequestKey(client: transaction.client, requestID: transaction.requestID)
            keys.insert(key)
            if result != nil, !executedKeys[replica, default: []].insert(key).inserted {
                record(.validity, time, "\(replica) executed request \(key.requestID) of \(key.client) twice")
            }
        }
        if let quorum = quorumOf(block.certified.block.cluster) {
            // The digest binding is checked every time; the signatures once per certificate.
            let certificate = block.certified.certificate
            let key = CertificateKey(certificate)
            let bound = suite.digest(of: block.certified.block) == certificate.statement.digest && block.digest == certificate.statement.digest
            let signed = checkedCertificates.contains(key) || CertificateCheck.isValid(block.certified, quorum: quorum, suite: suite)
            if bound && signed {
                checkedCertificates.insert(key)
            } else {
                record(.certificate, time, "\(replica) executed round \(block.certified.block.round) of \(block.certified.block.cluster) without a valid certificate")
            }
        } else {
            record(.certificate, time, "\(replica) executed a block of unknown \(block.certified.block.cluster)")
        }
        if let existing = heights[shard]?[block.height] {
            if existing.digest != block.digest || existing.head != block.head {
                record(.agreement, time, "height \(block.height) of \(shard): \(existing.replica) has block \(existing.digest) head \(existing.head), \(replica) has block \(block.digest) head \(block.head)")
            }
        } else {
            heights[shard, default: [:]][block.height] = HeightRecord(digest: block.digest, head: block.head, keys: keys, replica: replica)
            // What the block did to the shared state, once per height (agreement covers the rest).
            for (transaction, result) in zip(block.certified.block.transactions, block.results) {
                if case let .add(_, delta) = transaction.operation, case .number = result { minted &+= delta }
            }
            for event in block.events { observe(event, time: time) }
        }
    }

    func observe(_ event: CrossShardEvent, time: UInt64) {
        switch event {
        case let .decided(id, vote, shards):
            if let earlier = decided[id], earlier.vote != vote {
                record(.atomicity, time, "\(id) was decided twice: \(earlier.vote), then \(vote)")
            }
            decided[id] = (vote, shards)
            if vote != .commit, let shards = applied[id] {
                record(.atomicity, time, "\(id) was aborted (\(vote)) but applied on \(shards.sorted())")
            }
        case let .applied(id, shard):
            applied[id, default: []].insert(shard)
            if let decision = decided[id], decision.vote != .commit {
                record(.atomicity, time, "\(shard) applied \(id), which was aborted (\(decision.vote))")
            }
            if discarded[id]?.isEmpty == false { record(.atomicity, time, "\(shard) applied \(id), which \(discarded[id]!.sorted()) discarded") }
        case let .discarded(id, shard):
            discarded[id, default: []].insert(shard)
            if decided[id]?.vote == .commit { record(.atomicity, time, "\(shard) discarded \(id), which was committed") }
        }
    }

    /// At the end of a settled run: every committed transaction was applied on all of its shards.
    func checkAtomicity(time: UInt64) {
        for (id, decision) in decided.sorted(by: { $0.key < $1.key }) where decision.vote == .commit {
            let missing = decision.shards.filter { !(applied[id]?.contains($0) ?? false) }
            if !missing.isEmpty { record(.atomicity, time, "\(id) was committed but never applied on \(missing)") }
        }
    }

    /// Decided cross-shard transactions by outcome.
    func crossShardOutcomes() -> [String: Int] {
        var outcomes: [String: Int] = [:]
        for decision in decided.values where decision.shards.count > 1 || decision.vote != .commit {
            switch decision.vote {
            case .commit: outcomes["committed", default: 0] += 1
            case let .abort(reason): outcomes["aborted: \(reason)", default: 0] += 1
            }
        }
        return outcomes
    }

    /// A client accepted a result at `height` of `shard`.
    func acknowledge(client: ClientID, requestID: UInt64, shard: ShardID, height: UInt64, time: UInt64) {
        acknowledged.append((RequestKey(client: client, requestID: requestID), shard, height, time))
    }

    /// End-of-run checks of acknowledged results.
    func checkDurability(time: UInt64) {
        for (key, shard, height, acknowledgedAt) in acknowledged {
            guard let entry = heights[shard]?[height] else {
                record(.durability, time, "\(key.client) request \(key.requestID) was acknowledged at height \(height) (at \(acknowledgedAt) us), which no correct replica holds")
                continue
            }
            if !entry.keys.contains(key) {
                record(.durability, time, "\(key.client) request \(key.requestID) was acknowledged at height \(height), whose block does not contain it")
            }
        }
    }

    public var maxHeight: UInt64 { replicaHeights.values.max() ?? 0 }

    /// The highest height any correct replica of `shard` reached (shards' ledgers grow apart).
    public func maxHeight(of shard: ShardID) -> UInt64 {
        replicaHeights.filter { $0.key.cluster.shard == shard }.values.max() ?? 0
    }
}

/// What must be equal in two correct replicas' snapshots at one height: all of it but the
/// replica's own cluster chain head and the cross-shard layout (both differ by cluster).
struct StateFingerprint: Hashable {
    var head: Digest
    var round: UInt64
    var state: KeyValueStore
    var lastExecution: [ClientID: LastExecution]
    var locks: [[UInt8]: CrossShardID]?
    var coordinating: [CrossShardID: CrossShardState.Coordination]?
    var participating: [CrossShardID: CrossShardState.Participation]?
    var watermarks: [CrossShardState.WatermarkKey: UInt64]?
    var decisions: [CrossShardID: CrossShardVote]?
    var decisionOrder: [CrossShardID]?
    init(_ snapshot: LedgerSnapshot) {
        head = snapshot.head
        round = snapshot.round
        state = snapshot.state
        lastExecution = snapshot.lastExecution
        locks = snapshot.crossShard?.locks
        coordinating = snapshot.crossShard?.coordinating
        participating = snapshot.crossShard?.participating
        watermarks = snapshot.crossShard?.watermarks
        decisions = snapshot.crossShard?.decisions
        decisionOrder = snapshot.crossShard?.decisionOrder
    }
}
