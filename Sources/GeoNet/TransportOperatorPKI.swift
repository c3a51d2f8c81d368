// An operator's PKI for the transport (`transport: {ca: FILE, certificates: DIR}`): loading and
// checking the files, and the checks a peer's certificate chain must pass.
//
// A node presents its operator-issued certificate (leaf first, then intermediates) and proves
// the leaf's key with its identity key in the TLS handshake. A peer's chain is trusted when:
//   1. the leaf's key is Ed25519 and is the topology's key of some identity (of the dialled one,
//      outbound) - the pinned-key check of the self-signed mode, unchanged;
//   2. the leaf names that identity (its subject CN or a SAN dNSName is the replica's name, or
//      client-N): a CA that certified a key under another name is refused;
//   3. the leaf is within its validity dates;
//   4. swift-certificates' Verifier (RFC 5280 policy: signatures, validity dates of every
//      certificate, basic and name constraints) builds a chain from it to a CA of the bundle.
// The CA adds an operator's control (issuance, expiry) on top of the topology's keys; it never
// replaces them: a CA-issued certificate over a key the topology does not name is refused.
//
// `OperatorPKI.load` runs the same checks on every node's own certificate at start (and all of
// them in `topology validate`), so a bad file is a typed error naming it before anything starts.

import Crypto
import GeoCore
import GeoCrypto
import SwiftASN1
import X509

import Foundation

/// Why an operator PKI cannot be used: the file, the topology field that leads to it, and what.
public struct OperatorPKIError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Problem: String, Hashable, Sendable {
        case caMissing = "ca_missing"
        case caUnparsable = "ca_unparsable"
        case certificateMissing = "certificate_missing"
        case certificateUnparsable = "certificate_unparsable"
        /// The certificate's key is not the topology's key of the identity it belongs to.
        case certificateKeyMismatch = "certificate_key_mismatch"
        case certificateNameMismatch = "certificate_name_mismatch"
        case certificateExpired = "certificate_expired"
        case certificateNotYetValid = "certificate_not_yet_valid"
        /// No chain from the certificate to a CA of the bundle.
        case certificateUntrusted = "certificate_untrusted"
    }
    public var problem: Problem
    public var file: String
    /// "transport.ca" or "transport.certificates".
    public var field: String
    public var message: String

    public init(_ problem: Problem, file: String, field: String, message: String) {
        self.problem = problem
        self.file = file
        self.field = field
        self.message = message
    }

    public var description: String { "\(file): \(field): \(message)" }
}

/// What a transport needs of an operator PKI: the CAs it trusts, the chain it presents, and the
/// name of each identity (what a leaf must name).
public struct TLSAuthority: Sendable {
    public var roots: [Certificate]
    /// This node's chain, leaf first; empty for a test's hostile peer without one.
    public var chain: [Certificate]
    public var identityName: @Sendable (NodeID) -> String?

    public init(roots: [Certificate], chain: [Certificate], identityName: @escaping @Sendable (NodeID) -> String?) {
        self.roots = roots
        self.chain = chain
        self.identityName = identityName
    }

    /// The names a certificate gives its subject: CN attributes and SAN dNSNames.
    public static func names(of certificate: Certificate) -> [String] {
        var names = certificate.subject.flatMap { $0 }
            .filter { $0.type == .RDNAttributeType.commonName }
            .compactMap { String($0.value) }
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for name in alternatives {
                if case let .dnsName(text) = name { names.append(text) }
            }
        }
        return names
    }

    /// The checks of a leaf that need no chain: it names `owner`, and `now` is within its dates.
    func checkLeaf(_ leaf: Certificate, owner: NodeID, now: Date) -> TLSRefusal? {
        let expected = identityName(owner) ?? "\(owner)"
        let names = Self.names(of: leaf)
        guard names.contains(expected) else { return .certificateNameMismatch(names: names, expected: expected) }
        return TLSCertificate.validityRefusal(leaf, now: now)
    }

    /// The chain from `leaf` through `intermediates` to a CA of the bundle (RFC 5280, at the
    /// current time); nil when there is one, else why not.
    func untrustedReason(leaf: Certificate, intermediates: [Certificate]) async -> String? {
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) { RFC5280Policy() }
        switch await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates)) {
        case .validCertificate:
            return nil
        case let .couldNotValidate(failures):
            if failures.isEmpty { return "no chain to a CA of the bundle" }
            return failures.map(\.policyFailureReason.description).joined(separator: "; ")
        }
    }
}

/// The operator PKI of a topology, its files read and checked.
public struct OperatorPKI: Sendable {
    public let roots: [Certificate]
    /// The chain of each identity loaded, leaf first.
    public let chains: [NodeID: [Certificate]]
    let replicaNames: [String]

    public static let caField = "transport.ca"
    public static let certificatesField = "transport.certificates"

