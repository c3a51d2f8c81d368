import GeoCore
import GeoSim
import Testing
import GeoTestKit

/// Overload: clients offer more than the fabric can take. local-1x4 as `geofabric bench` runs it
/// here (2 cores shared, each replica's machine about 8 times slower than the cost model's core),
/// at 256 clients (saturated) and at 2,048 (8 times that). Before admission control the 2,048-client
/// run fell to 356 txn/s with 3 view changes (request-timeout) and 4,317 client resends: requests
/// queued past the clients' patience, came back to every replica, and the backups replaced a
/// primary that was only busy. (`geofabric simulate topologies/local-1x4.yaml --cores 2
/// --cpu-slowdown 8 --clients 2048` on the binary before it.)
@Suite struct OverloadScenarios {
    func run(clients: Int) async -> ProtocolResult {
        var settings = BenchmarkSettings(topology: TestKit.shippedTopology("local-1x4"))
        settings.durationSeconds = 4
        settings.warmupSeconds = 1.5
        settings.clientsPerRegion = clients
        settings.cores = 2
        settings.costModel = CostModel.measured.slowed(by: 8)
        let fixed = settings
        return await offTheCooperativePool { SimulatedBenchmark.run(fixed, protocol: .geobft) }
    }

    @Test func eightTimesTheClientsKeepTheThroughputWithoutViewChanges() async {
        let saturated = await run(clients: 256)
        let overloaded = await run(clients: 2_048)
        #expect(saturated.invariants_ok && overloaded.invariants_ok, "\(saturated.violations) \(overloaded.violations)")
        #expect(saturated.busy_answers == 0, "256 clients fit: \(saturated.busy_answers) busy answers")
        #expect(overloaded.view_changes == 0, "\(overloaded.view_change_reasons)")
        #expect(overloaded.client_retransmissions < 20, "\(overloaded.client_retransmissions) resends to every replica")
        #expect(overloaded.busy_answers > 1_000 && overloaded.backoffs > 1_000,
                "the excess is refused: \(overloaded.busy_answers) busy answers, \(overloaded.backoffs) backoffs")
        #expect(overloaded.throughput_tps >= 0.85 * saturated.throughput_tps,
                "\(overloaded.throughput_tps) txn/s at 2,048 clients against \(saturated.throughput_tps) at 256")
    }
}
