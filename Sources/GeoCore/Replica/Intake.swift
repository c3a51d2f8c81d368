// Client requests on their way into blocks: the primary's queue of transactions waiting for a
// block, the keys it proposed, the requests our cluster ordered and the ledger has not executed
// yet, and the backups' request timers (PBFT's watch on a primary that might censor a request).
//
// The composer decides who acts (primary or backup, in which view); the intake keeps the sets
// consistent: a request is in at most one of queued, proposed and ordered, and leaves all of them
// when its result is known.

/// A client request, by client and request number.
struct RequestKey: Hashable, Sendable {
    var client: ClientID
    var requestID: UInt64
    init(_ transaction: ClientTransaction) {
        client = transaction.client
        requestID = transaction.requestID
    }
}

struct Intake: Sendable {
    /// Bound of the queue and of the watched requests (a window of full blocks).
    let limit: Int
    /// Primary only: transactions waiting for a block, in arrival order, and their keys.
    private(set) var pending: [ClientTransaction] = []
    private var pendingKeys: Set<RequestKey> = []
    /// Primary only: keys proposed in a block not yet delivered.
    private(set) var proposed: Set<RequestKey> = []
    /// The next round the primary proposes.
    var nextProposalRound: UInt64 = 1
    /// Requests our cluster ordered that the shard ledger has not executed yet (it may be waiting
    /// for other clusters' blocks of their round). Bounded by the window times the batch size.
    private var ordered: Set<RequestKey> = []
    /// Requests this replica knows of and waits to see ordered, with the tick it started waiting:
    /// PBFT's request timers. One that waits too long means the primary censors it. A request
    /// seen in the current view's PrePrepare waits without a timer (`since` nil): the primary did
    /// its part, and the progress timer watches the rest.
    private(set) var watched: [RequestKey: (transaction: ClientTransaction, since: UInt64?)] = [:]
    /// Admission control: what the cluster delivered, to size the intake by.
    private(set) var admission: Admission

    init(limit: Int, admission: Admission) {
        self.limit = limit
        self.admission = admission
    }

    /// Requests taken in and not yet ordered: queued or proposed at the primary.
    var inFlight: Int { pending.count + proposed.count }

    /// Whether the primary has room for one more request. Past the admission limit it answers
    /// `busy`; a backup's forward (a request on a watched timer) may use a second limit's worth,
    /// so that a busy primary does not leave a backup's timer to fire on a request it refused.
    func admits(forwarded: Bool, now: UInt64) -> Bool {
        pending.count < limit && inFlight < admission.limit(now: now) * (forwarded ? 2 : 1)
    }

    /// Whether a backup has room to watch one more request for the primary.
    func canWatch(now: UInt64) -> Bool { watched.count < min(limit, admission.limit(now: now)) }

    /// Admission control for a request not held yet: nil when there is room, else the ticks its
    /// client should wait (the replica answers `busy`). A backup refuses only a client's own copy
    /// (it watches no forward); a forward the primary refuses is the client's to send again.
    func refusal(asPrimary: Bool, forwarded: Bool, now: UInt64) -> UInt32? {
        let room = asPrimary ? admits(forwarded: forwarded, now: now) : forwarded || canWatch(now: now)
        return room ? nil : admission.retryAfter(inFlight: inFlight, now: now)
    }

    /// Whether a copy of this request is held already, so that it needs no signature check: by
    /// the primary, queued, proposed or ordered; by a backup, watched or ordered (and a backup acts
    /// on no forward at all).
    func holds(_ key: RequestKey, asPrimary: Bool, forwarded: Bool) -> Bool {
        asPrimary
            ? pendingKeys.contains(key) || proposed.contains(key) || ordered.contains(key)
            : forwarded || watched[key] != nil || ordered.contains(key)
    }

    /// Primary: queues a checked transaction for a block.
    mutating func enqueue(_ transaction: ClientTransaction) throws(Rejection) {
        guard pending.count < limit else { throw .queueFull }
        pending.append(transaction)
        pendingKeys.insert(RequestKey(transaction))
    }

