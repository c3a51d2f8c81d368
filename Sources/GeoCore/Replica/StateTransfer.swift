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

/// Where the replica stands, as state transfer needs to know it (the composer makes it).
struct ReplicaPosition: Sendable {
    /// The shard ledger's next round, and its height (rounds executed times clusters).
    var ledgerRound: UInt64
    var ledgerHeight: UInt64
    /// The highest round of its cluster known to be committed (or stable).
    var committed: UInt64
    var lastDelivered: UInt64
}

/// What a state checkpoint or a snapshot leads to.
enum TransferOutcome: Sendable, Equatable {
    case none
    /// A checked snapshot, vouched for by f + 1 state checkpoints: the composer installs it.
    case install(LedgerSnapshot)
    /// A snapshot that does not check: counted as `invalidSnapshot` (the next signer was asked).
    case refused
}

/// The state-transfer sub-machine: state checkpoints of this replica and its peers, the
/// snapshot being fetched, and the rate limits of serving them.
struct StateTransfer: Sendable {
    let configuration: PBFTConfiguration
    let suite: any CryptoSuite

    /// Each replica's recent state checkpoints, lowest height first (at most
    /// `checkpointsKept` per replica: bounded by n).
    var checkpoints: [UInt16: [StateCheckpoint]] = [:]
    /// This replica's latest two state checkpoints, those of the snapshots its shell keeps (sent
    /// to a peer that asks).
    var own: [StateCheckpoint] = []
    /// The snapshot being fetched, if any.
    var attempt: StateTransferAttempt?
    /// Peers asked for a snapshot and not answered yet, with the height asked for (one per peer:
    /// bounded by n; cleared when a snapshot is installed); only their answers are read.
    var asked: [UInt16: UInt64] = [:]
    /// A snapshot received and waiting for the state checkpoints of its height.
    var received: ReceivedSnapshot?
    // Its timers are in the replica's table: `.stateQuery` (the last query of the peers' state
    // checkpoints), `.farBehind` (since when it is further behind than peers keep blocks for),
    // `.transferPause` (no new transfer before its deadline: every signer of a target failed).
    /// When each peer was last served a snapshot (one per peer: bounded by n).
    var lastServed: [UInt16: UInt64] = [:]
    /// Snapshots installed by state transfer.
    var installed = 0

    init(configuration: PBFTConfiguration, suite: any CryptoSuite) {
        self.configuration = configuration
        self.suite = suite
    }

    var cluster: ClusterID { configuration.cluster }
    var quorum: Quorum { configuration.quorum }

    /// Ticks to wait for a snapshot before asking the next signer.
    var patienceTicks: UInt64 { max(configuration.viewTimeoutTicks, 20) }

    /// How long a received snapshot may wait for the state checkpoints of its height.
    var answerTicks: UInt64 { 4 * patienceTicks }

    /// State checkpoints kept per peer: enough that peers a snapshot or two apart still have
    /// f + 1 matching ones, and that a newer snapshot served in place of a rotated one finds its own.
    static let checkpointsKept = 4

    /// Signs and broadcasts the state checkpoint of a snapshot this replica just took (or, with
    /// effects it drops, of the snapshot it restarted from: signing is deterministic, so it is
    /// the one it signed before, and it can answer peers' state queries at once).
    mutating func sign(_ snapshot: LedgerSnapshot, effects: inout [Effect]) {
        let statement = StateStatement(cluster: cluster, round: snapshot.round, height: snapshot.height, ledgerHead: snapshot.head,
                                       localHead: snapshot.localHead, stateDigest: suite.digest(of: snapshot))
        let checkpoint = StateCheckpoint(statement: statement, replicaIndex: configuration.index,
                                         signature: suite.sign(.stateCheckpoint(statement)))
        own = Array((own + [checkpoint]).suffix(2))
        keep(checkpoint)
        effects.append(.broadcast(.stateCheckpoint(checkpoint)))
    }

    /// Adds a checked state checkpoint to its signer's recent ones (ascending, the latest few).
    mutating func keep(_ checkpoint: StateCheckpoint) {
        var kept = checkpoints[checkpoint.replicaIndex, default: []]
        kept.append(checkpoint)
        kept.sort { $0.statement.height < $1.statement.height }
        checkpoints[checkpoint.replicaIndex] = Array(kept.suffix(Self.checkpointsKept))
    }

    mutating func onCheckpoint(_ checkpoint: StateCheckpoint, from: ReplicaID, position: ReplicaPosition, timers: inout TimerTable,
                               effects: inout [Effect]) throws(Rejection) -> TransferOutcome {
        let statement = checkpoint.statement
        guard statement.cluster == cluster else { throw .wrongCluster }
        guard checkpoint.replicaIndex == from.index else { throw .senderMismatch }
        // Peer-supplied numbers: no arithmetic that can trap.
        let (height, overflow) = statement.round.multipliedReportingOverflow(by: UInt64(configuration.clustersInShard))
        guard !overflow, statement.height == height else { throw .invalidSnapshot }
        // Known already, or older than all we keep of this peer: nothing to verify.
        let kept = checkpoints[from.index, default: []]
        if kept.contains(where: { $0.statement.height == statement.height }) { return .none }
        if kept.count >= Self.checkpointsKept, let oldest = kept.first, statement.height < oldest.statement.height { return .none }
        guard suite.isValid(checkpoint.signature, of: .stateCheckpoint(statement), by: from) else { throw .badSignature }
        keep(checkpoint)
        if received != nil { return installIfVouched(position: position, timers: &timers, effects: &effects) }
        startIfBehind(position: position, timers: &timers, effects: &effects)
        return .none
    }

