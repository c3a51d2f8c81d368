// TLS between transports in one process: what crosses the wire (a recording proxy in the path),
// and each refusal of the TLS layer, with its typed reason.

import GeoCore
import GeoCrypto
import GeoWire
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import GeoNet
import GeoTestKit

/// Bytes that crossed the proxy, both directions.
final class WireRecording: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    func append(_ buffer: ByteBuffer) { bytes.withLock { $0.append(contentsOf: buffer.readableBytesView) } }
    var all: [UInt8] { bytes.withLock { $0 } }

    func contains(_ needle: [UInt8]) -> Bool {
        let haystack = all
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start..<start + needle.count].elementsEqual(needle) {
            return true
        }
        return false
    }
}

/// One side of a proxied connection: records what it reads and writes it to the other side.
/// Reads that come before the other side is linked wait in `pending`.
final class ProxyHalf: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let recording: WireRecording
    var partner: (any Channel)?
    var pending: [ByteBuffer] = []
    init(recording: WireRecording) { self.recording = recording }

    func link(_ partner: any Channel) {
        self.partner = partner
        for buffer in pending { partner.writeAndFlush(buffer, promise: nil) }
        pending = []
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        recording.append(buffer)
        if let partner { partner.writeAndFlush(buffer, promise: nil) } else { pending.append(buffer) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.close(promise: nil)
        context.fireChannelInactive()
    }
}

