// Client signatures checked before the core sees them, in parallel and off the replica's actor.
//
// Ed25519 verification of client transactions dominates a replica's CPU. Each signature needs
// f + 1 verifiers in its home cluster (GeoCore's SignatureDuty): the primary, and the f backups
// designated for it, which check the transactions of a PrePrepare they are designated for and
// leave the others to their peers. The core checks signatures through its suite,
// one at a time, on the actor that owns it; left there, one core would do all of it. So the daemon
// checks the client signatures a message carries (a client transaction, a PrePrepare's block, a
// NewView's re-proposals) on all cores first, and hands the core a suite that remembers what was
// found valid. A signature the cache has not seen is still verified by the core: the cache only
// saves work, it never lets anything through that was not checked. Every verification, here or
// in the core (its fallback for a silent verifier, a new view's plan), is counted in
// geofabric_client_signature_verifications_total.

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
        /// Client signatures verified since the replica started.
        var verifications: UInt64 = 0
        var entries: Set<ClientTransaction> = []
        var order: [ClientTransaction] = []
        var oldest = 0
    }

    let capacity: Int
    let state = Mutex(State())
    /// Where verifications are counted (the replica's metrics), if anywhere.
    let metrics: NodeMetrics?

    public init(capacity: Int = VerifiedSignatures.capacityDefault, metrics: NodeMetrics? = nil) {
        self.capacity = max(1, capacity)
        self.metrics = metrics
    }

    /// `count` client signatures were verified (valid or not).
    func counted(_ count: Int) {
        guard count > 0 else { return }
        state.withLock { $0.verifications += UInt64(count) }
        metrics?.clientSignaturesVerified(count)
    }

    /// Client signatures verified since the replica started, here and in the core.
    public var verifications: UInt64 { state.withLock { $0.verifications } }

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
    /// The replica's configuration: a PrePrepare's transactions are checked only where this
    /// replica is a designated verifier (SignatureDuty). Nil: every transaction is checked.
    let configuration: PBFTConfiguration?

    public init(keys: KeyRing, verified: VerifiedSignatures, configuration: PBFTConfiguration? = nil,
                verifier: ParallelVerifier = ParallelVerifier()) {
        self.keys = keys
        self.verified = verified
        self.configuration = configuration
        self.verifier = verifier
    }

    /// The client transactions of `message` this replica is to verify: all of them, except in a
    /// PrePrepare, where only those it is designated for (its peers vouch for the rest).
    func duties(_ message: Message) -> [ClientTransaction] {
        guard case let .prePrepare(prePrepare) = message, let configuration else { return message.clientTransactions }
        let duty = configuration.signatureDuty
        let primary = configuration.primary(of: prePrepare.view)
        return prePrepare.block.transactions.filter { duty.isDesignated(configuration.index, for: $0, primary: primary) }
    }


    /// Checks what `message` carries; returns how many signatures were invalid (the core will
    /// refuse those itself, and count them).
    @discardableResult
    public func preverify(_ message: Message) -> Int {
        let candidates = duties(message).filter { !verified.contains($0) }
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
        verified.counted(checks.count)
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
    public func digest(of header: BlockHeader) -> Digest { base.digest(of: header) }
    public func leafDigest(of transaction: ClientTransaction) -> Digest { base.leafDigest(of: transaction) }
    public func nodeDigest(left: Digest, right: Digest) -> Digest { base.nodeDigest(left: left, right: right) }
    public func statementsDigest(of statements: [ShardStatementProof]) -> Digest { base.statementsDigest(of: statements) }
    public func digest(of snapshot: LedgerSnapshot) -> Digest { base.digest(of: snapshot) }
    public func chain(previous: Digest, cluster: ClusterID, round: UInt64, digest: Digest) -> Digest {
        base.chain(previous: previous, cluster: cluster, round: round, digest: digest)
    }
    public func sign(_ statement: SignedStatement) -> Signature { base.sign(statement) }
    public func isValid(_ signature: Signature, of statement: SignedStatement, by replica: ReplicaID) -> Bool {
        base.isValid(signature, of: statement, by: replica)
    }
    public func isValid(_ transaction: ClientTransaction) -> Bool {
        if verified.contains(transaction) { return true }
        verified.counted(1)
        return base.isValid(transaction)
    }
}
