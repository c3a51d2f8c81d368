// An operator PKI end to end: `keys generate` and `keys test-pki` make a key directory and a CA
// with every node's certificate, `topology validate` checks them (and names a bad file), and real
// replica processes (ports 21000-21003, status 22000-22003) present CA-issued certificates: a
// client with one commits; a certificate of another CA, an expired one and one naming another
// identity are refused by a replica, each counted under its reason in its /metrics.

import Foundation
import GeoClient
import GeoCore
import GeoCrypto
@testable import GeoFabricCLI
@testable import GeoNet
import GeoTopology
import Testing
import X509
import GeoTestKit

@Suite(.serialized) struct OperatorPKIProcessTests {
    static let yaml = """
        name: pki-process-1x4
        regions: [local]
        base_port: 21000
        status_port_offset: 1000
        clients: 8
        shards:
          - name: s0
            clusters:
              - {region: local, replicas: 4}
        keys: {directory: keys}
        transport: {ca: pki/ca.pem, certificates: pki}
        """

    /// A topology file with its key directory and test PKI, in a fresh temporary folder.
    static func prepare() throws -> (path: String, directory: String) {
        let path = try TestKit.writeTemporary(yaml, name: "topology.yaml")
        let directory = (path as NSString).deletingLastPathComponent
        try KeyDirectory(path: directory + "/keys").generate(for: try TopologyLoader.load(path: path))
        let issued = KeyCommands.testPKI(topologyPath: path, directory: directory + "/pki", days: 30, notBeforeDays: -1)
        #expect(issued.exitCode == 0, "\(issued.standardError)")
        return (path, directory)
    }

    @Test func validateChecksTheCertificatesAndNamesABadFile() async throws {
        let (path, directory) = try Self.prepare()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let good = await TopologyValidation.run(path: path, json: false)
        #expect(good.exitCode == 0, "\(good.standardError)")
        #expect(FileManager.default.fileExists(atPath: directory + "/pki/clients/client-7.pem"))
        let caKeyMode = try FileManager.default.attributesOfItem(atPath: directory + "/pki/ca.key")[.posixPermissions] as? Int
        #expect(caKeyMode == 0o600)

        // Another replica's certificate in place of replica 2's: its key is not replica 2's.
        let second = directory + "/pki/replicas/s0-local-2.pem"
        try FileManager.default.removeItem(atPath: second)
        try FileManager.default.copyItem(atPath: directory + "/pki/replicas/s0-local-1.pem", toPath: second)
        let wrongKey = await TopologyValidation.run(path: path, json: true)
        #expect(wrongKey.exitCode == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(wrongKey.standardOutput.utf8)) as? [String: Any])
        let error = try #require(object["error"] as? [String: Any])
        #expect(error["problem"] as? String == "certificate_key_mismatch")
        #expect(error["field"] as? String == "transport.certificates")
        #expect((object["file"] as? String)?.hasSuffix("pki/replicas/s0-local-2.pem") == true)

        try FileManager.default.removeItem(atPath: second)
        let missing = await TopologyValidation.run(path: path, json: false)
        #expect(missing.exitCode == 1)
        #expect(missing.standardError.contains("s0-local-2.pem: transport.certificates:"))
    }

    /// A hostile client: client 3's topology key and handshake, presenting `certificate`.
    struct Hostile: CustomTestStringConvertible, Sendable {
        var reason: String
        var certificate: @Sendable (_ ca: CertificateAuthority, _ key: VerifyingKey) throws -> Certificate
        var testDescription: String { reason }
    }

    static let day: TimeInterval = 86_400
    static let hostiles: [Hostile] = [
        Hostile(reason: "tls_certificate_untrusted") { _, key in
            let other = try CertificateAuthority(name: "another CA", notValidBefore: Date() - day, notValidAfter: Date() + day)
            return try other.issue(name: "client-3", key: key, notValidBefore: Date() - day, notValidAfter: Date() + day)
        },
        Hostile(reason: "tls_certificate_expired") { ca, key in
            try ca.issue(name: "client-3", key: key, notValidBefore: Date() - 3 * day, notValidAfter: Date() - day)
        },
        Hostile(reason: "tls_certificate_name_mismatch") { ca, key in
            try ca.issue(name: "client-4", key: key, notValidBefore: Date() - day, notValidAfter: Date() + day)
        },
    ]

    @Test(.timeLimit(.minutes(3))) func replicasWithCAIssuedCertificatesCommitAndRefuseBadOnes() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: builtTool), "build the tool first (swift build): \(builtTool)")
        let (path, directory) = try Self.prepare()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let loaded = try LoadedTopology.load(path)
        let topology = loaded.topology
        let ring = try KeyRing.load(for: topology, baseDirectory: directory)
        let keys = KeyDirectory(path: directory + "/keys")
        let deployment = try LocalDeployment.start(loaded, dataDirectory: directory + "/data", emulateWAN: false, executable: builtTool)
        do {
            try await deployment.waitUntilReady(timeout: .seconds(60))
            // A client presenting its CA-issued certificate commits.
            let clientID = ClientID(1)
            let pki = try #require(try await OperatorPKI.load(topology: topology, keyRing: ring, baseDirectory: directory,
                                                              identities: [.client(clientID)]))
            let client = FabricClient(topology: topology, keys: ring, client: clientID,
                                      key: try keys.signingKey(identity: "client-1", isClient: true),
                                      cluster: topology.shards[0].clusters[0], authority: pki.authority(for: .client(clientID)),
                                      logger: ProcessDeploymentTests.quiet)
            await client.start()
            let completion = try await client.submit(.put(key: Array("pki".utf8), value: Array("issued".utf8)), timeout: .seconds(30))
            #expect(completion.position.height >= 1)
            await client.shutdown()

            let ca = try CertificateAuthority(
                certificatePEM: String(decoding: try Data(contentsOf: URL(fileURLWithPath: directory + "/pki/ca.pem")), as: UTF8.self),
                privateKeyPEM: String(decoding: try Data(contentsOf: URL(fileURLWithPath: directory + "/pki/ca.key")), as: UTF8.self))
            let key = try keys.signingKey(identity: "client-3", isClient: true)
            let target = topology.allReplicas[3]
            for hostile in Self.hostiles {
                let certificate = try hostile.certificate(ca, key.verifyingKey)
                var configuration = TransportConfiguration(identity: .client(ClientID(3)), signingKey: key,
                                                           topologyHash: TopologyFingerprint.digest(of: topology, keys: ring), keyRing: ring)
                configuration.logger.logLevel = .critical
                var authority = pki.authority(for: .client(clientID))
                authority.chain = [certificate]
                configuration.tls = .identity(key, name: "client-3", keyRing: ring, authority: authority)
                let peer = Transport(configuration: configuration)
                peer.connect(peers: [PeerAddress(node: .replica(number: target.number), host: target.host, port: target.port)])
                let counted = await eventually(.seconds(20), interval: .milliseconds(100)) {
                    await TLSProcessTests().wireErrors(hostile.reason, at: target) >= 1
                }
                #expect(await peer.metrics().connectedPeers.isEmpty)
                await peer.shutdown()
                let seen = counted ? "" : await TLSProcessTests().wireErrorLines(at: target)
                #expect(counted, "replica 3 did not count \(hostile.reason); it counted: \(seen)")
            }
            #expect(deployment.processes.allSatisfy { $0.process.isRunning })
        } catch {
            await deployment.stop()
            throw error
        }
        await deployment.stop()
    }
}
