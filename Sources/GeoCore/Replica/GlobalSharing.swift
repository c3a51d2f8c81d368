// GeoBFT's global layer (DESIGN 2.2): the clusters of a shard share certified blocks and push a
// cluster whose blocks are late through a remote view change.
//
// - Sharing: when the primary delivers its cluster's block of round r, it sends the block with its
//   commit certificate to f+1 replicas of every other cluster (f of the receiving cluster), so at
//   least one correct replica receives it; a receiver checks the certificate against the sending
//   cluster's keys and forwards it to its own cluster. Nobody re-verifies the client signatures
//   inside: n - f signers include f + 1 correct replicas that did.
// - Remote view change: each replica times the block of every remote cluster for the round the
//   ledger waits on. Late: it broadcasts DRvc in its cluster; f + 1 DRvc make a replica join; with
//   n - f, replica i sends Rvc to replica i of the late cluster. f + 1 Rvc of one remote cluster,
//   for an attempt not yet honoured, start a local view change there, and the new primary
//   re-shares from the round reported missing.
//
// A sub-machine of the replica: it owns the remote clusters' blocks and timers and the remote
// view change votes; the composer hands it what it needs (the ledger, the next peer to ask) and
// acts on what it returns (a remote block accepted, an attempt honoured).

struct GlobalSharing: Sendable {
    let configuration: PBFTConfiguration
    let suite: any CryptoSuite

    /// Recent certified blocks of the other clusters of the shard, by cluster index then round,
    /// kept to serve peers that missed them (bounded like the composer's `delivered`).
    var remoteBlocks: [UInt16: [UInt64: CertifiedBlock]] = [:]
    /// The highest round of any other cluster seen: the primary keeps up with it (no-op blocks).
    var remoteHighestRound: UInt64 = 0
    /// Per remote cluster: since when this replica waits for its block of a round.
    var remoteWaits: [UInt16: (round: UInt64, since: UInt64)] = [:]
    /// Per remote cluster: whether this replica now asks the remote cluster's replicas for its
    /// blocks (after a whole timeout) rather than its own peers. When it last asked is the timer
    /// `.remoteFetch(cluster)` of the replica's table.
    var remoteFetchFromSource: [UInt16: Bool] = [:]
    /// Per remote cluster: the remote view change attempt being asked for next.
    var remoteAttempts: [UInt16: UInt64] = [:]
    /// Per remote cluster and own replica: its latest DRvc (attempt, round).
    var detections: [UInt16: [UInt16: (attempt: UInt64, round: UInt64)]] = [:]
    /// Per remote cluster and own replica index of that cluster: the latest Rvc it sent us.
    var requests: [UInt16: [UInt16: (attempt: UInt64, round: UInt64)]] = [:]
    /// Per remote cluster: the highest attempt that already moved this cluster to a new view.
    var honoredAttempts: [UInt16: UInt64] = [:]
    /// The earliest round a remote cluster reported missing: the next primary re-shares from it.
    var reshareFrom: UInt64?

    init(configuration: PBFTConfiguration, suite: any CryptoSuite) {
        self.configuration = configuration
        self.suite = suite
    }

    var cluster: ClusterID { configuration.cluster }
    var quorum: Quorum { configuration.quorum }

    var otherClusters: [UInt16] {
        (0..<UInt16(configuration.clustersInShard)).filter { $0 != cluster.index }
    }

    func remoteCluster(_ index: UInt16) -> ClusterID { ClusterID(shard: cluster.shard, index: index) }

    /// Primary: sends a block of ours to f + 1 replicas of every other cluster of the shard.
    func share(_ block: CertifiedBlock, effects: inout [Effect]) {
        for index in otherClusters {
            let receivers = configuration.shardQuorums[Int(index)].weak
            for replica in 0..<receivers {
                effects.append(.send(.certifiedBlock(block), to: ReplicaID(cluster: remoteCluster(index), index: UInt16(replica))))
            }
        }
    }

    /// New primary after a remote view change: re-shares what the remote cluster reported missing.
    mutating func reshare(lastDelivered: UInt64, delivered: [UInt64: CertifiedBlock], effects: inout [Effect]) {
        guard let from = reshareFrom, lastDelivered > 0 else { return }
        reshareFrom = nil
        let fetchBatch = configuration.fetchBatch
        let first = max(from, lastDelivered > fetchBatch ? lastDelivered - fetchBatch + 1 : 1)
        guard first <= lastDelivered else { return }
        for round in first...lastDelivered {
            if let block = delivered[round] { share(block, effects: &effects) }
        }
    }

