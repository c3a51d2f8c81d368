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

struct Admission: Sendable, Equatable {
    /// Ticks per measuring period: the view timeout.
    let period: UInt64
    /// The least the limit ever is: a few batches, so that a cluster starting or recovering
    /// from a view change can fill its first blocks.
    let floor: Int
    private(set) var periodStart: UInt64 = 0
    private(set) var deliveredThisPeriod = 0
    private(set) var deliveredLastPeriod = 0

    init(period: UInt64, floor: Int) {
        self.period = max(1, period)
        self.floor = max(1, floor)
    }

    init(configuration: PBFTConfiguration) {
        self.init(period: configuration.viewTimeoutTicks, floor: configuration.batchSize * 8)
    }

    /// Moves the measuring period on to `now`: a whole period without deliveries counts as zero.
    mutating func roll(to now: UInt64) {
        guard now >= periodStart + period else { return }
        let periods = (now - periodStart) / period
        deliveredLastPeriod = periods == 1 ? deliveredThisPeriod : 0
        deliveredThisPeriod = 0
        periodStart += periods * period
    }

    mutating func delivered(_ count: Int, now: UInt64) {
        roll(to: now)
        deliveredThisPeriod += count
    }

    /// What the cluster delivers in a period, as last measured: the last whole period, or the
    /// running one once it has done more.
    func capacity(now: UInt64) -> Int {
        switch now >= periodStart ? (now - periodStart) / period : 0 {
        case 0: max(deliveredLastPeriod, deliveredThisPeriod)
        case 1: deliveredThisPeriod
        default: 0
        }
    }

    /// Requests in flight (queued or proposed, not yet delivered) the intake admits.
    func limit(now: UInt64) -> Int { max(floor, capacity(now: now) / 2) }

    /// The ticks a refused client should wait before it tries again: about the time the cluster
    /// takes to deliver what waits ahead of it, between one tick and one period. (Half that time
    /// brought refused clients back too soon: at 8 times the clients a saturating load, answering
    /// them took a tenth of the primary's machine.)
    func retryAfter(inFlight: Int, now: UInt64) -> UInt32 {
        let rate = max(capacity(now: now), floor)
        let ticks = UInt64(inFlight) * period / UInt64(rate)
        return UInt32(min(period, max(1, ticks)))
    }
}

/// Admission control in the shell, before the core: a request that waits in the machine's inbox
/// waits as surely as one in the intake, and under overload that is where it waits (the
/// simulated paper-4x15 baseline at 8,000 clients per region held 32,000 requests in its
/// primary's inbox, none refused, until they timed out). So a shell lets at most the admission
/// limit of client requests wait for its core and answers the rest `busy` itself, before it
/// spends a signature check on them. The daemon (InboundQueue) and the simulator do the same.
public enum InboxAdmission {
    /// Client requests that may wait for `replica`'s core.
    public static func backlogLimit(of replica: PBFTReplica) -> Int {
        min(replica.intake.limit, replica.intake.admission.limit(now: replica.now))
    }

    /// The ticks a client refused at `replica`'s door should wait: its intake and its inbox full.
    public static func retryAfter(at replica: PBFTReplica) -> UInt32 {
        replica.intake.admission.retryAfter(inFlight: replica.intake.inFlight + backlogLimit(of: replica), now: replica.now)
    }

    /// `replica`'s answer to a client request it has no room for.
    public static func busy(refusing transaction: ClientTransaction, at replica: PBFTReplica) -> Busy {
        Busy(client: transaction.client, requestID: transaction.requestID, replica: replica.configuration.me,
             view: replica.view, retryAfterTicks: retryAfter(at: replica))
    }
}
