// A hand-driven peer over loopback TCP: it speaks the handshake itself and then sends whatever a
// faulty or malicious peer would, to check what the transport refuses, drops and counts.

import GeoCore
import GeoCrypto
import GeoWire
import NIOCore
import NIOPosix
import Testing

@testable import GeoNet

final class RecordCollector: ChannelInboundHandler {
    typealias InboundIn = InboundRecord
    let continuation: AsyncStream<InboundRecord>.Continuation
    init(_ continuation: AsyncStream<InboundRecord>.Continuation) { self.continuation = continuation }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield(unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
}

struct RawPeer {
    let channel: any Channel
    let records: AsyncStream<InboundRecord>

    static func connect(port: Int) async throws -> RawPeer {
        let (records, continuation) = AsyncStream.makeStream(of: InboundRecord.self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoderHandler(limits: WireLimits())))
                    try channel.pipeline.syncOperations.addHandler(RecordCollector(continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawPeer(channel: channel, records: records)
    }

    func write(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Answers the transport's Hello as `node`, signing with `key`.
    func handshake(as node: NodeID, key: SigningKey) async throws {
        var hello: Hello?
        for await record in records {
            if case let .hello(received) = record { hello = received }
            break
        }
        let peer = try #require(hello)
        try await write(Hello(topologyHash: Fixture.topologyHash, node: node, nonce: Handshake.freshNonce()).encoded)
        let payload = Handshake.proofPayload(verifierNonce: peer.nonce, topologyHash: Fixture.topologyHash,
                                             signer: node, verifier: peer.node)
        // A transport that refuses the Hello may already have closed the connection.
        try? await write(Proof(signature: key.sign(payload)).encoded)
    }
}

@Suite struct RawPeerTests {
    let replica = NodeID.replica(number: 2)
    let client = NodeID.client(ClientID(3))

    @Test func framesClaimingAnotherSenderAreDroppedAndGarbageClosesTheConnection() async throws {
        let (transport, port) = try await Fixture.replica(2)
        let inbox = Inbox.collecting(transport)
        let peer = try await RawPeer.connect(port: port)
        try await peer.handshake(as: client, key: Fixture.clientKey(3))
        #expect(await eventually { await transport.metrics().connectedPeers == [client] })

        try await peer.write(FrameCodec.encode(Fixture.message(1), from: .replica(number: 6)))
        try await peer.write(FrameCodec.encode(Fixture.message(2), from: client))
        #expect(await eventually { await inbox.messages.count == 1 })
        #expect(await inbox.messages == [InboundMessage(from: client, message: Fixture.message(2))])
        #expect(await transport.metrics().drops["sender_mismatch"] == 1)

        try await peer.write([UInt8](repeating: 0x5A, count: WireFormat.headerBytes))
        #expect(await eventually { await transport.metrics().rejects["frame_bad_magic"] == 1 })
        #expect(await eventually { await transport.metrics().connectedPeers.isEmpty })
        await transport.shutdown()
    }

    @Test func aHigherReplicaMayNotDialALowerOne() async throws {
        let (transport, port) = try await Fixture.replica(2)
        let peer = try await RawPeer.connect(port: port)
        try await peer.handshake(as: .replica(number: 3), key: Fixture.replicaKey(3))
        #expect(await eventually { await transport.metrics().rejects["identity_not_allowed"] == 1 })
        #expect(await transport.metrics().connectedPeers.isEmpty)
        await transport.shutdown()
    }

    @Test func aSecondConnectionForTheSameIdentityIsRefused() async throws {
        let (transport, port) = try await Fixture.replica(2)
        let first = try await RawPeer.connect(port: port)
        try await first.handshake(as: client, key: Fixture.clientKey(3))
        #expect(await eventually { await transport.metrics().connectedPeers == [client] })
        let second = try await RawPeer.connect(port: port)
        try await second.handshake(as: client, key: Fixture.clientKey(3))
        #expect(await eventually { await transport.metrics().rejects["duplicate_connection"] == 1 })
        #expect(await transport.metrics().connectedPeers == [client])
        await transport.shutdown()
    }

    @Test func aSilentPeerIsClosedAfterTheHandshakeTimeout() async throws {
        var configuration = Fixture.configuration(replica)
        configuration.handshakeTimeout = .milliseconds(100)
        let (transport, port) = try await Fixture.replica(2, configuration)
        let peer = try await RawPeer.connect(port: port)
        #expect(await eventually { await transport.metrics().rejects["handshake_timeout"] == 1 })
        // The transport closed it: the peer's stream ends after the transport's Hello.
        var records = 0
        for await _ in peer.records { records += 1 }
        #expect(records == 1)
        await transport.shutdown()
    }
}
