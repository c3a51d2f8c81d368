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
    init(client: ClientID, requestID: UInt64) {
        self.client = client
        self.requestID = requestID
    }
    init(_ transaction: ClientTransaction) { self.init(client: transaction.client, requestID: transaction.requestID) }
}

struct Intake: Sendable {
    /// Bound of the queue and of the watched requests (a window of full blocks).
    let limit: Int
    /// Primary only: transactions waiting for a block, in arrival order, and their keys.
    private(set) var pending: [ClientTransaction] = []
    private var pendingKeys: Set<RequestKey> = []
    /// The tick each pending transaction was queued (same order as `pending`): how long the
    /// queue's head has waited is the admission's measure of overload (`admits`).
    private var pendingSince: [UInt64] = []
    /// Primary only: keys proposed in a block not yet delivered, with the tick each was admitted.
    private(set) var proposed: [RequestKey: UInt64] = [:]
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
    /// Backup: the current view's latest PrePrepare was at least half a batch (`refusedByPrimary`).
    private var primaryBusy = false

    init(limit: Int, admission: Admission) {
        self.limit = limit
        self.admission = admission
    }

    /// Requests taken in and not yet ordered: queued or proposed at the primary.
    var inFlight: Int { pending.count + proposed.count }

    /// Ticks the oldest queued transaction has waited for a block (0 with an empty queue).
    func queueWait(now: UInt64) -> UInt64 { pendingSince.first.map { now >= $0 ? now - $0 : 0 } ?? 0 }

    /// Ticks the oldest request in flight (queued or proposed, not delivered) has waited since
    /// it was admitted.
    func oldestInFlight(now: UInt64) -> UInt64 {
        let oldest = min(pendingSince.first ?? now, proposed.values.min() ?? now)
        return now >= oldest ? now - oldest : 0
    }

    /// Whether the primary has room for one more request. Past the admission limit it answers
    /// `busy`; a backup's forward (a request on a watched timer) may use a second limit's worth,
    /// so that a busy primary does not leave a backup's timer to fire on a request it refused.
    /// The limit follows deliveries, which lag, and its floor of a few batches is seconds of work
    /// for a slow cluster: so what was admitted before bounds it too (`Admission.admitsAfter`).
    /// (With the limit alone, a cluster slowed to a quarter of its speed held 8 batches, 3 s of
    /// work, its clients resent to every replica and view changes followed: geo-4x4, PBFT, 256
    /// clients per region, `--cpu-slowdown 32`; and so did 16 replica processes on 2 cores.)
    func admits(forwarded: Bool, now: UInt64) -> Bool {
        pending.count < limit && inFlight < admission.limit(now: now) * (forwarded ? 2 : 1)
            && admission.admitsAfter(queueWait: queueWait(now: now), oldestInFlight: oldestInFlight(now: now), forwarded: forwarded)
    }

    /// Whether a backup has room to watch one more request for the primary.
    func canWatch(now: UInt64) -> Bool { watched.count < min(limit, admission.limit(now: now)) }

    /// Admission control for a request not held yet: nil when there is room, else the ticks its
    /// client should wait (the replica answers `busy`). A backup refuses only a client's own copy
    /// (it watches no forward); a forward the primary refuses is the client's to send again.
    mutating func refusal(asPrimary: Bool, forwarded: Bool, now: UInt64) -> UInt32? {
        let room = asPrimary ? admits(forwarded: forwarded, now: now) : forwarded || canWatch(now: now)
        guard !room else { return nil }
        admission.refused(now: now)
        return admission.retryAfter(inFlight: inFlight, now: now)
    }

    /// Whether a copy of this request is held already, so that it needs no signature check: by
    /// the primary, queued, proposed or ordered; by a backup, watched or ordered (and a backup acts
    /// on no forward at all).
    func holds(_ key: RequestKey, asPrimary: Bool, forwarded: Bool) -> Bool {
        asPrimary
            ? pendingKeys.contains(key) || proposed[key] != nil || ordered.contains(key)
            : forwarded || watched[key] != nil || ordered.contains(key)
    }

