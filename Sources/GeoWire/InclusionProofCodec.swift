// The binary form of an inclusion proof (GeoCore/Proofs/InclusionProof.swift): what
// `geofabric ledger tx --proof FILE` writes (hex, inside a JSON file) and `ledger verify` reads.
// Every field is checked on the way in, and a trailing byte is refused, so each accepted byte
// string decodes to one proof and re-encodes to itself.
//
//   offset  bytes  field
//   0       4      magic "GFIP"
//   4       2      format version (InclusionProofCodec.version)
//   6       4+8+4  header: cluster (shard u16, index u16), round u64, transaction count u32
//           32+32  header: transactions root, statements digest
//           8      height
//           4      position
//           ...    the transaction (MessageCodec's encoding, with the client signature)
//           1      path length (at most 32: a block of 2^32 transactions)
//           32 x   the path, nearest sibling first
//           ...    the certificate (MessageCodec's encoding: statement, signers)
// Integers are little-endian as everywhere in GeoWire.

import GeoCore

public enum InclusionProofCodec {
    public static let magic: UInt32 = 0x5049_4647  // "GFIP" little-endian
    public static let version: UInt16 = 1
    /// The longest path a block can need: its transaction count is a u32.
    public static let pathLengthMax = 32

    public static func encode(_ proof: InclusionProof) -> [UInt8] {
        var writer = ByteWriter(capacity: 256 + proof.path.count * 32 + proof.certificate.signatures.count * 66)
        writer.u32(magic)
        writer.u16(version)
        MessageCodec.encode(proof.header.cluster, into: &writer)
        writer.u64(proof.header.round)
        writer.u32(proof.header.transactionCount)
        writer.digest(proof.header.transactionsRoot)
        writer.digest(proof.header.statementsDigest)
        writer.u64(proof.height)
        writer.u32(proof.position)
        MessageCodec.encode(proof.transaction, into: &writer)
        writer.u8(UInt8(proof.path.count))
        for digest in proof.path { writer.digest(digest) }
        MessageCodec.encode(proof.certificate, into: &writer)
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8], limits: WireLimits = WireLimits()) throws(WireError) -> InclusionProof {
        let result: Result<InclusionProof, WireError> = bytes.withUnsafeBytes { buffer in
            do throws(WireError) {
                var reader = ByteReader(buffer)
                let proof = try decode(&reader, limits: limits)
                guard reader.remaining == 0 else { throw .trailingBytes(count: reader.remaining) }
                return .success(proof)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    static func decode(_ reader: inout ByteReader, limits: WireLimits) throws(WireError) -> InclusionProof {
        let foundMagic = try reader.u32("proof.magic")
        guard foundMagic == magic else { throw .badMagic(foundMagic) }
        let foundVersion = try reader.u16("proof.version")
        guard foundVersion == version else { throw .unsupportedVersion(foundVersion) }
        let cluster = try MessageCodec.decodeClusterID(&reader)
        let round = try reader.u64("proof.round")
        let count = try reader.u32("proof.transaction_count")
        let root = try reader.digest("proof.transactions_root")
        let statements = try reader.digest("proof.statements_digest")
        let height = try reader.u64("proof.height")
        let position = try reader.u32("proof.position")
        let transaction = try MessageCodec.decodeTransaction(&reader, limits: limits)
        let pathLength = Int(try reader.u8("proof.path_length"))
        _ = try reader.checked(count: pathLength, "proof.path", minimumElementBytes: Digest.byteCount, limit: pathLengthMax)
        var path: [Digest] = []
        for _ in 0..<pathLength { path.append(try reader.digest("proof.path")) }
        let certificate = try MessageCodec.decodeCertificate(&reader, limits: limits)
        return InclusionProof(header: BlockHeader(cluster: cluster, round: round, transactionCount: count, transactionsRoot: root,
                                                  statementsDigest: statements),
                              height: height, position: position, transaction: transaction, path: path, certificate: certificate)
    }
}
