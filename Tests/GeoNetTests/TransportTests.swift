// Transports over real loopback TCP (127.0.0.1, port 0). Waits poll with a generous deadline and
// assert only what must eventually hold; timing is asserted as a lower bound only.

import GeoCore
import GeoCrypto
import GeoTopology
import GeoWire
import NIOCore
import NIOPosix
import Testing

@testable import GeoNet
import GeoTestKit

/// Collects what a transport delivers, so tests can poll without cancelling the stream's iterator
/// (cancelling an AsyncStream iterator ends the stream).
actor Inbox {
    private(set) var messages: [InboundMessage] = []
    private var arrivals: [ContinuousClock.Instant] = []
    func add(_ message: InboundMessage) {
        messages.append(message)
        arrivals.append(.now)
    }
    func firstArrival() -> ContinuousClock.Instant? { arrivals.first }

    static func collecting(_ transport: Transport) -> Inbox {
        let inbox = Inbox()
        Task { for await message in transport.messages { await inbox.add(message) } }
        return inbox
    }
}


enum Fixture {
    static let topology = EmbeddedTopology.load()
    static let keyRing = KeyRing.development(for: topology)
    static let topologyHash = Hashing.sha256(Array(EmbeddedTopology.yaml.utf8))

    static func replicaKey(_ number: UInt32) -> SigningKey {
        SigningKey.development(topology: topology.name, identity: topology.allReplicas[Int(number)].name)
    }

    static func clientKey(_ client: UInt32) -> SigningKey {
        SigningKey.development(topology: topology.name, identity: Topology.clientName(ClientID(client)))
    }

    /// `tls`: mutual TLS with a certificate over the signing key (another key than the
    /// identity's plays a hostile peer at both layers).
    static func configuration(_ node: NodeID, key: SigningKey? = nil, hash: Digest = topologyHash,
                              tls: Bool = false) -> TransportConfiguration {
        let signing = key ?? (node.client.map { clientKey($0.rawValue) } ?? replicaKey(node.replicaNumber!))
        var configuration = TransportConfiguration(identity: node, signingKey: signing, topologyHash: hash, keyRing: keyRing)
        if tls { configuration.tls = .identity(signing, name: "\(node)", keyRing: keyRing) }
        // Generous: under the full suite the simulator tests hold the cooperative threads, and a
        // raw test peer can take seconds to answer a Hello (3 s closed connections mid-test).
        configuration.handshakeTimeout = .seconds(60)
        // Refusals are logged at warning: keep those in the test output, not the connect chatter.
        configuration.logger.logLevel = .warning
        return configuration
    }

    static func message(_ round: UInt64) -> Message {
        .blockRequest(BlockRequest(cluster: ClusterID(shard: ShardID(0), index: 0), fromRound: round, toRound: round + 1))
    }

    /// A started replica transport and its port.
    static func replica(_ number: UInt32, _ configuration: TransportConfiguration? = nil, port: Int = 0,
                        tls: Bool = false) async throws -> (Transport, Int) {
        let transport = Transport(configuration: configuration ?? Self.configuration(.replica(number: number), tls: tls))
        let bound = try await transport.start(listen: "127.0.0.1", port: port)
        return (transport, bound)
    }
}

@Suite struct TransportTests {
    let r0 = NodeID.replica(number: 0)
    let r1 = NodeID.replica(number: 1)

