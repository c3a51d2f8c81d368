// PBFT's normal case and checkpoints, the safety half of the cluster's agreement: what this
// replica signed in each slot (never two digests for one), the PrePrepares, Prepares and Commits
// of the rounds in the window, the prepared proofs, the commit certificates, and the stable
// checkpoint that moves the window.
//
// A sub-machine of the replica. It decides what is prepared, committed and stable, and signs
// only what the rules allow; when to give up on a primary is the view change's and the timer
// table's business. The composer passes the view it is in and how far it delivered, and acts on
// what the functions return (a Commit sent, a round committed or certified, a checkpoint stable).

/// One round's consensus state.
struct Slot: Sendable {
    /// Blocks seen for this round by digest (from PrePrepares, proofs and new views).
    var blocks: [Digest: Block] = [:]
    /// The PrePrepare accepted in the current view.
    var prePrepare: PrePrepare?
    /// Each replica's latest Prepare and Commit: a peer can fill only its own entry, so the
    /// state a Byzantine replica can make grow is bounded by n per round.
    var prepares: [UInt16: Prepare] = [:]
    var commits: [UInt16: Commit] = [:]
    /// The highest-view prepared proof this replica holds.
    var prepared: PreparedProof?
    var commitSentInView: UInt64?
    var certified: CertifiedBlock?
    /// Client signatures (SignatureDuty.swift): the digest whose every transaction this replica
    /// verified itself (its fallback, or a new view's re-proposal), the digest found to carry a
    /// forged one (never committed), and the tick it was prepared while not yet vouched for.
    var verifiedAll: Digest?
    var forged: Digest?
    var waitingSince: UInt64?
}

/// What checking a round for a commit certificate found.
struct CommitCheck: Sendable, Equatable {
    /// n - f matching Commits: the round is committed (whether or not the block is here).
    var committed = false
    /// ... and the block is here: the round has its certificate and can be delivered.
    var certified = false
}

struct Agreement: Sendable {
    let configuration: PBFTConfiguration
    let suite: any CryptoSuite

    var slots: [UInt64: Slot] = [:]
    /// What this replica signed in each slot (persisted before it is sent).
    var signed: [SignSlot: Digest] = [:]
    var stable: CheckpointProof
    var ownCheckpoints: [UInt64: Digest] = [:]
    /// Each replica's latest checkpoint (one per replica keeps this bounded; checkpoints only move up).
    var latestCheckpoints: [UInt16: Checkpoint] = [:]
    /// Designated verifiers whose Prepare was missing when this replica last had to verify their
    /// share itself (silent, cut off or slow): until a Prepare of theirs comes again, their share
    /// is verified at once instead of after `vouchPatienceTicks` in every round. Liveness only.
    var lateVerifiers: Set<UInt16> = []

    static let maxBlocksPerSlot = 8

    init(configuration: PBFTConfiguration, suite: any CryptoSuite) {
        self.configuration = configuration
        self.suite = suite
        stable = .genesis(configuration.cluster)
    }

    var cluster: ClusterID { configuration.cluster }
    var quorum: Quorum { configuration.quorum }
    var me: UInt16 { configuration.index }

    func inWindow(_ round: UInt64) -> Bool {
        round > stable.statement.round && round <= stable.statement.round + configuration.window
    }

    /// Records that the replica is about to sign `digest` in `slot`; false if it signed another
    /// digest there before (possibly before a crash), which it must never do.
    mutating func claim(_ slot: SignSlot, _ digest: Digest, effects: inout [Effect]) -> Bool {
        if let previous = signed[slot] { return previous == digest }
        signed[slot] = digest
        effects.append(.persist(.signed(slot, digest)))
        return true
    }

    mutating func accept(_ prePrepare: PrePrepare) {
        let round = prePrepare.block.round
        var slot = slots[round] ?? Slot()
        slot.prePrepare = prePrepare
        if slot.blocks.count < Self.maxBlocksPerSlot || slot.blocks[prePrepare.digest] != nil {
            slot.blocks[prePrepare.digest] = prePrepare.block
        }
        slots[round] = slot
    }

