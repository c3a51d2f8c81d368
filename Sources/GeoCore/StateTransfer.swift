// State checkpoints and state transfer: how a replica that lost its disk, or fell further behind
// than its peers keep blocks for cheaply, gets the shard ledger's state without replaying history.
//
// - State checkpoints. At every snapshot round (`snapshotEveryRounds`) each replica signs a
//   StateStatement: (round, height, ledger head, its cluster's chain head, digest of the executed
//   state) and broadcasts it in its cluster. They are apart from PBFT's checkpoints on purpose:
//   PBFT's are taken when the cluster delivers a round and pace its window and garbage collection;
//   the state exists only once the shard ledger executed the round, which waits for every other
//   cluster, so tying the two would tie a cluster's ordering to the slowest remote cluster.
// - Trust. A state statement with f + 1 matching signatures of the cluster is vouched for by at
//   least one correct replica, and a correct replica signs only a state its ledger executed, which
//   (deterministic execution, agreement of the ledger) every correct replica reaches at that
//   height. n - f would not do: with f peers silent, a replica that lost its disk hears only
//   n - 1 - f < n - f of the others.
// - Transfer. A replica behind by more than `blocksInMemoryRounds` that holds f + 1 matching state
//   checkpoints above its ledger asks one of their signers for the snapshot at that height
//   (StateRequest); the peer's shell serves it from its snapshot store (`serveSnapshot`). The
//   snapshot is checked against the statement (heights, heads, state digest): one that differs
//   (a forged or a stale snapshot) is refused and counted, and the next signer is asked; so is
//   one that does not come within `stateTransferPatienceTicks`. Under load snapshots rotate
//   faster than a request travels (peers keep two), so a peer that no longer holds the height
//   asked for serves the oldest it holds above it, and the replica installs that one once f + 1
//   state checkpoints of its height vouch for it (replicas keep a few recent checkpoints of each
//   peer for this, and answer a query with their latest two). An installed snapshot replaces
//   the ledger's state; the blocks after it come as usual (block requests of the own cluster,
//   sharing and fetches of the others), each checked by its certificate. A replica that does not
//   know how far its cluster is asks every peer for its latest state checkpoints (StateRequest of
//   height 0) at most once a view timeout. Every signer asked once in vain (none serves a
//   snapshot that checks), the replica pauses transfers and fetches blocks for a while.

extension PBFTReplica {
    /// Ticks to wait for a snapshot before asking the next signer.
    var stateTransferPatienceTicks: UInt64 { max(configuration.viewTimeoutTicks, 20) }

    /// State checkpoints kept per peer: enough that peers a snapshot or two apart still have
    /// f + 1 matching ones, and that a newer snapshot served in place of a rotated one finds its own.
    static let stateCheckpointsKept = 4

    /// The state checkpoint of a snapshot this replica restarted from (signing is deterministic,
    /// so it is the one it signed before), so that it can answer peers' state queries at once.
    mutating func resignStateCheckpoint(_ snapshot: LedgerSnapshot) {
        var ignored: [Effect] = []
        signStateCheckpoint(snapshot, effects: &ignored)
    }

    /// Signs and broadcasts the state checkpoint of a snapshot this replica just took.
    mutating func signStateCheckpoint(_ snapshot: LedgerSnapshot, effects: inout [Effect]) {
        let statement = StateStatement(cluster: cluster, round: snapshot.round, height: snapshot.height, ledgerHead: snapshot.head,
                                       localHead: snapshot.localHead, stateDigest: suite.digest(of: snapshot))
        let checkpoint = StateCheckpoint(statement: statement, replicaIndex: configuration.index,
                                         signature: suite.sign(.stateCheckpoint(statement)))
        ownStateCheckpoints = Array((ownStateCheckpoints + [checkpoint]).suffix(2))
        keep(checkpoint)
        effects.append(.broadcast(.stateCheckpoint(checkpoint)))
    }

    /// Adds a checked state checkpoint to its signer's recent ones (ascending, the latest few).
    mutating func keep(_ checkpoint: StateCheckpoint) {
        var kept = stateCheckpoints[checkpoint.replicaIndex, default: []]
        kept.append(checkpoint)
        kept.sort { $0.statement.height < $1.statement.height }
        stateCheckpoints[checkpoint.replicaIndex] = Array(kept.suffix(Self.stateCheckpointsKept))
    }

