import GeoCore
@testable import GeoSim
import GeoTopology
import Testing
import GeoTestKit

let sharded2x2x4 = TestKit.shippedTopology("sharded-2x2x4")

/// Cross-shard transactions (DESIGN 2.4) under the bank workload: transfers between accounts of
/// two shards, checked for atomicity, conserved balance, released locks and agreement.
@Suite struct CrossShardScenarios {
    func bank(seed: UInt64, seconds: Double = 6, fraction: Double = 0.5) -> Scenario {
        var scenario = Scenario(sharded2x2x4, seed: seed, seconds: seconds)
        scenario.bank(crossShard: fraction)
        scenario.clients(perCluster: 3)
        return scenario
    }

    func committed(_ report: SimulationReport) -> Int { report.crossShardOutcomes["committed", default: 0] }

    func expectAtomicAndLive(_ report: SimulationReport, minimumCommitted: Int = 10, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(report.ok, "\(describe(report)) outcomes \(report.crossShardOutcomes)", sourceLocation: sourceLocation)
        #expect(committed(report) >= minimumCommitted, "\(describe(report)) outcomes \(report.crossShardOutcomes)", sourceLocation: sourceLocation)
    }

    func replica(_ name: String) -> ReplicaID { sharded2x2x4.replica(named: name)!.id }

    @Test func transfersAcrossShardsCommitAtomically() {
        let report = bank(seed: 1, seconds: 5).run()
        expectAtomicAndLive(report, minimumCommitted: 15)
        #expect(report.viewChanges == 0)
        #expect(report.messagesByKind["shardStatement", default: 0] > 0)
    }

    @Test func byzantinePrimaryAndReplicaInTheCoordinatorShard() {
        var scenario = bank(seed: 2, seconds: 8)
        // Oregon's primary equivocates and its replica 1 forges signatures (statements included).
        scenario.at(0, .byzantine(replica("s0-oregon-0"), .equivocatingPrimary))
        scenario.at(0, .byzantine(replica("s0-iowa-0"), .forgedSignatures))
        scenario.healed(at: 0, within: 5)
        expectAtomicAndLive(scenario.run())
    }

    @Test func participantPrimaryThatWithholdsItsVoteIsReplaced() {
        var scenario = bank(seed: 3, seconds: 8)
        // Montreal is s1's cluster nearest to both of s0's: statements from s0 arrive there.
        scenario.at(0, .byzantine(replica("s1-montreal-0"), .withholdsVotes))
        scenario.healed(at: 0, within: 5)
        let report = scenario.run()
        expectAtomicAndLive(report)
        #expect(report.viewChanges >= 1, "montreal must change view: \(describe(report))")
    }

    @Test func partitionBetweenShardsAbortsOrCompletesAndReleasesLocks() async {
        // s1's regions are cut from s0's for 3.5 s: longer than a coordinator waits for a vote
        // (60 rounds of its ledger, about 3 s of heartbeat rounds), but only just, so whether a
        // coordination is caught waiting that long depends on the run's timing: a vote timeout
        // shows in some seeds and not others (one in four before f + 1 client verification
        // moved the timings; seeds 8 to 15 show it in three). Every seed must stay atomic and
        // live, and the timeout path must run in at least one.
        var timeouts: [UInt64: Int] = [:]
        for seed: UInt64 in 8...15 {
            var scenario = bank(seed: seed, seconds: 10)
            scenario.at(0.5, .partition(Partition(regions: ["montreal", "belgium"])))
            scenario.at(4.0, .healPartitions)
            scenario.healed(at: 4.0, within: 5)
            let fixed = scenario
            let report = await offTheCooperativePool { fixed.run() }
            expectAtomicAndLive(report)
            timeouts[seed] = report.crossShardOutcomes["aborted: timeout", default: 0]
        }
        #expect(timeouts.values.contains { $0 > 0 }, "vote timeouts by seed: \(timeouts)")
    }

