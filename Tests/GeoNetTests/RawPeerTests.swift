// A hand-driven peer over loopback TCP: it speaks the handshake itself and then sends whatever a
// faulty or malicious peer would, to check what the transport refuses, drops and counts.

import GeoCore
import GeoCrypto
import GeoWire
import NIOCore
import NIOPosix
import NIOSSL
import Testing

@testable import GeoNet
import GeoTestKit

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

    /// `tls`: speak TLS first, with a certificate over `tls.certificateKey` (none when nil),
    /// accepting any server certificate: the peer under test is the server.
    static func connect(port: Int, tls: TLSSettings? = nil) async throws -> RawPeer {
        let (records, continuation) = AsyncStream.makeStream(of: InboundRecord.self)
        let context = try tls.map { try TLSContexts(settings: $0).client }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(
                            context: context, serverHostname: nil,
                            customVerificationCallback: { _, promise in promise.succeed(.certificateVerified) }))
                    }
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

/// The client certificate a raw peer presents over TLS: the topology's key of `client`.
func rawPeerTLS(_ tls: Bool, client: UInt32 = 3) -> TLSSettings? {
    tls ? .identity(Fixture.clientKey(client), name: "raw-peer", keyRing: Fixture.keyRing) : nil
}

/// Every case runs over a plaintext transport and over a TLS one (the raw peer speaking TLS too):
/// the hostile input arrives inside TLS and is refused the same way.
@Suite struct RawPeerTests {
    let replica = NodeID.replica(number: 2)
    let client = NodeID.client(ClientID(3))

    @Test(arguments: [false, true]) func framesClaimingAnotherSenderAreDroppedAndGarbageClosesTheConnection(tls: Bool) async throws {
        let (transport, port) = try await Fixture.replica(2, tls: tls)
        let inbox = Inbox.collecting(transport)
        let peer = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls))
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

    @Test(arguments: [false, true]) func aHigherReplicaMayNotDialALowerOne(tls: Bool) async throws {
        let (transport, port) = try await Fixture.replica(2, tls: tls)
        let peer = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls))
        try await peer.handshake(as: .replica(number: 3), key: Fixture.replicaKey(3))
        #expect(await eventually { await transport.metrics().rejects["identity_not_allowed"] == 1 })
        #expect(await transport.metrics().connectedPeers.isEmpty)
        await transport.shutdown()
    }

    @Test(arguments: [false, true]) func aSecondConnectionForTheSameIdentityIsRefused(tls: Bool) async throws {
        let (transport, port) = try await Fixture.replica(2, tls: tls)
        let first = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls))
        try await first.handshake(as: client, key: Fixture.clientKey(3))
        #expect(await eventually { await transport.metrics().connectedPeers == [client] })
        let second = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls))
        try await second.handshake(as: client, key: Fixture.clientKey(3))
        #expect(await eventually { await transport.metrics().rejects["duplicate_connection"] == 1 })
        #expect(await transport.metrics().connectedPeers == [client])
        await transport.shutdown()
    }

    @Test(arguments: [false, true]) func aSilentPeerIsClosedAfterTheHandshakeTimeout(tls: Bool) async throws {
        var configuration = Fixture.configuration(replica, tls: tls)
        configuration.handshakeTimeout = .milliseconds(100)
        let (transport, port) = try await Fixture.replica(2, configuration, tls: tls)
        let peer = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls))
        #expect(await eventually { await transport.metrics().rejects["handshake_timeout"] == 1 })
        // The transport closed it: the peer's stream ends after the transport's Hello.
        var records = 0
        for await _ in peer.records { records += 1 }
        // Over TLS the Hello follows the TLS handshake, which a loaded machine may not finish
        // within the 100 ms given here: then the stream ends with nothing.
        #expect(tls ? records <= 1 : records == 1)
        await transport.shutdown()
    }
}
