import GeoCore
import GeoSim
import GeoTopology
import Testing

let local1x4: Topology = {
    try! TopologyLoader.parse(text: """
        name: local-1x4
        regions: [local]
        shards:
          - name: s0
            clusters:
              - {region: local, replicas: 4}
        protocol: {batch_size: 100, window: 64, checkpoint_every: 16, view_timeout_ms: 500}
        """, file: "local-1x4")
}()

func describe(_ report: SimulationReport) -> String {
    "seed \(report.seed): committed \(report.committed) (after heal \(report.committedAfterHeal)), view changes \(report.viewChanges), heights \(report.heights.values.sorted()), violations: \(report.violations.prefix(3))"
}

@Suite struct NormalCaseScenarios {
    @Test func normalCaseCommitsAndAgrees() {
        let report = Scenario(local1x4, seed: 1, seconds: 2).run()
        #expect(report.ok, "\(describe(report))")
        #expect(report.committed > 100, "\(describe(report))")
        #expect(report.viewChanges == 0)
        #expect(Set(report.heights.values).count == 1 || report.heights.values.max()! - report.heights.values.min()! <= 2)
    }

    @Test func sameSeedSameRun() {
        let first = Scenario(local1x4, seed: 7, seconds: 1).run()
        let second = Scenario(local1x4, seed: 7, seconds: 1).run()
        #expect(first.committed == second.committed)
        #expect(first.events == second.events)
        #expect(first.heights == second.heights)
    }
}
