import GeoCore
@testable import GeoWire
import Testing

@Suite struct FrameCodecTests {
    let limits = WireLimits(maxBodyBytes: 1 << 20)

    @Test func crc32cKnownVector() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test(arguments: MessageKind.allCases)
    func everyKindRoundTrips(kind: MessageKind) throws {
        var generator = MessageGenerator(seed: UInt64(kind.rawValue))
        for _ in 0..<200 {
            let message = generator.message(kind: kind)
            let sender = generator.sender()
            let frame = FrameCodec.encode(message, from: sender)
            let decoded = try FrameCodec.decode(frame, limits: limits)
            #expect(decoded.message == message)
            #expect(decoded.sender == sender)
            #expect(FrameCodec.encode(decoded.message, from: decoded.sender) == frame)
        }
    }

    @Test func headerLayoutIsAsDocumented() {
        let statement = VoteStatement(cluster: ClusterID(shard: ShardID(0), index: 0), view: 1, round: 2, digest: .zero)
        let frame = FrameCodec.encode(.prepare(Prepare(statement: statement, replicaIndex: 1,
                                                       signature: Signature(bytes: [UInt8](repeating: 7, count: 64))!)),
                                      from: .replica(number: 3))
        #expect(Array(frame[0..<4]) == Array("GEOF".utf8))
        #expect(frame[4] == 1 && frame[5] == 0)  // version 1
        #expect(frame[6] == 3 && frame[7] == 0)  // kind prepare
        #expect(frame[8] == 3)  // sender
        #expect(Int(frame[12]) == frame.count - WireFormat.headerBytes)
    }

    func sampleFrames(count: Int, seed: UInt64) -> [(Message, NodeID, [UInt8])] {
        var generator = MessageGenerator(seed: seed)
        return (0..<count).map { _ in
            let message = generator.message()
            let sender = generator.sender()
            return (message, sender, FrameCodec.encode(message, from: sender))
        }
    }

    @Test func streamFedOneByteAtATime() throws {
        let frames = sampleFrames(count: 40, seed: 1)
        var decoder = FrameStreamDecoder(limits: limits)
        var received: [Frame] = []
        for byte in frames.flatMap(\.2) {
            decoder.append([byte])
            while let frame = try decoder.next() { received.append(frame) }
        }
        #expect(received.map(\.message) == frames.map(\.0))
        #expect(received.map(\.sender) == frames.map(\.1))
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func streamFedCoalescedAndInRandomPieces() throws {
        let frames = sampleFrames(count: 60, seed: 2)
        let stream = frames.flatMap(\.2)
        // All at once.
        var whole = FrameStreamDecoder(limits: limits)
        whole.append(stream)
        var all: [Message] = []
        while let frame = try whole.next() { all.append(frame.message) }
        #expect(all == frames.map(\.0))
        // In random pieces.
        var random = SeededRandom(seed: 3)
        var pieces = FrameStreamDecoder(limits: limits)
        var index = 0
        var received: [Message] = []
        while index < stream.count {
            let size = Int.random(in: 1...700, using: &random)
            pieces.append(stream[index..<min(stream.count, index + size)])
            index += size
            while let frame = try pieces.next() { received.append(frame.message) }
        }
        #expect(received == frames.map(\.0))
    }

    @Test func truncatedFramesAreRefusedOrAwaited() throws {
        let (_, _, frame) = sampleFrames(count: 1, seed: 4)[0]
        for length in [0, 1, 10, WireFormat.headerBytes - 1, WireFormat.headerBytes, frame.count - 1] {
            #expect(throws: WireError.self) { try FrameCodec.decode(Array(frame[0..<length]), limits: limits) }
            var decoder = FrameStreamDecoder(limits: limits)
            decoder.append(frame[0..<length])
            #expect(try decoder.next() == nil, "a partial frame waits for more bytes")
        }
    }

    @Test func oversizedBodyIsRefusedBeforeItArrives() throws {
        let small = WireLimits(maxBodyBytes: 100)
        var generator = MessageGenerator(seed: 5)
        let big = Message.prePrepare(PrePrepare(view: 1, digest: .zero, block: Block(
            cluster: ClusterID(shard: ShardID(0), index: 0), round: 1,
            transactions: (0..<10).map { _ in generator.transaction() }), signature: generator.signature()))
        let frame = FrameCodec.encode(big, from: .replica(number: 0))
        #expect(frame.count - WireFormat.headerBytes > 100)
        var decoder = FrameStreamDecoder(limits: small)
        decoder.append(frame[0..<WireFormat.headerBytes])  // only the header: the decoder must not wait for the body
        #expect(throws: WireError.bodyTooLarge(declared: frame.count - WireFormat.headerBytes, limit: 100)) { try decoder.next() }
        // A forged length of 4 GiB is refused the same way, with nothing allocated for it.
        var forged = frame
        FrameSurgery.set(&forged, u32: UInt32.max, at: 12)
        FrameSurgery.resealHeader(&forged)
        #expect(throws: WireError.bodyTooLarge(declared: Int(UInt32.max), limit: 100)) {
            try FrameCodec.decode(Array(forged[0..<WireFormat.headerBytes]), limits: small)
        }
    }

    @Test func wrongVersionIsRefused() {
        var frame = sampleFrames(count: 1, seed: 6)[0].2
        FrameSurgery.set(&frame, u16: 2, at: 4)
        FrameSurgery.resealHeader(&frame)
        #expect(throws: WireError.unsupportedVersion(2)) { try FrameCodec.decode(frame, limits: limits) }
    }

