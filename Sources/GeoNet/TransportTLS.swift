// Mutual TLS 1.3 under the GEOH handshake, bound to the topology's Ed25519 identity keys.
//
// Each node makes, at start, a self-signed X.509 certificate over its own identity key (the key
// the topology's dev keys or key directory name for it). There is no CA: the peer pins the key.
// With an operator PKI (`transport: {ca: ..., certificates: ...}`, TransportOperatorPKI.swift) a
// node presents its CA-issued certificate instead, and the peer also validates the chain and the
// name; the key is pinned to the topology all the same.
// A connection's pipeline, bottom up:
//
//   TLSRecordSniffer   first byte from the peer must open a TLS handshake record (0x16), else
//                      `tls_plaintext_peer` (a plaintext GEOH Hello starts with 'G')
//   NIOSSL handler     TLS 1.3 only, Ed25519 only, a certificate required from both sides;
//                      `TLSPeerVerifier` replaces BoringSSL's chain validation: the certificate's
//                      key must be the topology's key of some identity (inbound) or of the dialled
//                      one (outbound), and within its validity dates; with an operator PKI the leaf
//                      must also name that identity and chain to the CA bundle
//   FrameDecoder, ConnectionHandler   the GEOH handshake and frames, unchanged, inside TLS; after
//                      the peer's Hello, the identity it claims must own the certificate's key
//
// A certificate also names, in its subject (OU "geofabric-topology <hex>"), the topology hash of
// the node that made it. It is not trusted for anything: a certificate whose key the topology does
// not name, but which names another topology, is a node of another deployment (the usual case:
// two deployments that share ports). The verifier then lets the TLS handshake finish without
// trusting the peer, and the connection handler refuses it as a topology mismatch before a byte
// of GEOH or GeoWire crosses, so that both sides log the same named reason with both hashes, and a
// client fails at once instead of waiting for replies that never come.
//
// Why the GEOH handshake stays inside TLS rather than moving into an ALPN value or a certificate
// extension: the topology-hash binding and the identity claim are then checked in one place, the
// same code with TLS on or off (`transport: {tls: false}` for a benchmark A/B), and TLS adds only
// what it is for: encryption, integrity, and a second proof of the key.

import Crypto
import GeoCore
import GeoCrypto
import NIOCore
import NIOSSL
import SwiftASN1
import X509

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What a transport needs for TLS (nil in `TransportConfiguration.tls` means plaintext).
public struct TLSSettings: Sendable {
    /// The key this node's certificate carries: its identity key. Tests pass another key, or nil
    /// for no certificate at all, to play a hostile peer.
    public var certificateKey: SigningKey?
    /// The name written in the certificate's subject (informational: the key is what is checked).
    public var commonName: String
    /// The identity that owns a public key in the topology, nil for a key the topology never names.
    public var keyOwner: @Sendable (VerifyingKey) -> NodeID?
    /// An operator PKI: present its chain instead of a self-signed certificate, and validate
    /// peers' chains against its CAs. Nil: self-signed, pinned keys only.
    public var authority: TLSAuthority?

    public init(certificateKey: SigningKey?, commonName: String, keyOwner: @escaping @Sendable (VerifyingKey) -> NodeID?,
                authority: TLSAuthority? = nil) {
        self.certificateKey = certificateKey
        self.commonName = commonName
        self.keyOwner = keyOwner
        self.authority = authority
    }

    /// The usual settings: the certificate carries `signingKey`; owners come from `keyRing`.
    public static func identity(_ signingKey: SigningKey, name: String, keyRing: KeyRing, authority: TLSAuthority? = nil) -> TLSSettings {
        var owners: [VerifyingKey: NodeID] = [:]
        for (number, key) in keyRing.replicaKeys.enumerated() where owners[key] == nil {
            owners[key] = .replica(number: UInt32(number))
        }
        for (id, key) in keyRing.clientKeys.enumerated() where owners[key] == nil {
            owners[key] = .client(ClientID(UInt32(id)))
        }
        let table = owners
        return TLSSettings(certificateKey: signingKey, commonName: name, keyOwner: { table[$0] }, authority: authority)
    }