    @Test(arguments: [false, true]) func replicasHandshakeAndExchangeMessagesBothWays(tls: Bool) async throws {
        let (zero, _) = try await Fixture.replica(0, tls: tls)
        let (one, port) = try await Fixture.replica(1, tls: tls)
        let inboxZero = Inbox.collecting(zero), inboxOne = Inbox.collecting(one)
        // Replica 1 queues for replica 0 before anyone is connected: the lower number dials.
        one.send(Fixture.message(10), to: r0)
        zero.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        zero.send(Fixture.message(1), to: r1)
        #expect(await eventually {
            let atOne = await inboxOne.messages.count, atZero = await inboxZero.messages.count
            return atOne == 1 && atZero == 1
        })
        #expect(await inboxOne.messages == [InboundMessage(from: r0, message: Fixture.message(1))])
        #expect(await inboxZero.messages == [InboundMessage(from: r1, message: Fixture.message(10))])
        let metrics = await zero.metrics()
        #expect(metrics.connectedPeers == [r1])
        #expect(metrics.framesOut == 1 && metrics.framesIn == 1)
        #expect(metrics.rejects.isEmpty)
        await zero.shutdown()
        await one.shutdown()
    }

    @Test(arguments: [false, true]) func clientDialsAndReceivesRepliesOverItsOwnConnection(tls: Bool) async throws {
        let (replica, port) = try await Fixture.replica(2, tls: tls)
        let clientNode = NodeID.client(ClientID(5))
        let client = Transport(configuration: Fixture.configuration(clientNode, tls: tls))
        let replicaInbox = Inbox.collecting(replica), clientInbox = Inbox.collecting(client)
        client.connect(peers: [PeerAddress(node: .replica(number: 2), host: "127.0.0.1", port: port)])
        client.send(Fixture.message(3), to: .replica(number: 2))
        #expect(await eventually { await replicaInbox.messages.count == 1 })
        #expect(await replicaInbox.messages.first?.from == clientNode)
        replica.send(Fixture.message(4), to: clientNode)
        #expect(await eventually { await clientInbox.messages.count == 1 })
        #expect(await clientInbox.messages.first == InboundMessage(from: .replica(number: 2), message: Fixture.message(4)))
        await client.shutdown()
        // Once the client is gone, a reply to it has no route (the client retries on reconnect).
        #expect(await eventually { await replica.metrics().connectedPeers.isEmpty })
        replica.send(Fixture.message(5), to: clientNode)
        #expect(await eventually { await replica.metrics().drops["no_route"] == 1 })
        await replica.shutdown()
    }

    @Test(arguments: [false, true]) func differentTopologyIsRefusedOnBothSides(tls: Bool) async throws {
        let other = Hashing.sha256(Array("another topology".utf8))
        let (one, port) = try await Fixture.replica(1, Fixture.configuration(r1, hash: other, tls: tls))
        let zero = Transport(configuration: Fixture.configuration(r0, tls: tls))
        zero.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        #expect(await eventually {
            let dialler = await zero.metrics().rejects["topology_mismatch", default: 0]
            let listener = await one.metrics().rejects["topology_mismatch", default: 0]
            return dialler >= 1 && listener >= 1
        })
        #expect(await zero.metrics().connectedPeers.isEmpty)
        #expect(await one.metrics().connectedPeers.isEmpty)
        await zero.shutdown()
        await one.shutdown()
    }

    @Test(arguments: [false, true]) func badSignatureAndUnknownIdentityAreRefused(tls: Bool) async throws {
        let (one, port) = try await Fixture.replica(1, tls: tls)
        // Claims replica 0 but holds another key.
        let impostor = Transport(configuration: Fixture.configuration(r0, key: SigningKey(), tls: tls))
        impostor.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        // Over TLS its certificate carries that key, which the topology does not name: refused
        // before the handshake's signature is even read.
        let keyMismatch = "tls_certificate_key_mismatch"
        #expect(await eventually { await one.metrics().rejects[tls ? keyMismatch : "bad_signature", default: 0] >= 1 })
        await impostor.shutdown()
        // A client id beyond the topology's clients has no key.
        let stranger = Transport(configuration: Fixture.configuration(.client(ClientID(9_999)), key: SigningKey(), tls: tls))
        stranger.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        #expect(await eventually {
            let metrics = await one.metrics()
            return tls ? metrics.rejects[keyMismatch, default: 0] >= 2 : metrics.rejects["unknown_identity", default: 0] >= 1
        })
        await stranger.shutdown()
        #expect(await one.metrics().connectedPeers.isEmpty)
        await one.shutdown()
    }

    /// Issue 19: the side that refuses a Hello says why (a Reject record in place of its Proof),
    /// and the dialler's owner hears it as an event; over TLS the certificate check refuses first
    /// and the dialler hears the alert.
    @Test(arguments: [false, true]) func aRefusedDiallerIsToldWhy(tls: Bool) async throws {
        let (one, port) = try await Fixture.replica(1, tls: tls)
        let stranger = Transport(configuration: Fixture.configuration(.client(ClientID(9_999)), key: SigningKey(), tls: tls))
        stranger.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        var told: HandshakeRefusal?
        for await event in stranger.events {
            if case let .refused(node, refusal) = event, node == r1 {
                told = refusal
                break
            }
        }
        if tls {
            guard case let .tls(refusal)? = told, "\(refusal)".contains("ALERT") else {
                Issue.record("expected the replica's TLS alert, got \(String(describing: told))")
                return
            }
        } else {
            #expect(told == .peerRefused("unknown_identity"))
        }
        #expect(await one.metrics().rejects[tls ? "tls_certificate_key_mismatch" : "unknown_identity", default: 0] >= 1)
        await stranger.shutdown()
        await one.shutdown()
    }

    @Test(arguments: [false, true]) func queueIsBoundedAndDropsTheNewest(tls: Bool) async throws {
        var configuration = Fixture.configuration(r0, tls: tls)
        configuration.outboundQueueFramesMax = 4
        let zero = Transport(configuration: configuration)
        let inbox = Inbox.collecting(zero)
        // Replica 1 is never dialled here, so everything queues.
        for round in 0..<10 { zero.send(Fixture.message(UInt64(round)), to: r1) }
        #expect(await eventually { await zero.metrics().drops["queue_full"] == 6 })
        let metrics = await zero.metrics()
        #expect(metrics.queuedFrames == 4)
        #expect(metrics.backPressuredPeers == [r1])
        // A node nobody knows gets no queue at all.
        zero.send(Fixture.message(1), to: .replica(number: 4_000))
        #expect(await eventually { await zero.metrics().drops["no_route"] == 1 })
        #expect(await inbox.messages.isEmpty)
        await zero.shutdown()
    }

    /// Frames for a replica that is not connected: only the latest are kept, and they are what it
    /// gets when it connects (a restarted replica used to get the whole stale backlog first).
    @Test(arguments: [false, true]) func aPeerThatIsDownGetsOnlyTheLatestFramesWhenItConnects(tls: Bool) async throws {
        var configuration = Fixture.configuration(r0, tls: tls)
        configuration.peerDownQueueFramesMax = 4
        let zero = Transport(configuration: configuration)
        for round in 0..<10 { zero.send(Fixture.message(UInt64(round)), to: r1) }
        #expect(await eventually { await zero.metrics().drops["peer_down"] == 6 })
        #expect(await zero.metrics().queuedFrames == 4)
        #expect(await zero.metrics().drops["queue_full", default: 0] == 0)
        let (one, port) = try await Fixture.replica(1, tls: tls)
        let inbox = Inbox.collecting(one)
        zero.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        #expect(await eventually { await inbox.messages.count == 4 })
        let rounds = await inbox.messages.compactMap { inbound -> UInt64? in
            if case let .blockRequest(request) = inbound.message { return request.fromRound }
            return nil
        }
        #expect(rounds == [6, 7, 8, 9])
        await zero.shutdown()
        await one.shutdown()
    }

    @Test(arguments: [false, true]) func reconnectsAfterTheListenerRestarts(tls: Bool) async throws {
        var configuration = Fixture.configuration(r0, tls: tls)
        configuration.reconnectDelayMax = .milliseconds(200)
        let zero = Transport(configuration: configuration)
        let (first, port) = try await Fixture.replica(1, tls: tls)
        zero.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        #expect(await eventually { await zero.metrics().connectedPeers == [r1] })
        await first.shutdown()
        #expect(await eventually { await zero.metrics().connectedPeers.isEmpty })
        let (second, _) = try await Fixture.replica(1, port: port, tls: tls)
        let inbox = Inbox.collecting(second)
        #expect(await eventually { await zero.metrics().connectedPeers == [r1] })
        zero.send(Fixture.message(8), to: r1)
        #expect(await eventually { await inbox.messages.count == 1 })
        #expect(await zero.metrics().reconnects >= 1)
        await zero.shutdown()
        await second.shutdown()
    }

    @Test(arguments: [false, true]) func wanEmulationDelaysByAtLeastTheOneWayLatency(tls: Bool) async throws {
        let delay = TimeAmount.milliseconds(150)
        var configuration = Fixture.configuration(r0, tls: tls)
        configuration.wanEmulation = WANEmulation { _ in LinkProfile(oneWayDelay: delay, bytesPerSecond: 1_000_000) }
        let zero = Transport(configuration: configuration)
        let (one, port) = try await Fixture.replica(1, tls: tls)
        let inbox = Inbox.collecting(one)
        zero.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        #expect(await eventually { await zero.metrics().connectedPeers == [r1] })
        let sent = ContinuousClock.now
        zero.send(Fixture.message(1), to: r1)
        zero.send(Fixture.message(2), to: r1)
        #expect(await eventually { await inbox.messages.count == 2 })
        let arrival = try #require(await inbox.firstArrival())
        #expect(arrival - sent >= .milliseconds(150))
        #expect(await inbox.messages.map(\.message) == [Fixture.message(1), Fixture.message(2)])
        await zero.shutdown()
        await one.shutdown()
    }

    @Test func topologyLinksBecomeProfiles() {
        let wan = WANEmulation.topology(Fixture.topology, from: .replica(number: 0))
        // Replicas 0-3 are in oregon, 4-7 in iowa (rtt 38 ms, 669 Mbit/s).
        #expect(wan.profile(.replica(number: 5)) == LinkProfile(oneWayDelay: .milliseconds(19), bytesPerSecond: 669 * 125_000))
        #expect(wan.profile(.client(ClientID(0))) == nil)
    }
}