    /// A PrePrepare of `view` for `block`, signed (unless this replica signed another block in
    /// that slot before) and taken as accepted.
    mutating func signPrePrepare(_ block: Block, view: UInt64, effects: inout [Effect]) -> PrePrepare? {
        let digest = suite.digest(of: block)
        let statement = VoteStatement(cluster: cluster, view: view, round: block.round, digest: digest)
        guard claim(SignSlot(phase: .prePrepare, view: view, round: block.round), digest, effects: &effects) else { return nil }
        return PrePrepare(view: view, digest: digest, block: block, signature: suite.sign(.prePrepare(statement)))
    }

    /// Backup: checks a PrePrepare of the primary of `view` (all but the statements it carries,
    /// which the relay checks), and the client signatures this replica is designated to verify
    /// (SignatureDuty.swift). False for one already accepted in this view.
    func check(_ prePrepare: PrePrepare, from: ReplicaID, view: UInt64, normal: Bool, lastDelivered: UInt64) throws(Rejection) -> Bool {
        let round = prePrepare.block.round
        guard normal, prePrepare.view == view else { throw .staleView }
        guard from.index == configuration.primary(of: view) else { throw .notPrimary }
        guard prePrepare.block.cluster == cluster else { throw .wrongCluster }
        guard inWindow(round), round > lastDelivered else { throw .outsideWindow }
        if let existing = slots[round]?.prePrepare, existing.view == view {
            if existing.digest != prePrepare.digest { throw .conflictingProposal }
            return false
        }
        guard suite.isValid(prePrepare.signature, of: .prePrepare(prePrepare.statement), by: from) else { throw .badSignature }
        // The block: its size, its digest, each request once, and the client signatures this
        // replica vouches for with its Prepare.
        let block = prePrepare.block
        guard block.transactions.count <= configuration.batchSize else { throw .invalidBlock }
        guard suite.digest(of: block) == prePrepare.digest else { throw .badDigest }
        let duty = configuration.signatureDuty
        var keys = Set<RequestKey>()
        for transaction in block.transactions {
            guard keys.insert(RequestKey(transaction)).inserted else { throw .invalidBlock }
            if duty.isDesignated(me, for: transaction, primary: from.index), !suite.isValid(transaction) { throw .invalidBlock }
        }
        return true
    }

    /// Backup: accepts a checked PrePrepare and signs and broadcasts its Prepare; false if it
    /// signed another digest in that slot.
    mutating func prepare(_ prePrepare: PrePrepare, view: UInt64, effects: inout [Effect]) -> Bool {
        accept(prePrepare)
        let round = prePrepare.block.round
        guard claim(SignSlot(phase: .prepare, view: view, round: round), prePrepare.digest, effects: &effects) else { return false }
        let me = self.me
        let prepare = Prepare(statement: prePrepare.statement, replicaIndex: me, signature: suite.sign(.prepare(prePrepare.statement)))
        slots[round]?.prepares[me] = prepare
        effects.append(.broadcast(.prepare(prepare)))
        return true
    }

    /// A peer's Prepare: checked; false if it has a Prepare of that view or later for the round.
    func check(_ prepare: Prepare, from: ReplicaID, view: UInt64) throws(Rejection) -> Bool {
        let statement = prepare.statement
        guard statement.cluster == cluster else { throw .wrongCluster }
        guard prepare.replicaIndex == from.index else { throw .senderMismatch }
        guard statement.view >= view else { throw .staleView }
        guard from.index != configuration.primary(of: statement.view) else { throw .notPrimary }
        if let existing = slots[statement.round]?.prepares[from.index], existing.statement.view >= statement.view { return false }
        guard suite.isValid(prepare.signature, of: .prepare(statement), by: from) else { throw .badSignature }
        return true
    }

    mutating func record(_ prepare: Prepare) throws(Rejection) {
        guard inWindow(prepare.statement.round) else { throw .outsideWindow }
        slots[prepare.statement.round, default: Slot()].prepares[prepare.replicaIndex] = prepare
        lateVerifiers.remove(prepare.replicaIndex)
    }