    mutating func onStateCheckpoint(_ checkpoint: StateCheckpoint, from: ReplicaID, effects: inout [Effect]) {
        let statement = checkpoint.statement
        guard statement.cluster == cluster else { return reject(.wrongCluster) }
        guard checkpoint.replicaIndex == from.index else { return reject(.senderMismatch) }
        // Peer-supplied numbers: no arithmetic that can trap.
        let (height, overflow) = statement.round.multipliedReportingOverflow(by: UInt64(configuration.clustersInShard))
        guard !overflow, statement.height == height else { return reject(.invalidSnapshot) }
        // Known already, or older than all we keep of this peer: nothing to verify.
        let kept = stateCheckpoints[from.index, default: []]
        if kept.contains(where: { $0.statement.height == statement.height }) { return }
        if kept.count >= Self.stateCheckpointsKept, let oldest = kept.first, statement.height < oldest.statement.height { return }
        guard suite.isValid(checkpoint.signature, of: .stateCheckpoint(statement), by: from) else { return reject(.badSignature) }
        keep(checkpoint)
        if receivedSnapshot != nil { return installReceivedIfVouched(effects: &effects) }
        startStateTransferIfBehind(effects: &effects)
    }

    /// The replicas whose kept state checkpoints hold `statement`.
    func signers(of statement: StateStatement) -> [UInt16] {
        stateCheckpoints.compactMap { index, kept in kept.contains { $0.statement == statement } ? index : nil }.sorted()
    }

    /// Whether f + 1 replicas of the cluster signed `statement` (one correct replica among them).
    func isVouched(_ statement: StateStatement) -> Bool { signers(of: statement).count >= quorum.weak }

    /// The highest state statement f + 1 replicas of the cluster signed, with its signers.
    func vouchedState() -> (statement: StateStatement, signers: [UInt16])? {
        var best: (statement: StateStatement, signers: [UInt16])?
        for kept in stateCheckpoints.values {
            for candidate in kept where candidate.statement.height > (best?.statement.height ?? 0) {
                let signers = signers(of: candidate.statement)
                if signers.count >= quorum.weak { best = (candidate.statement, signers) }
            }
        }
        return best
    }

    /// Starts a transfer when f + 1 replicas vouch for a state further ahead of our ledger than
    /// peers keep blocks for in memory (closer than that, fetching blocks is cheaper).
    mutating func startStateTransferIfBehind(effects: inout [Effect]) {
        guard stateTransfer == nil, receivedSnapshot == nil, now >= stateTransferPausedUntil, let (target, signers) = vouchedState(),
              target.round >= ledger.round + blocksInMemoryRounds else { return }
        guard let peer = signers.first(where: { $0 != configuration.index }) else { return }
        askForSnapshot(target, from: peer, tried: 0, effects: &effects)
    }

    mutating func askForSnapshot(_ target: StateStatement, from peer: UInt16, tried: Int, effects: inout [Effect]) {
        stateTransfer = StateTransferAttempt(target: target, peer: peer, since: now, tried: tried + 1)
        snapshotsAsked[peer] = target.height
        effects.append(.send(.stateRequest(StateRequest(cluster: cluster, height: target.height)), to: configuration.replica(peer)))
    }

    /// How long a received snapshot may wait for the state checkpoints of its height.
    var snapshotAnswerTicks: UInt64 { 4 * stateTransferPatienceTicks }

    /// On every tick: a snapshot late from its peer is asked of the next signer; a replica far
    /// behind that knows of no vouched state asks its peers for their latest state checkpoints.
    mutating func stateTransferTick(effects: inout [Effect]) {
        if let received = receivedSnapshot, now - received.since >= snapshotAnswerTicks { receivedSnapshot = nil }
        if let attempt = stateTransfer {
            if attempt.target.round < ledger.round {
                stateTransfer = nil
            } else if now - attempt.since >= stateTransferPatienceTicks {
                askNextSigner(after: attempt, effects: &effects)
            }
            return
        }
        noteFarBehind(effects: &effects)
    }

