import GeoCore
import GeoSim
import Testing
import GeoTestKit

/// geo-4x4 as `geofabric bench --emulate-wan` runs it here: 16 replica processes share 2 cores,
/// so each replica's machine is about 8 times slower than the cost model's core. Both protocols
/// are CPU-bound (near 600-700 txn/s each at these loads), so closed-loop clients queue. On real processes the baseline fell to 11-38 txn/s with 4 to 6 view changes.
@Suite struct LoadedGeoScenarios {
    /// Off the cooperative pool, like the seed sweeps: these runs take seconds of CPU each.
    func run(_ kind: ProtocolKind, clientsPerRegion: Int) async -> ProtocolResult {
        var settings = BenchmarkSettings(topology: TestKit.shippedTopology("geo-4x4"))
        settings.durationSeconds = 6
        settings.warmupSeconds = 2
        settings.clientsPerRegion = clientsPerRegion
        settings.cores = 1
        settings.costModel = CostModel.measured.slowed(by: 8)
        let fixed = settings
        return await offTheCooperativePool { SimulatedBenchmark.run(fixed, protocol: kind) }
    }

    /// Latency above a view timeout is load, not a fault: clients wait the topology's resend
    /// timeout (2 view timeouts + 4 of the longest round trips) before asking every replica.
    /// With the real client's former rule, one view timeout (500 ms), this run made 1,335
    /// resends, each one a copy of a request to every replica of its cluster.
    @Test func geoBFTLoadedPastAViewTimeoutMakesNoClientResend() async {
        let result = await run(.geobft, clientsPerRegion: 64)
        #expect(result.invariants_ok, "\(result.violations)")
        #expect(result.latency_ms.p90 > 500, "the load queues past a view timeout: p90 \(result.latency_ms.p90) ms")
        #expect(result.client_retransmissions == 0, "\(result.client_retransmissions) resends")
        #expect(result.view_changes == 0, "\(result.view_change_reasons)")
        #expect(result.throughput_tps > 450, "\(result.throughput_tps) txn/s")
    }

    /// Two seconds of queueing at the baseline's single primary. With client requests and replica
    /// messages in one queue per machine, Prepares and Commits waited behind requests, blocks
    /// came late and the backups blamed the primary: 0 txn/s and 17 view changes. Replicas now
    /// take the two kinds in turns (the daemon's InboundQueue, the simulator's inboxes).
    @Test func theBaselineQueuedForSecondsKeepsItsPrimary() async {
        let result = await run(.pbft, clientsPerRegion: 384)
        #expect(result.invariants_ok, "\(result.violations)")
        #expect(result.latency_ms.p50 > 1500, "the load queues: p50 \(result.latency_ms.p50) ms")
        #expect(result.view_changes == 0, "\(result.view_change_reasons)")
        #expect(result.throughput_tps > 200, "\(result.throughput_tps) txn/s")
    }

    /// The baseline's one cluster spans the WAN, so its view timeout adds 4 of its longest round
    /// trips to the topology's local one; GeoBFT's clusters keep the local one.
    @Test func theBaselineViewTimeoutCoversItsWAN() {
        let topology = TestKit.shippedTopology("geo-4x4")
        #expect(topology.parameters.viewTimeoutMilliseconds == 500)
        #expect(topology.pbftBaseline().parameters.viewTimeoutMilliseconds == 500 + 4 * 136)
        #expect(topology.clientResendTimeoutMilliseconds(region: "oregon") == 2 * 500 + 4 * 136)
        #expect(topology.clientResendTimeoutMilliseconds(region: "iowa") == 2 * 500 + 4 * 98)
    }
}