    /// Prepared: the current view's PrePrepare and n - f - 1 matching Prepares of distinct backups.
    /// Then persist the proof, and once every client signature of the block is vouched for
    /// (`vouched`), sign and broadcast a Commit; true when it did.
    mutating func checkPrepared(_ round: UInt64, view: UInt64, normal: Bool, now: UInt64, effects: inout [Effect]) -> Bool {
        guard normal, let slot = slots[round], let prePrepare = slot.prePrepare, prePrepare.view == view,
              slot.commitSentInView != view else { return false }
        let primaryIndex = configuration.primary(of: view)
        let matching = slot.prepares.values
            .filter { $0.statement == prePrepare.statement && $0.replicaIndex != primaryIndex }
            .sorted { $0.replicaIndex < $1.replicaIndex }
        guard matching.count >= quorum.prepared else { return false }
        if slot.prepared?.prePrepare != prePrepare {
            let proof = PreparedProof(prePrepare: prePrepare, prepares: Array(matching.prefix(quorum.prepared)))
            slots[round]?.prepared = proof
            effects.append(.persist(.prepared(proof)))
        }
        guard vouched(round, prePrepare, now: now) else { return false }
        guard claim(SignSlot(phase: .commit, view: view, round: round), prePrepare.digest, effects: &effects) else { return false }
        slots[round]?.commitSentInView = view
        slots[round]?.waitingSince = nil
        let me = self.me
        let commit = Commit(statement: prePrepare.statement, replicaIndex: me, signature: suite.sign(.commit(prePrepare.statement)))
        slots[round]?.commits[me] = commit
        effects.append(.broadcast(.commit(commit)))
        return true
    }

    /// Whether every client signature of the prepared block is vouched for (SignatureDuty.swift):
    /// this replica is the primary (it verified what it proposed), or verified the block itself,
    /// or each transaction's designated backups sent matching Prepares (this replica's own counts:
    /// it verified its share before it prepared). Otherwise the replica waits
    /// `vouchPatienceTicks` from the first time it asks, then verifies the rest itself: all valid,
    /// the block is vouched for; one forged, it never is (in this view).
    mutating func vouched(_ round: UInt64, _ prePrepare: PrePrepare, now: UInt64) -> Bool {
        guard let slot = slots[round] else { return false }
        let digest = prePrepare.digest
        if slot.verifiedAll == digest { return true }
        if slot.forged == digest { return false }
        let primary = configuration.primary(of: prePrepare.view)
        if me == primary { return true }
        let duty = configuration.signatureDuty
        var vouching: Set<UInt16> = [me]
        for prepare in slot.prepares.values where prepare.statement == prePrepare.statement { vouching.insert(prepare.replicaIndex) }
        var missing: Set<UInt16> = []
        let unvouched = prePrepare.block.transactions.filter { transaction in
            let absent = duty.designatedBackups(transaction, primary: primary).filter { !vouching.contains($0) }
            missing.formUnion(absent)
            return !absent.isEmpty
        }
        if unvouched.isEmpty { return true }
        // Wait for the vouching Prepares, unless they are from verifiers known to be late.
        if !missing.isSubset(of: lateVerifiers) {
            guard let since = slot.waitingSince else {
                slots[round]?.waitingSince = now
                return false
            }
            guard now - since >= configuration.vouchPatienceTicks else { return false }
            lateVerifiers.formUnion(missing)
        }
        if unvouched.allSatisfy(suite.isValid) {
            slots[round]?.verifiedAll = digest
            return true
        }
        slots[round]?.forged = digest
        slots[round]?.waitingSince = nil
        return false
    }

    /// Rounds prepared in `view` that wait for their client signatures to be vouched for: the
    /// composer asks again at each tick (the fallback's patience runs out).
    func awaitingVouch(view: UInt64) -> [UInt64] {
        slots.filter { $0.value.waitingSince != nil && $0.value.commitSentInView != view }.keys.sorted()
    }

    /// A new view's re-proposal: its block's client signatures were checked by this replica when
    /// it checked the new view's plan (NewViewPlan skips blocks with a forged one).
    mutating func verifiedByPlan(_ prePrepare: PrePrepare) {
        slots[prePrepare.block.round]?.verifiedAll = prePrepare.digest
    }

