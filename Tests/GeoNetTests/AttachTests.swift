// Many client identities over one connection: Attach records (Handshake.swift), checked by the
// replica before it accepts frames from or routes replies to an attached identity.

import GeoCore
import GeoCrypto
import GeoWire
import NIOCore
import Testing

@testable import GeoNet
import GeoTestKit

extension RawPeer {
    /// The handshake as `node`; returns the transport's nonce, which an Attach signs over.
    func handshakeNonce(as node: NodeID, key: SigningKey) async throws -> (nonce: [UInt8], verifier: NodeID) {
        var hello: Hello?
        for await record in records {
            if case let .hello(received) = record { hello = received }
            break
        }
        let peer = try #require(hello)
        try await write(Hello(topologyHash: Fixture.topologyHash, node: node, nonce: Handshake.freshNonce()).encoded)
        let payload = Handshake.proofPayload(verifierNonce: peer.nonce, topologyHash: Fixture.topologyHash, signer: node, verifier: peer.node)
        try await write(Proof(signature: key.sign(payload)).encoded)
        return (peer.nonce, peer.node)
    }
}

func attachRecord(_ client: UInt32, carrier: NodeID, nonce: [UInt8], verifier: NodeID, key: SigningKey? = nil) -> [UInt8] {
    let payload = Handshake.attachPayload(verifierNonce: nonce, topologyHash: Fixture.topologyHash, attached: .client(ClientID(client)),
                                          carrier: carrier, verifier: verifier)
    return Attach(node: .client(ClientID(client)), signature: (key ?? Fixture.clientKey(client)).sign(payload)).encoded
}

@Suite struct AttachTests {
    let replica = NodeID.replica(number: 2)

