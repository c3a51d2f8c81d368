// Client signatures checked before the core sees them, in parallel and off the replica's actor.
//
// Ed25519 verification of client transactions dominates a replica's CPU (every replica of the home
// cluster checks every transaction of its cluster). The core checks signatures through its suite,
// one at a time, on the actor that owns it; left there, one core would do all of it. So the daemon
// checks the client signatures a message carries (a client transaction, a PrePrepare's block, a
// NewView's re-proposals) on all cores first, and hands the core a suite that remembers what was
// found valid. A signature the cache has not seen is still verified by the core: the cache only
// saves work, it never lets anything through that was not checked.

import GeoCore
import GeoCrypto
import GeoWire
import Synchronization

/// Client transactions already found validly signed: the whole transaction, operation included
/// (an entry of client, request and signature alone once let a replayed signature vouch for
/// another operation under the same request id). Bounded, oldest dropped first.
public final class VerifiedSignatures: Sendable {
    /// Enough for a window of blocks in flight (64 rounds of 100 transactions) several times over.
    public static let capacityDefault = 65_536

    struct State {
        var entries: Set<ClientTransaction> = []
        var order: [ClientTransaction] = []
        var oldest = 0
    }

    let capacity: Int
    let state = Mutex(State())

    public init(capacity: Int = VerifiedSignatures.capacityDefault) { self.capacity = max(1, capacity) }

    public func contains(_ transaction: ClientTransaction) -> Bool {
        state.withLock { $0.entries.contains(transaction) }
    }

    public var count: Int { state.withLock { $0.entries.count } }

    func insert(_ transactions: [ClientTransaction]) {
        state.withLock { state in
            for transaction in transactions {
                guard state.entries.insert(transaction).inserted else { continue }
                if state.order.count < capacity {
                    state.order.append(transaction)
                } else {
                    // A ring over `order`: overwrite the oldest entry and forget it.
                    state.entries.remove(state.order[state.oldest])
                    state.order[state.oldest] = transaction
                    state.oldest = (state.oldest + 1) % capacity
                }
            }
        }
    }
}

/// Verifies the client signatures in messages on all cores and records the valid ones.
public struct ClientSignaturePreverifier: Sendable {
    public let keys: KeyRing
    public let verified: VerifiedSignatures
    let verifier: ParallelVerifier

    public init(keys: KeyRing, verified: VerifiedSignatures, verifier: ParallelVerifier = ParallelVerifier()) {
        self.keys = keys
        self.verified = verified
        self.verifier = verifier
    }


    /// Checks what `message` carries; returns how many signatures were invalid (the core will
    /// refuse those itself, and count them).
    @discardableResult
    public func preverify(_ message: Message) -> Int {
        let candidates = message.clientTransactions.filter { !verified.contains($0) }
        guard !candidates.isEmpty else { return 0 }
        var checks: [SignatureCheck] = []
        var checked: [ClientTransaction] = []
        checks.reserveCapacity(candidates.count)
        var unknown = 0
        for transaction in candidates {
            guard let key = keys.clientKey(transaction.client) else {
                unknown += 1
                continue
            }
            checks.append(SignatureCheck(key: key, message: SigningPayload.transaction(
                client: transaction.client, requestID: transaction.requestID, operation: transaction.operation),
                signature: transaction.signature))
            checked.append(transaction)
        }
        let results = verifier.verify(checks)
        var valid: [ClientTransaction] = []
        valid.reserveCapacity(checked.count)
        for (transaction, ok) in zip(checked, results) where ok { valid.append(transaction) }
        verified.insert(valid)
        return unknown + checked.count - valid.count
    }
}

/// The suite the daemon's core runs with: the real one, except that a client signature found valid
/// by the preverifier is not checked a second time.
public struct PreverifiedSuite: CryptoSuite {
    let base: any CryptoSuite
    let verified: VerifiedSignatures

    public init(base: any CryptoSuite, verified: VerifiedSignatures) {
        self.base = base
        self.verified = verified
    }

    public func digest(of block: Block) -> Digest { base.digest(of: block) }
    public func digest(of snapshot: LedgerSnapshot) -> Digest { base.digest(of: snapshot) }
    public func chain(previous: Digest, cluster: ClusterID, round: UInt64, digest: Digest) -> Digest {
        base.chain(previous: previous, cluster: cluster, round: round, digest: digest)
    }
    public func sign(_ statement: SignedStatement) -> Signature { base.sign(statement) }
    public func isValid(_ signature: Signature, of statement: SignedStatement, by replica: ReplicaID) -> Bool {
        base.isValid(signature, of: statement, by: replica)
    }
    public func isValid(_ transaction: ClientTransaction) -> Bool {
        verified.contains(transaction) || base.isValid(transaction)
    }
}
