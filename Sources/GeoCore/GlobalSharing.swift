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

extension PBFTReplica {
    static let unsigned = Signature(bytes: [UInt8](repeating: 0, count: Signature.byteCount))!

    var otherClusters: [UInt16] {
        (0..<UInt16(configuration.clustersInShard)).filter { $0 != cluster.index }
    }

    func remoteCluster(_ index: UInt16) -> ClusterID { ClusterID(shard: cluster.shard, index: index) }

    /// Primary: sends a block of ours to f + 1 replicas of every other cluster of the shard.
    mutating func share(_ block: CertifiedBlock, effects: inout [Effect]) {
        for index in otherClusters {
            let receivers = configuration.shardQuorums[Int(index)].weak
            for replica in 0..<receivers {
                effects.append(.send(.certifiedBlock(block), to: ReplicaID(cluster: remoteCluster(index), index: UInt16(replica))))
            }
        }
    }

    /// New primary after a remote view change: re-shares what the remote cluster reported missing.
    mutating func reshare(effects: inout [Effect]) {
        guard let from = reshareFrom, lastDelivered > 0 else { return }
        reshareFrom = nil
        let first = max(from, lastDelivered > fetchBatch ? lastDelivered - fetchBatch + 1 : 1)
        guard first <= lastDelivered else { return }
        for round in first...lastDelivered {
            if let block = delivered[round] { share(block, effects: &effects) }
        }
    }

    /// A message from a replica of another cluster: a shared block, or a remote view change request.
    mutating func onRemoteMessage(_ message: Message, from: ReplicaID, effects: inout [Effect]) {
        guard from.cluster.shard == cluster.shard, Int(from.cluster.index) < configuration.clustersInShard,
              Int(from.index) < configuration.shardQuorums[Int(from.cluster.index)].n else {
            return reject(.wrongCluster)
        }
        switch message {
        case let .certifiedBlock(block) where block.block.cluster == from.cluster:
            acceptRemote(block, forward: true, effects: &effects)
        case let .remoteViewChange(request) where request.phase == .request && request.sender == from:
            onRemoteRequest(request, forwarded: false, effects: &effects)
        case let .blockRequest(request) where request.cluster == cluster:
            // A replica of another cluster missing our blocks: serve them, certificates and all.
            onBlockRequest(request, from: from, effects: &effects)
        default:
            reject(.wrongCluster)
        }
    }

    /// Checks a remote cluster's certified block and hands it to the ledger; a designated receiver
    /// (`forward`) passes it on to its own cluster.
    mutating func acceptRemote(_ certified: CertifiedBlock, forward: Bool, effects: inout [Effect]) {
        let remote = certified.block.cluster
        let round = certified.block.round
        guard remote.shard == cluster.shard, remote != cluster, Int(remote.index) < configuration.clustersInShard else {
            return reject(.wrongCluster)
        }
        // Bounded: a block far ahead of the ledger is refused (its cluster cannot be that far ahead
        // of a correct one, since primaries stay within a window of the ledger).
        guard round >= ledger.round, round < ledger.round + 4 * window else { return }
        guard !ledger.holds(cluster: remote.index, round: round) else { return }
        guard CertificateCheck.isValid(certified, quorum: configuration.shardQuorums[Int(remote.index)], suite: suite) else {
            return reject(.invalidCertificate)
        }
        effects.append(.persist(.remote(certified)))
        remoteBlocks[remote.index, default: [:]][round] = certified
        remoteHighestRound = max(remoteHighestRound, round)
        ledger.add(certified, digest: certified.certificate.statement.digest)
        if forward { effects.append(.broadcast(.certifiedBlock(certified))) }
        // Only the block we wait for stops the timer: later ones do not make up for it.
        if let wait = remoteWaits[remote.index], wait.round == round {
            remoteWaits[remote.index] = nil
            remoteFetchFromSource[remote.index] = nil
        }
        executeLedger(effects: &effects)
        propose(partial: false, effects: &effects)
    }

