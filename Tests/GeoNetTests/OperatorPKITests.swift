// The operator PKI (`transport: {ca, certificates}`): loading its files with typed errors that
// name them, and the checks of a peer's CA-issued chain (key, name, dates, chain to the CA).

import Foundation
import GeoCore
import GeoCrypto
import NIOSSL
import Testing
import X509

@testable import GeoNet
import GeoTestKit

/// A CA and certificate files for the embedded topology's dev keys, in a temporary directory.
struct PKIFixture {
    let directory: String
    let authority: CertificateAuthority
    var topology: Topology
    static let day: TimeInterval = 86_400

    init() throws {
        directory = TestKit.temporaryDirectory("geofabric-pki")
        authority = try CertificateAuthority(name: "test CA", notValidBefore: Date() - Self.day, notValidAfter: Date() + 30 * Self.day)
        try Data(try authority.certificatePEM.utf8).write(to: URL(fileURLWithPath: directory + "/ca.pem"))
        topology = Fixture.topology
        topology.transport.authority = OperatorAuthorityFiles(caBundle: "ca.pem", certificates: "certificates")
    }

    var certificates: String { directory + "/certificates" }

    func name(_ node: NodeID) -> String {
        node.replicaNumber.map { topology.allReplicas[Int($0)].name } ?? Topology.clientName(node.client!)
    }

    func key(_ node: NodeID) -> SigningKey {
        node.replicaNumber.map { Fixture.replicaKey($0) } ?? Fixture.clientKey(node.client!.rawValue)
    }

    /// Issues `node` a certificate (by default: its name, its key, valid from yesterday for a month).
    func issue(_ node: NodeID, name: String? = nil, key: VerifyingKey? = nil, by issuer: CertificateAuthority? = nil,
               from: Date = Date() - day, until: Date = Date() + 30 * day) throws -> Certificate {
        try (issuer ?? authority).issue(name: name ?? self.name(node), key: key ?? self.key(node).verifyingKey,
                                        notValidBefore: from, notValidAfter: until)
    }

    /// Writes `certificate` as `node`'s certificate file.
    func write(_ certificate: Certificate, for node: NodeID) throws {
        let path = OperatorPKI.certificatePath(directory: certificates, identity: name(node), isClient: node.isClient)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(try certificate.serializeAsPEM().pemString.utf8).write(to: URL(fileURLWithPath: path))
    }

    func load(_ nodes: [NodeID]) async throws(OperatorPKIError) -> OperatorPKI? {
        try await OperatorPKI.load(topology: topology, keyRing: Fixture.keyRing, baseDirectory: directory, identities: nodes)
    }

    /// Transport settings of `node` presenting `chain` (its own CA-issued certificate by default).
    func settings(_ node: NodeID, chain: [Certificate]? = nil) throws -> TLSSettings {
        let presented = try chain ?? [issue(node)]
        let authority = TLSAuthority(roots: [self.authority.certificate], chain: presented,
                                     identityName: OperatorPKI.names(topology.allReplicas.map(\.name)))
        return .identity(key(node), name: name(node), keyRing: Fixture.keyRing, authority: authority)
    }
}

@Suite struct OperatorPKITests {
    let r0 = NodeID.replica(number: 0)
    let r1 = NodeID.replica(number: 1)

    @Test func issuedCertificatesLoadForEveryIdentityAsked() async throws {
        let pki = try PKIFixture()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        for node in [r0, r1, .client(ClientID(2))] { try pki.write(try pki.issue(node), for: node) }
        let loaded = try #require(try await pki.load([r0, r1, .client(ClientID(2))]))
        #expect(loaded.chains.count == 3)
        #expect(loaded.authority(for: r1).chain.first?.subject.description.contains(pki.name(r1)) == true)
        #expect(TLSAuthority.names(of: try pki.issue(r1)) == [pki.name(r1), pki.name(r1)])
        // Without the option there is nothing to load.
        var plain = pki.topology
        plain.transport.authority = nil
        #expect(try await OperatorPKI.load(topology: plain, keyRing: Fixture.keyRing, baseDirectory: pki.directory) == nil)
    }

