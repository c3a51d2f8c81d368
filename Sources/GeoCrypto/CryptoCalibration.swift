// Measures this machine's rates for the operations that bound GeoFabric's throughput:
// Ed25519 sign and verify (one core, and all cores through ParallelVerifier), SHA-256 and HMAC.
// `geofabric calibrate` prints them; the simulator's CPU cost model will take its defaults from them.

import Foundation
import GeoCore
import GeoWire

public struct CryptoRates: Codable, Sendable, Hashable {
    public var cores: Int
    public var signPerSecondPerCore: Double
    public var verifyPerSecondPerCore: Double
    public var verifyPerSecondAllCores: Double
    public var sha256MegabytesPerSecond: Double
    public var hmacPerSecond: Double
    /// Encoding and decoding one small frame (a Prepare), in microseconds: the per-message cost.
    public var frameMicroseconds: Double
    /// Encoding and decoding a 100-transaction PrePrepare, per byte, in nanoseconds.
    public var frameNanosecondsPerByte: Double
    /// How long each measurement ran.
    public var secondsPerMeasurement: Double

    enum CodingKeys: String, CodingKey {
        case cores
        case signPerSecondPerCore = "sign_per_s_per_core"
        case verifyPerSecondPerCore = "verify_per_s_per_core"
        case verifyPerSecondAllCores = "verify_per_s_all_cores"
        case sha256MegabytesPerSecond = "sha256_mb_per_s"
        case hmacPerSecond = "hmac_per_s"
        case frameMicroseconds = "frame_us"
        case frameNanosecondsPerByte = "frame_ns_per_byte"
        case secondsPerMeasurement = "seconds_per_measurement"
    }
}