    @Test func anAttachRecordRoundTripsAndIsDecodedBetweenFrames() throws {
        let record = Attach(node: .client(ClientID(7)), signature: Fixture.clientKey(7).sign([1, 2, 3]))
        #expect(record.encoded.count == Handshake.attachBytes)
        #expect(try Attach.decode(record.encoded) == record)
        #expect(throws: HandshakeRecordError.self) { try Attach.decode(Array(record.encoded.dropLast())) }
        var wrongType = record.encoded
        wrongType[4] = 2
        #expect(throws: HandshakeRecordError.self) { try Attach.decode(wrongType) }
        // The payload binds every field: changing any one changes the bytes signed.
        let nonce = [UInt8](repeating: 1, count: 32)
        let base = Handshake.attachPayload(verifierNonce: nonce, topologyHash: Fixture.topologyHash, attached: .client(ClientID(7)),
                                           carrier: .client(ClientID(5)), verifier: replica)
        #expect(base.starts(with: Array("geofabric/attach/v1".utf8)))
        #expect(base != Handshake.attachPayload(verifierNonce: nonce, topologyHash: Fixture.topologyHash, attached: .client(ClientID(5)),
                                                carrier: .client(ClientID(7)), verifier: replica))
        #expect(base != Handshake.attachPayload(verifierNonce: nonce, topologyHash: Fixture.topologyHash, attached: .client(ClientID(7)),
                                                carrier: .client(ClientID(5)), verifier: .replica(number: 3)))
    }

    @Test(arguments: [false, true]) func manyIdentitiesShareOneConnectionAndGetTheirOwnReplies(tls: Bool) async throws {
        let (server, port) = try await Fixture.replica(2, tls: tls)
        let carrier = NodeID.client(ClientID(5))
        let carried = (6...20).map { NodeID.client(ClientID(UInt32($0))) }
        var configuration = Fixture.configuration(carrier, tls: tls)
        configuration.carriedClients = carried.map { CarriedIdentity(node: $0, signingKey: Fixture.clientKey($0.client!.rawValue)) }
        let client = Transport(configuration: configuration)
        let serverInbox = Inbox.collecting(server), clientInbox = Inbox.collecting(client)
        // Sent before the connection exists: the attaches go ahead of these queued frames.
        for node in [carrier] + carried {
            client.send(Fixture.message(UInt64(node.client!.rawValue)), to: [replica], from: node)
        }
        client.connect(peers: [PeerAddress(node: replica, host: "127.0.0.1", port: port)])
        #expect(await eventually { await serverInbox.messages.count == 16 })
        #expect(Set(await serverInbox.messages.map(\.from)) == Set([carrier] + carried))
        for message in await serverInbox.messages {
            #expect(message.message == Fixture.message(UInt64(message.from.client!.rawValue)))
        }
        let metrics = await server.metrics()
        #expect(metrics.handshakes == 1 && metrics.attaches == 15)
        #expect(metrics.rejects.isEmpty && metrics.drops.isEmpty)
        // Replies to each identity travel back over the one connection, each with its own content.
        for node in [carrier] + carried { server.send(Fixture.message(1000 + UInt64(node.client!.rawValue)), to: node) }
        #expect(await eventually { await clientInbox.messages.count == 16 })
        #expect(Set(await clientInbox.messages.map(\.message)) == Set(([carrier] + carried).map { Fixture.message(1000 + UInt64($0.client!.rawValue)) }))
        await client.shutdown()
        await server.shutdown()
    }

    @Test(arguments: [false, true]) func aForgedAttachIsRefusedCountedAndClosesTheConnection(tls: Bool) async throws {
        let carrier = NodeID.client(ClientID(3))
        // Another client's key; another connection's nonce; a client the topology does not know.
        let forgeries: [(String, @Sendable ([UInt8], NodeID) -> [UInt8])] = [
            ("attach_bad_signature", { nonce, verifier in attachRecord(4, carrier: carrier, nonce: nonce, verifier: verifier, key: Fixture.clientKey(3)) }),
            ("attach_bad_signature", { _, verifier in attachRecord(4, carrier: carrier, nonce: Handshake.freshNonce(), verifier: verifier) }),
            ("attach_bad_signature", { nonce, _ in attachRecord(4, carrier: carrier, nonce: nonce, verifier: .replica(number: 1)) }),
            ("attach_unknown_identity", { nonce, verifier in attachRecord(999_999, carrier: carrier, nonce: nonce, verifier: verifier) }),
            ("attach_not_allowed", { nonce, verifier in
                let payload = Handshake.attachPayload(verifierNonce: nonce, topologyHash: Fixture.topologyHash, attached: .replica(number: 0),
                                                      carrier: carrier, verifier: verifier)
                return Attach(node: .replica(number: 0), signature: Fixture.replicaKey(0).sign(payload)).encoded
            }),
        ]
        for (label, forge) in forgeries {
            let (transport, port) = try await Fixture.replica(2, tls: tls)
            let inbox = Inbox.collecting(transport)
            let peer = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls))
            let (nonce, verifier) = try await peer.handshakeNonce(as: carrier, key: Fixture.clientKey(3))
            #expect(await eventually { await transport.metrics().connectedPeers == [carrier] })
            try await peer.write(forge(nonce, verifier))
            try? await peer.write(FrameCodec.encode(Fixture.message(1), from: .client(ClientID(4))))
            #expect(await eventually { await transport.metrics().rejects[label] == 1 }, "\(label)")
            #expect(await eventually { await transport.metrics().connectedPeers.isEmpty }, "\(label)")
            let metrics = await transport.metrics()
            #expect(metrics.attaches == 0)
            #expect(await inbox.messages.isEmpty)
            await transport.shutdown()
        }
    }

    @Test(arguments: [false, true]) func framesFromAnUnattachedIdentityAreDropped(tls: Bool) async throws {
        let (transport, port) = try await Fixture.replica(2, tls: tls)
        let inbox = Inbox.collecting(transport)
        let carrier = NodeID.client(ClientID(3))
        let peer = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls))
        let (nonce, verifier) = try await peer.handshakeNonce(as: carrier, key: Fixture.clientKey(3))
        try await peer.write(attachRecord(4, carrier: carrier, nonce: nonce, verifier: verifier))
        try await peer.write(FrameCodec.encode(Fixture.message(1), from: .client(ClientID(6))))
        try await peer.write(FrameCodec.encode(Fixture.message(2), from: .client(ClientID(4))))
        try await peer.write(FrameCodec.encode(Fixture.message(3), from: carrier))
        #expect(await eventually { await inbox.messages.count == 2 })
        #expect(await inbox.messages == [InboundMessage(from: .client(ClientID(4)), message: Fixture.message(2)),
                                         InboundMessage(from: carrier, message: Fixture.message(3))])
        #expect(await transport.metrics().drops["sender_mismatch"] == 1)
        #expect(await transport.metrics().connectedPeers.count == 2)
        await transport.shutdown()
    }

    @Test(arguments: [false, true]) func repliesToAClientWhoseAttachingConnectionClosedGoNowhereElse(tls: Bool) async throws {
        let (transport, port) = try await Fixture.replica(2, tls: tls)
        let attached = NodeID.client(ClientID(4))
        let first = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls))
        let (nonce, verifier) = try await first.handshakeNonce(as: .client(ClientID(3)), key: Fixture.clientKey(3))
        try await first.write(attachRecord(4, carrier: .client(ClientID(3)), nonce: nonce, verifier: verifier))
        let other = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls, client: 5))
        _ = try await other.handshakeNonce(as: .client(ClientID(5)), key: Fixture.clientKey(5))
        #expect(await eventually { await transport.metrics().connectedPeers.count == 3 })
        try await first.channel.close()
        #expect(await eventually { await transport.metrics().connectedPeers == [.client(ClientID(5))] })
        transport.send(Fixture.message(7), to: attached)
        #expect(await eventually { await transport.metrics().drops["no_route"] == 1 })
        // A marker to the other connection: it arrives, and nothing before it did.
        transport.send(Fixture.message(8), to: .client(ClientID(5)))
        var received: [Message] = []
        for await record in other.records {
            if case let .frame(frame, _) = record { received.append(frame.message) }
            if received.contains(Fixture.message(8)) { break }
        }
        #expect(received == [Fixture.message(8)])
        await transport.shutdown()
    }

    @Test(arguments: [false, true]) func anIdentityConnectedAloneIsNotTakenOverByAnAttach(tls: Bool) async throws {
        let (transport, port) = try await Fixture.replica(2, tls: tls)
        let alone = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls, client: 4))
        _ = try await alone.handshakeNonce(as: .client(ClientID(4)), key: Fixture.clientKey(4))
        #expect(await eventually { await transport.metrics().connectedPeers.count == 1 })
        let carrier = try await RawPeer.connect(port: port, tls: rawPeerTLS(tls))
        let (nonce, verifier) = try await carrier.handshakeNonce(as: .client(ClientID(3)), key: Fixture.clientKey(3))
        try await carrier.write(attachRecord(4, carrier: .client(ClientID(3)), nonce: nonce, verifier: verifier))
        #expect(await eventually { await transport.metrics().rejects["attach_duplicate"] == 1 })
        // Not a forgery: the carrier's connection stays, the identity's own connection keeps its replies.
        let metrics = await transport.metrics()
        #expect(metrics.connectedPeers == [.client(ClientID(3)), .client(ClientID(4))] && metrics.attaches == 0)
        transport.send(Fixture.message(9), to: .client(ClientID(4)))
        for await record in alone.records {
            if case let .frame(frame, _) = record {
                #expect(frame.message == Fixture.message(9))
                break
            }
        }
        await transport.shutdown()
    }
}