    @Test func crashesOfCoordinatorAndParticipantReplicas() {
        var scenario = bank(seed: 5, seconds: 9)
        scenario.at(0.5, .crash(replica("s0-oregon-0")))
        scenario.at(0.7, .crash(replica("s1-montreal-2")))
        scenario.at(1.8, .restart(replica("s0-oregon-0")))
        scenario.at(2.0, .restart(replica("s1-montreal-2")))
        scenario.at(2.2, .crash(replica("s1-montreal-0")))
        scenario.at(3.0, .restart(replica("s1-montreal-0")))
        scenario.healed(at: 3.0, within: 5)
        expectAtomicAndLive(scenario.run())
    }

    @Test func aClientSigningConflictingVersionsOfOneRequest() {
        var scenario = bank(seed: 6, seconds: 6)
        scenario.settings.conflictingClients = [0, 3, 6, 9]
        scenario.healed(at: 0, within: 4)
        expectAtomicAndLive(scenario.run())
    }

    @Test func aBrokenCommitRuleIsCaughtByTheBalanceChecker() async {
        // The broken rule shows only in runs where a participant applies its part of a transfer
        // the coordinator aborted, which depends on the run: of seeds 11 to 14, 11, 12 and 13 have one
        // (since designated repliers and block format v2 changed the runs; 7 to 10 had one before,
        // 7 to 30 now: 11, 12, 13, 15-19, 22, 25, 28-30).
        // Whenever one happens, both checkers must catch it; and it must happen in some seed.
        var caught: [UInt64] = []
        for seed: UInt64 in 11...14 {
            var scenario = bank(seed: seed, seconds: 4)
            scenario.settings.brokenCommitRule = true
            let fixed = scenario
            let report = await offTheCooperativePool { fixed.run() }
            let kinds = Set(report.violations.map(\.kind))
            #expect(kinds.isSubset(of: [.conservation, .atomicity]), "seed \(seed): \(describe(report))")
            #expect(kinds.contains(.conservation) == kinds.contains(.atomicity), "seed \(seed): \(describe(report))")
            if kinds.contains(.conservation) { caught.append(seed) }
        }
        #expect(!caught.isEmpty, "no seed of 11...14 ran into the broken rule")
    }

    @Test func singleShardTopologiesKeepTheirWorkloadWithoutTheLayer() {
        // Without --cross-shard nothing of the layer runs: no statement is ever sent.
        let report = Scenario(sharded2x2x4, seed: 8, seconds: 2).run()
        #expect(report.ok, "\(describe(report))")
        #expect(report.messagesByKind["shardStatement", default: 0] == 0)
    }
}

@Suite struct CrossShardSeedSweep {
    /// Seeds of the 10,000-seed command sweep that left a participant's lock held: a primary that
    /// entered a new view counted the transactions of rounds it had already delivered as proposed
    /// and never forgot them, so its progress timer ran while it had nothing to do; it asked alone
    /// to leave its own view and stopped proposing, and the shard's rounds (and the Decision
    /// ordered in the other cluster) waited for a remote timeout past the end of the run.
    @Test(arguments: [1643, 6268] as [UInt64])
    func sweepSeedsThatLeftALockHeld(seed: UInt64) {
        let report = FaultPlan.random(topology: sharded2x2x4, seed: seed, crossShard: 0.3).run()
        #expect(report.ok, "\(describe(report))")
    }

    /// At least 200 random seeds of faults with 30% cross-shard transfers, every one clean.
    @Test func twoHundredSeedsOfTheBankWithFaults() async {
        let summary = await offTheCooperativePool { SeedSweep.run(topology: sharded2x2x4, seeds: 1..<201, crossShard: 0.3) }
        #expect(summary.seedsRun == 200)
        #expect(summary.failingSeeds.isEmpty, "failing seeds: \(summary.failingSeeds.map { "\($0.seed): \($0.violations.first!)" })")
        #expect(summary.crossShardOutcomes["committed", default: 0] > 200 * 10, "\(summary.crossShardOutcomes)")
    }
}
