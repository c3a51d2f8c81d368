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
//   one that does not come within `stateTransferPatienceTicks`. An installed snapshot replaces
//   the ledger's state; the blocks after it come as usual (block requests of the own cluster,
//   sharing and fetches of the others), each checked by its certificate. A replica that does not
//   know how far its cluster is asks every peer for its latest state checkpoint (StateRequest of
//   height 0) at most once a view timeout.

extension PBFTReplica {
    /// Ticks to wait for a snapshot before asking the next signer.
    var stateTransferPatienceTicks: UInt64 { max(4 * configuration.fetchIntervalTicks, 20) }

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
        ownStateCheckpoint = checkpoint
        stateCheckpoints[configuration.index] = checkpoint
        effects.append(.broadcast(.stateCheckpoint(checkpoint)))
    }

    mutating func onStateCheckpoint(_ checkpoint: StateCheckpoint, from: ReplicaID, effects: inout [Effect]) {
        let statement = checkpoint.statement
        guard statement.cluster == cluster else { return reject(.wrongCluster) }
        guard checkpoint.replicaIndex == from.index else { return reject(.senderMismatch) }
        // Peer-supplied numbers: no arithmetic that can trap.
        let (height, overflow) = statement.round.multipliedReportingOverflow(by: UInt64(configuration.clustersInShard))
        guard !overflow, statement.height == height else { return reject(.invalidSnapshot) }
        if let latest = stateCheckpoints[from.index], latest.statement.height >= statement.height { return }
        guard suite.isValid(checkpoint.signature, of: .stateCheckpoint(statement), by: from) else { return reject(.badSignature) }
        stateCheckpoints[from.index] = checkpoint
        startStateTransferIfBehind(effects: &effects)
    }

    /// The highest state statement f + 1 replicas of the cluster signed, with its signers.
    func vouchedState() -> (statement: StateStatement, signers: [UInt16])? {
        var best: (statement: StateStatement, signers: [UInt16])?
        for candidate in stateCheckpoints.values where candidate.statement.height > (best?.statement.height ?? 0) {
            let signers = stateCheckpoints.values.filter { $0.statement == candidate.statement }.map(\.replicaIndex).sorted()
            if signers.count >= quorum.weak { best = (candidate.statement, signers) }
        }
        return best
    }

    /// Starts a transfer when f + 1 replicas vouch for a state further ahead of our ledger than
    /// peers keep blocks for in memory (closer than that, fetching blocks is cheaper).
    mutating func startStateTransferIfBehind(effects: inout [Effect]) {
        guard stateTransfer == nil, now >= stateTransferPausedUntil, let (target, signers) = vouchedState(),
              target.round >= ledger.round + blocksInMemoryRounds else { return }
        guard let peer = signers.first(where: { $0 != configuration.index }) else { return }
        askForSnapshot(target, from: peer, effects: &effects)
    }

    mutating func askForSnapshot(_ target: StateStatement, from peer: UInt16, tried: Int = 0, effects: inout [Effect]) {
        stateTransfer = StateTransferAttempt(target: target, peer: peer, since: now, tried: tried + 1)
        effects.append(.send(.stateRequest(StateRequest(cluster: cluster, height: target.height)), to: configuration.replica(peer)))
    }

    /// On every tick: a snapshot late from its peer is asked of the next signer; a replica far
    /// behind that knows of no vouched state asks its peers for their latest state checkpoints.
    mutating func stateTransferTick(effects: inout [Effect]) {
        if let attempt = stateTransfer {
            if attempt.target.round < ledger.round {
                stateTransfer = nil
            } else if now - attempt.since >= stateTransferPatienceTicks {
                askNextSigner(after: attempt, effects: &effects)
            }
            return
        }
        let farBehind = max(knownCommitted, stable.statement.round) >= lastDelivered + blocksInMemoryRounds
        farBehindSince = farBehind ? (farBehindSince ?? now) : nil
        if farBehind, lastStateQuery.map({ now - $0 >= configuration.viewTimeoutTicks }) ?? true {
            lastStateQuery = now
            effects.append(.broadcast(.stateRequest(StateRequest(cluster: cluster, height: 0))))
        }
    }

    /// Far behind, fetching blocks waits: while a snapshot is being fetched, and for a short while
    /// after falling behind, for the peers to answer the state query. When no state is vouched
    /// for by then (no snapshot taken yet), the blocks come from the peers' stores.
    var prefersStateTransfer: Bool {
        if stateTransfer != nil { return true }
        guard let since = farBehindSince else { return false }
        return now - since < 2 * stateTransferPatienceTicks
    }

    /// The next signer of the vouched state; after every signer was asked once in vain (none
    /// keeps that snapshot any more, or it is too large for a frame), the replica fetches blocks
    /// for a while and asks for the latest state checkpoints again.
    mutating func askNextSigner(after attempt: StateTransferAttempt, effects: inout [Effect]) {
        stateTransfer = nil
        guard let (target, signers) = vouchedState(), target.round >= ledger.round else { return }
        let others = signers.filter { $0 != configuration.index }
        guard !others.isEmpty, attempt.tried < others.count || target != attempt.target else {
            stateTransferPausedUntil = now + 4 * stateTransferPatienceTicks
            lastStateQuery = nil
            return
        }
        let tried = target == attempt.target ? attempt.tried : 0
        let next = others.first(where: { $0 > attempt.peer }) ?? others[0]
        askForSnapshot(target, from: next, tried: tried, effects: &effects)
    }

    mutating func onStateRequest(_ request: StateRequest, from: ReplicaID, effects: inout [Effect]) {
        guard request.cluster == cluster else { return reject(.wrongCluster) }
        if request.height == 0 {
            if let own = ownStateCheckpoint { effects.append(.send(.stateCheckpoint(own), to: from)) }
            return
        }
        // Snapshots are read from disk and can be large: at most one per peer in the time a peer
        // waits for one, and only of a height this replica passed (the shell keeps the latest two).
        guard request.height <= ledger.height, request.height % UInt64(configuration.clustersInShard) == 0 else { return }
        if let last = lastSnapshotServed[from.index], now - last < stateTransferPatienceTicks { return }
        lastSnapshotServed[from.index] = now
        effects.append(.serveSnapshot(height: request.height, to: from))
    }

    mutating func onStateTransfer(_ received: LedgerSnapshot, from: ReplicaID, effects: inout [Effect]) {
        guard let attempt = stateTransfer, attempt.peer == from.index else { return reject(.unexpected) }
        let target = attempt.target
        // The wire carries no cross-shard layout: the receiver's own goes in.
        var snapshot = received
        switch (snapshot.crossShard, configuration.crossShard) {
        case (nil, nil): break
        case let (state?, layout?):
            snapshot.crossShard = CrossShardState(layout: layout, locks: state.locks, coordinating: state.coordinating,
                                                  participating: state.participating, watermarks: state.watermarks,
                                                  decisions: state.decisions, decisionOrder: state.decisionOrder)
        default:
            reject(.invalidSnapshot)
            return askNextSigner(after: attempt, effects: &effects)
        }
        guard snapshot.shard == cluster.shard, snapshot.round == target.round, snapshot.height == target.height,
              snapshot.head == target.ledgerHead, snapshot.localHead == target.localHead,
              suite.digest(of: snapshot) == target.stateDigest else {
            // Forged, stale or from another cluster: the next signer may serve the right one.
            reject(.invalidSnapshot)
            return askNextSigner(after: attempt, effects: &effects)
        }
        stateTransfer = nil
        install(snapshot, effects: &effects)
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
    /// Signers asked for this target so far.
    var tried: Int
}