    /// Checks a remote cluster's certified block and keeps it; a designated receiver (`forward`)
    /// passes it on to its own cluster. Returns whether it is new: the composer then hands it to
    /// the ledger.
    mutating func accept(_ certified: CertifiedBlock, forward: Bool, ledger: ShardLedger,
                         effects: inout [Effect]) throws(Rejection) -> Bool {
        let remote = certified.block.cluster
        let round = certified.block.round
        guard remote.shard == cluster.shard, remote != cluster, Int(remote.index) < configuration.clustersInShard else {
            throw .wrongCluster
        }
        // Bounded: a block far ahead of the ledger is refused (its cluster cannot be that far ahead
        // of a correct one, since primaries stay within a window of the ledger).
        guard round >= ledger.round, round < ledger.round + 4 * configuration.window else { return false }
        guard !ledger.holds(cluster: remote.index, round: round) else { return false }
        guard CertificateCheck.isValid(certified, quorum: configuration.shardQuorums[Int(remote.index)], suite: suite) else {
            throw .invalidCertificate
        }
        effects.append(.persist(.remote(certified)))
        remoteBlocks[remote.index, default: [:]][round] = certified
        remoteHighestRound = max(remoteHighestRound, round)
        if forward { effects.append(.broadcast(.certifiedBlock(certified))) }
        // Only the block we wait for stops the timer: later ones do not make up for it.
        if let wait = remoteWaits[remote.index], wait.round == round {
            remoteWaits[remote.index] = nil
            remoteFetchFromSource[remote.index] = nil
        }
        return true
    }

    /// On every tick: time the remote blocks of the round the ledger waits on. Half a timeout: ask
    /// our own cluster (a forward may have been lost); a whole timeout: detect (DRvc).
    mutating func tick(ledger: ShardLedger, lastDelivered: UInt64, timers: inout TimerTable, fetchPeer: inout UInt16,
                       effects: inout [Effect]) {
        guard configuration.clustersInShard > 1 else { return }
        let now = timers.now
        let round = ledger.round
        // Only a cluster that holds up a round we could otherwise execute is late.
        guard lastDelivered >= round else {
            remoteWaits = [:]
            return
        }
        for index in otherClusters {
            if ledger.holds(cluster: index, round: round) {
                remoteWaits[index] = nil
                remoteFetchFromSource[index] = nil
                continue
            }
            guard let wait = remoteWaits[index], wait.round == round else {
                remoteWaits[index] = (round, now)
                remoteFetchFromSource[index] = nil
                continue
            }
            let waited = now - wait.since
            // Behind, rather than waiting on a slow cluster: later blocks exist (remote ones, or
            // our own cluster is well ahead), so a peer of ours very likely holds this one.
            let behind = remoteHighestRound > round || lastDelivered > round + 1
            let fetchDue = now - (timers.started(.remoteFetch(index)) ?? 0) >= configuration.fetchIntervalTicks
            // A whole timeout: the cluster's primary did not share this block in time. Ask for a
            // remote view change (it takes n - f of us to agree) and start a fresh timeout, so
            // requests are at least a timeout apart and a cluster that is changing view is given
            // the time to do it; meanwhile fetch the block from any of its replicas, whose
            // certificates make their copies as good as the primary's.
            let late = waited >= configuration.remoteTimeoutTicks
            if late {
                detect(index, round: round, effects: &effects)
                remoteWaits[index] = (round, now)
                remoteFetchFromSource[index] = true
            }
            guard fetchDue, behind || late || waited >= configuration.remoteTimeoutTicks / 2 else { continue }
            timers.start(.remoteFetch(index))
            let request = BlockRequest(cluster: remoteCluster(index), fromRound: round, toRound: round + configuration.fetchBatch - 1)
            fetchPeer = configuration.nextPeer(after: fetchPeer)
            if remoteFetchFromSource[index] != true {
                // A peer of ours probably has it (a forward was lost, or we were down).
                effects.append(.send(.blockRequest(request), to: configuration.replica(fetchPeer)))
            } else {
                let remoteN = configuration.shardQuorums[Int(index)].n
                let target = UInt16((Int(fetchPeer) + Int(now / max(1, configuration.fetchIntervalTicks))) % remoteN)
                effects.append(.send(.blockRequest(request), to: ReplicaID(cluster: remoteCluster(index), index: target)))
            }
        }
    }

    func signedRemoteViewChange(_ phase: RemoteViewChange.Phase, target: UInt16, round: UInt64, attempt: UInt64) -> RemoteViewChange {
        var message = RemoteViewChange(phase: phase, target: remoteCluster(target), round: round, attempt: attempt,
                                       sender: configuration.me, signature: .unsigned)
        message.signature = suite.sign(.remoteViewChange(message))
        return message
    }