    /// Primary: queues a checked transaction for a block.
    mutating func enqueue(_ transaction: ClientTransaction, now: UInt64) throws(Rejection) {
        guard pending.count < limit else { throw .queueFull }
        pending.append(transaction)
        pendingSince.append(now)
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
        for (transaction, since) in zip(transactions, pendingSince) {
            let key = RequestKey(transaction)
            pendingKeys.remove(key)
            proposed[key] = since
        }
        pending.removeFirst(count)
        pendingSince.removeFirst(count)
        return transactions
    }

    /// A block of our cluster was delivered: its requests are ordered. Their request timers stop
    /// here, not at execution, which may wait for other clusters (the remote timers' job).
    mutating func delivered(_ transactions: [ClientTransaction], now: UInt64) {
        admission.delivered(transactions.count, now: now)
        for transaction in transactions {
            let key = RequestKey(transaction)
            proposed[key] = nil
            watched[key] = nil
            ordered.insert(key)
            if pendingKeys.remove(key) != nil, let index = pending.firstIndex(where: { RequestKey($0) == key }) {
                pending.remove(at: index)
                pendingSince.remove(at: index)
            }
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
    /// `full`: the block was at least half a batch, so the primary is busy ordering requests.
    mutating func seenProposed(_ transactions: [ClientTransaction], full: Bool) {
        primaryBusy = full
        for transaction in transactions where watched[RequestKey(transaction)] != nil {
            watched[RequestKey(transaction)]?.since = nil
        }
    }

    /// Backup: the primary answered `busy` to a request we forwarded. Its client was told to try
    /// again later, so the request timer stops, if the primary's latest block of this view was at
    /// least half full: a primary refusing requests while it proposes near-empty blocks may be
    /// censoring them, and the timer stays. (Watching every refused request fired request timers
    /// on a primary that was only busy: geo-4x4, PBFT, 512 clients per region, 16 view changes.)
    /// `view`: the replica's view, nil while it changes view (a refusal then stops nothing).
    mutating func refusedByPrimary(_ busy: Busy, from: ReplicaID, primary: ReplicaID, view: UInt64?) throws(Rejection) {
        guard from == primary, busy.replica == from, busy.view == view else { throw .unexpected }
        guard primaryBusy else { return }
        let key = RequestKey(client: busy.client, requestID: busy.requestID)
        if watched[key]?.since != nil { watched[key] = nil }
    }

    /// The tick the longest-waiting watched request (not yet proposed) started waiting.
    var oldestWatch: UInt64? { watched.values.compactMap(\.since).min() }

    /// Ticks a watched request may wait beyond the view timeout: the time the cluster takes, at
    /// the rate it delivers, to order the requests this backup watches (at most four timeouts).
    /// A primary with many requests resent to every replica at once is busy, not censoring;
    /// without the allowance 16 replicas on 2 cores changed view under 2,048 clients (geo-4x4,
    /// PBFT, request timeouts). A censoring primary is still caught, only later.
    func watchAllowance(now: UInt64) -> UInt64 { admission.drainTicks(watched.count, now: now) }

    /// Requests queued, proposed or watched: the progress timer runs while there are any.
    var hasWork: Bool { !watched.isEmpty || !pending.isEmpty || !proposed.isEmpty }

    /// A new view with this replica as primary: the NewView's re-proposed requests count as
    /// proposed, and every request it watched joins the queue. True if anything is queued.
    mutating func takeOver(reproposed: [ClientTransaction], now: UInt64) -> Bool {
        let waiting = watchedInOrder
        proposed = Dictionary(reproposed.map { (RequestKey($0), now) }, uniquingKeysWith: { first, _ in first })
        for transaction in waiting where proposed[RequestKey(transaction)] == nil && !pendingKeys.contains(RequestKey(transaction)) {
            pending.append(transaction)
            pendingSince.append(now)
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
        primaryBusy = false
        pending = []
        pendingSince = []
        pendingKeys = []
        proposed = [:]
        for key in watched.keys { watched[key]?.since = now }
        return waiting
    }

    private var watchedInOrder: [ClientTransaction] {
        watched.values.map(\.transaction).sorted { ($0.client, $0.requestID) < ($1.client, $1.requestID) }
    }
}
