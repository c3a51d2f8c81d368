// The replica's side of the coordinator layer (CrossShard.swift says how the protocol works):
// signing and sending the statements its ledger produced, assembling proofs of the statements
// other shards send, handing them to the primary for ordering and watching that it does, and
// re-sending what the ledger still waits on.

/// Signatures collected for one statement, by cluster of the source shard then replica index.
struct StatementSignatures: Sendable {
    var since: UInt64
    var signers: [ClusterID: [UInt16: Signature]] = [:]
}

extension PBFTReplica {
    /// Statements with signatures still being collected, at most: a Byzantine replica of another
    /// shard can sign any number of statements nobody else signs, and each would take an entry.
    /// Past the bound new statements wait for old entries to expire (retransmission brings them again).
    static let statementInboxMax = 4_096
    /// Ticks an incomplete statement is kept: a few retransmission periods.
    var statementInboxExpiryTicks: UInt64 { 4 * (configuration.crossShard?.retransmitTicks ?? 50) }
    /// Cached own signatures and answer times, at most (cleared when full: both are only savings).
    static let statementCacheMax = 16_384

    /// Signs a statement our ledger produced and sends it to every replica of the target shard's
    /// cluster nearest to ours; a re-send (`rotation` > 0) goes to the next cluster of that shard
    /// in turn, so a target region that is cut off does not hold the statement up.
    mutating func sendStatement(_ statement: ShardStatement, rotation: UInt64 = 0, effects: inout [Effect]) {
        guard let layout = configuration.crossShard, Int(statement.target.rawValue) < layout.quorums.count else { return }
        let signature: Signature
        if let cached = statementSignatures[statement] {
            signature = cached
        } else {
            signature = suite.sign(.shardStatement(statement))
            if statementSignatures.count >= Self.statementCacheMax { statementSignatures = [:] }
            statementSignatures[statement] = signature
        }
        let clusters = UInt64(layout.quorums[Int(statement.target.rawValue)].count)
        let nearest = UInt64(layout.nearestCluster[Int(statement.target.rawValue)])
        let target = ClusterID(shard: statement.target, index: UInt16((nearest + rotation) % max(1, clusters)))
        guard let quorum = layout.quorum(of: target) else { return }
        let message = Message.shardStatement(ShardStatementProof(
            statement: statement, cluster: cluster, signatures: [CertificateSignature(replicaIndex: configuration.index, signature: signature)]))
        for index in 0..<UInt16(quorum.n) {
            effects.append(.send(message, to: ReplicaID(cluster: target, index: index)))
        }
    }

    /// A statement from a replica of another shard (its own signature), or a proof a peer of our
    /// cluster forwards to us as primary.
    mutating func onShardStatement(_ proof: ShardStatementProof, from: ReplicaID, effects: inout [Effect]) {
        guard let layout = configuration.crossShard else { return reject(.wrongCluster) }
        let statement = proof.statement
        guard statement.target == cluster.shard, statement.source != cluster.shard, proof.cluster.shard == statement.source,
              let quorum = layout.quorum(of: proof.cluster) else { return reject(.wrongCluster) }
        if from.cluster == cluster {
            // A peer's forward: only a whole proof is worth anything.
            guard ShardStatementCheck.isValid(proof, layout: layout, target: cluster.shard, suite: suite) else {
                return reject(.badSignature)
            }
            if ledger.isStale(statement) || watchedStatements[statement] != nil { return }
            return proven(proof, effects: &effects)
        }
        guard proof.cluster == from.cluster, proof.signatures.count == 1, proof.signatures[0].replicaIndex == from.index else {
            return reject(.senderMismatch)
        }
        if ledger.isStale(statement) {
            // Answer only a genuine question: the signature is checked before we send anything.
            guard Int(from.index) < quorum.n,
                  suite.isValid(proof.signatures[0].signature, of: .shardStatement(statement), by: from) else { return reject(.badSignature) }
            answerStale(statement, to: from.cluster, effects: &effects)
            return
        }
        if watchedStatements[statement] != nil { return }
        var entry = statementInbox[statement] ?? StatementSignatures(since: now)
        if entry.signers[proof.cluster]?[from.index] != nil { return }
        if statementInbox[statement] == nil && statementInbox.count >= Self.statementInboxMax { return reject(.queueFull) }
        guard Int(from.index) < quorum.n,
              suite.isValid(proof.signatures[0].signature, of: .shardStatement(statement), by: from) else { return reject(.badSignature) }
        entry.signers[proof.cluster, default: [:]][from.index] = proof.signatures[0].signature
        let signers = entry.signers[proof.cluster]!
        guard signers.count >= quorum.weak else {
            statementInbox[statement] = entry
            return
        }
        // f + 1 replicas of one cluster of the source shard signed it: one of them is correct.
        statementInbox[statement] = nil
        let chosen = signers.sorted { $0.key < $1.key }.prefix(quorum.weak)
        proven(ShardStatementProof(statement: statement, cluster: proof.cluster,
                                   signatures: chosen.map { CertificateSignature(replicaIndex: $0.key, signature: $0.value) }),
               effects: &effects)
    }

