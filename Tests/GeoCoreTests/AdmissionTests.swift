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

    @Test func theRetryHintIsTheDrainTimeBetweenOneTickAndOnePeriod() {
        var admission = Admission(period: 100, floor: 100)
        admission.delivered(2_000, now: 10)
        #expect(admission.retryAfter(inFlight: 1_000, now: 20) == 50)   // 1,000 ahead at 2,000 a period
        #expect(admission.retryAfter(inFlight: 0, now: 20) == 1)
        #expect(admission.retryAfter(inFlight: 1_000_000, now: 20) == 100)
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
        // Once every replica was asked, a busy answer changes nothing: the resend timer decides.
        #expect(core.onBusy(busy(core, from: 2)).isEmpty)
        #expect(core.busyAnswers == ClientCore.fairChance + 2 && core.backoffs == ClientCore.fairChance + 1)
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
