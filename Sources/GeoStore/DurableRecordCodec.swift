// The payload encoding of one DurableRecord: a tag byte, then the record's fields. Proofs and
// blocks reuse GeoWire's encodings, so the log and the wire cannot drift apart, and decoding is as
// strict as for a frame: unknown tags, booleans other than 0/1 and leftover bytes are refused, and
// every length is checked against WireLimits before anything is allocated.
//
//   tag  record     fields after the tag
//   1    view       u64 view, u8 normal (0 or 1)
//   2    signed     u8 phase (SignSlot.Phase), u64 view, u64 round, 32-byte digest
//   3    prepared   PreparedProof (MessageCodec)
//   4    delivered  CertifiedBlock (MessageCodec)
//   5    remote     CertifiedBlock (MessageCodec)
//   6    stable     CheckpointProof (MessageCodec)
//   7    stored     u64 round: the block store holds every block through it (log format 2)
//
// Tags never change once released; a new kind of record gets a new tag (and a new log version if
// older builds must refuse it).

import GeoCore
import GeoWire

public enum DurableRecordCodec {
    enum Tag: UInt8 {
        case view = 1, signed = 2, prepared = 3, delivered = 4, remote = 5, stable = 6, ledgerStored = 7
    }

    /// The smallest payload, a view record (tag, u64, u8). A frame declaring less is broken, which
    /// also keeps a zero-filled tail (length 0, checksum 0, a valid CRC of nothing) from reading as
    /// a record.
    public static let minimumPayloadBytes = 1 + 8 + 1

    /// The largest payload recovery accepts, and so the largest append accepts. A record carries one
    /// value that arrived in, or must fit in, one frame (a certified block, a PrePrepare), plus at most
    /// a full list of signers (a prepared proof's Prepares), plus the tag.
    public static func maximumPayloadBytes(_ limits: WireLimits) -> Int {
        1 + limits.maxBodyBytes + limits.maxCertificateSignatures * (2 + Signature.byteCount)
    }

    public static func encode(_ record: DurableRecord, into writer: inout ByteWriter) {
        switch record {
        case let .view(view, normal):
            writer.u8(Tag.view.rawValue)
            writer.u64(view)
            writer.u8(normal ? 1 : 0)
        case let .signed(slot, digest):
            writer.u8(Tag.signed.rawValue)
            writer.u8(slot.phase.rawValue)
            writer.u64(slot.view)
            writer.u64(slot.round)
            writer.digest(digest)
        case let .prepared(proof):
            writer.u8(Tag.prepared.rawValue)
            MessageCodec.encode(proof, into: &writer)
        case let .delivered(block):
            writer.u8(Tag.delivered.rawValue)
            MessageCodec.encode(block, into: &writer)
        case let .remote(block):
            writer.u8(Tag.remote.rawValue)
            MessageCodec.encode(block, into: &writer)
        case let .stable(proof):
            writer.u8(Tag.stable.rawValue)
            MessageCodec.encode(proof, into: &writer)
        case let .ledgerStored(round):
            writer.u8(Tag.ledgerStored.rawValue)
            writer.u64(round)
            // Padding to the smallest payload (see minimumPayloadBytes): always zero.
            writer.u8(0)
        }
    }

    public static func encode(_ record: DurableRecord) -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        encode(record, into: &writer)
        return writer.bytes
    }

    /// Decodes exactly one record from `payload`; anything short, long or invalid is an error.
    public static func decode(_ payload: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) -> DurableRecord {
        var reader = ByteReader(payload)
        let tag = try reader.u8("record.tag")
        let record: DurableRecord
        switch Tag(rawValue: tag) {
        case .view:
            let view = try reader.u64("record.view")
            let normal = try reader.u8("record.normal")
            guard normal <= 1 else { throw .invalidTag(field: "record.normal", value: UInt64(normal)) }
            record = .view(view, normal: normal == 1)
        case .signed:
            let raw = try reader.u8("record.phase")
            guard let phase = SignSlot.Phase(rawValue: raw) else { throw .invalidTag(field: "record.phase", value: UInt64(raw)) }
            let slot = SignSlot(phase: phase, view: try reader.u64("record.view"), round: try reader.u64("record.round"))
            record = .signed(slot, try reader.digest("record.digest"))
        case .prepared:
            record = .prepared(try MessageCodec.decodePreparedProof(&reader, limits: limits))
        case .delivered:
            record = .delivered(try MessageCodec.decodeCertifiedBlock(&reader, limits: limits))
        case .remote:
            record = .remote(try MessageCodec.decodeCertifiedBlock(&reader, limits: limits))
        case .stable:
            record = .stable(try MessageCodec.decodeCheckpointProof(&reader, limits: limits))
        case .ledgerStored:
            let round = try reader.u64("record.round")
            let padding = try reader.u8("record.padding")
            guard padding == 0 else { throw .invalidTag(field: "record.padding", value: UInt64(padding)) }
            record = .ledgerStored(throughRound: round)
        case nil:
            throw .invalidTag(field: "record.tag", value: UInt64(tag))
        }
        guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
        return record
    }

    public static func decode(_ payload: [UInt8], limits: WireLimits) throws(WireError) -> DurableRecord {
        let result: Result<DurableRecord, WireError> = payload.withUnsafeBytes { buffer in
            do throws(WireError) { return .success(try decode(buffer, limits: limits)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Records whose fold is `state`: what a compacted log holds. The stable checkpoint comes first,
    /// because folding it drops signed and prepared entries at or below its round (the state holds
    /// none, so none are lost); signed slots and prepared rounds are sorted so that compacting the
    /// same state always writes the same bytes.
    public static func snapshot(of state: DurableState) -> [DurableRecord] {
        var records: [DurableRecord] = []
        records.reserveCapacity(3 + state.signed.count + state.prepared.count + state.delivered.count + state.remote.count)
        if let stable = state.stable { records.append(.stable(stable)) }
        if state.view > 0 { records.append(.view(state.view, normal: true)) }
        if state.targetView > state.view { records.append(.view(state.targetView, normal: false)) }
        if state.ledgerStoredRound > 0 { records.append(.ledgerStored(throughRound: state.ledgerStoredRound)) }
        let slots = state.signed.keys.sorted { ($0.round, $0.view, $0.phase.rawValue) < ($1.round, $1.view, $1.phase.rawValue) }
        for slot in slots { records.append(.signed(slot, state.signed[slot]!)) }
        for round in state.prepared.keys.sorted() { records.append(.prepared(state.prepared[round]!)) }
        for block in state.delivered { records.append(.delivered(block)) }
        for block in state.remote { records.append(.remote(block)) }
        return records
    }
}

/// Whose log this is. Written into the header, so a replica started on another replica's data
/// directory, or after the topology changed under it, refuses to start instead of resuming with a
/// history that is not its own.
public struct LogIdentity: Hashable, Sendable, CustomStringConvertible {
    /// The replica's global number (its position in `Topology.allReplicas`, as in NodeID).
    public var replicaNumber: UInt32
    /// A hash of the topology the replica runs in, chosen by the caller (e.g. SHA-256 of the
    /// canonical topology), so that logs of different deployments never mix.
    public var topologyDigest: Digest

    public init(replicaNumber: UInt32, topologyDigest: Digest) {
        self.replicaNumber = replicaNumber
        self.topologyDigest = topologyDigest
    }

    public var description: String { "replica \(replicaNumber) of topology \(topologyDigest.shortHex)" }
}
