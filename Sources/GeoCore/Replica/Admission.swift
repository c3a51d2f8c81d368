// Admission control: how many client requests a replica takes in before it answers `busy`.
//
// A fabric offered more than it can commit must keep committing at its capacity, with latency
// growing and the excess refused, not queue without end: a request that waits longer than a
// client's patience comes back to every replica, each of which verifies it, forwards it and
// watches the primary, and view changes follow that replace a primary that was only busy. So the
// intake holds at most what the cluster delivers in half a view timeout: everything admitted is
// ordered well before a request timer (one view timeout) could fire on it.
//
// The size follows the cluster's measured delivery, counted per view-timeout period in ticks
// (deterministic: the simulator and the daemon size it alike). It starts from a floor of a few
// batches and grows as blocks are delivered: with latency ℓ below half the timeout T, a limit L
// delivers L·T/ℓ per period, so the next limit, half of that, is larger, until the queue itself
// makes up half the timeout. The hard bound (`Intake.limit`, window × batch) still caps memory.
//
// Deliveries lag, and the floor is seconds of work for a slow machine, so what waits bounds the
// intake too: the head of the queue and the oldest request in flight (`admitsAfter`), and the
// door admits at most half a period's deliveries unread. Refused clients come back after the
// time it takes to drain what waits, refused ones included (`retryAfter`): a hint that ignored
// them brought thousands back at once, and a slow primary spent its machine answering them.
// Backups stop watching a request the primary refused while its blocks are full, and give the
// requests they watch the time the cluster takes to order them (`Intake.watchAllowance`); a
// primary never leaves its own view for want of progress (its backlog is no fault, and a primary
// that is cut off is replaced by the backups' timers). Measured: 16 replica processes on 2 cores
// (geo-4x4, PBFT, 2,048 clients) went from 65 txn/s and 3 view changes to 810 and none.

/// A count per period of ticks: the running period's and the last whole one's. (Admission counts
/// deliveries and refusals with it; a shell counts the refusals at its door.)
public struct PeriodCount: Sendable, Equatable {
    public let period: UInt64
    private(set) var periodStart: UInt64 = 0
    private(set) var thisPeriod = 0
    private(set) var lastPeriod = 0

    public init(period: UInt64) { self.period = max(1, period) }

    /// Moves the period on to `now`: a whole period without counts counts as zero.
    mutating func roll(to now: UInt64) {
        guard now >= periodStart + period else { return }
        let periods = (now - periodStart) / period
        lastPeriod = periods == 1 ? thisPeriod : 0
        thisPeriod = 0
        periodStart += periods * period
    }

    public mutating func add(_ count: Int, now: UInt64) {
        roll(to: now)
        thisPeriod += count
    }

    /// The count of a period, as last measured: the last whole period, or the running one once
    /// it has more.
    public func recent(now: UInt64) -> Int {
        switch now >= periodStart ? (now - periodStart) / period : 0 {
        case 0: max(lastPeriod, thisPeriod)
        case 1: thisPeriod
        default: 0
        }
    }
}

struct Admission: Sendable, Equatable {
    /// Ticks per measuring period: the view timeout.
    var period: UInt64 { deliveries.period }
    /// The least the limit ever is: a few batches, so that a cluster starting or recovering
    /// from a view change can fill its first blocks.
    let floor: Int
    private(set) var deliveries: PeriodCount
    /// Requests refused per period: how many clients wait outside (`retryAfter`).
    private(set) var refusals: PeriodCount

    init(period: UInt64, floor: Int) {
        deliveries = PeriodCount(period: period)
        refusals = PeriodCount(period: period)
        self.floor = max(1, floor)
    }

    init(configuration: PBFTConfiguration) {
        self.init(period: configuration.viewTimeoutTicks, floor: configuration.batchSize * 8)
    }

    mutating func roll(to now: UInt64) {
        deliveries.roll(to: now)
        refusals.roll(to: now)
    }

    mutating func delivered(_ count: Int, now: UInt64) { deliveries.add(count, now: now) }

    mutating func refused(now: UInt64) { refusals.add(1, now: now) }

    /// What the cluster delivers in a period, as last measured.
    func capacity(now: UInt64) -> Int { deliveries.recent(now: now) }

    /// The ticks a refused client should wait before it tries again: about the time the cluster
    /// takes to deliver what waits ahead of it, in flight and outside (the requests refused in
    /// the last period, here and at the shell's door: `refusedElsewhere`), between one tick and
    /// eight periods. (Half that time brought refused clients back too soon: at 8 times the
    /// clients a saturating load, answering them took a tenth of the primary's machine. And a
    /// hint that counted only what was in flight, at most one period, brought 2,000 refused
    /// clients back within 60 ms on a slowed machine, whose busy answers then left no time for
    /// its Commits: geo-4x4, PBFT, 512 clients per region, `--cpu-slowdown 24`.)
    func retryAfter(inFlight: Int, now: UInt64, refusedElsewhere: Int = 0) -> UInt32 {
        let rate = max(capacity(now: now), floor)
        let waiting = inFlight + refusals.recent(now: now) + refusedElsewhere
        let ticks = UInt64(waiting) * period / UInt64(rate)
        return UInt32(min(8 * period, max(1, ticks)))
    }

