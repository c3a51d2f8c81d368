// The replica's side of the coordinator layer (CrossShard.swift says how the protocol works):
// signing and sending the statements its ledger produced, assembling proofs of the statements
// other shards send, holding them for the primary to order and watching that it does, and
// re-sending what the ledger still waits on.
//
// A sub-machine of the replica: it owns its fields, and tells the composer (PBFTReplica) what
// to do next through the values its functions return: a statement proven (to watch and order),
// a rejection (thrown), the proofs to hand to a new primary.

/// Signatures collected for one statement, by cluster of the source shard then replica index.
struct StatementSignatures: Sendable {
    var since: UInt64
    var signers: [ClusterID: [UInt16: Signature]] = [:]
}

struct StatementRelay: Sendable {
    let configuration: PBFTConfiguration
    let suite: any CryptoSuite

    /// Signatures collected for statements addressed to our shard, until f + 1 of one cluster agree.
    var inbox: [ShardStatement: StatementSignatures] = [:]
    /// Proven statements this replica waits to see ordered (request timers, like the intake's).
    var watched: [ShardStatement: (proof: ShardStatementProof, since: UInt64)] = [:]
    /// Primary only: proven statements waiting for a block, and those proposed and not delivered.
    var pending: [ShardStatementProof] = []
    var proposed: Set<ShardStatement> = []
    /// Our signatures over statements our ledger produced (signing is deterministic; this saves redoing it).
    var signatures: [ShardStatement: Signature] = [:]
    var retransmissions: UInt64 = 0
    /// When this replica last answered a stale statement for a transaction (rate limit).
    var lastAnswered: [CrossShardID: UInt64] = [:]

    init(configuration: PBFTConfiguration, suite: any CryptoSuite) {
        self.configuration = configuration
        self.suite = suite
    }

    /// Statements with signatures still being collected, at most: a Byzantine replica of another
    /// shard can sign any number of statements nobody else signs, and each would take an entry.
    /// Past the bound new statements wait for old entries to expire (retransmission brings them again).
    static let inboxMax = 4_096
    /// Ticks an incomplete statement is kept: a few retransmission periods.
    var inboxExpiryTicks: UInt64 { 4 * (configuration.crossShard?.retransmitTicks ?? 50) }
    /// Cached own signatures and answer times, at most (cleared when full: both are only savings).
    static let cacheMax = 16_384

    var cluster: ClusterID { configuration.cluster }
    /// Since when the oldest watched statement waits (nil when none does).
    var oldestWatch: UInt64? { watched.values.map(\.since).min() }

