// The connection handshake: it binds a TCP connection to one replica or client identity before any
// GeoWire frame may cross it.
//
// Each side sends, as the very first bytes on the connection, a Hello; when it has the peer's
// Hello and accepts it, a Proof. Only after both records does the stream carry GeoWire frames.
// Both records have a fixed size, so they need no length field, and both start with their own
// magic, so a GeoWire frame (magic "GEOF") sent too early is refused as malformed.
//
//   Hello (75 bytes)                          Proof (69 bytes)
//   offset size field                         offset size field
//   0      4    magic "GEOH"                  0      4    magic "GEOH"
//   4      1    record type 1 (hello)         4      1    record type 2 (proof)
//   5      2    handshake version (1)         5      64   Ed25519 signature
//   7      32   topology hash
//   39     4    claimed NodeID
//   43     32   nonce (fresh, random)
//
// Integers little-endian, like GeoWire. The Proof signs
//
//   "geofabric/handshake/v1" || peer's nonce (32) || topology hash (32) || signer NodeID (4, LE)
//                            || verifier NodeID (4, LE)
//
// with the signer's identity key. The peer's fresh nonce makes the proof useless on any other
// connection (no replay); the topology hash makes it useless in another deployment; both NodeIDs
// bind the direction, so a proof made for A->B cannot be reflected as B->A.
//
// A side that refuses the peer's Hello sends, in place of its Proof, a Reject of the same size:
//
//   Reject (69 bytes)
//   offset size field
//   0      4    magic "GEOH"
//   4      1    record type 3 (reject)
//   5      64   the refusal's label (HandshakeRefusal.label, ASCII), zero-padded
//
// and closes. The peer is expecting a Proof there, so it reads the Reject at once and can say why
// it was refused (a client whose identity the replica's topology lacks, a replica that may not dial
// this one) instead of seeing a bare close and retrying. The label tells an unauthenticated peer
// nothing it does not know or could not learn by trying (its Hello was refused, and why).
//
// Attach (73 bytes), only after the handshake, only from a client to a replica, between frames:
//
//   offset size field
//   0      4    magic "GEOH"
//   4      1    record type 4 (attach)
//   5      4    attached client NodeID
//   9      64   Ed25519 signature by the attached client's key over
//
//   "geofabric/attach/v1" || verifier's nonce (32) || topology hash (32) || attached NodeID (4, LE)
//                         || carrier NodeID (4, LE) || verifier NodeID (4, LE)
//
// It lets one client connection carry the frames of more client identities (a load generator's
// many clients over one connection per replica; README "Client sessions"). The Proof authenticated
// the connection for one identity, the carrier; each Attach proves one more. It is a handshake
// record rather than a GeoWire message because it is about the connection, not the protocol: it
// is signed over the replica's nonce of this very connection (replayed on another connection it
// does not verify), names the deployment (topology hash), the identity attached, the connection's
// authenticated identity and the replica (so it cannot be moved to another carrier or replica),
// and has its own domain tag (a handshake Proof or a transaction signature cannot pass for one).
// The core never sees it: after it, the attached identity's frames reach the core as if it had
// its own connection, so every check above the transport (a transaction's signer is its sender)
// holds unchanged.
//
// Why the topology hash is in the Hello and not only in the signature: both sides then see a
// mismatch before any signature work and each logs it, so an operator who started two replicas
// from different topology files reads the cause on either machine.

import GeoCore
import GeoCrypto

/// The fixed records of the handshake, and the payload the Proof signs.
public enum Handshake {
    public static let magic: [UInt8] = Array("GEOH".utf8)
    public static let version: UInt16 = 1
    public static let domainTag: [UInt8] = Array("geofabric/handshake/v1".utf8)
    public static let nonceBytes = 32
    public static let helloBytes = 4 + 1 + 2 + 32 + 4 + 32
    public static let proofBytes = 4 + 1 + Signature.byteCount

    static let helloType: UInt8 = 1
    static let proofType: UInt8 = 2
    static let rejectType: UInt8 = 3
    static let attachType: UInt8 = 4
    public static let attachDomainTag: [UInt8] = Array("geofabric/attach/v1".utf8)
    public static let attachBytes = 4 + 1 + 4 + Signature.byteCount

