// Who checks a client's signature (issue 16). Every replica of the home cluster used to verify
// every client signature: n Ed25519 verifications per transaction, the bound on throughput. It is
// enough that f + 1 replicas vouch for each one, since at least one of them is correct:
//
// - The primary verifies every transaction it proposes (so a client's bad signature never stalls
//   a cluster behind a correct primary: it is refused at the door).
// - f backups, chosen from the transaction's signature, are its designated verifiers: a backup
//   verifies the transactions it is designated for before it sends its Prepare for the block, and
//   refuses the block if one fails. Its Prepare therefore vouches for them.
// - A replica sends its Commit only when every transaction of the block is vouched for: by the
//   PrePrepare (the primary) and the Prepares of all of its designated backups, or by its own
//   verification. It waits `vouchPatienceTicks` after the block is prepared for the Prepares
//   that vouch, then verifies the rest itself (a designated verifier that is slow or silent
//   costs the others its share, not the cluster its progress).
//
// A commit certificate holds n - f Commits, so at least one correct replica committed, and it had
// every transaction vouched for by f + 1 replicas (at least one correct) or checked it itself:
// every committed transaction was verified by a correct replica, which is what other clusters and
// clients rely on. A Byzantine primary can make at most f - 1 backups collude with it, so a forged
// transaction always has a correct designated verifier, which does not Prepare: the correct
// replicas then fall back, find the forgery and never Commit; the block's round goes to the next
// view. A prepared proof no longer implies checked signatures, so a new view skips prepared
// blocks carrying a forged one (NewViewPlan); such a block cannot have committed anywhere.
//
// The choice depends only on the transaction's signature and the view's primary: every replica,
// and the daemon's parallel pre-verification, computes the same one.

public struct SignatureDuty: Hashable, Sendable {
    public let n: Int
    public let f: Int

    public init(quorum: Quorum) {
        n = quorum.n
        f = quorum.f
    }

    /// The f backups designated to verify `transaction` in a view whose primary is `primary`:
    /// consecutive backups (in index order after the primary, wrapping) from a start that the
    /// signature's first bytes pick.
    public func designatedBackups(_ transaction: ClientTransaction, primary: UInt16) -> [UInt16] {
        let backups = n - 1
        guard backups > 0, f > 0 else { return [] }
        var selector: UInt64 = 0
        for byte in transaction.signature.bytes.prefix(8).reversed() { selector = selector << 8 | UInt64(byte) }
        let start = Int(selector % UInt64(backups))
        return (0..<min(f, backups)).map { offset in
            UInt16((Int(primary) + 1 + (start + offset) % backups) % n)
        }
    }

    /// Whether `replica` must verify `transaction` in a view whose primary is `primary` (the
    /// primary verifies everything it proposes).
    public func isDesignated(_ replica: UInt16, for transaction: ClientTransaction, primary: UInt16) -> Bool {
        replica == primary || designatedBackups(transaction, primary: primary).contains(replica)
    }
}