public enum CryptoCalibration {
    /// Runs each measurement for about `seconds` (wall clock) and reports rates.
    /// Messages are 120 bytes, the size of a signed client transaction's payload.
    public static func measure(seconds: Double, cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> CryptoRates {
        var random = SeededRandom(seed: 42)
        let key = SigningKey.development(topology: "calibration", identity: "replica")
        let messages = (0..<256).map { _ in random.bytes(count: 120) }
        let signatures = messages.map { key.sign($0) }
        let verifying = key.verifyingKey

        let signRate = rate(seconds: seconds, unit: 64) { iteration in
            for offset in 0..<64 { _ = key.sign(messages[(iteration &+ offset) & 255]) }
        }
        let verifyRate = rate(seconds: seconds, unit: 64) { iteration in
            for offset in 0..<64 {
                let index = (iteration &+ offset) & 255
                precondition(verifying.isValid(signatures[index], for: messages[index]))
            }
        }
        let verifier = ParallelVerifier(workers: cores)
        let batch = (0..<1024).map { SignatureCheck(key: verifying, message: messages[$0 & 255], signature: signatures[$0 & 255]) }
        let parallelRate = rate(seconds: seconds, unit: batch.count) { _ in
            precondition(verifier.verifyAll(batch))
        }
        let block = random.bytes(count: 64 * 1024)
        let hashRate = rate(seconds: seconds, unit: 1) { _ in _ = Hashing.sha256(block) }
        let macKey = random.bytes(count: 32)
        let macRate = rate(seconds: seconds, unit: 64) { iteration in
            for offset in 0..<64 { _ = Hashing.hmac(key: macKey, message: messages[(iteration &+ offset) & 255]) }
        }
        // The frame codec: a small frame, and a large one for the per-byte part.
        let statement = VoteStatement(cluster: ClusterID(shard: ShardID(0), index: 0), view: 1, round: 2, digest: .zero)
        let prepare = Message.prepare(Prepare(statement: statement, replicaIndex: 1, signature: signatures[0]))
        let limits = WireLimits()
        let smallRate = rate(seconds: seconds, unit: 64) { _ in
            for _ in 0..<64 { precondition((try? FrameCodec.decode(FrameCodec.encode(prepare, from: .replica(number: 1)), limits: limits)) != nil) }
        }
        let transactions = (0..<100).map { index in
            key.signTransaction(client: ClientID(UInt32(index)), requestID: 1, operation: .add(key: Array("acct-\(index)".utf8), delta: 1))
        }
        let big = Message.prePrepare(PrePrepare(view: 1, digest: .zero, block: Block(cluster: statement.cluster, round: 2, transactions: transactions),
                                                signature: signatures[1]))
        let bigBytes = FrameCodec.encode(big, from: .replica(number: 1)).count
        let bigRate = rate(seconds: seconds, unit: 1) { _ in
            precondition((try? FrameCodec.decode(FrameCodec.encode(big, from: .replica(number: 1)), limits: limits)) != nil)
        }
        let smallMicroseconds = 1_000_000 / smallRate
        let bigNanosecondsPerByte = max(0, (1_000_000 / bigRate - smallMicroseconds) * 1000 / Double(bigBytes))
        return CryptoRates(
            cores: cores,
            signPerSecondPerCore: signRate,
            verifyPerSecondPerCore: verifyRate,
            verifyPerSecondAllCores: parallelRate,
            sha256MegabytesPerSecond: hashRate * Double(block.count) / 1_000_000,
            hmacPerSecond: macRate,
            frameMicroseconds: smallMicroseconds,
            frameNanosecondsPerByte: bigNanosecondsPerByte,
            secondsPerMeasurement: seconds)
    }

    /// Ed25519 verifications per second on all `cores` together (client-transaction-sized
    /// messages, ParallelVerifier batches), measured for about `seconds` after a short warm-up:
    /// what `bench` divides by the verifications a transaction costs to state its bound. On this
    /// kind of virtual machine two cores verify well under twice what one does, so the bound uses
    /// the measured all-cores rate, not cores x the one-core rate.
    public static func verifyRateAllCores(seconds: Double, cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> Double {
        verifyRateSamples(count: 1, sliceSeconds: seconds, cores: cores)[0]
    }

    /// `count` measurements of the all-cores verify rate, `sliceSeconds` each, after one warm-up.
    /// One 0.5 s measurement ranged from 16,000 to 26,000 a second within an hour on this machine
    /// (a virtual machine's neighbours come and go), so `bench` takes several, before and after its
    /// run, and states the median with their spread (VerifyRateSamples).
    public static func verifyRateSamples(count: Int, sliceSeconds: Double, cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Double] {
        let key = SigningKey.development(topology: "calibration", identity: "replica")
        var random = SeededRandom(seed: 7)
        let messages = (0..<64).map { _ in random.bytes(count: 120) }
        let signatures = messages.map { key.sign($0) }
        let verifier = ParallelVerifier(workers: cores)
        let batch = (0..<256).map { SignatureCheck(key: key.verifyingKey, message: messages[$0 & 63], signature: signatures[$0 & 63]) }
        _ = rate(seconds: min(0.2, sliceSeconds / 4), unit: batch.count) { _ in precondition(verifier.verifyAll(batch)) }
        return (0..<max(1, count)).map { _ in rate(seconds: sliceSeconds, unit: batch.count) { _ in precondition(verifier.verifyAll(batch)) } }
    }

    /// Operations per second: runs `body` (which performs `unit` operations) until `seconds` pass.
    static func rate(seconds: Double, unit: Int, _ body: (Int) -> Void) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        let limit = Duration.milliseconds(Int64(seconds * 1000))
        var iterations = 0
        var elapsed = Duration.zero
        repeat {
            body(iterations * unit)
            iterations += 1
            elapsed = clock.now - start
        } while elapsed < limit
        let elapsedSeconds = elapsed.seconds
        return Double(iterations * unit) / elapsedSeconds
    }
}

/// Several measurements of one rate: the median is what a report states, the spread how far to
/// trust it.
public struct VerifyRateSamples: Hashable, Sendable {
    public private(set) var values: [Double]

    public init(_ values: [Double] = []) { self.values = values }

    public mutating func append(contentsOf more: [Double]) { values.append(contentsOf: more) }

    public var median: Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
    public var minimum: Double { values.min() ?? 0 }
    public var maximum: Double { values.max() ?? 0 }
    /// (maximum - minimum) / median: 0.1 means the samples lie within 10% of the median's size.
    public var spread: Double { median > 0 ? (maximum - minimum) / median : 0 }
}
