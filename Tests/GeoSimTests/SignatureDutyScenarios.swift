import GeoCore
import GeoSim
import GeoTestKit
import Testing

/// f + 1 verifiers per client signature (SignatureDuty.swift), in the simulator: the saving
/// without faults, and what a forging primary, its accomplices and a silent verifier can do.
/// Each run goes off the cooperative pool, which the real-process tests of other suites need.
@Suite struct SignatureDutyScenarios {
    /// Seven replicas (f = 2), so a forging primary can have an accomplice among the verifiers.
    let local1x7 = TestKit.localTopology(name: "local-1x7", replicas: 7,
                                         protocol: "{batch_size: 100, window: 64, checkpoint_every: 16, view_timeout_ms: 500}")

    @Test func withoutFaultsEachSignatureIsVerifiedFPlusOneTimes() async {
        for (topology, f) in [(local1x4, 1), (local1x7, 2)] {
            let scenario = Scenario(topology, seed: 5, seconds: 3)
            let report = await offTheCooperativePool { scenario.run() }
            #expect(report.ok, "\(describe(report))")
            #expect(report.committed > 100)
            // f + 1 per request, plus the few verified of requests still in flight at the end.
            #expect(report.clientVerificationsPerRequest >= Double(f + 1), "\(report.clientVerificationsPerRequest)")
            #expect(report.clientVerificationsPerRequest < Double(f + 1) + 0.25,
                    "n = \(3 * f + 1) replicas but only f + 1 verify: \(report.clientVerificationsPerRequest) per request")
        }
    }

    @Test func aForgingPrimaryNeverGetsItsTransactionExecuted() async {
        var scenario = Scenario(local1x4, seed: 31, seconds: 6)
        scenario.at(0, .byzantine(scenario.primary(), .forgedClientTransaction))
        scenario.healed(at: 0, within: 4)
        let fixed = scenario
        let report = await offTheCooperativePool { fixed.run() }
        // The validity checker fails the run if any replica executes the forged transaction.
        #expect(report.ok, "\(describe(report))")
        #expect(report.committedAfterHeal >= 20, "\(describe(report))")
        #expect(report.viewChanges >= 2, "the forging primary is replaced: \(describe(report))")
    }

    @Test func aForgingPrimaryWithAColludingVerifierIsStillStopped() async {
        // f = 2: the primary forges, one backup prepares and commits everything it sees (it is
        // the forged transaction's designated verifier half of the time); the other designated
        // verifier is correct, so no correct replica commits the block.
        for accomplice in ["s0-local-1", "s0-local-2", "s0-local-3"] {
            var scenario = Scenario(local1x7, seed: 32, seconds: 6)
            scenario.at(0, .byzantine(scenario.primary(), .forgedClientTransaction))
            scenario.at(0, .byzantine(scenario.replica(accomplice), .votesForEverything))
            scenario.healed(at: 0, within: 4)
            let fixed = scenario
        let report = await offTheCooperativePool { fixed.run() }
            #expect(report.ok, "accomplice \(accomplice): \(describe(report))")
            #expect(report.committedAfterHeal >= 20, "accomplice \(accomplice): \(describe(report))")
        }
    }

    @Test func aSilentDesignatedVerifierDoesNotStopTheCluster() async {
        var scenario = Scenario(local1x4, seed: 33, seconds: 6)
        scenario.at(0, .byzantine(scenario.replica("s0-local-2"), .silent))
        scenario.healed(at: 0, within: 4)
        let fixed = scenario
        let report = await offTheCooperativePool { fixed.run() }
        #expect(report.ok, "\(describe(report))")
        #expect(report.committedAfterHeal >= 100, "\(describe(report))")
        #expect(report.viewChanges == 0, "a silent backup is no reason to leave the view: \(describe(report))")
        // The others verify the silent replica's share themselves: more than f + 1, at most n.
        #expect(report.clientVerificationsPerRequest > 2.2 && report.clientVerificationsPerRequest <= 4.25,
                "\(report.clientVerificationsPerRequest)")
    }
}
