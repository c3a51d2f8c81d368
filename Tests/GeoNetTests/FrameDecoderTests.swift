// The stream decoder on NIO's EmbeddedChannel: no sockets, no clocks.

import GeoCore
import GeoCrypto
import GeoWire
import NIOCore
import NIOEmbedded
import Testing

@testable import GeoNet

@Suite struct FrameDecoderTests {
    static let limits = WireLimits()

    static func message(_ round: UInt64) -> Message {
        .blockRequest(BlockRequest(cluster: ClusterID(shard: ShardID(0), index: 1), fromRound: round, toRound: round + 3))
    }

    static func channel(limits: WireLimits = limits, expectsHandshake: Bool) -> EmbeddedChannel {
        EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoderHandler(limits: limits, expectsHandshake: expectsHandshake)))
    }

    static func records(_ channel: EmbeddedChannel) throws -> [InboundRecord] {
        var out: [InboundRecord] = []
        while let record = try channel.readInbound(as: InboundRecord.self) { out.append(record) }
        return out
    }

    @Test func oneByteAtATimeYieldsRecordsOnlyWhenComplete() throws {
        let channel = Self.channel(expectsHandshake: true)
        let key = SigningKey.development(topology: "t", identity: "r0")
        let hello = Hello(topologyHash: Digest.zero, node: .replica(number: 0), nonce: Handshake.freshNonce())
        let proof = Proof(signature: key.sign([1, 2, 3]))
        let frame = FrameCodec.encode(Self.message(7), from: .replica(number: 0))
        var seen: [InboundRecord] = []
        let boundaries = [Handshake.helloBytes, Handshake.helloBytes + Handshake.proofBytes,
                          Handshake.helloBytes + Handshake.proofBytes + frame.count]
        for (offset, byte) in (hello.encoded + proof.encoded + frame).enumerated() {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
            let got = try Self.records(channel)
            // A record appears exactly when its last byte arrives, never before.
            #expect(got.count == (boundaries.contains(offset + 1) ? 1 : 0), "at byte \(offset)")
            seen += got
        }
        #expect(seen == [.hello(hello), .proof(proof),
                         .frame(Frame(sender: .replica(number: 0), message: Self.message(7)), wireBytes: frame.count)])
        #expect(try channel.finish().isClean)
    }

    @Test func attachRecordsBetweenFramesDecodeOneByteAtATimeAndCoalesced() throws {
        let key = SigningKey.development(topology: "t", identity: "client-7")
        let attach = Attach(node: .client(ClientID(7)), signature: key.sign([4, 5, 6]))
        let frame = FrameCodec.encode(Self.message(7), from: .client(ClientID(7)))
        let stream = frame + attach.encoded + attach.encoded + frame
        let expected: [InboundRecord] = [
            .frame(Frame(sender: .client(ClientID(7)), message: Self.message(7)), wireBytes: frame.count),
            .attach(attach), .attach(attach),
            .frame(Frame(sender: .client(ClientID(7)), message: Self.message(7)), wireBytes: frame.count),
        ]
        let boundaries = [frame.count, frame.count + Handshake.attachBytes, frame.count + 2 * Handshake.attachBytes, stream.count]
        let byByte = Self.channel(expectsHandshake: false)
        var seen: [InboundRecord] = []
        for (offset, byte) in stream.enumerated() {
            try byByte.writeInbound(ByteBuffer(bytes: [byte]))
            let got = try Self.records(byByte)
            #expect(got.count == (boundaries.contains(offset + 1) ? 1 : 0), "at byte \(offset)")
            seen += got
        }
        #expect(seen == expected)
        let coalesced = Self.channel(expectsHandshake: false)
        try coalesced.writeInbound(ByteBuffer(bytes: stream))
        #expect(try Self.records(coalesced) == expected)
        // A GEOH record of another type between frames is malformed: the connection closes.
        var wrong = attach.encoded
        wrong[4] = 1
        let refusing = Self.channel(expectsHandshake: false)
        #expect(throws: HandshakeRecordError.self) { try refusing.writeInbound(ByteBuffer(bytes: wrong)) }
    }

    @Test func coalescedFramesAllDecode() throws {
        let channel = Self.channel(expectsHandshake: false)
        let frames = (0..<5).map { FrameCodec.encode(Self.message(UInt64($0)), from: .replica(number: 3)) }
        // Five frames and half of a sixth in one read.
        let sixth = FrameCodec.encode(Self.message(99), from: .replica(number: 3))
        try channel.writeInbound(ByteBuffer(bytes: frames.flatMap { $0 } + sixth.prefix(10)))
        let got = try Self.records(channel)
        #expect(got.count == 5)
        #expect(got.last == .frame(Frame(sender: .replica(number: 3), message: Self.message(4)), wireBytes: frames[4].count))
        try channel.writeInbound(ByteBuffer(bytes: Array(sixth.dropFirst(10))))
        #expect(try Self.records(channel).count == 1)
    }

    @Test func oversizedBodyIsRefusedFromItsHeaderAlone() throws {
        let channel = Self.channel(limits: WireLimits(maxBodyBytes: 64), expectsHandshake: false)
        // A valid header that declares a 1 MiB body; not one body byte follows.
        var header: [UInt8] = []
        func u32(_ value: UInt32) { for index in 0..<4 { header.append(UInt8(truncatingIfNeeded: value >> (8 * UInt32(index)))) } }
        u32(WireFormat.magic)
        header += [UInt8(WireFormat.version), 0, UInt8(MessageKind.blockRequest.rawValue), 0]
        u32(NodeID.replica(number: 1).rawValue)
        u32(1 << 20)
        u32(0)
        u32(CRC32C.checksum(header))
        #expect(throws: WireError.bodyTooLarge(declared: 1 << 20, limit: 64)) {
            try channel.writeInbound(ByteBuffer(bytes: header))
        }
    }

    @Test func garbageIsATypedError() throws {
        let channel = Self.channel(expectsHandshake: false)
        #expect(throws: WireError.self) {
            try channel.writeInbound(ByteBuffer(bytes: [UInt8](repeating: 0xAB, count: 40)))
        }
        let handshaking = Self.channel(expectsHandshake: true)
        // A GeoWire frame where a Hello belongs: the peer skipped the handshake.
        #expect(throws: HandshakeRecordError.badMagic) {
            try handshaking.writeInbound(ByteBuffer(bytes: FrameCodec.encode(Self.message(1), from: .replica(number: 0))
                + [UInt8](repeating: 0, count: Handshake.helloBytes)))
        }
    }
}