    /// What this node presents (its chain, DER, leaf first, and the leaf's private key, PEM):
    /// the operator-issued chain, or a self-signed certificate made now. Nil without a key.
    public func presentedCertificate(topologyHash: GeoCore.Digest? = nil) throws -> (chain: [[UInt8]], privateKeyPEM: String)? {
        guard let certificateKey else { return nil }
        let presented = try TLSContexts.presented(key: certificateKey, settings: self, topologyHash: topologyHash)
        return (presented.chain, presented.privateKeyPEM)
    }
}

/// Why a TLS connection was refused; each has a stable label for `geofabric_wire_errors_total`.
public enum TLSRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    /// The peer's first byte does not open a TLS record: a plaintext peer on a TLS connection.
    case plaintextPeer(firstByte: UInt8)
    case noCertificate
    /// The certificate's key is not the topology's key of any identity (or of the dialled one).
    case certificateKeyMismatch(expected: NodeID?)
    /// The certificate's key belongs to another identity than the one claimed or dialled.
    case certificateIdentityMismatch(certificateOf: NodeID, claimed: NodeID)
    /// A client's certificate on a connection that claims a replica's identity.
    case clientCertificateForReplica(certificateOf: NodeID, claimed: NodeID)
    /// Not a well-formed Ed25519 certificate (self-signed, in the pinned mode).
    case badCertificate(String)
    /// Operator PKI: the leaf names neither in its CN nor in a SAN dNSName the identity that owns its key.
    case certificateNameMismatch(names: [String], expected: String)
    case certificateExpired(notAfter: Date)
    case certificateNotYetValid(notBefore: Date)
    /// Operator PKI: no chain from the leaf to a CA of the bundle (why, in the library's words).
    case certificateUntrusted(String)
    case handshakeFailed(String)
    /// A TLS error after the handshake (a record that does not decrypt, a bad alert).
    case streamError(String)

    public var label: String {
        switch self {
        case .plaintextPeer: return "tls_plaintext_peer"
        case .noCertificate: return "tls_no_certificate"
        case .certificateKeyMismatch: return "tls_certificate_key_mismatch"
        case .certificateIdentityMismatch: return "tls_certificate_identity_mismatch"
        case .clientCertificateForReplica: return "tls_client_certificate_for_replica"
        case .badCertificate: return "tls_bad_certificate"
        case .certificateNameMismatch: return "tls_certificate_name_mismatch"
        case .certificateExpired: return "tls_certificate_expired"
        case .certificateNotYetValid: return "tls_certificate_not_yet_valid"
        case .certificateUntrusted: return "tls_certificate_untrusted"
        case .handshakeFailed: return "tls_handshake_failed"
        case .streamError: return "tls_stream_error"
        }
    }

    public var description: String {
        switch self {
        case let .plaintextPeer(byte):
            return "plaintext peer on a TLS connection (first byte 0x\(String(byte, radix: 16)), a TLS handshake starts with 0x16); is its topology's transport tls: false?"
        case .noCertificate: return "the peer presented no TLS certificate"
        case let .certificateKeyMismatch(expected):
            let whose = expected.map { "\($0)'s key" } ?? "the key of any identity"
            return "the TLS certificate's key is not \(whose) in the topology"
        case let .certificateIdentityMismatch(owner, claimed):
            return "the TLS certificate is \(owner)'s, but the peer claims to be \(claimed)"
        case let .clientCertificateForReplica(owner, claimed):
            return "a client's TLS certificate (\(owner)) on a connection claiming replica \(claimed)"
        case let .badCertificate(reason): return "bad TLS certificate: \(reason)"
        case let .certificateNameMismatch(names, expected):
            return "the TLS certificate names \(names), not \(expected), whose key it carries"
        case let .certificateExpired(notAfter): return "the TLS certificate expired on \(notAfter)"
        case let .certificateNotYetValid(notBefore): return "the TLS certificate is not valid before \(notBefore)"
        case let .certificateUntrusted(reason): return "the TLS certificate is not issued by a CA of the topology's bundle: \(reason)"
        case let .handshakeFailed(reason): return "TLS handshake failed: \(reason)"
        case let .streamError(reason): return "TLS stream error: \(reason)"
        }
    }
}

/// A node's self-signed certificate and its private key, in the forms NIOSSL and X509 take.
public struct TLSCertificate: Sendable {
    public let certificate: Certificate
    public let derBytes: [UInt8]
    public let privateKeyPEM: String