    /// The replicas whose kept state checkpoints hold `statement`.
    func signers(of statement: StateStatement) -> [UInt16] {
        checkpoints.compactMap { index, kept in kept.contains { $0.statement == statement } ? index : nil }.sorted()
    }

    /// Whether f + 1 replicas of the cluster signed `statement` (one correct replica among them).
    func isVouched(_ statement: StateStatement) -> Bool { signers(of: statement).count >= quorum.weak }

    /// The highest state statement f + 1 replicas of the cluster signed, with its signers.
    func vouchedState() -> (statement: StateStatement, signers: [UInt16])? {
        var best: (statement: StateStatement, signers: [UInt16])?
        for kept in checkpoints.values {
            for candidate in kept where candidate.statement.height > (best?.statement.height ?? 0) {
                let signers = signers(of: candidate.statement)
                if signers.count >= quorum.weak { best = (candidate.statement, signers) }
            }
        }
        return best
    }

    /// Starts a transfer when f + 1 replicas vouch for a state further ahead of our ledger than
    /// peers keep blocks for in memory (closer than that, fetching blocks is cheaper).
    mutating func startIfBehind(position: ReplicaPosition, timers: inout TimerTable, effects: inout [Effect]) {
        guard attempt == nil, received == nil, !timers.isRunning(.transferPause) || timers.isDue(.transferPause),
              let (target, signers) = vouchedState(),
              target.round >= position.ledgerRound + configuration.blocksInMemoryRounds else { return }
        guard let peer = signers.first(where: { $0 != configuration.index }) else { return }
        ask(target, from: peer, tried: 0, timers: &timers, effects: &effects)
    }

    mutating func ask(_ target: StateStatement, from peer: UInt16, tried: Int, timers: inout TimerTable, effects: inout [Effect]) {
        attempt = StateTransferAttempt(target: target, peer: peer, since: timers.now, tried: tried + 1)
        asked[peer] = target.height
        effects.append(.send(.stateRequest(StateRequest(cluster: cluster, height: target.height)), to: configuration.replica(peer)))
    }

    /// On every tick: a snapshot late from its peer is asked of the next signer; a replica far
    /// behind that knows of no vouched state asks its peers for their latest state checkpoints.
    mutating func tick(position: ReplicaPosition, timers: inout TimerTable, effects: inout [Effect]) {
        if let received, timers.now - received.since >= answerTicks { self.received = nil }
        if let attempt {
            if attempt.target.round < position.ledgerRound {
                self.attempt = nil
            } else if timers.now - attempt.since >= patienceTicks {
                askNextSigner(after: attempt, position: position, timers: &timers, effects: &effects)
            }
            return
        }
        noteFarBehind(position: position, timers: &timers, effects: &effects)
    }

    /// Whether this replica is further behind its cluster than peers keep blocks for in memory;
    /// when it is, it asks its peers for their latest state checkpoints (at most once a view
    /// timeout). Checked on every tick and before every block request: a replica that learns
    /// step by step how far its cluster got (from the frames its peers queued while it was
    /// down) is already fetching blocks, and each batch that lands asks for the next at once.
    mutating func noteFarBehind(position: ReplicaPosition, timers: inout TimerTable, effects: inout [Effect]) {
        let farBehind = position.committed >= position.lastDelivered + configuration.blocksInMemoryRounds
        if farBehind { timers.startIfIdle(.farBehind) } else { timers.cancel(.farBehind) }
        if farBehind, timers.hasRun(.stateQuery, ticks: configuration.viewTimeoutTicks, idle: true) {
            timers.start(.stateQuery)
            effects.append(.broadcast(.stateRequest(StateRequest(cluster: cluster, height: 0))))
        }
    }

    /// Far behind, fetching blocks waits: while a snapshot is being fetched or checked, and for a
    /// short while after falling behind, for the peers to answer the state query. When no state
    /// is vouched for by then (no snapshot taken yet), the blocks come from the peers' stores.
    func prefersTransfer(timers: TimerTable) -> Bool {
        if attempt != nil || received != nil { return true }
        guard let waited = timers.elapsed(.farBehind) else { return false }
        return waited < 2 * patienceTicks
    }

