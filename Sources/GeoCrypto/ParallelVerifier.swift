// Verifying many signatures at once, spread over all cores.
//
// Ed25519 verification dominates a replica's CPU: each client transaction is verified by every
// replica of its home cluster, and each remote certificate costs n - f verifications. Batches are
// split into one contiguous chunk per worker (DispatchQueue.concurrentPerform runs them on the
// cores); small batches stay on the calling thread, where handing off would cost more than it saves.

import Dispatch
import Foundation
import GeoCore

/// One signature to check.
public struct SignatureCheck: Sendable {
    public var key: VerifyingKey
    public var message: [UInt8]
    public var signature: Signature
    public init(key: VerifyingKey, message: [UInt8], signature: Signature) {
        self.key = key
        self.message = message
        self.signature = signature
    }
}

public struct ParallelVerifier: Sendable {
    /// Worker count: by default one per core.
    public let workers: Int
    /// Below this many checks a batch is verified on the calling thread.
    public let parallelThreshold: Int

    public init(workers: Int = ProcessInfo.processInfo.activeProcessorCount, parallelThreshold: Int = 16) {
        self.workers = max(1, workers)
        self.parallelThreshold = parallelThreshold
    }

    /// The validity of each check, in order.
    public func verify(_ checks: [SignatureCheck]) -> [Bool] {
        if checks.count < parallelThreshold || workers == 1 {
            return checks.map { $0.key.isValid($0.signature, for: $0.message) }
        }
        var results = [Bool](repeating: false, count: checks.count)
        let chunks = min(workers, checks.count)
        results.withUnsafeMutableBufferPointer { buffer in
            // Each worker writes only its own disjoint index range, so sharing the buffer is safe.
            nonisolated(unsafe) let output = buffer
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let lower = checks.count * chunk / chunks
                let upper = checks.count * (chunk + 1) / chunks
                for index in lower..<upper {
                    let check = checks[index]
                    output[index] = check.key.isValid(check.signature, for: check.message)
                }
            }
        }
        return results
    }

    /// True when every check is valid.
    public func verifyAll(_ checks: [SignatureCheck]) -> Bool { verify(checks).allSatisfy { $0 } }
}
