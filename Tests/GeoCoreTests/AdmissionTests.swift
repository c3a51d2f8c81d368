@testable import GeoCore
import GeoSim
import Testing

/// Admission control (Admission.swift) and the client's answer to it (ClientCore: backoff, a
/// fair chance for the primary, then every replica).
@Suite struct AdmissionTests {
    @Test func theLimitStartsAtTheFloorAndFollowsWhatTheClusterDelivers() {
        var admission = Admission(period: 100, floor: 800)
        #expect(admission.limit(now: 0) == 800)
        // 3,000 delivered in the first period: half of it may wait (everything admitted is then
        // delivered within half a period at that rate).
        for tick in stride(from: 10, to: 100, by: 10) { admission.delivered(333, now: UInt64(tick)) }
        #expect(admission.capacity(now: 99) == 2_997)
        #expect(admission.limit(now: 99) == 1_498)
        // The next period begins empty: the last whole one still counts, until it has done more.
        admission.delivered(100, now: 150)
        #expect(admission.limit(now: 150) == 1_498)
        for tick in stride(from: 160, to: 200, by: 5) { admission.delivered(500, now: UInt64(tick)) }
        #expect(admission.capacity(now: 199) == 4_100)
        #expect(admission.limit(now: 199) == 2_050)
    }

    @Test func aClusterThatStopsDeliveringFallsBackToTheFloor() {
        var admission = Admission(period: 100, floor: 800)
        admission.delivered(10_000, now: 50)
        #expect(admission.limit(now: 120) == 5_000)  // the period that ended still counts
        #expect(admission.limit(now: 200) == 800)    // a whole period without a delivery: the floor
        admission.roll(to: 350)
        #expect(admission.capacity(now: 350) == 0)
        #expect(admission.limit(now: 350) == 800)
    }

    @Test func theRetryHintIsTheDrainTimeOfWhatWaitsBetweenOneTickAndEightPeriods() {
        var admission = Admission(period: 100, floor: 100)
        admission.delivered(2_000, now: 10)
        #expect(admission.retryAfter(inFlight: 1_000, now: 20) == 50)   // 1,000 ahead at 2,000 a period
        #expect(admission.retryAfter(inFlight: 0, now: 20) == 1)
        #expect(admission.retryAfter(inFlight: 1_000_000, now: 20) == 800)
        // Those refused in the last period wait outside too: 1,000 more, 50 ticks more.
        for _ in 0..<1_000 { admission.refused(now: 30) }
        #expect(admission.retryAfter(inFlight: 1_000, now: 40) == 100)
        // And those refused at the shell's door.
        #expect(admission.retryAfter(inFlight: 1_000, now: 40, refusedElsewhere: 2_000) == 200)
        // A period later the refusals of the last whole period still count; two later, none.
        #expect(admission.retryAfter(inFlight: 0, now: 150) == 50)
        #expect(admission.retryAfter(inFlight: 0, now: 250) == 1)
    }

    @Test func aPeriodCountKeepsTheLastWholePeriodUntilTheRunningOneHasMore() {
        var count = PeriodCount(period: 10)
        count.add(5, now: 3)
        #expect(count.recent(now: 9) == 5)
        count.add(2, now: 12)
        #expect(count.recent(now: 12) == 5)
        count.add(4, now: 15)
        #expect(count.recent(now: 15) == 6)
        #expect(count.recent(now: 25) == 6)   // the period that ended
        #expect(count.recent(now: 31) == 0)   // a whole period without counts
    }

    // MARK: What waits bounds the intake (Intake.admits)

    func transaction(_ client: UInt32, _ request: UInt64 = 1) -> ClientTransaction {
        SimulatedCrypto(owner: nil, clientCount: 512).signTransaction(client: ClientID(client), requestID: request, operation: .get(key: [1]))
    }

