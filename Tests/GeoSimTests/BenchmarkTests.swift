import GeoCore
import GeoSim
import GeoTopology
import Testing

let twoRegions: Topology = {
    try! TopologyLoader.parse(text: """
        name: two
        regions: [oregon, belgium]
        wan: [{between: [oregon, belgium], rtt_ms: 136, mbit_s: 194}]
        shards: [{name: s0, clusters: [{region: oregon, replicas: 4}, {region: belgium, replicas: 4}]}]
        protocol: {batch_size: 20, window: 32, checkpoint_every: 8}
        """, file: "two")
}()

@Suite struct CostModelTests {
    @Test func costAddsUpTheWork() {
        let model = CostModel(signMicroseconds: 20, verifyMicroseconds: 100, hashNanosecondsPerByte: 1,
                              messageMicroseconds: 2, messageNanosecondsPerByte: 0, source: "test")
        var work = CostMeter.Counts()
        work.signs = 2
        work.verifies = 8
        work.hashedBytes = 1000
        work.messages = 5
        #expect(model.cost(of: work, cores: 1) == 40 + 800 + 1 + 10)
        #expect(model.cost(of: work, cores: 4) == 40 + 200 + 1 + 10, "verification spreads over the cores")
    }
}

@Suite struct SimulatedBenchmarkTests {
    func settings() -> BenchmarkSettings {
        var settings = BenchmarkSettings(topology: twoRegions)
        settings.durationSeconds = 2
        settings.warmupSeconds = 0.5
        settings.clientsPerRegion = 20
        return settings
    }

    @Test func bothProtocolsRunCleanAndReportEveryRegion() {
        for kind in ProtocolKind.allCases {
            let result = SimulatedBenchmark.run(settings(), protocol: kind)
            #expect(result.invariants_ok, "\(result.violations)")
            #expect(result.throughput_tps > 50, "\(kind): \(result.throughput_tps)")
            #expect(result.regions.map(\.region) == ["oregon", "belgium"])
            #expect(result.latency_ms.p50 > 0 && result.latency_ms.p50 <= result.latency_ms.p90 && result.latency_ms.p90 <= result.latency_ms.p99)
            #expect(result.clusters == (kind == .geobft ? 2 : 1))
        }
    }

    @Test func geoBFTServesEachRegionLocally() {
        // With PBFT, belgium's clients wait for a primary in oregon; with GeoBFT their own cluster orders.
        let geo = SimulatedBenchmark.run(settings(), protocol: .geobft)
        let pbft = SimulatedBenchmark.run(settings(), protocol: .pbft)
        let geoBelgium = geo.regions.first { $0.region == "belgium" }!.latency_ms.p50
        let pbftBelgium = pbft.regions.first { $0.region == "belgium" }!.latency_ms.p50
        #expect(pbftBelgium > 136, "a PBFT request from belgium crosses the WAN at least once both ways")
        #expect(geoBelgium < pbftBelgium, "geo \(geoBelgium) ms, pbft \(pbftBelgium) ms")
    }

    @Test func throughputFollowsTheCostModel() {
        var cheap = settings()
        cheap.clientsPerRegion = 200
        var dear = cheap
        dear.costModel.verifyMicroseconds *= 50
        let fast = SimulatedBenchmark.run(cheap, protocol: .geobft)
        let slow = SimulatedBenchmark.run(dear, protocol: .geobft)
        #expect(slow.busiest_replica_cpu > fast.busiest_replica_cpu)
        #expect(slow.throughput_tps < fast.throughput_tps * 0.8, "fast \(fast.throughput_tps), slow \(slow.throughput_tps)")
    }

    @Test func clusterLayoutsSplitSixtyReplicas() throws {
        let paper = try TopologyLoader.parse(text: """
            name: six
            regions: [a, b, c, d, e, f]
            wan:
            \((["a", "b", "c", "d", "e", "f"].enumerated().flatMap { i, x in ["a", "b", "c", "d", "e", "f"].dropFirst(i + 1).map { "  - {between: [\(x), \($0)], rtt_ms: 100, mbit_s: 100}" } }).joined(separator: "\n"))
            shards: [{name: s0, clusters: [{region: a, replicas: 30}, {region: b, replicas: 30}]}]
            """, file: "six")
        let layouts = SimulatedBenchmark.clusterLayouts(from: paper, total: 60)
        #expect(layouts.map { $0.shards[0].clusters.count } == [1, 2, 3, 4, 5, 6])
        #expect(layouts.map { $0.shards[0].clusters[0].n } == [60, 30, 20, 15, 12, 10])
        #expect(layouts.allSatisfy { $0.allReplicas.count == 60 })
    }
}
