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
        Block(cluster: cluster(), round: u64(), transactions: (0..<int(0...4)).map { _ in transaction() })
    }

    mutating func statement() -> CommitStatement {
        CommitStatement(cluster: cluster(), view: u64(), round: u64(), digest: digest())
    }

    mutating func result() -> ExecutionResult {
        switch int(0...5) {
        case 0: return .stored
        case 1: return .value(nil)
        case 2: return .value(bytes(max: 40))
        case 3: return .number(Int64(bitPattern: u64()))
        case 4: return .transferred(fromBalance: Int64(int(-5...1000)), toBalance: Int64(int(0...1000)))
        default: return .refused(Refusal.allCases[int(0...(Refusal.allCases.count - 1))])
        }
    }

    mutating func message(kind: MessageKind) -> Message {
        switch kind {
        case .clientTransaction:
            return .clientTransaction(transaction())
        case .prePrepare:
            return .prePrepare(PrePrepare(view: u64(), digest: digest(), block: block()))
        case .prepare:
            return .prepare(Prepare(view: u64(), round: u64(), digest: digest(), replica: replica()))
        case .commit:
            return .commit(Commit(statement: statement(), replicaIndex: UInt16(int(0...15)), signature: signature()))
        case .certifiedBlock:
            var indices = Set<UInt16>()
            for _ in 0..<int(0...7) { indices.insert(UInt16(int(0...20))) }
            let signers = indices.sorted().map { CertificateSignature(replicaIndex: $0, signature: signature()) }
            return .certifiedBlock(CertifiedBlock(block: block(), certificate: CommitCertificate(statement: statement(), signatures: signers)))
        case .reply:
            return .reply(Reply(client: ClientID(UInt32(int(0...1000))), requestID: u64(), replica: replica(), view: u64(),
                                result: result(), position: LedgerPosition(round: u64(), clusterIndex: UInt16(int(0...5)), height: u64())))
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