    /// The bytes an Attach signs: `attached` vouches that it speaks over `carrier`'s connection to
    /// `verifier`, the connection whose handshake nonce (the verifier's) is `verifierNonce`.
    public static func attachPayload(verifierNonce: [UInt8], topologyHash: Digest, attached: NodeID,
                                     carrier: NodeID, verifier: NodeID) -> [UInt8] {
        var bytes = attachDomainTag
        bytes.reserveCapacity(attachDomainTag.count + 32 + 32 + 12)
        bytes.append(contentsOf: verifierNonce)
        bytes.append(contentsOf: topologyHash.bytes)
        appendLE(attached.rawValue, to: &bytes)
        appendLE(carrier.rawValue, to: &bytes)
        appendLE(verifier.rawValue, to: &bytes)
        return bytes
    }

    /// The bytes a Proof signs. `signer` makes the signature over `verifier`'s nonce.
    public static func proofPayload(verifierNonce: [UInt8], topologyHash: Digest, signer: NodeID,
                                    verifier: NodeID) -> [UInt8] {
        var bytes = domainTag
        bytes.reserveCapacity(domainTag.count + 32 + 32 + 8)
        bytes.append(contentsOf: verifierNonce)
        bytes.append(contentsOf: topologyHash.bytes)
        appendLE(signer.rawValue, to: &bytes)
        appendLE(verifier.rawValue, to: &bytes)
        return bytes
    }

    /// A fresh nonce from the system's secure generator: a predictable nonce would let a recorded
    /// proof be replayed.
    public static func freshNonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<nonceBytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    static func appendLE(_ value: UInt32, to bytes: inout [UInt8]) {
        for index in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(index)))) }
    }

    static func appendLE(_ value: UInt16, to bytes: inout [UInt8]) {
        bytes.append(UInt8(truncatingIfNeeded: value))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
    }

    static func readLE32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var value: UInt32 = 0
        for (offset, byte) in bytes.prefix(4).enumerated() { value |= UInt32(byte) << (8 * UInt32(offset)) }
        return value
    }
}

/// The first record each side sends.
public struct Hello: Hashable, Sendable {
    public var version: UInt16
    public var topologyHash: Digest
    public var node: NodeID
    public var nonce: [UInt8]

    public init(version: UInt16 = Handshake.version, topologyHash: Digest, node: NodeID, nonce: [UInt8]) {
        precondition(nonce.count == Handshake.nonceBytes, "a handshake nonce is 32 bytes")
        self.version = version
        self.topologyHash = topologyHash
        self.node = node
        self.nonce = nonce
    }

    public var encoded: [UInt8] {
        var bytes = Handshake.magic
        bytes.reserveCapacity(Handshake.helloBytes)
        bytes.append(Handshake.helloType)
        Handshake.appendLE(version, to: &bytes)
        bytes.append(contentsOf: topologyHash.bytes)
        Handshake.appendLE(node.rawValue, to: &bytes)
        bytes.append(contentsOf: nonce)
        return bytes
    }

    /// Decodes exactly `Handshake.helloBytes` bytes.
    public static func decode(_ bytes: [UInt8]) throws(HandshakeRecordError) -> Hello {
        guard bytes.count == Handshake.helloBytes else { throw .wrongLength(record: "hello", bytes.count) }
        guard Array(bytes[0..<4]) == Handshake.magic else { throw .badMagic }
        guard bytes[4] == Handshake.helloType else { throw .unexpectedRecord(expected: "hello", type: bytes[4]) }
        let version = UInt16(bytes[5]) | UInt16(bytes[6]) << 8
        // 32 bytes always make a digest.
        let hash = Digest(bytes: bytes[7..<39])!
        let node = NodeID(rawValue: Handshake.readLE32(bytes[39..<43]))
        return Hello(version: version, topologyHash: hash, node: node, nonce: Array(bytes[43..<75]))
    }
}

/// The second record: the signature that proves the Hello's claimed identity.
public struct Proof: Hashable, Sendable {
    public var signature: Signature
    public init(signature: Signature) { self.signature = signature }