    /// Whether this replica is further behind its cluster than peers keep blocks for in memory;
    /// when it is, it asks its peers for their latest state checkpoints (at most once a view
    /// timeout). Checked on every tick and before every block request: a replica that learns
    /// step by step how far its cluster got (from the frames its peers queued while it was
    /// down) is already fetching blocks, and each batch that lands asks for the next at once.
    mutating func noteFarBehind(effects: inout [Effect]) {
        let farBehind = max(knownCommitted, stable.statement.round) >= lastDelivered + blocksInMemoryRounds
        farBehindSince = farBehind ? (farBehindSince ?? now) : nil
        if farBehind, lastStateQuery.map({ now - $0 >= configuration.viewTimeoutTicks }) ?? true {
            lastStateQuery = now
            effects.append(.broadcast(.stateRequest(StateRequest(cluster: cluster, height: 0))))
        }
    }

    /// Far behind, fetching blocks waits: while a snapshot is being fetched or checked, and for a
    /// short while after falling behind, for the peers to answer the state query. When no state
    /// is vouched for by then (no snapshot taken yet), the blocks come from the peers' stores.
    var prefersStateTransfer: Bool {
        if stateTransfer != nil || receivedSnapshot != nil { return true }
        guard let since = farBehindSince else { return false }
        return now - since < 2 * stateTransferPatienceTicks
    }

    /// The next signer of the highest vouched state. After as many attempts as that state has
    /// other signers, all in vain (none serves a snapshot that checks, or it is too large for a
    /// frame), the replica fetches blocks for a while and asks for state checkpoints again: a
    /// transfer never holds block fetching up for long, whatever the peers do.
    mutating func askNextSigner(after attempt: StateTransferAttempt, effects: inout [Effect]) {
        stateTransfer = nil
        guard let (target, signers) = vouchedState(), target.round >= ledger.round else { return }
        let others = signers.filter { $0 != configuration.index }
        guard !others.isEmpty, attempt.tried < others.count else {
            stateTransferPausedUntil = now + 4 * stateTransferPatienceTicks
            lastStateQuery = nil
            return
        }
        let next = others.first(where: { $0 > attempt.peer }) ?? others[0]
        askForSnapshot(target, from: next, tried: attempt.tried, effects: &effects)
    }

    mutating func onStateRequest(_ request: StateRequest, from: ReplicaID, effects: inout [Effect]) {
        guard request.cluster == cluster else { return reject(.wrongCluster) }
        if request.height == 0 {
            for own in ownStateCheckpoints { effects.append(.send(.stateCheckpoint(own), to: from)) }
            return
        }
        // Snapshots are read from disk and can be large: at most one per peer in the time a peer
        // waits for one, and only of a height this replica passed (the shell keeps the latest two).
        guard request.height <= ledger.height, request.height % UInt64(configuration.clustersInShard) == 0 else { return }
        if let last = lastSnapshotServed[from.index], now - last < stateTransferPatienceTicks { return }
        lastSnapshotServed[from.index] = now
        effects.append(.serveSnapshot(atOrAbove: request.height, to: from))
    }

    /// A snapshot from a peer this replica asked, however late (an answer that comes after the
    /// next signer was asked, or after a pause began, is still checked and used: on a loaded
    /// machine real replicas saw answers come seconds after the ask). One answer per ask.
    mutating func onStateTransfer(_ received: LedgerSnapshot, from: ReplicaID, effects: inout [Effect]) {
        guard let askedHeight = snapshotsAsked.removeValue(forKey: from.index) else { return reject(.unexpected) }
        // The wire carries no cross-shard layout: the receiver's own goes in.
        var snapshot = received
        switch (snapshot.crossShard, configuration.crossShard) {
        case (nil, nil): break
        case let (state?, layout?):
            snapshot.crossShard = CrossShardState(layout: layout, locks: state.locks, coordinating: state.coordinating,
                                                  participating: state.participating, watermarks: state.watermarks,
                                                  decisions: state.decisions, decisionOrder: state.decisionOrder)
        default:
            return refuseSnapshot(from: from.index, effects: &effects)
        }
        // The one asked for, or a newer one (the asked one rotated away at the peer); never older.
        guard snapshot.shard == cluster.shard, snapshot.height >= askedHeight,
              snapshot.height == snapshot.round &* UInt64(configuration.clustersInShard) else {
            return refuseSnapshot(from: from.index, effects: &effects)
        }
        // Passed meanwhile (by another snapshot or by blocks), or lower than one already waiting.
        guard snapshot.round > ledger.round, snapshot.height > receivedSnapshot?.snapshot.height ?? 0 else { return }
        let digest = suite.digest(of: snapshot)
        receivedSnapshot = ReceivedSnapshot(snapshot: snapshot, digest: digest, from: from.index, since: now)
        installReceivedIfVouched(effects: &effects)
    }

