// A client as a value that steps: submit one request at a time, send it to the home cluster's
// primary, back off when a replica answers busy, resend it to every replica of the cluster on
// timeout, and accept the result once f + 1 replicas sent matching replies (at least one of them
// correct). The real client library and the simulator's clients run this same code.

/// Makes a client's signed transactions (GeoCrypto's key in the real client; a fast stand-in in the simulator).
public protocol TransactionSigner: Sendable {
    func signTransaction(client: ClientID, requestID: UInt64, operation: Operation) -> ClientTransaction
}

public enum ClientEffect: Hashable, Sendable {
    case send(ClientTransaction, to: ReplicaID)
    /// The request is done: its result and ledger position, and how many ticks it took.
    case completed(requestID: UInt64, result: ExecutionResult, position: LedgerPosition, ticks: UInt64)
}

extension Topology {
    /// How long a client in `region` waits for its answer before it resends the request to every
    /// replica of its home cluster: two local view-change timeouts plus four of the longest round
    /// trips from its region. An answer needs the request's trip to the primary, the cluster's
    /// three phases (a PBFT cluster may span regions) and, with GeoBFT, the other clusters'
    /// blocks of the round; resending sooner than that asks every replica to verify, forward
    /// and watch a request that is merely on its way. The real client and the simulator's clients
    /// use this one rule. (The real client once waited one view timeout, 500 ms, below the PBFT
    /// baseline's own latency across four regions: on a slow machine half its requests went to
    /// all 16 replicas. `LoadedGeoScenarios` shows what that costs GeoBFT itself.)
    public func clientResendTimeoutMilliseconds(region: String) -> Int {
        let rtt = longestRoundTripMilliseconds(from: region, to: regions.map(\.name)) ?? 1
        return parameters.viewTimeoutMilliseconds * 2 + Int((rtt * 4).rounded(.up))
    }

    /// How long a client in `region` waits, after the first reply of a request, for the other
    /// designated repliers (ReplyDuty) before it asks every replica of `cluster` for the answer:
    /// a fifth of the view timeout plus the longest round trip to the cluster's replicas (those
    /// of a PBFT cluster spread over regions execute a block up to that much apart). A crashed
    /// designated replier then costs a request this much, not the resend timeout.
    public func clientReplyPatienceMilliseconds(region: String, cluster: Cluster) -> Int {
        let rtt = longestRoundTripMilliseconds(from: region, to: cluster.replicas.map(\.region)) ?? 1
        return max(1, parameters.viewTimeoutMilliseconds / 5) + Int(rtt.rounded(.up))
    }
}

public struct ClientCore: Sendable {
    public let client: ClientID
    /// The cluster the current (or last) request went to, and its quorum.
    public private(set) var cluster: ClusterID
    public private(set) var quorum: Quorum
    let signer: any TransactionSigner
    let timeoutTicks: UInt64
    /// Ticks to wait after a request's first reply for the rest before asking every replica.
    let replyPatienceTicks: UInt64

    public private(set) var now: UInt64 = 0
    public private(set) var nextRequestID: UInt64 = 1
    /// The view the client believes its cluster is in (from replies), to find the primary.
    public private(set) var view: UInt64 = 0
    /// The views learned of other clusters, for clients that send to several (cross-shard: the
    /// home cluster of each request's coordinator shard).
    var views: [ClusterID: UInt64] = [:]
    public private(set) var retransmissions = 0
    var outstanding: (transaction: ClientTransaction, sentAt: UInt64, deadline: UInt64, attempts: Int)?
    var replies: [UInt16: Reply] = [:]
    /// When the outstanding request's first reply came, and whether every replica was asked since.
    var firstReplyAt: UInt64?
    var askedEveryone = false
    /// Busy answers (admission control, Admission.swift): how many the outstanding request had,
    /// and the tick it goes out again. After `fairChance` of them the primary has had its chance
    /// (one that says busy for ever may be censoring): the request goes to every replica.
    var busyCount = 0
    var busyStreak = 0
    var resendAt: UInt64?
    static let fairChance = 8
    /// Busy answers received, and the waits they caused (each one a jittered exponential backoff).
    public private(set) var busyAnswers = 0
    public private(set) var backoffs = 0

    /// `firstRequestID`: replicas execute a client's requests only in increasing id order, so a
    /// client that does not remember its last id across runs (a command-line call) starts above
    /// any id it used before, e.g. from the wall clock.
    /// `replyPatienceTicks`: see `Topology.clientReplyPatienceMilliseconds` (default: the resend timeout).
    public init(client: ClientID, cluster: ClusterID, quorum: Quorum, signer: any TransactionSigner, timeoutTicks: UInt64,
                replyPatienceTicks: UInt64? = nil, firstRequestID: UInt64 = 1) {
        self.client = client
        nextRequestID = max(1, firstRequestID)
        self.cluster = cluster
        self.quorum = quorum
        self.signer = signer
        self.timeoutTicks = max(1, timeoutTicks)
        self.replyPatienceTicks = max(1, replyPatienceTicks ?? timeoutTicks)
    }

    public var isBusy: Bool { outstanding != nil }