    /// A peer's Commit for a round not yet delivered: checked; false if it has one of that view
    /// or later for the round.
    func check(_ commit: Commit, from: ReplicaID, lastDelivered: UInt64) throws(Rejection) -> Bool {
        let statement = commit.statement
        guard statement.cluster == cluster else { throw .wrongCluster }
        guard commit.replicaIndex == from.index else { throw .senderMismatch }
        // Late Commits for delivered rounds are normal (only n - f were needed): ignore them quietly.
        guard statement.round > lastDelivered else { return false }
        if let existing = slots[statement.round]?.commits[from.index], existing.statement.view >= statement.view { return false }
        guard suite.isValid(commit.signature, of: .commit(statement), by: from) else { throw .badSignature }
        return true
    }

    mutating func record(_ commit: Commit) throws(Rejection) {
        guard inWindow(commit.statement.round) else { throw .outsideWindow }
        slots[commit.statement.round, default: Slot()].commits[commit.replicaIndex] = commit
    }

    /// Committed: n - f matching Commits (of any one view) for a block this replica holds.
    mutating func checkCommitted(_ round: UInt64, lastDelivered: UInt64) -> CommitCheck {
        var check = CommitCheck()
        guard let slot = slots[round], slot.certified == nil, round > lastDelivered else { return check }
        // n is small: counting matches directly beats hashing statements into groups.
        let commits = Array(slot.commits.values)
        for (offset, candidate) in commits.enumerated() {
            let statement = candidate.statement
            if commits[..<offset].contains(where: { $0.statement == statement }) { continue }
            let matching = commits.filter { $0.statement == statement }
            guard matching.count >= quorum.decide else { continue }
            check.committed = true
            let fallback = [slot.prePrepare, slot.prepared?.prePrepare].compactMap { $0 }.first { $0.digest == statement.digest }?.block
            // Committed, but the block never reached this replica: the composer fetches it.
            guard let block = slot.blocks[statement.digest] ?? fallback else { continue }
            let signers = matching.sorted { $0.replicaIndex < $1.replicaIndex }.prefix(quorum.decide)
            let certificate = CommitCertificate(statement: statement, signatures: signers.map {
                CertificateSignature(replicaIndex: $0.replicaIndex, signature: $0.signature)
            })
            slots[round]?.certified = CertifiedBlock(block: block, certificate: certificate)
            check.certified = true
            return check
        }
        return check
    }

    /// Rounds said again per retransmission: delivery goes in round order, so the lowest
    /// undelivered rounds hold the rest up, and the next retransmission reaches the others.
    static let retransmitRounds = 4

    /// Re-sends this replica's own PrePrepares, Prepares and Commits of `view` for the lowest
    /// `retransmitRounds` rounds not yet delivered, each only to the peers whose votes show they
    /// may lack it. Duplicates are harmless: every handler ignores what it has. (It once re-sent
    /// every undelivered round to every peer: on paper-4x15's 60-replica baseline a saturated
    /// primary, late with its own deliveries, re-sent 64 PrePrepares to 59 peers, 39 MB and 350 ms
    /// of its CPU every 130 ms, and never caught up again: `simulate --timeline-ms`.)
    func retransmit(view: UInt64, isPrimary: Bool, lastDelivered: UInt64, effects: inout [Effect]) {
        let rounds = slots.keys.filter { $0 > lastDelivered }.sorted().prefix(Self.retransmitRounds)
        for round in rounds {
            guard let slot = slots[round], slot.certified == nil else { continue }
            let prePrepare = isPrimary ? slot.prePrepare.flatMap { $0.view == view ? $0 : nil } : nil
            let prepare = slot.prepares[me].flatMap { $0.statement.view == view ? $0 : nil }
            let commit = slot.commits[me].flatMap { $0.statement.view == view ? $0 : nil }
            for peer in 0..<UInt16(quorum.n) where peer != me {
                // A peer's Commit for this view says it prepared the round: it needs nothing we
                // sent before that (and what it still lacks, the catch-up gives it); a Prepare
                // says it had the PrePrepare.
                if slot.commits[peer]?.statement.view == view { continue }
                let to = configuration.replica(peer)
                if let prePrepare, slot.prepares[peer]?.statement.view != view { effects.append(.send(.prePrepare(prePrepare), to: to)) }
                if let prepare { effects.append(.send(.prepare(prepare), to: to)) }
                if let commit { effects.append(.send(.commit(commit), to: to)) }
            }
        }
    }