    @Test func aQueueWhoseHeadWaitedAQuarterTimeoutTakesNoClientButAForward() throws {
        var intake = Intake(limit: 10_000, admission: Admission(period: 100, floor: 800))
        try intake.enqueue(transaction(1), now: 0)
        #expect(intake.admits(forwarded: false, now: 25))
        #expect(!intake.admits(forwarded: false, now: 26), "the head waited more than a quarter period")
        #expect(intake.admits(forwarded: true, now: 50) && !intake.admits(forwarded: true, now: 51))
        // Proposed, the queue is empty, but the oldest request in flight still counts, up to a period.
        _ = intake.takeBatch(10)
        #expect(intake.queueWait(now: 60) == 0 && intake.oldestInFlight(now: 60) == 60)
        #expect(intake.admits(forwarded: false, now: 100) && !intake.admits(forwarded: false, now: 101))
        #expect(intake.admits(forwarded: true, now: 200) && !intake.admits(forwarded: true, now: 201))
        intake.delivered([transaction(1)], now: 150)
        #expect(intake.admits(forwarded: false, now: 150), "delivered: nothing waits")
    }

    @Test func aBackupStopsWatchingWhatABusyPrimaryRefusedOnlyWhileItsBlocksAreFull() throws {
        let primary = ReplicaID(cluster: ClusterID(shard: ShardID(0), index: 0), index: 0)
        let backup = ReplicaID(cluster: primary.cluster, index: 1)
        var intake = Intake(limit: 10_000, admission: Admission(period: 100, floor: 800))
        try intake.watch(transaction(1), now: 0)
        try intake.watch(transaction(2), now: 0)
        let refusal = { (client: UInt32) in
            Busy(client: ClientID(client), requestID: 1, replica: primary, view: 3, retryAfterTicks: 10)
        }
        // Only the current primary's refusal, in our view, counts.
        #expect(throws: Rejection.unexpected) { try intake.refusedByPrimary(refusal(1), from: backup, primary: primary, view: 3) }
        #expect(throws: Rejection.unexpected) { try intake.refusedByPrimary(refusal(1), from: primary, primary: primary, view: 4) }
        #expect(throws: Rejection.unexpected) { try intake.refusedByPrimary(refusal(1), from: primary, primary: primary, view: nil) }
        // Its latest block was nearly empty: it may be censoring, the timer stays.
        intake.seenProposed([transaction(9)], full: false)
        try intake.refusedByPrimary(refusal(1), from: primary, primary: primary, view: 3)
        #expect(intake.watched.count == 2 && intake.oldestWatch == 0)
        // A full block: busy indeed, the watch goes (the client was told to retry).
        intake.seenProposed([transaction(9)], full: true)
        try intake.refusedByPrimary(refusal(1), from: primary, primary: primary, view: 3)
        #expect(intake.watched.count == 1)
    }

    @Test func watchedRequestsGetTheTimeTheClusterTakesToOrderThem() throws {
        var intake = Intake(limit: 10_000, admission: Admission(period: 100, floor: 800))
        for client in 1...50 { try intake.watch(transaction(UInt32(client)), now: 0) }
        #expect(intake.watchAllowance(now: 10) == 400, "nothing delivered yet: four periods")
        intake.delivered((51...150).map { transaction(UInt32($0)) }, now: 20)
        #expect(intake.watchAllowance(now: 30) == 50, "50 watched at 100 a period: half a period")
        for client in 51...450 { try intake.watch(transaction(UInt32(client)), now: 30) }
        #expect(intake.watchAllowance(now: 30) == 400, "at most four periods")
    }

    // MARK: The client's side

    func client(timeoutTicks: UInt64 = 1_000) -> ClientCore {
        ClientCore(client: ClientID(7), cluster: ClusterID(shard: ShardID(0), index: 0), quorum: Quorum(n: 4)!,
                   signer: SimulatedCrypto(owner: nil, clientCount: 16), timeoutTicks: timeoutTicks)
    }

    func busy(_ client: ClientCore, from index: UInt16 = 0, retryAfter: UInt32 = 40) -> Busy {
        Busy(client: client.client, requestID: client.nextRequestID - 1, replica: ReplicaID(cluster: client.cluster, index: index),
             view: 0, retryAfterTicks: retryAfter)
    }