    public var encoded: [UInt8] {
        var bytes = Handshake.magic
        bytes.reserveCapacity(Handshake.proofBytes)
        bytes.append(Handshake.proofType)
        bytes.append(contentsOf: signature.bytes)
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(HandshakeRecordError) -> Proof {
        guard bytes.count == Handshake.proofBytes else { throw .wrongLength(record: "proof", bytes.count) }
        guard Array(bytes[0..<4]) == Handshake.magic else { throw .badMagic }
        guard bytes[4] == Handshake.proofType else { throw .unexpectedRecord(expected: "proof", type: bytes[4]) }
        // 64 bytes always make a signature.
        return Proof(signature: Signature(bytes: Array(bytes[5...]))!)
    }
}

/// Sent instead of a Proof by a side that refuses the peer's Hello: the reason's label.
public struct Reject: Hashable, Sendable {
    public static let reasonBytes = Handshake.proofBytes - 5
    public var reason: String

    /// `reason` is cut to `reasonBytes` ASCII bytes (labels are short snake_case words).
    public init(reason: String) {
        self.reason = String(decoding: Array(reason.utf8.filter { $0 >= 0x20 && $0 < 0x7f }.prefix(Self.reasonBytes)), as: UTF8.self)
    }

    public var encoded: [UInt8] {
        var bytes = Handshake.magic
        bytes.reserveCapacity(Handshake.proofBytes)
        bytes.append(Handshake.rejectType)
        let reason = Array(self.reason.utf8)
        bytes.append(contentsOf: reason)
        bytes.append(contentsOf: [UInt8](repeating: 0, count: Self.reasonBytes - reason.count))
        return bytes
    }

    /// Whether a record of `Handshake.proofBytes` bytes is a Reject rather than a Proof.
    static func isReject(_ bytes: [UInt8]) -> Bool {
        bytes.count == Handshake.proofBytes && Array(bytes[0..<4]) == Handshake.magic && bytes[4] == Handshake.rejectType
    }

    public static func decode(_ bytes: [UInt8]) throws(HandshakeRecordError) -> Reject {
        guard bytes.count == Handshake.proofBytes else { throw .wrongLength(record: "reject", bytes.count) }
        guard Array(bytes[0..<4]) == Handshake.magic else { throw .badMagic }
        guard bytes[4] == Handshake.rejectType else { throw .unexpectedRecord(expected: "reject", type: bytes[4]) }
        let label = bytes[5...].prefix { $0 != 0 }
        return Reject(reason: String(decoding: label, as: UTF8.self))
    }
}

/// After the handshake, a client's proof that one more client identity speaks over this connection.
public struct Attach: Hashable, Sendable {
    public var node: NodeID
    public var signature: Signature
    public init(node: NodeID, signature: Signature) {
        self.node = node
        self.signature = signature
    }

    public var encoded: [UInt8] {
        var bytes = Handshake.magic
        bytes.reserveCapacity(Handshake.attachBytes)
        bytes.append(Handshake.attachType)
        Handshake.appendLE(node.rawValue, to: &bytes)
        bytes.append(contentsOf: signature.bytes)
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(HandshakeRecordError) -> Attach {
        guard bytes.count == Handshake.attachBytes else { throw .wrongLength(record: "attach", bytes.count) }
        guard Array(bytes[0..<4]) == Handshake.magic else { throw .badMagic }
        guard bytes[4] == Handshake.attachType else { throw .unexpectedRecord(expected: "attach", type: bytes[4]) }
        // 64 bytes always make a signature.
        return Attach(node: NodeID(rawValue: Handshake.readLE32(bytes[5..<9])), signature: Signature(bytes: Array(bytes[9...]))!)
    }
}

/// Why an Attach was refused. All but `duplicate` close the connection: an honest client never
/// sends them, so the connection's other traffic cannot be trusted to be honest either.
public enum AttachRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    /// Not a client identity, the carrier itself, or on a connection that may not carry others
    /// (a replica's, or one this node dialled).
    case notAllowed(NodeID, reason: String)
    case unknownIdentity(NodeID)
    /// The signature does not verify over this connection's nonce (forged, or made for another
    /// connection, replica, carrier or topology).
    case badSignature(NodeID)
    /// More attached identities on one connection than `attachmentsPerConnectionMax`.
    case tooMany(NodeID)
    /// The identity is already connected (alone or attached elsewhere): this attach is ignored,
    /// the connection stays, and the identity's frames on it are dropped as unproven.
    case duplicate(NodeID)