    /// Broadcasts our DRvc for `target` at our current attempt.
    mutating func detect(_ target: UInt16, round: UInt64, effects: inout [Effect]) {
        let attempt = remoteAttempts[target] ?? 1
        if let mine = detections[target]?[configuration.index], mine.attempt >= attempt { return }
        effects.append(.event(.remoteClusterSuspected(cluster: target, round: round, attempt: attempt)))
        effects.append(.broadcast(.remoteViewChange(signedRemoteViewChange(.detect, target: target, round: round, attempt: attempt))))
        recordDetection(target, index: configuration.index, attempt: attempt, round: round, effects: &effects)
    }

    /// A peer's DRvc: a replica of our own cluster finds a remote cluster late.
    mutating func onDetection(_ message: RemoteViewChange, from: ReplicaID, effects: inout [Effect]) throws(Rejection) {
        let target = message.target
        guard target.shard == cluster.shard, target != cluster, Int(target.index) < configuration.clustersInShard else {
            throw .wrongCluster
        }
        guard message.sender == from else { throw .senderMismatch }
        if let existing = detections[target.index]?[from.index], existing.attempt >= message.attempt { return }
        guard suite.isValid(message.signature, of: .remoteViewChange(message), by: from) else { throw .badSignature }
        recordDetection(target.index, index: from.index, attempt: message.attempt, round: message.round, effects: &effects)
    }

    mutating func recordDetection(_ target: UInt16, index: UInt16, attempt: UInt64, round: UInt64, effects: inout [Effect]) {
        detections[target, default: [:]][index] = (attempt, round)
        let current = remoteAttempts[target] ?? 1
        let votes = detections[target, default: [:]].values.filter { $0.attempt >= current }
        // f + 1 replicas of ours find the cluster late: at least one correct one does, so join.
        if votes.count >= quorum.weak, (detections[target]?[configuration.index]?.attempt ?? 0) < current {
            detect(target, round: votes.map(\.round).min() ?? round, effects: &effects)
            return
        }
        guard votes.count >= quorum.decide else { return }
        // n - f agree: ask our counterpart in the late cluster, and move to the next attempt.
        remoteAttempts[target] = current + 1
        if Int(configuration.index) < configuration.shardQuorums[Int(target)].n {
            let request = signedRemoteViewChange(.request, target: target, round: votes.map(\.round).min() ?? round, attempt: current)
            effects.append(.send(.remoteViewChange(request), to: ReplicaID(cluster: remoteCluster(target), index: configuration.index)))
        }
    }

    /// An Rvc asking our cluster for a view change: straight from our counterpart in the asking
    /// cluster (then we forward it inside our cluster), or forwarded by one of our peers. Returns
    /// true when f + 1 of them from distinct replicas of one cluster ask for an attempt not yet
    /// honoured: the composer then changes view (or coalesces it with one under way).
    mutating func onRequest(_ request: RemoteViewChange, forwarded: Bool, lastDelivered: UInt64,
                            effects: inout [Effect]) throws(Rejection) -> Bool {
        let sender = request.sender
        guard request.phase == .request, request.target == cluster, sender.cluster.shard == cluster.shard,
              sender.cluster != cluster, Int(sender.cluster.index) < configuration.clustersInShard,
              Int(sender.index) < configuration.shardQuorums[Int(sender.cluster.index)].n else { throw .wrongCluster }
        let source = sender.cluster.index
        if let existing = requests[source]?[sender.index], existing.attempt >= request.attempt { return false }
        guard suite.isValid(request.signature, of: .remoteViewChange(request), by: sender) else { throw .badSignature }
        requests[source, default: [:]][sender.index] = (request.attempt, request.round)
        if !forwarded { effects.append(.broadcast(.remoteViewChange(request))) }
        let honored = honoredAttempts[source] ?? 0
        let fresh = requests[source, default: [:]].values.filter { $0.attempt > honored }
        guard fresh.count >= configuration.shardQuorums[Int(source)].weak else { return false }
        // At least one correct replica of the asking cluster finds our blocks late.
        honoredAttempts[source] = fresh.map(\.attempt).min() ?? honored + 1
        let missing = fresh.map(\.round).min() ?? lastDelivered
        reshareFrom = min(reshareFrom ?? missing, missing)
        return true
    }

    /// A remote block the log recorded before a restart (checked when it was first accepted).
    mutating func restore(_ certified: CertifiedBlock) {
        remoteBlocks[certified.block.cluster.index, default: [:]][certified.block.round] = certified
        remoteHighestRound = max(remoteHighestRound, certified.block.round)
    }

    /// Blocks of other clusters held in memory.
    var blocksInMemory: Int { remoteBlocks.values.reduce(0) { $0 + $1.count } }

    /// Drops remote blocks below `floor` once a cluster's map holds more than `limit` (amortised).
    mutating func forget(below floor: UInt64, limit: Int) {
        for (index, blocks) in remoteBlocks where blocks.count > limit {
            remoteBlocks[index] = blocks.filter { $0.key >= floor }
        }
    }
}