    /// A proven statement: the primary queues it for a block; everyone watches it until it is ordered.
    mutating func proven(_ proof: ShardStatementProof, effects: inout [Effect]) {
        let statement = proof.statement
        guard watchedStatements[statement] == nil, watchedStatements.count < configuration.pendingLimit else { return }
        watchedStatements[statement] = (proof, now)
        armProgressTimer()
        guard status == .normal else { return }
        if isPrimary {
            guard !proposedStatements.contains(statement), !pendingStatements.contains(where: { $0.statement == statement }) else { return }
            pendingStatements.append(proof)
            if oldestPendingTick == nil { oldestPendingTick = now }
            propose(partial: false, effects: &effects)
        } else {
            effects.append(.send(.shardStatement(proof), to: primary))
        }
    }

    /// Someone asks about what our ledger is done with: a participant's vote (or a coordinator's
    /// prepare) for a transaction decided or voted on here. Answer with what we produced then.
    mutating func answerStale(_ statement: ShardStatement, to asker: ClusterID, effects: inout [Effect]) {
        let id = statement.id
        let answer: ShardStatement
        switch statement.kind {
        case .vote:
            guard let decision = ledger.decision(of: id) else { return }
            answer = ShardStatement(source: cluster.shard, target: statement.source, kind: .decision(id, decision))
        case .prepare, .decision:
            return
        }
        let interval = configuration.crossShard?.retransmitTicks ?? 50
        if let last = lastAnswered[id], now - last < interval { return }
        if lastAnswered.count >= Self.statementCacheMax { lastAnswered = [:] }
        lastAnswered[id] = now
        // To the asking cluster: it is reachable, since its question reached us.
        let layout = configuration.crossShard!
        let nearest = UInt64(layout.nearestCluster[Int(asker.shard.rawValue)])
        let count = UInt64(layout.quorums[Int(asker.shard.rawValue)].count)
        sendStatement(answer, rotation: (UInt64(asker.index) + count - nearest) % max(1, count), effects: &effects)
    }

    /// Backups check the statements of a proposed block: addressed to us, each once, each proven.
    mutating func areAcceptable(_ statements: [ShardStatementProof]) -> Bool {
        guard !statements.isEmpty else { return true }
        guard let layout = configuration.crossShard, statements.count <= configuration.batchSize,
              Set(statements.map(\.statement)).count == statements.count,
              statements.allSatisfy({ ShardStatementCheck.isValid($0, layout: layout, target: cluster.shard, suite: suite) }) else {
            reject(.invalidBlock)
            return false
        }
        return true
    }

    /// Our cluster ordered these statements: their timers stop (execution may wait for other clusters).
    mutating func statementsOrdered(_ statements: [ShardStatementProof]) {
        for proof in statements {
            proposedStatements.remove(proof.statement)
            watchedStatements[proof.statement] = nil
        }
        let ordered = Set(statements.map(\.statement))
        pendingStatements.removeAll { ordered.contains($0.statement) }
    }

    /// New primary: the statements it watched and nobody proposed in the new view are its to order.
    mutating func queueWatchedStatements() {
        proposedStatements = []
        if let newView = lastNewView {
            for prePrepare in newView.prePrepares where prePrepare.block.round > lastDelivered {
                for proof in prePrepare.block.statements { proposedStatements.insert(proof.statement) }
            }
        }
        let queued = Set(pendingStatements.map(\.statement))
        for (statement, watch) in watchedStatements.sorted(by: { $0.value.since < $1.value.since })
        where !proposedStatements.contains(statement) && !queued.contains(statement) {
            pendingStatements.append(watch.proof)
        }
    }

    /// Backup in a new view: the new primary gets the statements we watch, and a full timeout.
    mutating func handOverWatchedStatements(effects: inout [Effect]) {
        pendingStatements = []
        proposedStatements = []
        let current = now
        watchedStatements = watchedStatements.mapValues { ($0.proof, current) }
        for (_, watch) in watchedStatements.sorted(by: { $0.value.since < $1.value.since }) {
            effects.append(.send(.shardStatement(watch.proof), to: primary))
        }
    }

    /// Every tick: forget what the ledger is done with, re-send what it waits on, and keep the
    /// coordinator's rounds moving while it waits for votes.
    mutating func crossShardTick(effects: inout [Effect]) {
        guard let layout = configuration.crossShard else { return }
        if !watchedStatements.isEmpty { watchedStatements = watchedStatements.filter { !ledger.isStale($0.key) } }
        if !pendingStatements.isEmpty { pendingStatements.removeAll { ledger.isStale($0.statement) } }
        if !statementInbox.isEmpty {
            let expiry = statementInboxExpiryTicks
            statementInbox = statementInbox.filter { now - $0.value.since < expiry && !ledger.isStale($0.key) }
        }
        if now - lastStatementRetransmit >= layout.retransmitTicks {
            lastStatementRetransmit = now
            statementRetransmissions += 1
            for statement in ledger.outstandingStatements() {
                sendStatement(statement, rotation: statementRetransmissions, effects: &effects)
            }
        }
        if ledger.crossShard?.hasPendingCoordination == true, now - lastProposalTick >= layout.heartbeatTicks {
            propose(partial: true, heartbeat: true, effects: &effects)
        }
    }
}