    /// Validity: from a day before now (clock skew between hosts) to 100 years on. Peers check
    /// the dates (cheap, and one rule for both modes): a host whose clock is a day or more behind
    /// the maker's is refused with `tls_certificate_not_yet_valid`, which names the clock problem.
    public static let validityBackdate: TimeInterval = 86_400
    public static let validitySpan: TimeInterval = 100 * 365 * 86_400

    /// What precedes the topology hash's hex in the subject's organizational unit.
    static let topologyMarker = "geofabric-topology "

    /// The self-signed certificate over `key`, subject CN=`commonName` and, with `topologyHash`,
    /// OU="geofabric-topology <hex>".
    public init(key: SigningKey, commonName: String, topologyHash: GeoCore.Digest? = nil, now: Date = Date()) throws {
        let privateKey = try Curve25519.Signing.PrivateKey(rawRepresentation: key.seed)
        let certificateKey = Certificate.PrivateKey(privateKey)
        let name: DistinguishedName
        if let topologyHash {
            name = try DistinguishedName {
                CommonName(commonName)
                OrganizationalUnitName(Self.topologyMarker + topologyHash.hex)
            }
        } else {
            name = try DistinguishedName { CommonName(commonName) }
        }
        // A random serial: two certificates of one key made at two starts differ.
        var generator = SystemRandomNumberGenerator()
        let serial = Certificate.SerialNumber(bytes: (0..<16).map { index in
            index == 0 ? UInt8.random(in: 1...0x7f, using: &generator) : UInt8.random(in: 0...255, using: &generator)
        })
        certificate = try Certificate(
            version: .v3, serialNumber: serial, publicKey: certificateKey.publicKey,
            notValidBefore: now - Self.validityBackdate, notValidAfter: now + Self.validitySpan,
            issuer: name, subject: name, signatureAlgorithm: .ed25519,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
            },
            issuerPrivateKey: certificateKey)
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        derBytes = serializer.serializedBytes
        privateKeyPEM = try certificateKey.serializeAsPEM().pemString
    }

    /// The topology hash a DER certificate names in its subject, nil when it names none. Claimed,
    /// not proven: only for saying which deployment a refused peer belongs to.
    public static func topologyHash(derBytes: [UInt8]) -> GeoCore.Digest? {
        guard let certificate = try? Certificate(derEncoded: derBytes) else { return nil }
        for attribute in certificate.subject.flatMap({ $0 }) where attribute.type == .RDNAttributeType.organizationalUnitName {
            guard let text = String(attribute.value) else { continue }
            guard text.hasPrefix(topologyMarker) else { continue }
            let hex = Array(text.dropFirst(topologyMarker.count).utf8)
            guard hex.count == 64 else { return nil }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(32)
            var index = 0
            while index < 64 {
                guard let high = hexValue(hex[index]), let low = hexValue(hex[index + 1]) else { return nil }
                bytes.append(high << 4 | low)
                index += 2
            }
            return GeoCore.Digest(bytes: bytes[...])
        }
        return nil
    }

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return character - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// The Ed25519 key a peer's DER certificate carries, after checking it is a well-formed
    /// certificate that signs itself with that key.
    public static func peerKey(derBytes: [UInt8]) throws(TLSRefusal) -> VerifyingKey {
        let certificate = try parse(derBytes)
        guard certificate.publicKey.isValidSignature(certificate.signature, for: certificate) else {
            throw .badCertificate("its self-signature does not verify with its key")
        }
        return try leafKey(certificate)
    }

    static func parse(_ derBytes: [UInt8]) throws(TLSRefusal) -> Certificate {
        do {
            return try Certificate(derEncoded: derBytes)
        } catch {
            throw .badCertificate("not an X.509 certificate (\(error))")
        }
    }

    /// The Ed25519 key a certificate carries.
    public static func leafKey(_ certificate: Certificate) throws(TLSRefusal) -> VerifyingKey {
        guard let edKey = Curve25519.Signing.PublicKey(certificate.publicKey) else {
            throw .badCertificate("its key is not Ed25519")
        }
        do {
            return try VerifyingKey(bytes: Array(edKey.rawRepresentation))
        } catch {
            throw .badCertificate("\(error)")
        }
    }

    /// Nil when `now` is within the certificate's validity dates.
    public static func validityRefusal(_ certificate: Certificate, now: Date) -> TLSRefusal? {
        if now < certificate.notValidBefore { return .certificateNotYetValid(notBefore: certificate.notValidBefore) }
        if now > certificate.notValidAfter { return .certificateExpired(notAfter: certificate.notValidAfter) }
        return nil
    }

    /// An identity key in the PEM form NIOSSL reads.
    static func privateKeyPEM(_ key: SigningKey) throws -> String {
        try Certificate.PrivateKey(Curve25519.Signing.PrivateKey(rawRepresentation: key.seed)).serializeAsPEM().pemString
    }
}