    /// Installs the received snapshot once a state statement of its height has f + 1 signers and
    /// it matches (heights, heads, state digest). One that differs from the vouched statement
    /// (forged, stale, or from another cluster) is refused, and the next signer asked if it came
    /// from the one asked last; one not yet vouched for (a newer snapshot than asked for) waits
    /// for the checkpoints of its height, for `snapshotAnswerTicks` at most.
    mutating func installReceivedIfVouched(effects: inout [Effect]) {
        guard let received = receivedSnapshot else { return }
        let snapshot = received.snapshot
        guard snapshot.round > ledger.round else { receivedSnapshot = nil; return }
        let vouched = stateCheckpoints.values.lazy.flatMap { $0 }.map(\.statement)
            .first { $0.height == snapshot.height && self.isVouched($0) }
        guard let statement = vouched else { return }
        guard snapshot.round == statement.round, snapshot.head == statement.ledgerHead,
              snapshot.localHead == statement.localHead, received.digest == statement.stateDigest else {
            receivedSnapshot = nil
            return refuseSnapshot(from: received.from, effects: &effects)
        }
        stateTransfer = nil
        receivedSnapshot = nil
        snapshotsAsked = [:]
        stateTransferPausedUntil = 0
        install(snapshot, effects: &effects)
    }

    /// A snapshot that does not check (forged, stale, from another cluster) is counted, and the
    /// next signer asked if it came from the one asked last.
    mutating func refuseSnapshot(from peer: UInt16, effects: inout [Effect]) {
        reject(.invalidSnapshot)
        if let attempt = stateTransfer, attempt.peer == peer { askNextSigner(after: attempt, effects: &effects) }
    }

    /// Replaces the ledger's state with a checked snapshot and goes on from the round after it.
    mutating func install(_ snapshot: LedgerSnapshot, effects: inout [Effect]) {
        guard snapshot.round >= ledger.round else { return }
        snapshotsInstalled += 1
        ledger = ShardLedger(restoring: snapshot, clusterCount: configuration.clustersInShard)
        if lastDelivered < snapshot.round {
            lastDelivered = snapshot.round
            localHead = snapshot.localHead
        }
        knownCommitted = max(knownCommitted, snapshot.round)
        // Blocks above the snapshot this replica already holds go back to the new ledger.
        for (round, block) in delivered.sorted(by: { $0.key < $1.key }) where round > snapshot.round {
            ledger.add(block, digest: block.certificate.statement.digest)
        }
        for blocks in remoteBlocks.values {
            for (round, block) in blocks.sorted(by: { $0.key < $1.key }) where round > snapshot.round {
                ledger.add(block, digest: block.certificate.statement.digest)
            }
        }
        delivered = delivered.filter { $0.key > snapshot.round }
        fetched = fetched.filter { $0.key > lastDelivered }
        snapshotHeads = snapshotHeads.filter { $0.key > snapshot.round }
        // Requests executed in the installed state are done.
        orderedRequests = orderedRequests.filter { $0.requestID > (ledger.lastExecution[$0.client]?.requestID ?? 0) }
        if nextProposalRound <= snapshot.round { nextProposalRound = snapshot.round + 1 }
        effects.append(.installedSnapshot(snapshot))
        executeLedger(effects: &effects)
        deliverReady(effects: &effects)
        if isBehind { requestBlocks(effects: &effects) }
    }
}

/// A snapshot being fetched: the statement it must match, the peer asked, since when.
struct StateTransferAttempt: Sendable {
    var target: StateStatement
    var peer: UInt16
    var since: UInt64
    /// Signers asked since the transfer began (whatever the target: a target that moves on
    /// under load must not keep the replica asking for ever).
    var tried: Int
}

/// A snapshot a peer served, with its state digest, waiting for f + 1 state checkpoints of its
/// height (a newer one than asked for may come before its checkpoints do).
struct ReceivedSnapshot: Sendable {
    var snapshot: LedgerSnapshot
    var digest: Digest
    var from: UInt16
    var since: UInt64
}
