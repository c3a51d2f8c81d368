// Records of every kind from one seed, and a replica's history of them; plus file helpers.

import Foundation
import GeoCore
import GeoStore
import GeoWire

enum RecordKind: String, CaseIterable, Sendable {
    case view, signed, prepared, delivered, remote, stable
}

struct RecordGenerator {
    var random: SeededRandom
    /// The replica's own cluster; remote blocks come from the next one.
    let cluster = ClusterID(shard: ShardID(0), index: 1)
    var remoteCluster: ClusterID { ClusterID(shard: cluster.shard, index: cluster.index + 1) }

    init(seed: UInt64) { random = SeededRandom(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &random) }
    mutating func signature() -> Signature { Signature(bytes: random.bytes(count: Signature.byteCount))! }
    mutating func digest() -> Digest { Digest(bytes: random.bytes(count: Digest.byteCount))! }

    mutating func transaction() -> ClientTransaction {
        let operation: GeoCore.Operation
        switch int(0...3) {
        case 0: operation = .put(key: random.bytes(count: int(0...16)), value: random.bytes(count: int(0...64)))
        case 1: operation = .get(key: random.bytes(count: int(0...16)))
        case 2: operation = .add(key: random.bytes(count: int(0...16)), delta: Int64(int(-1000...1000)))
        default: operation = .transfer(from: random.bytes(count: 8), to: random.bytes(count: 8), amount: UInt64(int(0...1000)))
        }
        return ClientTransaction(client: ClientID(UInt32(int(0...1000))), requestID: random.next(), operation: operation,
                                 signature: signature())
    }

    mutating func block(_ cluster: ClusterID, round: UInt64) -> Block {
        Block(cluster: cluster, round: round, transactions: (0..<int(0...3)).map { _ in transaction() })
    }

    /// Distinct signer indices in increasing order, as the codec requires.
    mutating func signers(_ count: Int) -> [UInt16] { (0..<UInt16(count)).filter { _ in int(0...3) > 0 } }

    mutating func certified(_ cluster: ClusterID, view: UInt64, round: UInt64) -> CertifiedBlock {
        let statement = VoteStatement(cluster: cluster, view: view, round: round, digest: digest())
        return CertifiedBlock(block: block(cluster, round: round), certificate: CommitCertificate(
            statement: statement, signatures: signers(4).map { CertificateSignature(replicaIndex: $0, signature: signature()) }))
    }

    mutating func prepared(view: UInt64, round: UInt64) -> PreparedProof {
        let prePrepare = PrePrepare(view: view, digest: digest(), block: block(cluster, round: round), signature: signature())
        return PreparedProof(prePrepare: prePrepare, prepares: signers(4).map {
            Prepare(statement: prePrepare.statement, replicaIndex: $0, signature: signature())
        })
    }

    mutating func checkpoint(round: UInt64) -> CheckpointProof {
        let statement = CheckpointStatement(cluster: cluster, round: round, digest: digest())
        return CheckpointProof(statement: statement, checkpoints: signers(4).map {
            Checkpoint(statement: statement, replicaIndex: $0, signature: signature())
        })
    }

    mutating func record(_ kind: RecordKind) -> DurableRecord {
        let view = UInt64(int(0...5))
        let round = UInt64(int(1...10_000))
        switch kind {
        case .view: return .view(view, normal: int(0...1) == 0)
        case .signed:
            let phase = [SignSlot.Phase.prePrepare, .prepare, .commit][int(0...2)]
            return .signed(SignSlot(phase: phase, view: view, round: round), digest())
        case .prepared: return .prepared(prepared(view: view, round: round))
        case .delivered: return .delivered(certified(cluster, view: view, round: round))
        case .remote: return .remote(certified(remoteCluster, view: view, round: round))
        case .stable: return .stable(checkpoint(round: round))
        }
    }

    /// What a backup of `cluster` persists for `rounds` in `view`, with a stable checkpoint after
    /// every `checkpointEvery` rounds: every kind of record, in the order the core emits them.
    mutating func history(rounds: ClosedRange<UInt64>, view: UInt64, checkpointEvery: UInt64) -> [DurableRecord] {
        var records: [DurableRecord] = [.view(view, normal: true)]
        for round in rounds {
            let proof = prepared(view: view, round: round)
            records.append(.signed(SignSlot(phase: .prepare, view: view, round: round), proof.prePrepare.digest))
            records.append(.prepared(proof))
            records.append(.signed(SignSlot(phase: .commit, view: view, round: round), proof.prePrepare.digest))
            records.append(.delivered(certified(cluster, view: view, round: round)))
            records.append(.remote(certified(remoteCluster, view: view, round: round)))
            if round % checkpointEvery == 0 { records.append(.stable(checkpoint(round: round))) }
        }
        return records
    }
}

func fold(_ records: [DurableRecord]) -> DurableState {
    var state = DurableState()
    for record in records { state.apply(record) }
    return state
}

/// A fresh directory under the system's temporary directory, removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init(_ name: String) {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("geostore-\(name)-\(UUID().uuidString)").path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Where a replica's log directory goes (a level down, so `open` must create it).
    var replicaDirectory: String { path + "/r1" }
    var logPath: String { replicaDirectory + "/" + LogFormat.fileName }
    var temporaryPath: String { replicaDirectory + "/" + LogFormat.temporaryFileName }
}

func readBytes(_ path: String) -> [UInt8] {
    [UInt8](FileManager.default.contents(atPath: path) ?? Data())
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// The offset of every record frame in a log file, found by following the length fields.
func recordOffsets(_ file: [UInt8]) -> [Int] {
    var offsets: [Int] = []
    var offset = LogFormat.headerBytes
    while offset + LogFormat.recordFrameBytes <= file.count {
        offsets.append(offset)
        let length = (0..<4).reduce(0) { $0 | Int(file[offset + $1]) << (8 * $1) }
        offset += LogFormat.recordFrameBytes + length
    }
    return offsets
}

/// Every record in a log file, decoded (checksums are not checked: recovery's job).
func decodeRecords(_ file: [UInt8]) throws -> [DurableRecord] {
    let offsets = recordOffsets(file)
    return try offsets.indices.map { index in
        let start = offsets[index] + LogFormat.recordFrameBytes
        let end = index + 1 < offsets.count ? offsets[index + 1] : file.count
        return try DurableRecordCodec.decode(Array(file[start..<end]), limits: WireLimits())
    }
}