/// The two NIOSSL contexts of a node: one for accepted connections, one for dialled ones. Both
/// demand the peer's certificate. A node always has a certificate; only a test's hostile client
/// goes without (and then has no server context).
struct TLSContexts {
    let server: NIOSSLContext?
    let client: NIOSSLContext

    /// What a node presents: its chain (DER, leaf first) and the leaf's private key (PEM).
    struct Presented {
        var chain: [[UInt8]]
        var privateKeyPEM: String
    }

    init(settings: TLSSettings, topologyHash: GeoCore.Digest? = nil) throws {
        let presented = try settings.certificateKey.map { key in try Self.presented(key: key, settings: settings, topologyHash: topologyHash) }
        server = try presented.map { try NIOSSLContext(configuration: Self.configuration($0)) }
        client = try NIOSSLContext(configuration: Self.configuration(presented))
    }

    /// The operator-issued chain when there is one (its leaf carries `key`), else a self-signed
    /// certificate made now.
    static func presented(key: SigningKey, settings: TLSSettings, topologyHash: GeoCore.Digest?) throws -> Presented {
        if let chain = settings.authority?.chain, !chain.isEmpty {
            let der = try chain.map { certificate in
                var serializer = DER.Serializer()
                try serializer.serialize(certificate)
                return serializer.serializedBytes
            }
            return Presented(chain: der, privateKeyPEM: try TLSCertificate.privateKeyPEM(key))
        }
        let made = try TLSCertificate(key: key, commonName: settings.commonName, topologyHash: topologyHash)
        return Presented(chain: [made.derBytes], privateKeyPEM: made.privateKeyPEM)
    }

    static func configuration(_ presented: Presented?) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let presented {
            configuration.certificateChain = try presented.chain.map { .certificate(try NIOSSLCertificate(bytes: $0, format: .der)) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(presented.privateKeyPEM.utf8), format: .pem))
        }
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.signingSignatureAlgorithms = [.ed25519]
        configuration.verifySignatureAlgorithms = [.ed25519]
        // Both sides demand a certificate; `TLSPeerVerifier` replaces chain validation (no CA).
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([])
        return configuration
    }
}

/// What TLS learned about one connection's peer, shared by the verifier and the connection
/// handler. Touched only on the connection's event loop.
final class TLSPeerRecord {
    /// The identity owning the certificate's key, once verified.
    var certificateOwner: NodeID?
    /// Why verification refused the peer (the TLS error that follows is reported as this).
    var refusal: TLSRefusal?
    /// The topology hash a peer of another deployment named in its certificate: TLS was let
    /// finish, and the connection handler refuses it as a topology mismatch (see the header).
    var foreignTopology: GeoCore.Digest?
    var handshakeDone = false
}

/// The custom verification: pins the certificate's key to the topology.
enum TLSPeerVerifier {
    /// What the verifier decided: a peer of this topology, a peer of another one (refused later,
    /// by name), or a refusal now.
    enum Outcome {
        case owner(NodeID)
        /// Operator PKI: every check but the chain to a CA passed; that one is asynchronous.
        case checkChain(NodeID, leaf: Certificate, intermediates: [Certificate], authority: TLSAuthority)
        case foreignTopology(GeoCore.Digest)
        case refused(TLSRefusal)
    }

