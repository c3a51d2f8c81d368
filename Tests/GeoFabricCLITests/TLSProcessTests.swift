// Real replica processes over TLS (the `geofabric` binary): one test per refusal of issue 14's
// item 2. Each deploys local-1x4 on ports 18000-18003 (status 18100-18103), sends one hostile peer
// to replica 3, reads the refusal in its /metrics, and checks that a client over TLS still commits.

import Foundation
import GeoClient
import GeoCore
import GeoCrypto
@testable import GeoFabricCLI
@testable import GeoNet
@testable import GeoNode
import GeoTopology
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import GeoTestKit

@Suite(.serialized) struct TLSProcessTests {
    static let yaml = """
        name: tls-process-1x4
        regions: [local]
        base_port: 18000
        status_port_offset: 100
        shards:
          - name: s0
            clusters:
              - {region: local, replicas: 4}
        keys: dev
        """

    /// A hostile peer: who it claims to be, the key it signs the handshake with, and the TLS it
    /// speaks (nil: plaintext).
    struct Hostile: CustomTestStringConvertible, Sendable {
        var reason: String
        var identity: NodeID
        var handshakeKey: @Sendable (Topology) -> SigningKey
        var tls: @Sendable (Topology, KeyRing) -> TLSSettings?
        var testDescription: String { reason }
    }

    static func devKey(_ topology: Topology, _ identity: String) -> SigningKey {
        SigningKey.development(topology: topology.name, identity: identity)
    }

    static let cases: [Hostile] = [
        Hostile(reason: "tls_plaintext_peer", identity: .client(ClientID(3)),
                handshakeKey: { devKey($0, "client-3") }, tls: { _, _ in nil }),
        Hostile(reason: "tls_no_certificate", identity: .client(ClientID(3)),
                handshakeKey: { devKey($0, "client-3") },
                tls: { _, ring in
                    // It checks the replica's certificate as any node does, but presents none.
                    var settings = TLSSettings.identity(SigningKey(), name: "none", keyRing: ring)
                    settings.certificateKey = nil
                    return settings
                }),
        Hostile(reason: "tls_certificate_key_mismatch", identity: .client(ClientID(3)),
                handshakeKey: { devKey($0, "client-3") },
                tls: { _, ring in .identity(SigningKey(), name: "stranger", keyRing: ring) }),
        Hostile(reason: "tls_certificate_identity_mismatch", identity: .client(ClientID(3)),
                handshakeKey: { devKey($0, "client-3") },
                tls: { topology, ring in .identity(devKey(topology, "client-4"), name: "client-4", keyRing: ring) }),
        Hostile(reason: "tls_client_certificate_for_replica", identity: .replica(number: 0),
                handshakeKey: { devKey($0, "s0-local-0") },
                tls: { topology, ring in .identity(devKey(topology, "client-3"), name: "client-3", keyRing: ring) }),
    ]