    /// The certificate file of an identity inside the certificate directory.
    public static func certificatePath(directory: String, identity: String, isClient: Bool) -> String {
        ((directory as NSString).appendingPathComponent(isClient ? "clients" : "replicas") as NSString)
            .appendingPathComponent("\(identity).pem")
    }

    /// Reads the CA bundle and the certificates of `identities` (every replica and client of the
    /// topology when nil) and checks each as a peer would (see the file's header). Nothing is
    /// written. Returns nil when the topology names no PKI.
    public static func load(topology: Topology, keyRing: KeyRing, baseDirectory: String,
                            identities: [NodeID]? = nil, now: Date = Date()) async throws(OperatorPKIError) -> OperatorPKI? {
        guard topology.transport.tls, let files = topology.transport.authority else { return nil }
        let caPath = resolve(files.caBundle, base: baseDirectory)
        let directory = resolve(files.certificates, base: baseDirectory)
        let roots = try readCertificates(caPath, field: caField, missing: .caMissing, unparsable: .caUnparsable, what: "CA bundle")
        let replicaNames = topology.allReplicas.map(\.name)
        let authority = TLSAuthority(roots: roots, chain: [], identityName: Self.names(replicaNames))
        let wanted = identities ?? (topology.allReplicas.map { NodeID.replica(number: $0.number) }
            + (0..<topology.clientCount).map { NodeID.client(ClientID(UInt32($0))) })
        var chains: [NodeID: [Certificate]] = [:]
        for node in wanted {
            guard let name = authority.identityName(node) else { continue }
            let path = certificatePath(directory: directory, identity: name, isClient: node.isClient)
            let chain = try readCertificates(path, field: certificatesField, missing: .certificateMissing,
                                             unparsable: .certificateUnparsable, what: "certificate of \(name)")
            func failure(_ problem: OperatorPKIError.Problem, _ message: String) -> OperatorPKIError {
                OperatorPKIError(problem, file: path, field: certificatesField, message: message)
            }
            let leaf = chain[0]
            guard let key = try? TLSCertificate.leafKey(leaf) else {
                throw failure(.certificateKeyMismatch, "its key is not Ed25519; a node's certificate carries its topology identity key")
            }
            let topologyKey = node.replicaNumber.flatMap { keyRing.replicaKey(number: $0) } ?? node.client.flatMap { keyRing.clientKey($0) }
            guard key == topologyKey else {
                throw failure(.certificateKeyMismatch, "its key is not the topology's key of \(name) (\(Hex.encode(key.bytes)))")
            }
            switch authority.checkLeaf(leaf, owner: node, now: now) {
            case nil: break
            case let .certificateNameMismatch(names, expected)?:
                throw failure(.certificateNameMismatch, "it names \(names) but not \(expected) (its subject CN or a SAN dNSName must be the identity's name)")
            case let .certificateExpired(notAfter)?:
                throw failure(.certificateExpired, "expired on \(notAfter)")
            case let .certificateNotYetValid(notBefore)?:
                throw failure(.certificateNotYetValid, "not valid before \(notBefore)")
            case let other?:
                throw failure(.certificateUntrusted, other.description)
            }
            if let reason = await authority.untrustedReason(leaf: leaf, intermediates: Array(chain.dropFirst())) {
                throw failure(.certificateUntrusted, "not issued by a CA of \(caPath): \(reason)")
            }
            chains[node] = chain
        }
        return OperatorPKI(roots: roots, chains: chains, replicaNames: replicaNames)
    }

    /// The TLS authority of identity `node` (which must have been loaded).
    public func authority(for node: NodeID) -> TLSAuthority {
        TLSAuthority(roots: roots, chain: chains[node] ?? [], identityName: Self.names(replicaNames))
    }

    static func names(_ replicaNames: [String]) -> @Sendable (NodeID) -> String? {
        { node in
            if let number = node.replicaNumber {
                return replicaNames.indices.contains(Int(number)) ? replicaNames[Int(number)] : nil
            }
            return node.client.map { Topology.clientName($0) }
        }
    }

    static func resolve(_ path: String, base: String) -> String {
        path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
    }

    /// The PEM certificates of a file, in order; at least one.
    static func readCertificates(_ path: String, field: String, missing: OperatorPKIError.Problem,
                                 unparsable: OperatorPKIError.Problem, what: String) throws(OperatorPKIError) -> [Certificate] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw OperatorPKIError(missing, file: path, field: field, message: "the \(what) is missing (no such file, or unreadable)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw OperatorPKIError(unparsable, file: path, field: field, message: "the \(what) is not PEM text")
        }
        let certificates: [Certificate]
        do {
            certificates = try PEMDocument.parseMultiple(pemString: text).map { try Certificate(pemDocument: $0) }
        } catch {
            throw OperatorPKIError(unparsable, file: path, field: field, message: "the \(what) is not PEM certificates: \(error)")
        }
        guard !certificates.isEmpty else {
            throw OperatorPKIError(unparsable, file: path, field: field, message: "the \(what) holds no PEM certificate")
        }
        return certificates
    }
}
