import GeoCore
import GeoSim
import GeoTestKit
import Testing

/// f + 1 designated repliers per request (ReplyDuty.swift), in the simulator: the saving without
/// faults, and what a crashed designated replier costs its clients. Each run goes off the
/// cooperative pool, which the real-process tests of other suites need.
@Suite struct ReplyDutyScenarios {
    let local1x7 = TestKit.localTopology(name: "local-1x7", replicas: 7,
                                         protocol: "{batch_size: 100, window: 64, checkpoint_every: 16, view_timeout_ms: 500}")

    @Test func withoutFaultsFPlusOneReplicasAnswerEachRequest() async {
        for (topology, f) in [(local1x4, 1), (local1x7, 2)] {
            let scenario = Scenario(topology, seed: 6, seconds: 3)
            let report = await offTheCooperativePool { scenario.run() }
            #expect(report.ok, "\(describe(report))")
            #expect(report.committed > 100)
            #expect(report.clientRetransmissions == 0, "\(describe(report))")
            let replies = Double(report.messagesByKind["reply"] ?? 0) / Double(max(1, report.committed))
            // f + 1 per request, plus the few answered of requests still in flight at the end.
            #expect(replies >= Double(f + 1), "\(replies) replies per request")
            #expect(replies < Double(f + 1) + 0.25, "n = \(3 * f + 1) replicas but f + 1 answer: \(replies) per request")
        }
    }

    /// A crashed backup is a designated replier of about half the requests on local-1x4. Each
    /// client waits its reply patience for the first of them (not its resend timeout: the other
    /// designated replier answered) and then asks every replica; after that every replica answers
    /// it, so it does not wait again (without that, a resend per such request).
    @Test func aCrashedDesignatedReplierCostsEachClientOneResend() async {
        var scenario = Scenario(local1x4, seed: 34, seconds: 8)
        scenario.at(0.5, .crash(scenario.replica("s0-local-2")))
        let fixed = scenario
        let report = await offTheCooperativePool { fixed.run() }
        let clients = fixed.settings.clientsPerCluster
        #expect(report.ok, "\(describe(report))")
        #expect(report.viewChanges == 0, "a crashed backup is no reason to leave the view: \(describe(report))")
        #expect(report.committed > 20 * clients, "\(describe(report))")
        #expect(report.clientRetransmissions >= 1, "some request was designated to the crashed replica: \(describe(report))")
        #expect(report.clientRetransmissions <= clients, "at most one resend per client: \(describe(report))")
        let resendTimeout = UInt64(local1x4.clientResendTimeoutMilliseconds(region: "local")) * 1000
        let slowest = report.regionLatencies.values.flatMap { $0 }.max() ?? 0
        #expect(slowest < resendTimeout / 2, "no request waited for its resend timeout: slowest \(slowest) µs")
    }
}