    /// Ticks the client until it sends; returns the ticks waited and where it sent.
    func waitForSend(_ client: inout ClientCore, limit: Int = 10_000) -> (ticks: Int, to: [ReplicaID]) {
        for tick in 1...limit {
            let effects = client.tick()
            let sent = effects.compactMap { effect -> ReplicaID? in
                if case let .send(_, to) = effect { return to }
                return nil
            }
            if !sent.isEmpty { return (tick, sent) }
        }
        return (limit, [])
    }

    @Test func aBusyPrimaryIsAskedAgainAfterAJitteredGrowingWait() {
        var core = client()
        _ = core.submit(.get(key: [1]))
        var waits: [Int] = []
        for _ in 1...3 {
            #expect(core.onBusy(busy(core)).isEmpty)
            let (ticks, to) = waitForSend(&core)
            #expect(to == [core.primary], "a busy primary gets the request again, not every replica")
            waits.append(ticks)
        }
        // Uniform in [ceiling / 2, ceiling], the ceiling doubling from the hint: 40, 80, 160.
        #expect((20...40).contains(waits[0]) && (40...80).contains(waits[1]) && (80...160).contains(waits[2]), "\(waits)")
        #expect(core.busyAnswers == 3 && core.backoffs == 3 && core.retransmissions == 0)
    }

    @Test func afterAFairChanceTheRequestGoesToEveryReplica() {
        var core = client()
        _ = core.submit(.get(key: [1]))
        for _ in 1...ClientCore.fairChance {
            _ = core.onBusy(busy(core, retryAfter: 1))
            #expect(waitForSend(&core).to.count == 1)
        }
        _ = core.onBusy(busy(core, retryAfter: 1))
        #expect(waitForSend(&core).to.count == 4, "a primary that says busy for ever may be censoring")
        #expect(core.retransmissions == 1)
        // Once every replica was asked, a busy answer schedules the next resend to all of them,
        // at the same pace (not left to the doubling resend timeout).
        #expect(core.onBusy(busy(core, from: 2, retryAfter: 1)).isEmpty)
        #expect(core.onBusy(busy(core, from: 3, retryAfter: 1)).isEmpty, "one resend per wait, whoever answers")
        #expect(waitForSend(&core, limit: 999).to.count == 4)
        #expect(core.retransmissions == 2)
        #expect(core.busyAnswers == ClientCore.fairChance + 3 && core.backoffs == ClientCore.fairChance + 2)
    }

    @Test func busyAnswersForAnotherRequestOrClusterAreIgnored() {
        var core = client()
        _ = core.submit(.get(key: [1]))
        var stale = busy(core)
        stale.requestID += 1
        _ = core.onBusy(stale)
        var foreign = busy(core)
        foreign.replica = ReplicaID(cluster: ClusterID(shard: ShardID(0), index: 1), index: 0)
        _ = core.onBusy(foreign)
        var outOfRange = busy(core)
        outOfRange.replica.index = 9
        _ = core.onBusy(outOfRange)
        #expect(core.busyAnswers == 0 && core.backoffs == 0)
        // No backoff pending: the request waits for its timeout as before.
        #expect(waitForSend(&core, limit: 999).to.isEmpty)
    }

    @Test func aClientRefusedLastTimeStartsItsNextBackoffHigher() {
        var core = client()
        _ = core.submit(.get(key: [1]))
        for _ in 1...4 {
            _ = core.onBusy(busy(core, retryAfter: 10))
            _ = waitForSend(&core)
        }
        _ = core.onReply(Reply(client: core.client, requestID: 1, replica: ReplicaID(cluster: core.cluster, index: 1), view: 0,
                               result: .value(nil), position: LedgerPosition(round: 1, clusterIndex: 0, height: 1)))
        _ = core.onReply(Reply(client: core.client, requestID: 1, replica: ReplicaID(cluster: core.cluster, index: 2), view: 0,
                               result: .value(nil), position: LedgerPosition(round: 1, clusterIndex: 0, height: 1)))
        #expect(!core.isBusy)
        _ = core.submit(.get(key: [2]))
        _ = core.onBusy(busy(core, retryAfter: 10))
        // Four busies last time: this one starts at 10 << 2 = 40 (uniform in 20...40), not 10.
        #expect((20...40).contains(waitForSend(&core).ticks))
    }
}
