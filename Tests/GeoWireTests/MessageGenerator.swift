// Random, valid messages of every kind, from one seed.

import GeoCore
import GeoWire

struct MessageGenerator {
    var random: SeededRandom

    init(seed: UInt64) { random = SeededRandom(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    mutating func u64() -> UInt64 { random.next() }
    mutating func bytes(max: Int) -> [UInt8] { random.bytes(count: int(0...max)) }
    mutating func signature() -> Signature { Signature(bytes: random.bytes(count: 64))! }
    mutating func digest() -> Digest { Digest(bytes: random.bytes(count: 32))! }
    mutating func cluster() -> ClusterID { ClusterID(shard: ShardID(UInt16(int(0...3))), index: UInt16(int(0...5))) }
    mutating func replica() -> ReplicaID { ReplicaID(cluster: cluster(), index: UInt16(int(0...15))) }

    mutating func operation() -> Operation {
        switch int(0...3) {
        case 0: return .put(key: bytes(max: 24), value: bytes(max: 64))
        case 1: return .get(key: bytes(max: 24))
        case 2: return .add(key: bytes(max: 24), delta: Int64(bitPattern: u64()))
        default: return .transfer(from: bytes(max: 16), to: bytes(max: 16), amount: u64())
        }
    }

    mutating func transaction() -> ClientTransaction {
        ClientTransaction(client: ClientID(UInt32(int(0...100_000))), requestID: u64(), operation: operation(), signature: signature())
    }

    mutating func block() -> Block {
        let transactions = (0..<int(0...4)).map { _ in transaction() }
        // Half the blocks carry cross-shard statements (the other half keep the old encoding).
        let statements = int(0...1) == 0 ? [] : (0..<int(1...3)).map { _ in statementProof() }
        return Block(cluster: cluster(), round: u64(), transactions: transactions, statements: statements)
    }

    mutating func crossShardID() -> CrossShardID {
        CrossShardID(coordinator: ShardID(UInt16(int(0...3))), client: ClientID(UInt32(int(0...100_000))), requestID: u64())
    }

    mutating func vote() -> CrossShardVote {
        int(0...1) == 0 ? .commit : .abort(CrossShardAbort.allCases[int(0...(CrossShardAbort.allCases.count - 1))])
    }

    mutating func shardStatement() -> ShardStatement {
        let kind: ShardStatement.Kind
        switch int(0...2) {
        case 0: kind = .prepare(transaction())
        case 1: kind = .vote(crossShardID(), vote())
        default: kind = .decision(crossShardID(), vote())
        }
        return ShardStatement(source: ShardID(UInt16(int(0...3))), target: ShardID(UInt16(int(0...3))), kind: kind)
    }

    mutating func statementProof() -> ShardStatementProof {
        ShardStatementProof(statement: shardStatement(), cluster: cluster(),
                            signatures: indices(max: 4).map { CertificateSignature(replicaIndex: $0, signature: signature()) })
    }

    mutating func statement() -> VoteStatement {
        VoteStatement(cluster: cluster(), view: u64(), round: u64(), digest: digest())
    }

    mutating func result() -> ExecutionResult {
        switch int(0...7) {
        case 0: return .stored
        case 1: return .value(nil)
        case 2: return .value(bytes(max: 40))
        case 3: return .number(Int64(bitPattern: u64()))
        case 4: return .transferred(fromBalance: Int64(int(-5...1000)), toBalance: Int64(int(0...1000)))
        case 5: return .crossShardCommitted
        case 6: return .crossShardAborted(CrossShardAbort.allCases[int(0...(CrossShardAbort.allCases.count - 1))])
        default: return .refused(Refusal.allCases[int(0...(Refusal.allCases.count - 1))])
        }
    }

    mutating func prePrepare() -> PrePrepare {
        let block = block()
        return PrePrepare(view: u64() % 100, digest: digest(), block: block, signature: signature())
    }

    /// Strictly increasing distinct indices.
    mutating func indices(max count: Int) -> [UInt16] {
        var set = Set<UInt16>()
        for _ in 0..<int(0...count) { set.insert(UInt16(int(0...20))) }
        return set.sorted()
    }

    mutating func checkpointProof() -> CheckpointProof {
        let statement = CheckpointStatement(cluster: cluster(), round: u64(), digest: digest())
        return CheckpointProof(statement: statement, checkpoints: indices(max: 5).map {
            Checkpoint(statement: statement, replicaIndex: $0, signature: signature())
        })
    }

    mutating func viewChange() -> ViewChange {
        var round: UInt64 = u64() % 1000
        var prepared: [PreparedProof] = []
        for _ in 0..<int(0...3) {
            round += UInt64(int(1...5))
            var prePrepare = prePrepare()
            prePrepare.block.round = round
            let statement = prePrepare.statement
            prepared.append(PreparedProof(prePrepare: prePrepare, prepares: indices(max: 4).map {
                Prepare(statement: statement, replicaIndex: $0, signature: signature())
            }))
        }
        return ViewChange(cluster: cluster(), newView: u64(), checkpoint: checkpointProof(), prepared: prepared,
                          replicaIndex: UInt16(int(0...15)), signature: signature())
    }

    mutating func message(kind: MessageKind) -> Message {
        switch kind {
        case .clientTransaction:
            return .clientTransaction(transaction())
        case .prePrepare:
            return .prePrepare(prePrepare())
        case .prepare:
            return .prepare(Prepare(statement: statement(), replicaIndex: UInt16(int(0...15)), signature: signature()))
        case .commit:
            return .commit(Commit(statement: statement(), replicaIndex: UInt16(int(0...15)), signature: signature()))
        case .certifiedBlock:
            let signers = indices(max: 7).map { CertificateSignature(replicaIndex: $0, signature: signature()) }
            return .certifiedBlock(CertifiedBlock(block: block(), certificate: CommitCertificate(statement: statement(), signatures: signers)))
        case .reply:
            return .reply(Reply(client: ClientID(UInt32(int(0...1000))), requestID: u64(), replica: replica(), view: u64(),
                                result: result(), position: LedgerPosition(round: u64(), clusterIndex: UInt16(int(0...5)), height: u64())))
        case .busy:
            return .busy(Busy(client: ClientID(UInt32(int(0...1000))), requestID: u64(), replica: replica(), view: u64(),
                              retryAfterTicks: UInt32(int(0...100_000))))
        case .checkpoint:
            return .checkpoint(Checkpoint(statement: CheckpointStatement(cluster: cluster(), round: u64(), digest: digest()),
                                          replicaIndex: UInt16(int(0...15)), signature: signature()))
        case .viewChange:
            return .viewChange(viewChange())
        case .newView:
            var changes: [ViewChange] = []
            for index in indices(max: 3) {
                var change = viewChange()
                change.replicaIndex = index
                changes.append(change)
            }
            var round: UInt64 = 0
            var prePrepares: [PrePrepare] = []
            for _ in 0..<int(0...3) {
                round += UInt64(int(1...3))
                var prePrepare = prePrepare()
                prePrepare.block.round = round
                prePrepares.append(prePrepare)
            }
            return .newView(NewView(cluster: cluster(), view: u64(), viewChanges: changes, prePrepares: prePrepares, signature: signature()))
        case .blockRequest:
            let from = u64() % 1_000_000
            return .blockRequest(BlockRequest(cluster: cluster(), fromRound: from, toRound: from + UInt64(int(0...100))))
        case .remoteViewChange:
            return .remoteViewChange(RemoteViewChange(phase: int(0...1) == 0 ? .detect : .request, target: cluster(),
                                                      round: u64(), attempt: u64(), sender: replica(), signature: signature()))
        case .shardStatement:
            return .shardStatement(statementProof())
        case .stateCheckpoint:
            let statement = StateStatement(cluster: cluster(), round: u64(), height: u64(), ledgerHead: digest(), localHead: digest(),
                                           stateDigest: digest())
            return .stateCheckpoint(StateCheckpoint(statement: statement, replicaIndex: UInt16(int(0...15)), signature: signature()))
        case .stateRequest:
            return .stateRequest(StateRequest(cluster: cluster(), height: u64()))
        case .stateTransfer:
            var values: [[UInt8]: [UInt8]] = [:]
            for _ in 0..<int(0...5) { values[bytes(max: 12)] = bytes(max: 20) }
            var lastExecution: [ClientID: LastExecution] = [:]
            for client in 0..<UInt32(int(0...3)) {
                lastExecution[ClientID(client)] = LastExecution(requestID: u64(), result: client == 0 ? nil : result(),
                                                                position: LedgerPosition(round: u64(), clusterIndex: 0, height: u64()))
            }
            // Off the wire a snapshot carries the placeholder layout; the receiver puts in its own.
            let crossShard = int(0...1) == 0 ? nil : CrossShardState(
                layout: SnapshotCodec.placeholderLayout, locks: [bytes(max: 6): crossShardID()], coordinating: [:], participating: [:],
                watermarks: [:], decisions: [crossShardID(): vote()], decisionOrder: [crossShardID()])
            return .stateTransfer(LedgerSnapshot(shard: ShardID(UInt16(int(0...3))), round: u64(), height: u64(), head: digest(),
                                                 localHead: digest(), state: KeyValueStore(values: values),
                                                 lastExecution: lastExecution, crossShard: crossShard))
        }
    }

    mutating func message() -> Message {
        message(kind: MessageKind.allCases[int(0...(MessageKind.allCases.count - 1))])
    }

    mutating func sender() -> NodeID {
        int(0...1) == 0 ? .replica(number: UInt32(int(0...100))) : .client(ClientID(UInt32(int(0...1000))))
    }
}

/// Rewrites a frame's header fields and recomputes both checksums, so tests can build frames that
/// are wrong in exactly one way.
enum FrameSurgery {
    static func set(_ frame: inout [UInt8], u16 value: UInt16, at offset: Int) {
        frame[offset] = UInt8(truncatingIfNeeded: value)
        frame[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }

    static func set(_ frame: inout [UInt8], u32 value: UInt32, at offset: Int) {
        for index in 0..<4 { frame[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
    }

    /// Recomputes body length, body checksum and header checksum after a body edit.
    static func reseal(_ frame: inout [UInt8]) {
        let body = Array(frame[WireFormat.headerBytes...])
        set(&frame, u32: UInt32(body.count), at: 12)
        set(&frame, u32: CRC32C.checksum(body), at: 16)
        set(&frame, u32: CRC32C.checksum(Array(frame[0..<20])), at: 20)
    }

    /// Recomputes only the header checksum.
    static func resealHeader(_ frame: inout [UInt8]) {
        set(&frame, u32: CRC32C.checksum(Array(frame[0..<20])), at: 20)
    }
}