    /// Signs a statement our ledger produced and sends it to every replica of the target shard's
    /// cluster nearest to ours; a re-send (`rotation` > 0) goes to the next cluster of that shard
    /// in turn, so a target region that is cut off does not hold the statement up.
    mutating func send(_ statement: ShardStatement, rotation: UInt64 = 0, effects: inout [Effect]) {
        guard let layout = configuration.crossShard, Int(statement.target.rawValue) < layout.quorums.count else { return }
        let signature: Signature
        if let cached = signatures[statement] {
            signature = cached
        } else {
            signature = suite.sign(.shardStatement(statement))
            if signatures.count >= Self.cacheMax { signatures = [:] }
            signatures[statement] = signature
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
    /// cluster forwards to us as primary. Returns the statement's proof once it is proven and
    /// new to this replica (the composer watches it and has it ordered).
    mutating func receive(_ proof: ShardStatementProof, from: ReplicaID, now: UInt64, ledger: ShardLedger,
                          effects: inout [Effect]) throws(Rejection) -> ShardStatementProof? {
        guard let layout = configuration.crossShard else { throw .wrongCluster }
        let statement = proof.statement
        guard statement.target == cluster.shard, statement.source != cluster.shard, proof.cluster.shard == statement.source,
              let quorum = layout.quorum(of: proof.cluster) else { throw .wrongCluster }
        if from.cluster == cluster {
            // A peer's forward: only a whole proof is worth anything.
            guard ShardStatementCheck.isValid(proof, layout: layout, target: cluster.shard, suite: suite) else { throw .badSignature }
            if ledger.isStale(statement) || watched[statement] != nil { return nil }
            return proof
        }
        guard proof.cluster == from.cluster, proof.signatures.count == 1, proof.signatures[0].replicaIndex == from.index else {
            throw .senderMismatch
        }
        if ledger.isStale(statement) {
            // Answer only a genuine question: the signature is checked before we send anything.
            guard Int(from.index) < quorum.n,
                  suite.isValid(proof.signatures[0].signature, of: .shardStatement(statement), by: from) else { throw .badSignature }
            answerStale(statement, to: from.cluster, now: now, ledger: ledger, effects: &effects)
            return nil
        }
        if watched[statement] != nil { return nil }
        var entry = inbox[statement] ?? StatementSignatures(since: now)
        if entry.signers[proof.cluster]?[from.index] != nil { return nil }
        if inbox[statement] == nil && inbox.count >= Self.inboxMax { throw .queueFull }
        guard Int(from.index) < quorum.n,
              suite.isValid(proof.signatures[0].signature, of: .shardStatement(statement), by: from) else { throw .badSignature }
        entry.signers[proof.cluster, default: [:]][from.index] = proof.signatures[0].signature
        let signers = entry.signers[proof.cluster]!
        guard signers.count >= quorum.weak else {
            inbox[statement] = entry
            return nil
        }
        // f + 1 replicas of one cluster of the source shard signed it: one of them is correct.
        inbox[statement] = nil
        let chosen = signers.sorted { $0.key < $1.key }.prefix(quorum.weak)
        return ShardStatementProof(statement: statement, cluster: proof.cluster,
                                   signatures: chosen.map { CertificateSignature(replicaIndex: $0.key, signature: $0.value) })
    }

    /// Starts watching a proven statement; false if it is watched already or the watch list is full.
    mutating func watch(_ proof: ShardStatementProof, now: UInt64) -> Bool {
        guard watched[proof.statement] == nil, watched.count < configuration.pendingLimit else { return false }
        watched[proof.statement] = (proof, now)
        return true
    }

    /// Primary: queues a proven statement for a block; false if it is queued or proposed already.
    mutating func queue(_ proof: ShardStatementProof) -> Bool {
        let statement = proof.statement
        guard !proposed.contains(statement), !pending.contains(where: { $0.statement == statement }) else { return false }
        pending.append(proof)
        return true
    }

    /// Primary: the statements of the next block (at most a batch), now proposed.
    mutating func takeBatch() -> [ShardStatementProof] {
        let count = min(configuration.batchSize, pending.count)
        let statements = Array(pending.prefix(count))
        pending.removeFirst(count)
        for proof in statements { proposed.insert(proof.statement) }
        return statements
    }

    /// Someone asks about what our ledger is done with: a participant's vote (or a coordinator's
    /// prepare) for a transaction decided or voted on here. Answer with what we produced then.
    mutating func answerStale(_ statement: ShardStatement, to asker: ClusterID, now: UInt64, ledger: ShardLedger,
                              effects: inout [Effect]) {
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
        if lastAnswered.count >= Self.cacheMax { lastAnswered = [:] }
        lastAnswered[id] = now
        // To the asking cluster: it is reachable, since its question reached us.
        let layout = configuration.crossShard!
        let nearest = UInt64(layout.nearestCluster[Int(asker.shard.rawValue)])
        let count = UInt64(layout.quorums[Int(asker.shard.rawValue)].count)
        send(answer, rotation: (UInt64(asker.index) + count - nearest) % max(1, count), effects: &effects)
    }

    /// Backups check the statements of a proposed block: addressed to us, each once, each proven.
    func checkProposed(_ statements: [ShardStatementProof]) throws(Rejection) {
        guard !statements.isEmpty else { return }
        guard let layout = configuration.crossShard, statements.count <= configuration.batchSize,
              Set(statements.map(\.statement)).count == statements.count,
              statements.allSatisfy({ ShardStatementCheck.isValid($0, layout: layout, target: cluster.shard, suite: suite) }) else {
            throw .invalidBlock
        }
    }

    /// Our cluster ordered these statements: their timers stop (execution may wait for other clusters).
    mutating func ordered(_ statements: [ShardStatementProof]) {
        for proof in statements {
            proposed.remove(proof.statement)
            watched[proof.statement] = nil
        }
        let ordered = Set(statements.map(\.statement))
        pending.removeAll { ordered.contains($0.statement) }
    }

    /// New primary: the statements it watched and the new view does not re-propose (`reproposed`)
    /// are its to order.
    mutating func queueWatched(reproposed: [ShardStatementProof]) {
        proposed = Set(reproposed.map(\.statement))
        let queued = Set(pending.map(\.statement))
        for (statement, watch) in watched.sorted(by: { $0.value.since < $1.value.since })
        where !proposed.contains(statement) && !queued.contains(statement) {
            pending.append(watch.proof)
        }
    }

    /// Backup in a new view: the statements it watches, to hand to the new primary, which gets a
    /// full timeout for them.
    mutating func handOver(now: UInt64) -> [ShardStatementProof] {
        pending = []
        proposed = []
        watched = watched.mapValues { ($0.proof, now) }
        return watched.sorted(by: { $0.value.since < $1.value.since }).map(\.value.proof)
    }

    /// Every tick: forget what the ledger is done with, and re-send what it waits on (paced by the
    /// timer `.statementRetransmit`, which runs from the replica's start).
    mutating func tick(timers: inout TimerTable, ledger: ShardLedger, effects: inout [Effect]) {
        let now = timers.now
        guard let layout = configuration.crossShard else { return }
        if !watched.isEmpty { watched = watched.filter { !ledger.isStale($0.key) } }
        if !pending.isEmpty { pending.removeAll { ledger.isStale($0.statement) } }
        if !inbox.isEmpty {
            let expiry = inboxExpiryTicks
            inbox = inbox.filter { now - $0.value.since < expiry && !ledger.isStale($0.key) }
        }
        guard now - (timers.started(.statementRetransmit) ?? 0) >= layout.retransmitTicks else { return }
        timers.start(.statementRetransmit)
        retransmissions += 1
        for statement in ledger.outstandingStatements() {
            send(statement, rotation: retransmissions, effects: &effects)
        }
    }
}