    /// The next signer of the highest vouched state. After as many attempts as that state has
    /// other signers, all in vain (none serves a snapshot that checks, or it is too large for a
    /// frame), the replica fetches blocks for a while and asks for state checkpoints again: a
    /// transfer never holds block fetching up for long, whatever the peers do.
    mutating func askNextSigner(after previous: StateTransferAttempt, position: ReplicaPosition, timers: inout TimerTable,
                                effects: inout [Effect]) {
        attempt = nil
        guard let (target, signers) = vouchedState(), target.round >= position.ledgerRound else { return }
        let others = signers.filter { $0 != configuration.index }
        guard !others.isEmpty, previous.tried < others.count else {
            timers.setDeadline(.transferPause, at: timers.now + 4 * patienceTicks)
            timers.cancel(.stateQuery)
            return
        }
        let next = others.first(where: { $0 > previous.peer }) ?? others[0]
        ask(target, from: next, tried: previous.tried, timers: &timers, effects: &effects)
    }

    mutating func onRequest(_ request: StateRequest, from: ReplicaID, position: ReplicaPosition, timers: inout TimerTable,
                            effects: inout [Effect]) throws(Rejection) {
        guard request.cluster == cluster else { throw .wrongCluster }
        if request.height == 0 {
            for checkpoint in own { effects.append(.send(.stateCheckpoint(checkpoint), to: from)) }
            return
        }
        // Snapshots are read from disk and can be large: at most one per peer in the time a peer
        // waits for one, and only of a height this replica passed (the shell keeps the latest two).
        guard request.height <= position.ledgerHeight, request.height % UInt64(configuration.clustersInShard) == 0 else { return }
        if let last = lastServed[from.index], timers.now - last < patienceTicks { return }
        lastServed[from.index] = timers.now
        effects.append(.serveSnapshot(atOrAbove: request.height, to: from))
    }

    /// A snapshot from a peer this replica asked, however late (an answer that comes after the
    /// next signer was asked, or after a pause began, is still checked and used: on a loaded
    /// machine real replicas saw answers come seconds after the ask). One answer per ask.
    mutating func onSnapshot(_ received: LedgerSnapshot, from: ReplicaID, position: ReplicaPosition, timers: inout TimerTable,
                             effects: inout [Effect]) throws(Rejection) -> TransferOutcome {
        guard let askedHeight = asked.removeValue(forKey: from.index) else { throw .unexpected }
        // The wire carries no cross-shard layout: the receiver's own goes in.
        var snapshot = received
        switch (snapshot.crossShard, configuration.crossShard) {
        case (nil, nil): break
        case let (state?, layout?):
            snapshot.crossShard = CrossShardState(layout: layout, locks: state.locks, coordinating: state.coordinating,
                                                  participating: state.participating, watermarks: state.watermarks,
                                                  decisions: state.decisions, decisionOrder: state.decisionOrder)
        default:
            return refuse(from: from.index, position: position, timers: &timers, effects: &effects)
        }
        // The one asked for, or a newer one (the asked one rotated away at the peer); never older.
        guard snapshot.shard == cluster.shard, snapshot.height >= askedHeight,
              snapshot.height == snapshot.round &* UInt64(configuration.clustersInShard) else {
            return refuse(from: from.index, position: position, timers: &timers, effects: &effects)
        }
        // Passed meanwhile (by another snapshot or by blocks), or lower than one already waiting.
        guard snapshot.round > position.ledgerRound, snapshot.height > self.received?.snapshot.height ?? 0 else { return .none }
        let digest = suite.digest(of: snapshot)
        self.received = ReceivedSnapshot(snapshot: snapshot, digest: digest, from: from.index, since: timers.now)
        return installIfVouched(position: position, timers: &timers, effects: &effects)
    }

    /// The received snapshot, to install once a state statement of its height has f + 1 signers
    /// and it matches (heights, heads, state digest). One that differs from the vouched statement
    /// (forged, stale, or from another cluster) is refused, and the next signer asked if it came
    /// from the one asked last; one not yet vouched for (a newer snapshot than asked for) waits
    /// for the checkpoints of its height, for `answerTicks` at most.
    mutating func installIfVouched(position: ReplicaPosition, timers: inout TimerTable, effects: inout [Effect]) -> TransferOutcome {
        guard let received else { return .none }
        let snapshot = received.snapshot
        guard snapshot.round > position.ledgerRound else { self.received = nil; return .none }
        let vouched = checkpoints.values.lazy.flatMap { $0 }.map(\.statement)
            .first { $0.height == snapshot.height && self.isVouched($0) }
        guard let statement = vouched else { return .none }
        guard snapshot.round == statement.round, snapshot.head == statement.ledgerHead,
              snapshot.localHead == statement.localHead, received.digest == statement.stateDigest else {
            self.received = nil
            return refuse(from: received.from, position: position, timers: &timers, effects: &effects)
        }
        attempt = nil
        self.received = nil
        asked = [:]
        timers.cancel(.transferPause)
        installed += 1
        return .install(snapshot)
    }

    /// A snapshot that does not check (forged, stale, from another cluster) is refused, and the
    /// next signer asked if it came from the one asked last.
    mutating func refuse(from peer: UInt16, position: ReplicaPosition, timers: inout TimerTable, effects: inout [Effect]) -> TransferOutcome {
        if let attempt, attempt.peer == peer { askNextSigner(after: attempt, position: position, timers: &timers, effects: &effects) }
        return .refused
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