    @Test(.timeLimit(.minutes(2)), arguments: cases)
    func aHostilePeerIsRefusedCountedAndCommitsGoOn(_ hostile: Hostile) async throws {
        #expect(FileManager.default.isExecutableFile(atPath: builtTool), "build the tool first (swift build): \(builtTool)")
        let path = try TestKit.writeTemporary(Self.yaml, name: "topology.yaml")
        let directory = (path as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let loaded = try LoadedTopology.load(path)
        let topology = loaded.topology
        #expect(topology.transport.tls)
        let deployment = try LocalDeployment.start(loaded, dataDirectory: directory + "/data", emulateWAN: false, executable: builtTool)
        do {
            try await deployment.waitUntilReady(timeout: .seconds(60))
            try await run(hostile, topology: topology)
        } catch {
            await deployment.stop()
            throw error
        }
        await deployment.stop()
    }

    /// Idle connections, garbage, a plaintext Hello, a torn Hello and garbage inside TLS on every
    /// replica port and every status port: every replica stays up and a client still commits.
    @Test(.timeLimit(.minutes(2))) func hostileInputOnEveryPortLeavesTheReplicasCommitting() async throws {
        let path = try TestKit.writeTemporary(Self.yaml, name: "topology.yaml")
        let directory = (path as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let loaded = try LoadedTopology.load(path)
        let topology = loaded.topology
        let deployment = try LocalDeployment.start(loaded, dataDirectory: directory + "/data", emulateWAN: false, executable: builtTool)
        var opened: [any Channel] = []
        do {
            try await deployment.waitUntilReady(timeout: .seconds(60))
            let ring = KeyRing.development(for: topology)
            let tls = try TLSContexts(settings: .identity(Self.devKey(topology, "client-3"), name: "client-3", keyRing: ring)).client
            let hello = Hello(topologyHash: TopologyFingerprint.digest(of: topology, keys: ring), node: .client(ClientID(3)),
                              nonce: Handshake.freshNonce()).encoded
            // A frame header out of turn whose length field (bytes 12..<16) claims 1.5 GB.
            var garbage = [UInt8](repeating: 0x5A, count: Handshake.helloBytes)
            garbage.replaceSubrange(0..<4, with: Array("GEOF".utf8))
            for replica in topology.allReplicas {
                for port in [replica.port, replica.statusPort] {
                    for _ in 0..<16 { opened.append(try await Self.open(port: port, tls: nil)) }  // idle
                    for bytes in [garbage, hello, Array(hello.prefix(30))] {
                        let channel = try await Self.open(port: port, tls: nil)
                        try? await channel.writeAndFlush(ByteBuffer(bytes: bytes))
                        opened.append(channel)
                    }
                }
                let inside = try await Self.open(port: replica.port, tls: tls)
                try? await inside.writeAndFlush(ByteBuffer(bytes: garbage))
                opened.append(inside)
            }
            let clientID = ClientID(1)
            let client = FabricClient(topology: topology, keys: ring, client: clientID,
                                      key: Self.devKey(topology, Topology.clientName(clientID)),
                                      cluster: topology.shards[0].clusters[0], logger: ProcessDeploymentTests.quiet)
            await client.start()
            let completion = try await client.submit(.put(key: Array("still".utf8), value: Array("up".utf8)), timeout: .seconds(30))
            #expect(completion.position.height >= 1)
            await client.shutdown()
            #expect(deployment.processes.allSatisfy { $0.process.isRunning })
            #expect(await wireErrors("tls_plaintext_peer", at: topology.allReplicas[0]) >= 2)
            #expect(await wireErrors("handshake_malformed", at: topology.allReplicas[0]) >= 1)
        } catch {
            for channel in opened { try? await channel.close() }
            await deployment.stop()
            throw error
        }
        for channel in opened { try? await channel.close() }
        await deployment.stop()
    }

    /// A raw connection (TLS with any server certificate accepted when `tls` is given).
    static func open(port: Int, tls: NIOSSLContext?) async throws -> any Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(
                            context: tls, serverHostname: nil,
                            customVerificationCallback: { _, promise in promise.succeed(.certificateVerified) }))
                    }
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    func run(_ hostile: Hostile, topology: Topology) async throws {
        let ring = KeyRing.development(for: topology)
        let target = topology.allReplicas[3]
        var configuration = TransportConfiguration(identity: hostile.identity, signingKey: hostile.handshakeKey(topology),
                                                   topologyHash: TopologyFingerprint.digest(of: topology, keys: ring), keyRing: ring)
        configuration.logger.logLevel = .critical
        configuration.tls = hostile.tls(topology, ring)
        let peer = Transport(configuration: configuration)
        peer.connect(peers: [PeerAddress(node: .replica(number: target.number), host: target.host, port: target.port)])
        var counted = 0
        for _ in 0..<200 where counted == 0 {
            counted = await wireErrors(hostile.reason, at: target)
            if counted == 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        await peer.shutdown()
        let seen = counted >= 1 ? "" : await wireErrorLines(at: target)
        #expect(counted >= 1, "replica 3 did not count \(hostile.reason); it counted: \(seen)")
        #expect(await peer.metrics().connectedPeers.isEmpty)

        // The replica is up and a client over TLS commits.
        let clientID = ClientID(1)
        let client = FabricClient(topology: topology, keys: ring, client: clientID,
                                  key: Self.devKey(topology, Topology.clientName(clientID)),
                                  cluster: topology.shards[0].clusters[0], logger: ProcessDeploymentTests.quiet)
        await client.start()
        let completion = try await client.submit(.put(key: Array("after".utf8), value: Array(hostile.reason.utf8)), timeout: .seconds(30))
        #expect(completion.position.height >= 1)
        await client.shutdown()
    }

    func wireErrorLines(at replica: ReplicaInfo) async -> String {
        guard case let .success((_, body)) = await StatusClient.get(
            path: "/metrics", host: replica.host, port: replica.statusPort, timeout: .seconds(2),
            group: MultiThreadedEventLoopGroup.singleton) else { return "no answer" }
        return String(decoding: body.readableBytesView, as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix("geofabric_wire_errors_total{") }.joined(separator: "; ")
    }

    /// `geofabric_wire_errors_total{reason="REASON"}` on the replica's /metrics (0 when absent).
    func wireErrors(_ reason: String, at replica: ReplicaInfo) async -> Int {
        guard case let .success((200, body)) = await StatusClient.get(
            path: "/metrics", host: replica.host, port: replica.statusPort, timeout: .seconds(2),
            group: MultiThreadedEventLoopGroup.singleton) else { return 0 }
        let prefix = "geofabric_wire_errors_total{reason=\"\(reason)\"} "
        let text = String(decoding: body.readableBytesView, as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            return Int(Double(line.dropFirst(prefix.count)) ?? 0)
        }
        return 0
    }
}