/// A TCP proxy on 127.0.0.1 (port 0) to `target`, recording every byte.
enum RecordingProxy {
    static func start(to target: Int, recording: WireRecording) async throws -> (any Channel, Int) {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { inbound in
                let inboundHalf = ProxyHalf(recording: recording)
                let outboundHalf = ProxyHalf(recording: recording)
                let loop = inbound.eventLoop
                do {
                    try inbound.pipeline.syncOperations.addHandler(inboundHalf)
                } catch {
                    return loop.makeFailedFuture(error)
                }
                let sendableHalves = NIOLoopBound((inboundHalf, outboundHalf), eventLoop: loop)
                let sendableInbound = NIOLoopBound(inbound, eventLoop: loop)
                return ClientBootstrap(group: loop)
                    .channelInitializer { outbound in
                        outbound.eventLoop.makeCompletedFuture {
                            try outbound.pipeline.syncOperations.addHandler(sendableHalves.value.1)
                        }
                    }
                    .connect(host: "127.0.0.1", port: target)
                    .map { outbound in
                        sendableHalves.value.0.link(outbound)
                        sendableHalves.value.1.link(sendableInbound.value)
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return (server, server.localAddress?.port ?? 0)
    }
}

@Suite struct TLSTransportTests {
    let r0 = NodeID.replica(number: 0)
    let r1 = NodeID.replica(number: 1)

    /// A client transaction whose value is a known string: in clear on a plaintext connection,
    /// nowhere on the wire with TLS.
    @Test(arguments: [false, true]) func aKnownValueCrossesTheWireOnlyWithoutTLS(tls: Bool) async throws {
        let (one, port) = try await Fixture.replica(1, tls: tls)
        let recording = WireRecording()
        let (proxy, proxyPort) = try await RecordingProxy.start(to: port, recording: recording)
        let inbox = Inbox.collecting(one)
        let zero = Transport(configuration: Fixture.configuration(r0, tls: tls))
        zero.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: proxyPort)])
        let secret = Array("tls-probe-value-5f3a9c".utf8)
        let transaction = Fixture.clientKey(7).signTransaction(
            client: ClientID(7), requestID: 1, operation: .put(key: Array("probe".utf8), value: secret))
        zero.send(.clientTransaction(transaction), to: r1)
        #expect(await eventually { await inbox.messages.count == 1 })
        #expect(await inbox.messages.first?.message == .clientTransaction(transaction))
        #expect(recording.all.count > 0)
        #expect(recording.contains(secret) == !tls)
        // The handshake's magic is inside TLS too.
        #expect(recording.contains(Handshake.magic) == !tls)
        await zero.shutdown()
        await one.shutdown()
        try await proxy.close()
    }

    /// A plaintext GEOH Hello on a TLS port: refused as a plaintext peer, and nothing is answered.
    @Test func aPlaintextHelloOnATLSPortGetsNoAnswer() async throws {
        let (transport, port) = try await Fixture.replica(2, tls: true)
        let peer = try await RawPeer.connect(port: port)
        try await peer.write(Hello(topologyHash: Fixture.topologyHash, node: .client(ClientID(3)), nonce: Handshake.freshNonce()).encoded)
        #expect(await eventually { await transport.metrics().rejects["tls_plaintext_peer"] == 1 })
        var records = 0
        for await _ in peer.records { records += 1 }
        #expect(records == 0)
        await transport.shutdown()
    }

    /// Either side of a TLS / plaintext pair refuses the other as a plaintext peer or malformed.
    @Test func aPlaintextReplicaAndATLSReplicaRefuseEachOther() async throws {
        let (tlsListener, tlsPort) = try await Fixture.replica(1, tls: true)
        let plainDialler = Transport(configuration: Fixture.configuration(r0, tls: false))
        plainDialler.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: tlsPort)])
        #expect(await eventually { await tlsListener.metrics().rejects["tls_plaintext_peer", default: 0] >= 1 })
        await plainDialler.shutdown()
        await tlsListener.shutdown()

        let (plainListener, plainPort) = try await Fixture.replica(1, tls: false)
        let tlsDialler = Transport(configuration: Fixture.configuration(r0, tls: true))
        tlsDialler.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: plainPort)])
        // The plaintext listener speaks first (its Hello): the TLS side sees 'G', not a TLS record.
        #expect(await eventually { await tlsDialler.metrics().rejects["tls_plaintext_peer", default: 0] >= 1 })
        #expect(await eventually { await plainListener.metrics().rejects["handshake_malformed", default: 0] >= 1 })
        #expect(await tlsDialler.metrics().connectedPeers.isEmpty)
        await tlsDialler.shutdown()
        await plainListener.shutdown()
    }

    /// Garbage in place of the GEOH Hello, inside an accepted TLS connection: a typed refusal.
    @Test func garbageInsideTLSIsRefusedAsAMalformedHandshake() async throws {
        let (transport, port) = try await Fixture.replica(2, tls: true)
        let peer = try await RawPeer.connect(port: port, tls: rawPeerTLS(true))
        try await peer.write([UInt8](repeating: 0x5A, count: Handshake.helloBytes))
        #expect(await eventually { await transport.metrics().rejects["handshake_malformed"] == 1 })
        #expect(await transport.metrics().connectedPeers.isEmpty)
        await transport.shutdown()
    }

    @Test func aClientWithoutACertificateIsRefused() async throws {
        let (transport, port) = try await Fixture.replica(2, tls: true)
        let settings = TLSSettings(certificateKey: nil, commonName: "anonymous", keyOwner: { _ in nil })
        let peer = try await RawPeer.connect(port: port, tls: settings)
        try? await peer.write(Hello(topologyHash: Fixture.topologyHash, node: .client(ClientID(3)), nonce: Handshake.freshNonce()).encoded)
        #expect(await eventually { await transport.metrics().rejects["tls_no_certificate"] == 1 })
        await transport.shutdown()
    }

    /// The same, from a transport (which waits for the TLS handshake before its Hello goes out).
    @Test func aTransportWithoutACertificateIsRefused() async throws {
        let (transport, port) = try await Fixture.replica(2, tls: true)
        var configuration = Fixture.configuration(.client(ClientID(3)), tls: true)
        configuration.tls?.certificateKey = nil
        let anonymous = Transport(configuration: configuration)
        anonymous.connect(peers: [PeerAddress(node: .replica(number: 2), host: "127.0.0.1", port: port)])
        #expect(await eventually { await transport.metrics().rejects["tls_no_certificate", default: 0] >= 1 })
        #expect(await transport.metrics().rejects["tls_handshake_failed", default: 0] == 0)
        await anonymous.shutdown()
        await transport.shutdown()
    }

    @Test func certificatesThatDoNotMatchTheClaimAreRefused() async throws {
        let (transport, port) = try await Fixture.replica(2, tls: true)
        // A key the topology does not name.
        let stranger = TLSSettings(certificateKey: SigningKey(), commonName: "stranger", keyOwner: { _ in nil })
        let first = try await RawPeer.connect(port: port, tls: stranger)
        try? await first.write(Hello(topologyHash: Fixture.topologyHash, node: .client(ClientID(3)), nonce: Handshake.freshNonce()).encoded)
        #expect(await eventually { await transport.metrics().rejects["tls_certificate_key_mismatch"] == 1 })
        // Client 4's certificate, claiming client 3 (with client 3's key for the handshake).
        let second = try await RawPeer.connect(port: port, tls: rawPeerTLS(true, client: 4))
        try await second.handshake(as: .client(ClientID(3)), key: Fixture.clientKey(3))
        #expect(await eventually { await transport.metrics().rejects["tls_certificate_identity_mismatch"] == 1 })
        // Client 3's certificate, claiming replica 0 (which may dial replica 2).
        let third = try await RawPeer.connect(port: port, tls: rawPeerTLS(true, client: 3))
        try await third.handshake(as: r0, key: Fixture.replicaKey(0))
        #expect(await eventually { await transport.metrics().rejects["tls_client_certificate_for_replica"] == 1 })
        #expect(await transport.metrics().connectedPeers.isEmpty)
        await transport.shutdown()
    }

    /// The dialler pins the key of the replica it dialled: a listener with another replica's
    /// certificate is refused by the dialler.
    @Test func theDiallerPinsTheDialledReplicasKey() async throws {
        var configuration = Fixture.configuration(r1, tls: true)
        configuration.tls = .identity(Fixture.replicaKey(3), name: "wrong", keyRing: Fixture.keyRing)
        let (listener, port) = try await Fixture.replica(1, configuration)
        let zero = Transport(configuration: Fixture.configuration(r0, tls: true))
        zero.connect(peers: [PeerAddress(node: r1, host: "127.0.0.1", port: port)])
        #expect(await eventually { await zero.metrics().rejects["tls_certificate_identity_mismatch", default: 0] >= 1 })
        #expect(await zero.metrics().connectedPeers.isEmpty)
        await zero.shutdown()
        await listener.shutdown()
    }
}
