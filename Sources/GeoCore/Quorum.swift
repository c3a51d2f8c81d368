// Quorum arithmetic, in one place (as etcd-io/raft keeps vote counting in its own package).
//
// A cluster of n replicas tolerates f = (n - 1) / 3 Byzantine ones, so n >= 3f + 1.
// Every quorum is n - f: two quorums overlap in n - 2f >= f + 1 replicas, so at least one
// correct replica is in both, also when n > 3f + 1 (where 2f + 1 would be too small).
// A weak quorum of f + 1 contains at least one correct replica: enough to trust a statement
// (a remote view-change request, a forwarded certificate) but not to decide.

public struct Quorum: Hashable, Sendable, CustomStringConvertible {
    /// Replicas in the cluster.
    public let n: Int
    /// Byzantine replicas tolerated.
    public let f: Int

    /// The largest f that n replicas tolerate: f = (n - 1) / 3.
    public static func maxFaulty(n: Int) -> Int { n >= 1 ? (n - 1) / 3 : 0 }

    /// A cluster of n replicas tolerating the largest possible f. Nil when n < 1.
    public init?(n: Int) {
        guard n >= 1 else { return nil }
        self.n = n
        self.f = Self.maxFaulty(n: n)
    }

    /// A cluster of n replicas tolerating f; nil unless n >= 3f + 1 and f >= 0.
    public init?(n: Int, f: Int) {
        // f <= (n - 1) / 3 is n >= 3f + 1 without the overflow of 3f + 1 for huge f.
        guard f >= 0, n >= 1, f <= (n - 1) / 3 else { return nil }
        self.n = n
        self.f = f
    }

    /// A quorum rule that breaks n >= 3f + 1, for one purpose only: showing that the simulator's
    /// checkers catch the safety violations it causes. Never used by a deployment.
    public static func brokenForCheckerTests(n: Int, f: Int) -> Quorum {
        Quorum(uncheckedN: n, f: f)
    }

    private init(uncheckedN n: Int, f: Int) {
        self.n = n
        self.f = f
    }

    /// Matching votes that decide: Prepare/Commit certificates, checkpoints, view changes.
    public var decide: Int { n - f }
    /// Matching Prepares from distinct backups that, with the PrePrepare, make a replica prepared.
    public var prepared: Int { n - f - 1 }
    /// Votes that include at least one correct replica.
    public var weak: Int { f + 1 }

    /// True when `count` distinct votes reach the deciding quorum.
    public func isDecided(_ count: Int) -> Bool { count >= decide }
    /// True when `count` distinct votes include at least one correct replica.
    public func isWeak(_ count: Int) -> Bool { count >= weak }

    public var description: String { "n=\(n) f=\(f)" }
}

extension Quorum {
    /// The largest value that at least f + 1 peers claim (so at least one correct peer does).
    func weakValue(of claims: [UInt16: UInt64]) -> UInt64 {
        let sorted = claims.values.sorted(by: >)
        return sorted.count >= weak ? sorted[weak - 1] : 0
    }
}