    /// Each bad file is a typed error naming the file and the topology field; nothing is written.
    @Test func badFilesAreTypedErrorsNamingFileAndField() async throws {
        let pki = try PKIFixture()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        func problem(_ node: NodeID) async -> OperatorPKIError? {
            do throws(OperatorPKIError) {
                _ = try await pki.load([node])
                return nil
            } catch {
                return error
            }
        }
        // No certificate file.
        let missing = await problem(r0)
        #expect(missing?.problem == .certificateMissing)
        #expect(missing?.field == "transport.certificates")
        #expect(missing?.file.hasSuffix("certificates/replicas/\(pki.name(r0)).pem") == true)
        // Not PEM.
        let path = OperatorPKI.certificatePath(directory: pki.certificates, identity: pki.name(r0), isClient: false)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data("not a certificate\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(await problem(r0)?.problem == .certificateUnparsable)
        // Another node's key under this node's name.
        try pki.write(try pki.issue(r0, key: Fixture.replicaKey(1).verifyingKey), for: r0)
        #expect(await problem(r0)?.problem == .certificateKeyMismatch)
        // This node's key under another node's name.
        try pki.write(try pki.issue(r0, name: pki.name(r1)), for: r0)
        #expect(await problem(r0)?.problem == .certificateNameMismatch)
        // Out of its dates.
        try pki.write(try pki.issue(r0, from: Date() - 10 * PKIFixture.day, until: Date() - PKIFixture.day), for: r0)
        #expect(await problem(r0)?.problem == .certificateExpired)
        try pki.write(try pki.issue(r0, from: Date() + PKIFixture.day, until: Date() + 2 * PKIFixture.day), for: r0)
        #expect(await problem(r0)?.problem == .certificateNotYetValid)
        // Issued by another CA.
        let other = try CertificateAuthority(name: "other CA", notValidBefore: Date() - PKIFixture.day, notValidAfter: Date() + PKIFixture.day)
        try pki.write(try pki.issue(r0, by: other), for: r0)
        #expect(await problem(r0)?.problem == .certificateUntrusted)
        // The CA bundle: unparsable, then missing.
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: pki.directory + "/ca.pem"))
        let unparsable = await problem(r0)
        #expect(unparsable?.problem == .caUnparsable)
        #expect(unparsable?.field == "transport.ca")
        try FileManager.default.removeItem(atPath: pki.directory + "/ca.pem")
        #expect(await problem(r0)?.problem == .caMissing)
        #expect(!FileManager.default.fileExists(atPath: pki.directory + "/ca.pem"))
    }

    /// What a peer checks of a presented chain before the chain to the CA: key owner, name, dates.
    @Test func thePeerChecksKeyNameAndDatesOfACAIssuedLeaf() throws {
        let pki = try PKIFixture()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        let settings = try pki.settings(r0)
        func nio(_ certificate: Certificate) throws -> NIOSSLCertificate {
            try NIOSSLCertificate(bytes: Array(try certificate.serializeAsPEM().pemString.utf8), format: .pem)
        }
        #expect(TLSPeerVerifier.verify([try nio(try pki.issue(r1))], expected: r1, settings: settings) == .success(r1))
        // Not self-signed, yet accepted here: the CA's signature is the chain check's.
        let renamed = try pki.issue(r1, name: "someone-else")
        #expect(TLSPeerVerifier.verify([try nio(renamed)], expected: nil, settings: settings)
            == .failure(.certificateNameMismatch(names: ["someone-else", "someone-else"], expected: pki.name(r1))))
        let expired = try pki.issue(r1, from: Date() - 3 * PKIFixture.day, until: Date() - PKIFixture.day)
        #expect(TLSPeerVerifier.verify([try nio(expired)], expected: nil, settings: settings)
            == .failure(.certificateExpired(notAfter: expired.notValidAfter)))
        let stranger = try pki.issue(r1, key: SigningKey().verifyingKey)
        #expect(TLSPeerVerifier.verify([try nio(stranger)], expected: r1, settings: settings) == .failure(.certificateKeyMismatch(expected: r1)))
    }

    @Test func theChainMustReachACAOfTheBundle() async throws {
        let pki = try PKIFixture()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        let authority = try #require(try pki.settings(r0).authority)
        #expect(await authority.untrustedReason(leaf: try pki.issue(r1), intermediates: []) == nil)
        let other = try CertificateAuthority(name: "other CA", notValidBefore: Date() - PKIFixture.day, notValidAfter: Date() + PKIFixture.day)
        #expect(await authority.untrustedReason(leaf: try pki.issue(r1, by: other), intermediates: []) != nil)
    }

    /// Pinned self-signed mode: the dates are checked too (a certificate made now always passes).
    @Test func selfSignedCertificatesOutOfTheirDatesAreRefused() throws {
        let settings = TLSSettings.identity(Fixture.replicaKey(0), name: "r0", keyRing: Fixture.keyRing)
        let old = try TLSCertificate(key: Fixture.replicaKey(1), commonName: "r1", now: Date() - 200 * 365 * PKIFixture.day)
        let nio = try NIOSSLCertificate(bytes: old.derBytes, format: .der)
        guard case .failure(.certificateExpired) = TLSPeerVerifier.verify([nio], expected: nil, settings: settings) else {
            Issue.record("an expired self-signed certificate was not refused as expired")
            return
        }
        let fresh = try NIOSSLCertificate(bytes: try TLSCertificate(key: Fixture.replicaKey(1), commonName: "r1").derBytes, format: .der)
        #expect(TLSPeerVerifier.verify([fresh], expected: nil, settings: settings) == .success(r1))
    }
}