    /// On every tick: time the remote blocks of the round the ledger waits on. Half a timeout: ask
    /// our own cluster (a forward may have been lost); a whole timeout: detect (DRvc).
    mutating func checkRemoteClusters(effects: inout [Effect]) {
        guard configuration.clustersInShard > 1 else { return }
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
            let fetchDue = now - (lastRemoteFetch[index] ?? 0) >= configuration.fetchIntervalTicks
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
            lastRemoteFetch[index] = now
            let request = BlockRequest(cluster: remoteCluster(index), fromRound: round, toRound: round + fetchBatch - 1)
            advanceFetchPeer()
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
                                       sender: configuration.me, signature: Self.unsigned)
        message.signature = suite.sign(.remoteViewChange(message))
        return message
    }

    /// Broadcasts our DRvc for `target` at our current attempt.
    mutating func detect(_ target: UInt16, round: UInt64, effects: inout [Effect]) {
        let attempt = remoteAttempts[target] ?? 1
        if let mine = detections[target]?[configuration.index], mine.attempt >= attempt { return }
        effects.append(.broadcast(.remoteViewChange(signedRemoteViewChange(.detect, target: target, round: round, attempt: attempt))))
        recordDetection(target, index: configuration.index, attempt: attempt, round: round, effects: &effects)
    }

    /// A remote view change message from a replica of our own cluster: its DRvc, or an Rvc of a
    /// remote cluster that it received and forwards to us.
    mutating func onDetection(_ message: RemoteViewChange, from: ReplicaID, effects: inout [Effect]) {
        switch message.phase {
        case .detect:
            let target = message.target
            guard target.shard == cluster.shard, target != cluster, Int(target.index) < configuration.clustersInShard else {
                return reject(.wrongCluster)
            }
            guard message.sender == from else { return reject(.senderMismatch) }
            if let existing = detections[target.index]?[from.index], existing.attempt >= message.attempt { return }
            guard suite.isValid(message.signature, of: .remoteViewChange(message), by: from) else { return reject(.badSignature) }
            recordDetection(target.index, index: from.index, attempt: message.attempt, round: message.round, effects: &effects)
        case .request:
            onRemoteRequest(message, forwarded: true, effects: &effects)
        }
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
    /// cluster (then we forward it inside our cluster), or forwarded by one of our peers. f + 1 of
    /// them from distinct replicas of one cluster, for an attempt not yet honoured, start a view change.
    mutating func onRemoteRequest(_ request: RemoteViewChange, forwarded: Bool, effects: inout [Effect]) {
        let sender = request.sender
        guard request.phase == .request, request.target == cluster, sender.cluster.shard == cluster.shard,
              sender.cluster != cluster, Int(sender.cluster.index) < configuration.clustersInShard,
              Int(sender.index) < configuration.shardQuorums[Int(sender.cluster.index)].n else { return reject(.wrongCluster) }
        let source = sender.cluster.index
        if let existing = requests[source]?[sender.index], existing.attempt >= request.attempt { return }
        guard suite.isValid(request.signature, of: .remoteViewChange(request), by: sender) else { return reject(.badSignature) }
        requests[source, default: [:]][sender.index] = (request.attempt, request.round)
        if !forwarded { effects.append(.broadcast(.remoteViewChange(request))) }
        let honored = honoredAttempts[source] ?? 0
        let fresh = requests[source, default: [:]].values.filter { $0.attempt > honored }
        guard fresh.count >= configuration.shardQuorums[Int(source)].weak else { return }
        // At least one correct replica of the asking cluster finds our blocks late.
        honoredAttempts[source] = fresh.map(\.attempt).min() ?? honored + 1
        let missing = fresh.map(\.round).min() ?? lastDelivered
        reshareFrom = min(reshareFrom ?? missing, missing)
        // One view change answers every asking cluster, since the new primary re-shares to all of
        // them. Requests that arrive while a view change is under way, or soon after one started or
        // ended (for whatever reason: a local timeout, peers we joined, another cluster's request),
        // are the same complaint: honouring each with a view change of its own moved a cluster
        // several views at once, back onto the faulty primary whenever the count was a multiple of
        // n (the simulator found it on geo-4x4: seeds 1321 and 1740). A remote cluster asks again
        // only a whole remote timeout later, past this grace, if the new primary did not deliver.
        if case .changingView = status { return }
        if let last = lastViewChange, now - last < configuration.remoteTimeoutTicks / 2 {
            if isPrimary { reshare(effects: &effects) }
            return
        }
        startViewChange(to: view + 1, reason: .remoteRequest, effects: &effects)
    }
}