    /// `verify`, and when the key is unknown but the certificate names a topology hash other than
    /// `ours`, a peer of another deployment.
    static func classify(_ chain: [NIOSSLCertificate], expected: NodeID?, settings: TLSSettings, ours: GeoCore.Digest?) -> Outcome {
        switch verify(chain, expected: expected, settings: settings) {
        case let .success(owner):
            guard let authority = settings.authority else { return .owner(owner) }
            // `verify` parsed these already.
            let certificates = chain.compactMap { try? Certificate(derEncoded: $0.toDERBytes()) }
            guard let leaf = certificates.first else { return .refused(.badCertificate("cannot parse it")) }
            return .checkChain(owner, leaf: leaf, intermediates: Array(certificates.dropFirst()), authority: authority)
        case let .failure(refusal):
            if case .certificateKeyMismatch = refusal, let ours, let der = try? chain.first?.toDERBytes(),
               let theirs = TLSCertificate.topologyHash(derBytes: der), theirs != ours {
                return .foreignTopology(theirs)
            }
            return .refused(refusal)
        }
    }

    /// Every check that needs no chain building: the key (self-signed in the pinned mode), its
    /// owner, the dates, and with an operator PKI the name.
    static func verify(_ chain: [NIOSSLCertificate], expected: NodeID?, settings: TLSSettings, now: Date = Date()) -> Result<NodeID, TLSRefusal> {
        guard let leaf = chain.first else { return .failure(.noCertificate) }
        let der: [UInt8]
        do {
            der = try leaf.toDERBytes()
        } catch {
            return .failure(.badCertificate("cannot encode it: \(error)"))
        }
        let certificate: Certificate
        let key: VerifyingKey
        do throws(TLSRefusal) {
            certificate = try TLSCertificate.parse(der)
            // An operator-issued leaf is signed by its CA, checked with the chain; a pinned one signs itself.
            if settings.authority == nil {
                key = try TLSCertificate.peerKey(derBytes: der)
            } else {
                key = try TLSCertificate.leafKey(certificate)
            }
        } catch {
            return .failure(error)
        }
        guard let owner = settings.keyOwner(key) else { return .failure(.certificateKeyMismatch(expected: expected)) }
        if let expected, owner != expected {
            return .failure(.certificateIdentityMismatch(certificateOf: owner, claimed: expected))
        }
        if let authority = settings.authority {
            if let refusal = authority.checkLeaf(certificate, owner: owner, now: now) { return .failure(refusal) }
        } else if let refusal = TLSCertificate.validityRefusal(certificate, now: now) {
            return .failure(refusal)
        }
        return .success(owner)
    }

    /// After the GEOH Hello: the identity claimed must own the certificate's key.
    static func checkClaim(_ claimed: NodeID, certificateOwner: NodeID) -> TLSRefusal? {
        if certificateOwner == claimed { return nil }
        if certificateOwner.isClient, !claimed.isClient {
            return .clientCertificateForReplica(certificateOf: certificateOwner, claimed: claimed)
        }
        return .certificateIdentityMismatch(certificateOf: certificateOwner, claimed: claimed)
    }

    /// The refusal a TLS error stands for, given what the verifier recorded.
    static func refusal(for error: any Error, record: TLSPeerRecord) -> TLSRefusal {
        if let refusal = record.refusal { return refusal }
        let text = "\(error)"
        if text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || text.contains("CERTIFICATE_REQUIRED") {
            return .noCertificate
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") {
            return .plaintextPeer(firstByte: 0)
        }
        let reason = briefReason(text)
        return record.handshakeDone ? .streamError(reason) : .handshakeFailed(reason)
    }

    /// BoringSSL's reason code out of its error text ("...:OPENSSL_internal:CODE at file:line"),
    /// with what an alert from the peer means; the whole text when there is no code.
    static func briefReason(_ text: String) -> String {
        guard let marker = text.range(of: "OPENSSL_internal:") else { return text }
        let code = String(text[marker.upperBound...].prefix { $0 != " " && $0 != "]" && $0 != ")" })
        if code.contains("ALERT") {
            return "\(code) (the peer sent this alert: it refused this node's certificate or the handshake)"
        }
        return code
    }
}

/// Reads the peer's first byte: a TLS connection opens with a handshake record (content type
/// 0x16). Anything else is a plaintext peer, refused before BoringSSL sees it, so the log says
/// what happened rather than a parse error. Removes itself after the first read.
final class TLSRecordSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    static let handshakeRecordType: UInt8 = 0x16

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else {
            context.fireChannelRead(data)
            return
        }
        if first == Self.handshakeRecordType {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } else {
            context.fireErrorCaught(TLSRefusal.plaintextPeer(firstByte: first))
        }
    }
}