/// Transports in one process presenting CA-issued certificates.
@Suite struct OperatorPKITransportTests {
    let r0 = NodeID.replica(number: 0)
    let r1 = NodeID.replica(number: 1)

    func configuration(_ node: NodeID, _ settings: TLSSettings) -> TransportConfiguration {
        var configuration = Fixture.configuration(node, tls: true)
        configuration.tls = settings
        return configuration
    }

    @Test func replicasWithCAIssuedCertificatesExchangeMessages() async throws {
        let pki = try PKIFixture()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        let (one, port) = try await Fixture.replica(1, configuration(r1, try pki.settings(r1)))
        let inbox = Inbox.collecting(one)
        let zero = Transport(configuration: configuration(r0, try pki.settings(r0)))
        zero.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        zero.send(Fixture.message(1), to: r1)
        #expect(await eventually { await inbox.messages.count == 1 })
        #expect(await zero.metrics().connectedPeers == [r1])
        await zero.shutdown()
        await one.shutdown()
    }

    /// A client presenting a certificate of another CA (over its own topology key, under its own
    /// name): refused by the replica as untrusted.
    @Test func aCertificateOfAnotherCAIsRefusedAsUntrusted() async throws {
        let pki = try PKIFixture()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        let (one, port) = try await Fixture.replica(1, configuration(r1, try pki.settings(r1)))
        let client = NodeID.client(ClientID(3))
        let other = try CertificateAuthority(name: "other CA", notValidBefore: Date() - PKIFixture.day, notValidAfter: Date() + PKIFixture.day)
        let stranger = Transport(configuration: configuration(client, try pki.settings(client, chain: [try pki.issue(client, by: other)])))
        stranger.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        #expect(await eventually { await one.metrics().rejects["tls_certificate_untrusted", default: 0] >= 1 })
        #expect(await one.metrics().connectedPeers.isEmpty)
        await stranger.shutdown()
        await one.shutdown()
    }
}
