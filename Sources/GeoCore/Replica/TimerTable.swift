// The replica's timers in one table: liveness (when to retransmit, fetch, suspect a primary or a
// remote cluster, give up on a new primary) apart from safety (what may be signed, which lives in
// the agreement's signing records and quorum checks).
//
// Time is the replica's tick count (`Input.tick`), kept by the table itself (`now`), so the
// table is deterministic: the simulator and the daemon advance it alike. A timer runs from the
// tick it was started; some also carry a deadline. The sub-machines start and cancel their timers; the composer fires them on its tick,
// asking how long each has run (a stopwatch read against thresholds that may change, like the
// progress timer's, which doubles with each view change) or whether its deadline has passed.

/// A replica's timers, by what they wait for.
public enum TimerName: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Outstanding work (requests, proposals, statements): the primary owes progress.
    case progress
    /// The oldest pending transaction or statement waits for a block (the batch delay).
    case batch
    /// The last block request of the own cluster: catch-up and retransmissions are paced by it.
    case fetch
    /// The last time this replica said its votes again while the primary owed progress.
    case retransmit
    /// The primary's last proposal: the coordinator's heartbeat block comes when it ran long.
    case heartbeat
    /// The view change under way: its deadline gives up on the new primary.
    case viewChange
    /// Since the last view change started or ended (remote requests coalesce around it).
    case sinceViewChange
    /// The last re-send of the statements the cross-shard ledger waits on.
    case statementRetransmit
    /// The last query of the peers' state checkpoints.
    case stateQuery
    /// Since when this replica is further behind its cluster than peers keep blocks for.
    case farBehind
    /// State transfer pauses until this timer's deadline (every signer of the target failed).
    case transferPause
    /// The last block request to, or about, a remote cluster (by index in the shard).
    case remoteFetch(UInt16)

    public var description: String {
        switch self {
        case .progress: "progress"
        case .batch: "batch"
        case .fetch: "fetch"
        case .retransmit: "retransmit"
        case .heartbeat: "heartbeat"
        case .viewChange: "view-change"
        case .sinceViewChange: "since-view-change"
        case .statementRetransmit: "statement-retransmit"
        case .stateQuery: "state-query"
        case .farBehind: "far-behind"
        case .transferPause: "transfer-pause"
        case let .remoteFetch(cluster): "remote-fetch(\(cluster))"
        }
    }
}

/// The replica's clock (ticks) and its named timers: when each started and, for some, its deadline.
public struct TimerTable: Sendable, Equatable {
    struct Timer: Sendable, Equatable {
        var started: UInt64
        var deadline: UInt64?
    }

    /// Ticks since the replica started.
    public private(set) var now: UInt64 = 0
    private(set) var timers: [TimerName: Timer] = [:]

    public init() {}

    /// The clock moves on (one tick per `Input.tick`).
    mutating func advance(by ticks: UInt64 = 1) { now += ticks }

    /// Starts (or restarts) `name` now, with a deadline `after` ticks later if given.
    mutating func start(_ name: TimerName, deadlineAfter after: UInt64? = nil) {
        timers[name] = Timer(started: now, deadline: after.map { now + $0 })
    }

    /// Starts `name` now unless it runs already.
    mutating func startIfIdle(_ name: TimerName) {
        if timers[name] == nil { timers[name] = Timer(started: now) }
    }

    /// Sets the deadline of `name` (starting it now if it is not running).
    mutating func setDeadline(_ name: TimerName, at deadline: UInt64) {
        timers[name, default: Timer(started: now)].deadline = deadline
    }

    mutating func cancel(_ name: TimerName) { timers[name] = nil }

    func isRunning(_ name: TimerName) -> Bool { timers[name] != nil }

    /// The tick `name` started at; nil when it is not running.
    func started(_ name: TimerName) -> UInt64? { timers[name]?.started }

    /// Ticks `name` has run; nil when it is not running.
    func elapsed(_ name: TimerName) -> UInt64? { timers[name].map { now - $0.started } }

    /// Whether `name` has run at least `ticks`. A timer that is not running counts as `idle`:
    /// true for a pace ("nothing was sent yet, so send"), false for a wait ("nothing waits").
    func hasRun(_ name: TimerName, ticks: UInt64, idle: Bool) -> Bool {
        guard let timer = timers[name] else { return idle }
        return now - timer.started >= ticks
    }

    /// A backoff paced by `name` (the last time the thing was done) while a wait runs `waited`
    /// ticks: due when it was never done in this wait, or when as long again has passed as the
    /// wait had run at the last time (so at 1, 2, 4, 8... times the first). The replica's
    /// retransmissions while the primary owes progress use it: one late because its own machine is
    /// saturated then does not spend what it has left on re-sending.
    func backedOff(_ name: TimerName, waited: UInt64) -> Bool {
        guard let since = elapsed(name), since < waited else { return true }
        return since >= waited - since
    }

    /// The deadline of `name`, if it has one.
    func deadline(_ name: TimerName) -> UInt64? { timers[name]?.deadline }

    /// Whether the deadline of `name` has passed (false for a timer without one).
    func isDue(_ name: TimerName) -> Bool { timers[name]?.deadline.map { now >= $0 } ?? false }

    /// Every timer whose deadline has passed, in name order: what the composer fires on a tick.
    func due() -> [TimerName] {
        timers.filter { $0.value.deadline.map { now >= $0 } ?? false }.keys.sorted()
    }

    /// The timers that run, in name order, for traces and status: `name@started[->deadline]`.
    public var summary: String {
        timers.sorted { $0.key < $1.key }.map { name, timer in
            "\(name)@\(timer.started)" + (timer.deadline.map { "->\($0)" } ?? "")
        }.joined(separator: " ")
    }
}