    /// Starts a request to `cluster` (the home cluster of the shard of the operation's first key,
    /// which coordinates it when it spans shards); the client must not be busy.
    public mutating func submit(_ operation: Operation, to cluster: ClusterID, quorum: Quorum) -> [ClientEffect] {
        if cluster != self.cluster {
            views[self.cluster] = view
            view = views[cluster] ?? 0
            self.cluster = cluster
            self.quorum = quorum
        }
        return submit(operation)
    }

    /// Starts a request; the client must not be busy.
    public mutating func submit(_ operation: Operation) -> [ClientEffect] {
        precondition(outstanding == nil, "one request at a time")
        let transaction = signer.signTransaction(client: client, requestID: nextRequestID, operation: operation)
        nextRequestID += 1
        outstanding = (transaction, now, now + timeoutTicks, 1)
        replies = [:]
        firstReplyAt = nil
        askedEveryone = false
        // A client refused last time is likely refused again: its backoff starts where half the
        // last request's left off (and the fair chance is counted afresh, from there).
        busyStreak = busyCount / 2
        busyCount = 0
        resendAt = nil
        return [.send(transaction, to: primary)]
    }

    var primary: ReplicaID { ReplicaID(cluster: cluster, index: UInt16(view % UInt64(quorum.n))) }

    func toEveryReplica(_ transaction: ClientTransaction) -> [ClientEffect] {
        (0..<quorum.n).map { .send(transaction, to: ReplicaID(cluster: cluster, index: UInt16($0))) }
    }

    /// A replica has no room for the outstanding request: wait, then send it to the primary again,
    /// a jittered exponential backoff from the replica's hint up to the resend timeout; after the
    /// primary's fair chance, to every replica, at the same pace. (Once a reply came, the timers
    /// in `tick` decide. Leaving it to them once every replica was asked made refused clients
    /// wait out doubling timeouts, past the bench's 10 s: 660 timeouts at 512 clients per region
    /// on geo-4x4, PBFT.)
    public mutating func onBusy(_ busy: Busy) -> [ClientEffect] {
        guard let current = outstanding, busy.client == client, busy.requestID == current.transaction.requestID,
              busy.replica.cluster == cluster, Int(busy.replica.index) < quorum.n else { return [] }
        busyAnswers += 1
        guard resendAt == nil, firstReplyAt == nil else { return [] }
        busyCount += 1
        backoffs += 1
        let ceiling = min(timeoutTicks, max(1, UInt64(busy.retryAfterTicks)) << UInt64(min(busyStreak + busyCount - 1, 6)))
        // Uniform in [ceiling / 2, ceiling]: clients refused together do not come back together.
        var random = SeededRandom(seed: UInt64(client.rawValue) << 32 ^ current.transaction.requestID ^ UInt64(busyCount) << 56)
        let wait = max(1, ceiling / 2 + random.next() % (ceiling / 2 + 1))
        let at = now + wait
        resendAt = at
        outstanding = (current.transaction, current.sentAt, at + timeoutTicks, current.attempts)
        return []
    }

    public mutating func onReply(_ reply: Reply) -> [ClientEffect] {
        guard let current = outstanding, reply.client == client, reply.requestID == current.transaction.requestID,
              reply.replica.cluster == cluster, Int(reply.replica.index) < quorum.n else { return [] }
        replies[reply.replica.index] = reply
        if firstReplyAt == nil { firstReplyAt = now }
        let matching = replies.values.filter { $0.result == reply.result && $0.position == reply.position }
        guard matching.count >= quorum.weak else { return [] }
        // f + 1 replicas agree, so at least one correct replica executed it; track the view they report.
        view = max(view, matching.map(\.view).min() ?? view)
        outstanding = nil
        replies = [:]
        return [.completed(requestID: reply.requestID, result: reply.result, position: reply.position, ticks: now - current.sentAt)]
    }

    public mutating func tick() -> [ClientEffect] {
        now += 1
        guard let current = outstanding else { return [] }
        if let at = resendAt, now >= at {
            resendAt = nil
            // The primary had its fair chance: ask everyone, as on a timeout.
            guard busyCount > Self.fairChance else { return [.send(current.transaction, to: primary)] }
            retransmissions += 1
            askedEveryone = true
            return toEveryReplica(current.transaction)
        }
        if now < current.deadline {
            // It executed (a reply came) but a designated replier is silent: ask every replica; each
            // answers a copy from the client itself at once, and its next requests too (ReplyDuty).
            // Under load replicas execute further apart, so the patience grows with the time the
            // first reply took (a queue at the replicas, not a silent replier).
            guard let first = firstReplyAt, !askedEveryone,
                  now >= first + max(replyPatienceTicks, first - current.sentAt) else { return [] }
            askedEveryone = true
            retransmissions += 1
            return toEveryReplica(current.transaction)
        }
        // Timed out: send to every replica of the cluster (they forward it and watch the primary),
        // and back off so a slow cluster is not flooded.
        retransmissions += 1
        askedEveryone = true
        let backoff = timeoutTicks << UInt64(min(current.attempts, 6))
        outstanding = (current.transaction, current.sentAt, now + backoff, current.attempts + 1)
        return toEveryReplica(current.transaction)
    }
}
