// The seeded fuzz test: 100,000 random and mutated frames. None may crash the decoder, and none
// may be accepted unless it is a canonical encoding of the message it decodes to (so anything
// invalid is refused: a frame is valid exactly when it re-encodes to itself).

import GeoCore
@testable import GeoWire
import Testing

@Suite struct FrameFuzzTests {
    static let frameCount = 100_000

    enum Mutation: CaseIterable {
        case none, flipBits, truncate, extend, randomBytes, overwriteHeaderField, bodyEditResealed, splice, garbage
    }

    @Test func hundredThousandMutatedFrames() throws {
        let limits = WireLimits(maxBodyBytes: 64 * 1024)
        var generator = MessageGenerator(seed: 0x6E0F_AB41)
        var random = SeededRandom(seed: 0xF022)
        var accepted = 0, rejected = 0, acceptedUnsealed = 0
        var reasons: [String: Int] = [:]
        var previous = FrameCodec.encode(generator.message(), from: generator.sender())
        for iteration in 0..<Self.frameCount {
            let message = generator.message()
            let original = FrameCodec.encode(message, from: generator.sender())
            var frame = original
            let mutation = Mutation.allCases[Int.random(in: 0..<Mutation.allCases.count, using: &random)]
            switch mutation {
            case .none:
                break
            case .flipBits:
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    let index = Int.random(in: 0..<frame.count, using: &random)
                    frame[index] ^= UInt8(1) << UInt8.random(in: 0...7, using: &random)
                }
            case .truncate:
                frame.removeLast(Int.random(in: 1...frame.count, using: &random))
            case .extend:
                frame.append(contentsOf: random.bytes(count: Int.random(in: 1...16, using: &random)))
            case .randomBytes:
                for _ in 0..<Int.random(in: 1...8, using: &random) {
                    frame[Int.random(in: 0..<frame.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
            case .overwriteHeaderField:
                // A plausible but wrong header (valid header checksum), for the semantic checks.
                let offset = [4, 6, 8, 12, 16].randomElement(using: &random)!
                FrameSurgery.set(&frame, u32: UInt32(truncatingIfNeeded: random.next()), at: offset)
                FrameSurgery.resealHeader(&frame)
            case .bodyEditResealed:
                // Structure-aware: corrupt the body but fix the checksums, so the body decoder itself
                // must find the problem (or accept only if the result is still canonical).
                if frame.count > WireFormat.headerBytes {
                    for _ in 0..<Int.random(in: 1...3, using: &random) {
                        let index = Int.random(in: WireFormat.headerBytes..<frame.count, using: &random)
                        frame[index] = UInt8.random(in: 0...255, using: &random)
                    }
                }
                if Bool.random(using: &random) { frame.removeLast(Int.random(in: 0...min(8, frame.count - WireFormat.headerBytes), using: &random)) }
                FrameSurgery.reseal(&frame)
            case .splice:
                let cut = Int.random(in: 0...frame.count, using: &random)
                let other = Int.random(in: 0...previous.count, using: &random)
                frame = Array(frame[0..<cut]) + Array(previous[other...])
            case .garbage:
                frame = random.bytes(count: Int.random(in: 0...200, using: &random))
            }

            do {
                let decoded = try FrameCodec.decode(frame, limits: limits)
                accepted += 1
                // Mutations that do not recompute the checksums can only pass by a CRC collision
                // (or by a splice that happens to rebuild the whole previous frame).
                let sealed = mutation == .bodyEditResealed || mutation == .overwriteHeaderField
                if !sealed && frame != original && frame != previous { acceptedUnsealed += 1 }
                let reencoded = FrameCodec.encode(decoded.message, from: decoded.sender)
                #expect(reencoded == frame, "iteration \(iteration) (\(mutation)): accepted a non-canonical frame")
                if mutation == .none { #expect(decoded.message == message) }
            } catch {
                rejected += 1
                reasons[error.reason, default: 0] += 1
                #expect(mutation != .none, "iteration \(iteration): a valid frame was refused: \(error)")
            }
            previous = original
        }
        #expect(accepted + rejected == Self.frameCount)
        // The mutations must bite. Resealed edits may legitimately yield another valid frame (a
        // changed signature byte or sender is still well-formed), and the loop has checked that every
        // accepted frame is canonical; unsealed corruption must never get through.
        #expect(rejected > Self.frameCount * 3 / 4)
        #expect(acceptedUnsealed == 0)
        // And they reach the body decoder's own checks, not only the checksums.
        for reason in ["header_checksum", "body_checksum", "truncated", "invalid_tag", "trailing_bytes", "unknown_kind", "unsupported_version", "body_too_large", "bad_magic"] {
            #expect(reasons[reason, default: 0] > 0, "no frame was refused for \(reason)")
        }
    }

    @Test func streamDecoderNeverTrapsOnGarbage() {
        var random = SeededRandom(seed: 77)
        for _ in 0..<2_000 {
            var decoder = FrameStreamDecoder(limits: WireLimits(maxBodyBytes: 4096))
            decoder.append(random.bytes(count: Int.random(in: 0...300, using: &random)))
            // Either it waits for more, or it refuses; it never traps.
            _ = try? decoder.next()
        }
    }
}