    public var label: String {
        switch self {
        case .notAllowed: return "attach_not_allowed"
        case .unknownIdentity: return "attach_unknown_identity"
        case .badSignature: return "attach_bad_signature"
        case .tooMany: return "attach_too_many"
        case .duplicate: return "attach_duplicate"
        }
    }

    public var closesConnection: Bool {
        if case .duplicate = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case let .notAllowed(node, reason): return "\(node) may not be attached here: \(reason)"
        case let .unknownIdentity(node): return "no public key for the attached identity \(node)"
        case let .badSignature(node): return "the attach signature does not verify with the key of \(node) over this connection"
        case let .tooMany(node): return "attaching \(node) would pass the bound on identities per connection"
        case let .duplicate(node): return "\(node) is already connected; not attached on this connection"
        }
    }
}

/// A handshake record that could not be parsed.
public enum HandshakeRecordError: Error, Hashable, Sendable, CustomStringConvertible {
    case badMagic
    case unexpectedRecord(expected: String, type: UInt8)
    case wrongLength(record: String, Int)

    public var description: String {
        switch self {
        case .badMagic: return "handshake record without the GEOH magic (not a GeoFabric peer, or it sent frames before the handshake)"
        case let .unexpectedRecord(expected, type): return "expected a \(expected) record, got record type \(type)"
        case let .wrongLength(record, count): return "\(record) record of \(count) bytes"
        }
    }
}

/// Why a connection was refused during or right after the handshake. Each case has a stable label
/// for the "rejected connections by reason" counters.
public enum HandshakeRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    case malformed(HandshakeRecordError)
    case unsupportedVersion(UInt16)
    /// The peer was started from another topology (its hash differs from ours).
    case topologyMismatch(theirs: Digest, ours: Digest)
    /// No public key for the claimed identity.
    case unknownIdentity(NodeID)
    /// The identity exists but may not open this connection (the reason says which rule).
    case identityNotAllowed(NodeID, reason: String)
    case badSignature(NodeID)
    /// An established connection with this identity exists already.
    case duplicateConnection(NodeID)
    case timeout
    /// More unauthenticated or established connections than the configured bound.
    case tooManyConnections
    /// Refused by the TLS layer under the handshake.
    case tls(TLSRefusal)
    /// The peer refused this side's Hello and said why (a Reject record: its refusal's label).
    case peerRefused(String)

    public var label: String {
        switch self {
        case .malformed: return "handshake_malformed"
        case .unsupportedVersion: return "handshake_version"
        case .topologyMismatch: return "topology_mismatch"
        case .unknownIdentity: return "unknown_identity"
        case .identityNotAllowed: return "identity_not_allowed"
        case .badSignature: return "bad_signature"
        case .duplicateConnection: return "duplicate_connection"
        case .timeout: return "handshake_timeout"
        case .tooManyConnections: return "too_many_connections"
        case let .tls(refusal): return refusal.label
        case .peerRefused: return "peer_refused"
        }
    }

    public var description: String {
        switch self {
        case let .malformed(error): return "malformed handshake: \(error)"
        case let .unsupportedVersion(version):
            return "handshake version \(version) (this build speaks \(Handshake.version))"
        case let .topologyMismatch(theirs, ours):
            return "different topology: the peer's topology hash is \(theirs.shortHex)…, ours is \(ours.shortHex)… "
                + "(were both started from the same topology file?)"
        case let .unknownIdentity(node): return "no public key for the claimed identity \(node)"
        case let .identityNotAllowed(node, reason): return "\(node) may not open this connection: \(reason)"
        case let .badSignature(node): return "the handshake signature does not verify with the key of \(node)"
        case let .duplicateConnection(node): return "a connection with \(node) is already established"
        case .timeout: return "handshake not completed in time"
        case .tooManyConnections: return "too many connections"
        case let .tls(refusal): return refusal.description
        case let .peerRefused(label): return "the peer refused this node's Hello: \(label)"
        }
    }
}