    @Test func unknownKindIsRefused() {
        var frame = sampleFrames(count: 1, seed: 7)[0].2
        FrameSurgery.set(&frame, u16: 99, at: 6)
        FrameSurgery.resealHeader(&frame)
        #expect(throws: WireError.unknownKind(99)) { try FrameCodec.decode(frame, limits: limits) }
    }

    @Test func badMagicIsRefused() {
        var frame = sampleFrames(count: 1, seed: 8)[0].2
        frame[0] = UInt8(ascii: "X")
        #expect(throws: WireError.self) { try FrameCodec.decode(frame, limits: limits) }
        do {
            _ = try FrameCodec.decode(frame, limits: limits)
        } catch {
            guard case .badMagic = error else { Issue.record("expected badMagic, got \(error)"); return }
        }
    }

    @Test func wrongChecksumsAreRefused() throws {
        let frame = sampleFrames(count: 1, seed: 9)[0].2
        var body = frame
        body[body.count - 1] ^= 0x01
        do {
            _ = try FrameCodec.decode(body, limits: limits)
            Issue.record("a corrupted body was accepted")
        } catch {
            guard case .bodyChecksumMismatch = error else { Issue.record("expected bodyChecksumMismatch, got \(error)"); return }
        }
        var header = frame
        header[9] ^= 0x40  // the sender field
        do {
            _ = try FrameCodec.decode(header, limits: limits)
            Issue.record("a corrupted header was accepted")
        } catch {
            guard case .headerChecksumMismatch = error else { Issue.record("expected headerChecksumMismatch, got \(error)"); return }
        }
    }

    @Test func trailingBytesAreRefused() {
        var frame = sampleFrames(count: 1, seed: 10)[0].2
        frame.append(0)
        FrameSurgery.reseal(&frame)
        #expect(throws: WireError.trailingBytes(count: 1)) { try FrameCodec.decode(frame, limits: limits) }
        // And bytes after a complete frame in the one-shot decoder.
        var extra = sampleFrames(count: 1, seed: 10)[0].2
        extra.append(0)
        #expect(throws: WireError.trailingBytes(count: 1)) { try FrameCodec.decode(extra, limits: limits) }
    }

    @Test func nonCanonicalEncodingsAreRefused() throws {
        // A certificate whose signers are not strictly increasing (here: a repeated signer).
        var generator = MessageGenerator(seed: 11)
        let signature = generator.signature()
        let certificate = CommitCertificate(statement: generator.statement(), signatures: [
            CertificateSignature(replicaIndex: 2, signature: signature),
            CertificateSignature(replicaIndex: 2, signature: signature),
        ])
        let repeated = FrameCodec.encode(.certifiedBlock(CertifiedBlock(block: generator.block(), certificate: certificate)),
                                         from: .replica(number: 0))
        do {
            _ = try FrameCodec.decode(repeated, limits: limits)
            Issue.record("a certificate with a repeated signer decoded")
        } catch {
            guard case .invalidValue(field: "certificate.signatures", _) = error else { Issue.record("got \(error)"); return }
        }
        // A "present" flag that is neither 0 nor 1.
        let reply = Reply(client: ClientID(1), requestID: 1, replica: generator.replica(), view: 0,
                          result: .value(nil), position: LedgerPosition(round: 1, clusterIndex: 0, height: 1))
        var frame = FrameCodec.encode(.reply(reply), from: .replica(number: 0))
        let presentOffset = WireFormat.headerBytes + 4 + 8 + 6 + 8 + 1
        #expect(frame[presentOffset] == 0)
        frame[presentOffset] = 2
        FrameSurgery.reseal(&frame)
        #expect(throws: WireError.invalidTag(field: "result.present", value: 2)) { try FrameCodec.decode(frame, limits: limits) }
    }

    @Test func forgedCountsCannotReserveMemory() {
        // A block claiming 65,000 transactions in a tiny body.
        var frame = FrameCodec.encode(.prePrepare(PrePrepare(view: 0, digest: .zero, block: Block(
            cluster: ClusterID(shard: ShardID(0), index: 0), round: 1, transactions: []),
            signature: Signature(bytes: [UInt8](repeating: 1, count: 64))!)), from: .replica(number: 0))
        let countOffset = WireFormat.headerBytes + 8 + 32 + 4 + 8
        FrameSurgery.set(&frame, u32: 65_000, at: countOffset)
        FrameSurgery.reseal(&frame)
        do {
            _ = try FrameCodec.decode(frame, limits: limits)
            Issue.record("a forged count decoded")
        } catch {
            guard case .truncated(field: "block.transactions", _, _) = error else { Issue.record("got \(error)"); return }
        }
    }

    @Test func failedStreamStaysFailed() throws {
        var decoder = FrameStreamDecoder(limits: limits)
        var bad = sampleFrames(count: 1, seed: 12)[0].2
        bad[0] = 0
        decoder.append(bad)
        decoder.append(sampleFrames(count: 1, seed: 13)[0].2)
        #expect(throws: WireError.self) { try decoder.next() }
        #expect(throws: WireError.self) { try decoder.next() }
        #expect(decoder.failure != nil)
    }
}

@Suite struct EncodedSizeTests {
    @Test(arguments: MessageKind.allCases)
    func sizeMatchesTheEncoder(kind: MessageKind) {
        var generator = MessageGenerator(seed: 100 + UInt64(kind.rawValue))
        for _ in 0..<300 {
            let message = generator.message(kind: kind)
            #expect(EncodedSize.frame(message) == FrameCodec.encode(message, from: .replica(number: 1)).count)
        }
    }
}