    /// Backup: starts the request timer of a checked transaction the client sent us directly.
    mutating func watch(_ transaction: ClientTransaction, now: UInt64) throws(Rejection) {
        guard watched.count < limit else { throw .queueFull }
        watched[RequestKey(transaction)] = (transaction, now)
    }

    var queued: Int { pending.count }

    /// Primary: the next block's transactions (at most `size`), now proposed.
    mutating func takeBatch(_ size: Int) -> [ClientTransaction] {
        let count = min(size, pending.count)
        let transactions = Array(pending.prefix(count))
        pending.removeFirst(count)
        for transaction in transactions {
            let key = RequestKey(transaction)
            pendingKeys.remove(key)
            proposed.insert(key)
        }
        return transactions
    }

    /// A block of our cluster was delivered: its requests are ordered. Their request timers stop
    /// here, not at execution, which may wait for other clusters (the remote timers' job).
    mutating func delivered(_ transactions: [ClientTransaction], now: UInt64) {
        admission.delivered(transactions.count, now: now)
        for transaction in transactions {
            let key = RequestKey(transaction)
            proposed.remove(key)
            watched[key] = nil
            ordered.insert(key)
            if pendingKeys.remove(key) != nil { pending.removeAll { RequestKey($0) == key } }
        }
    }

    /// The ledger executed a request of our cluster.
    mutating func executed(_ transaction: ClientTransaction) {
        let key = RequestKey(transaction)
        watched[key] = nil
        ordered.remove(key)
    }

    /// An installed snapshot executed every request up to each client's last one.
    mutating func installed(lastExecution: [ClientID: LastExecution]) {
        ordered = ordered.filter { $0.requestID > (lastExecution[$0.client]?.requestID ?? 0) }
    }

    /// Drops watches of requests ordered or executed meanwhile (a late retransmission): they need
    /// no timer.
    mutating func settleWatches(lastExecution: [ClientID: LastExecution]) {
        watched = watched.filter { key, _ in
            !ordered.contains(key) && key.requestID > (lastExecution[key.client]?.requestID ?? 0)
        }
    }

    /// A backup accepted the current view's PrePrepare of these: their request timers stop.
    mutating func seenProposed(_ transactions: [ClientTransaction]) {
        for transaction in transactions where watched[RequestKey(transaction)] != nil {
            watched[RequestKey(transaction)]?.since = nil
        }
    }

    /// The tick the longest-waiting watched request (not yet proposed) started waiting.
    var oldestWatch: UInt64? { watched.values.compactMap(\.since).min() }

    /// Requests queued, proposed or watched: the progress timer runs while there are any.
    var hasWork: Bool { !watched.isEmpty || !pending.isEmpty || !proposed.isEmpty }

    /// A new view with this replica as primary: the NewView's re-proposed requests count as
    /// proposed, and every request it watched joins the queue. True if anything is queued.
    mutating func takeOver(reproposed: [ClientTransaction]) -> Bool {
        let waiting = watchedInOrder
        proposed = Set(reproposed.map(RequestKey.init))
        for transaction in waiting where !proposed.contains(RequestKey(transaction)) && !pendingKeys.contains(RequestKey(transaction)) {
            pending.append(transaction)
            pendingKeys.insert(RequestKey(transaction))
        }
        watched = [:]
        return !pending.isEmpty
    }

    /// A new view with another primary: the queue goes (the new primary gets the requests from
    /// their clients or from us), and each watched request gets a full timeout from `now`.
    /// Returns the watched requests, to forward to the new primary.
    mutating func handOver(now: UInt64) -> [ClientTransaction] {
        let waiting = watchedInOrder
        pending = []
        pendingKeys = []
        proposed = []
        for key in watched.keys { watched[key]?.since = now }
        return waiting
    }

    private var watchedInOrder: [ClientTransaction] {
        watched.values.map(\.transaction).sorted { ($0.client, $0.requestID) < ($1.client, $1.requestID) }
    }
}
