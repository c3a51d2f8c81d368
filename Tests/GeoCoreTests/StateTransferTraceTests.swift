import GeoCore
import GeoSim
import Testing

/// Traces of one replica's state-transfer decisions, input by input.
@Suite struct StateTransferTraceTests {
    let configuration = PBFTConfiguration(cluster: cluster0, quorum: Quorum(n: 4)!, index: 1, batchSize: 10, window: 8,
                                          checkpointEvery: 4, viewTimeoutTicks: 50, fetchIntervalTicks: 6, pendingLimit: 100)

    func peer(_ index: UInt16) -> ReplicaID { ReplicaID(cluster: cluster0, index: index) }

    func checkpoint(round: UInt64, by index: UInt16) -> Message {
        let statement = CheckpointStatement(cluster: cluster0, round: round, digest: Digest(w0: round, w1: 0, w2: 0, w3: 0))
        let signer = SimulatedCrypto(owner: peer(index), clientCount: 100)
        return .checkpoint(Checkpoint(statement: statement, replicaIndex: index, signature: signer.sign(.checkpoint(statement))))
    }

    /// An empty block of `round`, certified by replicas 0, 2 and 3.
    func certifiedBlock(round: UInt64) -> Message {
        let block = Block(cluster: cluster0, round: round, transactions: [])
        let statement = VoteStatement(cluster: cluster0, view: 0, round: round, digest: crypto.digest(of: block))
        let signatures = [UInt16(0), 2, 3].map { index in
            CertificateSignature(replicaIndex: index, signature: SimulatedCrypto(owner: peer(index), clientCount: 100).sign(.commit(statement)))
        }
        return .certifiedBlock(CertifiedBlock(block: block, certificate: CommitCertificate(statement: statement, signatures: signatures)))
    }

    func blockRequests(_ effects: [Effect]) -> [BlockRequest] {
        effects.compactMap { if case let .send(.blockRequest(request), _) = $0 { return request } else { return nil } }
    }

    func stateQueries(_ effects: [Effect]) -> Int {
        effects.filter { if case .broadcast(.stateRequest(let request)) = $0 { return request.height == 0 } else { return false } }.count
    }

    /// Real replicas caught it: a replica restarted on an empty disk hears its peers' old
    /// checkpoints first (frames their transports queued while it was down), starts fetching
    /// blocks while it seems only a little behind, and each batch that lands asks for the next
    /// at once (when a batch has landed), before a tick notices how far behind it is. Once it knows, the fetching must
    /// stop and the state query go out, whatever input told it.
    @Test func aReplicaThatLearnsItIsFarBehindBetweenTwoTicksStopsFetchingBlocks() {
        var replica = PBFTReplica(configuration: configuration, suite: SimulatedCrypto(owner: peer(1), clientCount: 100))
        // A little behind: f + 1 peers say round 24. The tick fetches blocks, no state query.
        _ = replica.step(.message(checkpoint(round: 24, by: 0), from: peer(0)))
        _ = replica.step(.message(checkpoint(round: 24, by: 2), from: peer(2)))
        let tick = replica.step(.tick)
        #expect(blockRequests(tick).map(\.fromRound) == [1])
        #expect(stateQueries(tick) == 0)
        // Newer checkpoints: round 300, far more than peers keep blocks for in memory (128).
        _ = replica.step(.message(checkpoint(round: 300, by: 0), from: peer(0)))
        _ = replica.step(.message(checkpoint(round: 300, by: 2), from: peer(2)))
        // The batch asked for lands: no next batch, the state query instead.
        for round in 1..<24 { _ = replica.step(.message(certifiedBlock(round: UInt64(round)), from: peer(0))) }
        let landed = replica.step(.message(certifiedBlock(round: 24), from: peer(0)))
        #expect(replica.lastDelivered == 24)
        #expect(blockRequests(landed).isEmpty, "\(landed)")
        #expect(stateQueries(landed) == 1)
        // And the ticks that follow wait for the answers, for a while.
        for _ in 0..<10 {
            #expect(blockRequests(replica.step(.tick)).isEmpty)
        }
    }

    /// A snapshot at round `round` and the state checkpoint `index` signs over it.
    func snapshot(round: UInt64) -> LedgerSnapshot {
        LedgerSnapshot(shard: cluster0.shard, round: round, height: round, head: Digest(w0: round, w1: 1, w2: 0, w3: 0),
                       localHead: Digest(w0: round, w1: 2, w2: 0, w3: 0), state: KeyValueStore(values: [Array("k".utf8): [7]]),
                       lastExecution: [:], crossShard: nil)
    }

    func stateCheckpoint(_ snapshot: LedgerSnapshot, by index: UInt16) -> Message {
        let statement = StateStatement(cluster: cluster0, round: snapshot.round, height: snapshot.height, ledgerHead: snapshot.head,
                                       localHead: snapshot.localHead, stateDigest: crypto.digest(of: snapshot))
        let signer = SimulatedCrypto(owner: peer(index), clientCount: 100)
        return .stateCheckpoint(StateCheckpoint(statement: statement, replicaIndex: index, signature: signer.sign(.stateCheckpoint(statement))))
    }

    /// Real replicas on a loaded machine saw a snapshot come seconds after they asked for it,
    /// after the next signer had been asked and the transfer had paused: it was refused as
    /// unexpected and the replica replayed the ledger block by block. An answer to an ask is
    /// checked and installed however late it comes.
    @Test func aSnapshotThatComesLateIsStillInstalled() {
        var replica = PBFTReplica(configuration: configuration, suite: SimulatedCrypto(owner: peer(1), clientCount: 100))
        _ = replica.step(.message(checkpoint(round: 300, by: 0), from: peer(0)))
        _ = replica.step(.message(checkpoint(round: 300, by: 2), from: peer(2)))
        _ = replica.step(.tick)
        let state = snapshot(round: 296)
        _ = replica.step(.message(stateCheckpoint(state, by: 0), from: peer(0)))
        let asked = replica.step(.message(stateCheckpoint(state, by: 2), from: peer(2)))
        #expect(asked.contains(.send(.stateRequest(StateRequest(cluster: cluster0, height: 296)), to: peer(0))), "\(asked)")
        // Neither signer answers in time: the second is asked, then transfers pause.
        var later: [Effect] = []
        for _ in 0..<400 { later += replica.step(.tick) }
        #expect(later.contains(.send(.stateRequest(StateRequest(cluster: cluster0, height: 296)), to: peer(2))))
        #expect(replica.lastDelivered == 0)
        // The first signer's answer comes at last.
        let installed = replica.step(.message(.stateTransfer(state), from: peer(0)))
        #expect(installed.contains(.installedSnapshot(state)), "\(installed)")
        #expect(replica.ledger.height == 296 && replica.rejections.isEmpty, "\(replica.rejections)")
        // A second answer to the same ask is not read.
        _ = replica.step(.message(.stateTransfer(state), from: peer(0)))
        #expect(replica.rejections[.unexpected] == 1)
    }
}