    /// Rounds with a PrePrepare or a certificate above `lastDelivered`: work in flight.
    func hasWorkInFlight(above lastDelivered: UInt64) -> Bool {
        slots.contains { $0.key > lastDelivered && ($0.value.prePrepare != nil || $0.value.certified != nil) }
    }

    /// The prepared proofs above the stable checkpoint, by round (what a ViewChange carries).
    var preparedAboveStable: [PreparedProof] {
        slots.filter { $0.key > stable.statement.round }.compactMap { $0.value.prepared }.sorted { $0.round < $1.round }
    }

    /// A new view begins: nothing accepted or committed in the old one counts for it.
    mutating func resetForNewView() {
        for round in slots.keys {
            slots[round]?.prePrepare = nil
            slots[round]?.commitSentInView = nil
            slots[round]?.waitingSince = nil
        }
    }

    // MARK: Checkpoints

    /// Signs and broadcasts our checkpoint of `round` (the chain head `head`); returns it.
    mutating func signCheckpoint(round: UInt64, head: Digest, effects: inout [Effect]) -> Checkpoint {
        let statement = CheckpointStatement(cluster: cluster, round: round, digest: head)
        ownCheckpoints[round] = head
        let checkpoint = Checkpoint(statement: statement, replicaIndex: me, signature: suite.sign(.checkpoint(statement)))
        effects.append(.broadcast(.checkpoint(checkpoint)))
        return checkpoint
    }

    /// A peer's checkpoint above the stable one: checked; false if it has a later one of that peer.
    func check(_ checkpoint: Checkpoint, from: ReplicaID) throws(Rejection) -> Bool {
        let statement = checkpoint.statement
        guard statement.cluster == cluster else { throw .wrongCluster }
        guard checkpoint.replicaIndex == from.index else { throw .senderMismatch }
        guard statement.round > stable.statement.round, statement.round % configuration.checkpointEvery == 0 else {
            throw .outsideWindow
        }
        if let latest = latestCheckpoints[from.index], latest.statement.round >= statement.round { return false }
        guard suite.isValid(checkpoint.signature, of: .checkpoint(statement), by: from) else { throw .badSignature }
        return true
    }

    /// Keeps each replica's latest checkpoint. Returns the round f + 1 of them reach (however far
    /// ahead, it tells a replica that restarted or was cut off how far the cluster got) and,
    /// with n - f matching ones, the proof of a stable checkpoint.
    mutating func record(_ checkpoint: Checkpoint) -> (reached: UInt64, stable: CheckpointProof?) {
        latestCheckpoints[checkpoint.replicaIndex] = checkpoint
        let rounds = Dictionary(uniqueKeysWithValues: latestCheckpoints.map { ($0.key, $0.value.statement.round) })
        let reached = quorum.weakValue(of: rounds)
        let matching = latestCheckpoints.values.filter { $0.statement == checkpoint.statement }
        guard matching.count >= quorum.decide else { return (reached, nil) }
        let proof = CheckpointProof(statement: checkpoint.statement,
                                    checkpoints: matching.sorted { $0.replicaIndex < $1.replicaIndex }.prefix(quorum.decide).map { $0 })
        return (reached, proof)
    }

    /// Makes `proof` the stable checkpoint if it is above the current one, and forgets what is
    /// below it; false when it is not above.
    mutating func makeStable(_ proof: CheckpointProof, effects: inout [Effect]) -> Bool {
        let round = proof.statement.round
        guard round > stable.statement.round else { return false }
        stable = proof
        effects.append(.persist(.stable(proof)))
        slots = slots.filter { $0.key > round }
        latestCheckpoints = latestCheckpoints.filter { $0.value.statement.round > round }
        ownCheckpoints = ownCheckpoints.filter { $0.key >= round }
        signed = signed.filter { $0.key.round > round }
        return true
    }
}