    /// Whether a request may join what is in flight: the head of the primary's queue waited at
    /// most a quarter of the view timeout for a block, and the oldest request in flight waited at
    /// most one view timeout since it was admitted (a backup's forward: twice each). Admitted
    /// requests then complete within about a view timeout, well before their clients resend to
    /// every replica (two timeouts and four round trips, `Topology.clientResendTimeoutMilliseconds`),
    /// and a forward is proposed well before the backup's request timer fires.
    func admitsAfter(queueWait: UInt64, oldestInFlight: UInt64, forwarded: Bool) -> Bool {
        let factor: UInt64 = forwarded ? 2 : 1
        return queueWait <= max(1, period / 4) * factor && oldestInFlight <= period * factor
    }

    /// Ticks the cluster takes to deliver `count` requests at its measured rate, at most four
    /// periods (a cluster that delivered nothing for a period is the progress timer's business).
    func drainTicks(_ count: Int, now: UInt64) -> UInt64 {
        let rate = UInt64(capacity(now: now))
        return rate == 0 ? 4 * period : min(4 * period, UInt64(count) * period / rate)
    }

    /// Client requests that may wait unread for the machine (InboxAdmission): what the cluster
    /// delivers in half a view timeout, at least a batch: the intake's limit without its floor
    /// of several batches, which is seconds of work for a slow machine. (With the floor while
    /// nothing was delivered yet, a slowed geo-4x4 under 2,048 clients changed view 32 times.)
    func doorLimit(now: UInt64) -> Int { max(max(1, floor / 8), capacity(now: now) / 2) }

    /// Requests in flight (queued or proposed, not yet delivered) the intake admits.
    func limit(now: UInt64) -> Int { max(floor, capacity(now: now) / 2) }

}

/// Admission control in the shell, before the core: a request that waits in the machine's inbox
/// waits as surely as one in the intake, and under overload that is where it waits (the
/// simulated paper-4x15 baseline at 8,000 clients per region held 32,000 requests in its
/// primary's inbox, none refused, until they timed out). So a shell lets at most the admission
/// limit of client requests wait for its core and answers the rest `busy` itself, before it
/// spends a signature check on them. The daemon (InboundQueue) and the simulator do the same.
public enum InboxAdmission {
    /// Client requests that may wait for `replica`'s core: what the cluster delivers in half the
    /// view timeout (at least a batch), within the admission limit; none while the core
    /// itself refuses clients. (Bounding them by the admission limit alone let 800 requests, 3 s
    /// of a slowed machine's work, wait unread until their clients resent them to every replica:
    /// geo-4x4, PBFT, `--cpu-slowdown 32`, 256 clients per region.)
    public static func backlogLimit(of replica: PBFTReplica) -> Int {
        let intake = replica.intake, now = replica.now
        guard intake.admits(forwarded: false, now: now) else { return 0 }
        return min(intake.limit, intake.admission.limit(now: now), intake.admission.doorLimit(now: now))
    }

    /// The ticks a client refused at `replica`'s door should wait: its intake and its inbox full
    /// (`backlog`: its `backlogLimit`, which the shell has just computed, and which costs a scan
    /// of the requests in flight), and `refusedAtDoor` requests refused there in the last period
    /// (the shell's `PeriodCount`).
    public static func retryAfter(at replica: PBFTReplica, backlog: Int, refusedAtDoor: Int) -> UInt32 {
        replica.intake.admission.retryAfter(inFlight: replica.intake.inFlight + backlog, now: replica.now,
                                            refusedElsewhere: refusedAtDoor)
    }

    /// A count of the door's refusals per period of `replica`'s ticks.
    public static func refusalCount(for replica: PBFTReplica) -> PeriodCount {
        PeriodCount(period: replica.configuration.viewTimeoutTicks)
    }

    /// `replica`'s answer to a client request it has no room for.
    public static func busy(refusing transaction: ClientTransaction, at replica: PBFTReplica, backlog: Int, refusedAtDoor: Int) -> Busy {
        Busy(client: transaction.client, requestID: transaction.requestID, replica: replica.configuration.me,
             view: replica.view, retryAfterTicks: retryAfter(at: replica, backlog: backlog, refusedAtDoor: refusedAtDoor))
    }
}
