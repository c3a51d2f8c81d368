// `geofabric calibrate`: this machine's rates for signing, verifying, hashing and MACs.

import ArgumentParser
import Foundation
import GeoCrypto

struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Measure Ed25519 sign/verify (per core and on all cores), SHA-256 and HMAC rates on this machine.",
        discussion: """
            Build with -c release for meaningful figures. The all-cores verify rate bounds how many \
            signed client transactions a replica can admit per second.
            """)

    @Option(help: "Seconds each measurement runs.")
    var seconds: Double = 1.0

    @Option(help: "Cores for the parallel verify measurement (default: all).")
    var cores: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print the rates as JSON.")
    var json = false

    func validate() throws {
        guard seconds > 0, seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60]") }
        guard cores >= 1 else { throw ValidationError("--cores must be at least 1") }
    }

    func run() throws {
        if !json {
            FileHandle.standardError.write(Data("measuring 7 rates, \(seconds) s each...\n".utf8))
        }
        let rates = CryptoCalibration.measure(seconds: seconds, cores: cores)
        if json {
            print(JSONOutput.encode(rates))
            return
        }
        func format(_ value: Double) -> String { String(format: "%12.0f", value) }
        print("Ed25519 sign     \(format(rates.signPerSecondPerCore)) /s per core")
        print("Ed25519 verify   \(format(rates.verifyPerSecondPerCore)) /s per core")
        print("Ed25519 verify   \(format(rates.verifyPerSecondAllCores)) /s on \(rates.cores) cores (ParallelVerifier, batches of 1024)")
        print("SHA-256          \(format(rates.sha256MegabytesPerSecond)) MB/s per core (64 KiB inputs)")
        print("HMAC-SHA256      \(format(rates.hmacPerSecond)) /s per core (120-byte messages)")
        print("frame codec      \(String(format: "%12.2f", rates.frameMicroseconds)) us per small frame, \(String(format: "%.2f", rates.frameNanosecondsPerByte)) ns per byte (encode + decode)")
    }
}
