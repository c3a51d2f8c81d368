// `geofabric bench`: the workload generator's skew, the client plan of the PBFT baseline, option
// checks, and short real runs on replica processes (GeoBFT, and the baseline over two regions).

import Foundation
import GeoCore
@testable import GeoFabricCLI
import GeoSim
import GeoTopology
import Testing
import GeoTestKit

/// A latency summary from its JSON form (LatencySummary is built from a histogram).
struct LatencyFixture: Decodable {
    var p50: Double, p90: Double, p99: Double, max: Double
    var summary: LatencySummary {
        var summary = LatencySummary(BenchRecorder.histogram())
        summary.p50 = p50
        summary.p90 = p90
        summary.p99 = p99
        summary.max = max
        return summary
    }
}

/// One suite, so `swift test --filter BenchTests` selects every bench test.
@Suite struct BenchTests {}

extension BenchTests {
    @Suite struct Workload {
        @Test func zipfPutsMostDrawsOnTheFirstRanks() {
            let generator = ZipfGenerator(count: 1_000, theta: 0.99)
            var random = BenchRandom(seed: 7)
            var counts = [Int](repeating: 0, count: 1_000)
            for _ in 0..<100_000 { counts[generator.next(&random)] += 1 }
            #expect(counts.firstIndex(of: counts.max()!) == 0)
            #expect(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500])
            // Theta 0.99 over 1,000 ranks: about 13% of draws hit rank 0 (1 / zeta(1000, 0.99)).
            #expect(counts[0] > 10_000 && counts[0] < 16_000, "rank 0 drew \(counts[0])")
        }

        @Test func zipfWithThetaZeroIsUniform() {
            let generator = ZipfGenerator(count: 10, theta: 0)
            var random = BenchRandom(seed: 3)
            var counts = [Int](repeating: 0, count: 10)
            for _ in 0..<100_000 { counts[generator.next(&random)] += 1 }
            #expect(counts.allSatisfy { (9_500...10_500).contains($0) }, "\(counts)")
        }

        @Test func operationsStayInTheClientsShard() throws {
            let topology = try TopologyLoader.load(path: "\(TestKit.repositoryRoot)/topologies/sharded-2x2x4.yaml")
            let workload = try BenchWorkload.make(topology: topology, keyCount: 1_000, zipfTheta: 0.9, readFraction: 0.5,
                                                  transferFraction: 0.3).get()
            var random = BenchRandom(seed: 1)
            var kinds = Set<String>()
            for shard in 0..<2 {
                for _ in 0..<2_000 {
                    let operation = workload.next(shard: shard, &random)
                    #expect(Set(operation.keys.map { topology.shardID(forKey: $0) }) == [ShardID(UInt16(shard))])
                    switch operation {
                    case let .transfer(from, to, _):
                        #expect(from != to)
                        kinds.insert("transfer")
                    case .get: kinds.insert("get")
                    case .put: kinds.insert("put")
                    case .add: kinds.insert("add")
                    }
                }
            }
            #expect(kinds == ["transfer", "get", "put"])
        }

        @Test func baselineClientsStayInTheirRegionsAndShareOneCluster() throws {
            let topology = try TopologyLoader.load(path: "\(TestKit.repositoryRoot)/topologies/geo-4x4.yaml")
            let plans = BenchPlan.clients(original: topology, deployed: topology.pbftBaseline(), perRegion: 3)
            #expect(plans.count == 12)
            #expect(Set(plans.map(\.region)) == ["oregon", "iowa", "montreal", "belgium"])
            #expect(Set(plans.map(\.cluster.id)).count == 1 && plans[0].cluster.n == 16)
            #expect(Set(plans.map(\.client)).count == 12)
            let geo = BenchPlan.clients(original: topology, deployed: topology, perRegion: 3)
            #expect(geo.allSatisfy { $0.cluster.region == $0.region })
        }

        @Test func crossShardTransfersStartInTheClientsShardAndEndInAnother() throws {
            let topology = try TopologyLoader.load(path: "\(TestKit.repositoryRoot)/topologies/sharded-2x2x4.yaml")
            let workload = try BenchWorkload.make(topology: topology, keyCount: 1_000, zipfTheta: 0.9, readFraction: 0.5,
                                                  transferFraction: 0.1, crossShardFraction: 0.3).get()
            var random = BenchRandom(seed: 5)
            var crossShard = 0
            for shard in 0..<2 {
                for _ in 0..<2_000 {
                    let operation = workload.next(shard: shard, &random)
                    let shards = operation.keys.map { topology.shardID(forKey: $0) }
                    #expect(shards[0] == ShardID(UInt16(shard)), "the coordinator is the client's shard")
                    if Set(shards).count > 1 {
                        crossShard += 1
                        guard case .transfer = operation else { Issue.record("a cross-shard \(operation)"); continue }
                    }
                }
            }
            // 30% of 4,000 draws: 1,200, give or take a few standard deviations (about 29).
            #expect((1_080...1_320).contains(crossShard), "\(crossShard) cross-shard operations")
            let local = try TopologyLoader.load(path: "\(TestKit.repositoryRoot)/topologies/local-1x4.yaml")
            guard case let .failure(error) = BenchWorkload.make(topology: local, keyCount: 100, zipfTheta: 0, readFraction: 0.5,
                                                               transferFraction: 0, crossShardFraction: 0.2) else {
                Issue.record("cross-shard on one shard was accepted")
                return
            }
            #expect("\(error)".contains("at least two shards"))
        }

        @Test func clientSweepsAreParsedAndPlotted() throws {
            #expect(BenchCommand.clientCounts("16, 64,256") == [16, 64, 256])
            #expect(BenchCommand.clientCounts("16,,64") == nil && BenchCommand.clientCounts("0") == nil && BenchCommand.clientCounts("x") == nil)
            #expect(throws: (any Error).self) { try BenchCommand.parse(["--sweep-clients", "16,0"]) }
            #expect(throws: (any Error).self) { try BenchCommand.parse(["--sweep-clients", "16", "--clients", "4"]) }
            #expect((try? BenchCommand.parse(["--sweep-clients", "8,16"])) != nil)
            let latency = try JSONDecoder().decode(LatencyFixture.self, from: Data(#"{"p50":10,"p90":20,"p99":30,"max":40}"#.utf8))
            func point(_ clients: Int, _ tps: Double) -> BenchSweepPoint {
                var point = BenchSweepPoint(protocol: "geobft", clients_per_region: clients, clients: clients, throughput_tps: tps,
                                            latency_ms: latency.summary, achieved_of_bound: 0.5, view_changes: 0, agreement: true)
                point.latency_ms.p50 = Double(clients)
                return point
            }
            let points = [point(16, 100), point(64, 300)]
            let svg = BenchPlot.sweepSVG(points, topology: "t")
            #expect(svg.hasPrefix("<svg") && svg.components(separatedBy: "<polyline").count == 3 && svg.contains(">64<"))
            #expect(BenchText.sweepCSV(points).split(separator: "\n").count == 3)
            #expect(BenchText.sweepTable(points).contains("300"))
        }

        @Test func optionsAreChecked() {
            #expect(throws: (any Error).self) { try BenchCommand.parse(["--cross-shard", "1.5"]) }
            #expect((try? BenchCommand.parse(["--cross-shard", "0.2"])) != nil)
            #expect(throws: (any Error).self) { try BenchCommand.parse(["--zipf", "1"]) }
            #expect(throws: (any Error).self) { try BenchCommand.parse(["--warmup", "5", "--duration", "5"]) }
            #expect((try? BenchCommand.parse(["--cross-shard", "0"])) != nil)
        }
    }
}

extension BenchTests {
    @Suite(.serialized) struct Runs {
        func run(_ yaml: String, protocol kind: ProtocolKind, crossShard: Double = 0, seconds: Double = 2,
                 readFraction: Double = 0.5) async throws -> BenchReport {
            #expect(FileManager.default.isExecutableFile(atPath: builtTool), "build the tool first (swift build): \(builtTool)")
            let path = try TestKit.writeTemporary(yaml, name: "topology.yaml")
            let directory = (path as NSString).deletingLastPathComponent
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var settings = BenchSettings()
            settings.durationSeconds = seconds
            settings.warmupSeconds = 0.5
            settings.crossShardFraction = crossShard
            settings.readFraction = readFraction
            settings.calibrationSeconds = 0.2
            settings.clientsPerRegion = 2
            settings.keyCount = 100
            settings.transferFraction = 0.2
            return try await LiveBenchmark.run(settings, topology: try LoadedTopology.load(path), protocol: kind,
                                               dataDirectory: directory + "/data", executable: builtTool, progress: { _ in })
        }

        @Test func geoBFTRunCommitsAgreesAndReports() async throws {
            let report = try await run("""
                name: bench-1x4
                regions: [local]
                base_port: 17800
                shards:
                  - name: s0
                    clusters:
                      - {region: local, replicas: 4}
                keys: dev
                """, protocol: .geobft)
            #expect(report.committed > 0)
            #expect(report.agreement)
            #expect(report.replicas_exited.isEmpty)
            #expect(report.shards.count == 1 && report.shards[0].height > 0 && report.shards[0].replicas_answered == 4)
            #expect(report.regions.map(\.name) == ["local"] && report.regions[0].committed == report.committed)
            #expect(report.latency_ms.p50 > 0 && report.latency_ms.p50 <= report.latency_ms.p99 && report.latency_ms.p99 <= report.latency_ms.max)
            #expect(report.timeline.count == 2)
            // f + 1 = 2 of the 4 replicas verify each client signature (more only when a designated
            // verifier is late or a client resent to all): the replicas count them, and the bound is
            // the cores' verify rate over that count.
            #expect(report.bound.verifications_designated == 2 && report.bound.verifications_measured == true)
            #expect(report.bound.verifications_per_transaction >= 2 && report.bound.verifications_per_transaction < 4,
                    "\(report.bound.verifications_per_transaction) verifications per transaction")
            #expect(report.bound.verify_per_second_all_cores > 100)
            // The rate is the median of five slices before the run and five after it, with its spread.
            #expect(report.bound.verify_samples == 10)
            let (low, high) = (report.bound.verify_min ?? 0, report.bound.verify_max ?? 0)
            #expect(low > 0 && low <= report.bound.verify_per_second_all_cores && report.bound.verify_per_second_all_cores <= high)
            #expect(abs((report.bound.verify_spread ?? -1) - (high - low) / report.bound.verify_per_second_all_cores) < 1e-9)
            #expect(BenchText.render(report).contains("median of 10 before and after the run"))
            #expect(abs(report.bound.verification_bound_tps - report.bound.verify_per_second_all_cores / report.bound.verifications_per_transaction) < 1e-6)
            #expect(BenchText.render(report).contains("bound: "))

            let json = try #require(try JSONSerialization.jsonObject(with: Data(JSONOutput.encode(report).utf8)) as? [String: Any])
            for key in ["protocol", "topology", "duration_s", "clients", "committed", "throughput_tps", "latency_ms", "regions", "shards", "agreement"] {
                #expect(json[key] != nil, "JSON lacks \(key)")
            }
            let latency = try #require(json["latency_ms"] as? [String: Any])
            #expect(Set(latency.keys) == ["p50", "p90", "p99", "max"])
            let shard = try #require((json["shards"] as? [[String: Any]])?.first)
            #expect(shard["shard"] as? String == "s0" && shard["height"] != nil)

            #expect(BenchText.render(report).contains("agreement: yes"))
            #expect(BenchText.csv([report]).split(separator: "\n").count == 3)
            let svg = BenchPlot.svg([report])
            #expect(svg.hasPrefix("<svg") && svg.contains("polyline"))
        }

        @Test func pbftBaselineRunsOneClusterOverBothRegions() async throws {
            let report = try await run("""
                name: bench-2x4
                regions: [east, west]
                wan:
                  - {between: [east, west], rtt_ms: 10, mbit_s: 1000}
                base_port: 17820
                shards:
                  - name: s0
                    clusters:
                      - {region: east, replicas: 4}
                      - {region: west, replicas: 4}
                keys: dev
                """, protocol: .pbft)
            #expect(report.committed > 0)
            #expect(report.agreement)
            #expect(report.clusters.map(\.cluster) == ["s0/east"] && report.clusters[0].n == 8)
            #expect(report.regions.map(\.name) == ["east", "west"] && report.regions.allSatisfy { $0.committed > 0 })
            #expect(report.shards[0].replicas_answered == 8)
        }

        /// Cross-shard transfers between two shards of one region each, over TCP between 8 replica
        /// processes: some commit, every one is answered, the shards agree, and once the run settles
        /// no replica holds a lock.
        @Test func crossShardTransfersCommitOverRealReplicas() async throws {
            let report = try await run("""
                name: bench-xs-2x1x4
                regions: [east, west]
                wan:
                  - {between: [east, west], rtt_ms: 10, mbit_s: 1000}
                base_port: 17840
                key_buckets: 16
                shards:
                  - name: s0
                    keys: {hash: [0, 7]}
                    clusters:
                      - {region: east, replicas: 4}
                  - name: s1
                    keys: {hash: [8, 15]}
                    clusters:
                      - {region: west, replicas: 4}
                keys: dev
                """, protocol: .geobft, crossShard: 0.4, seconds: 6, readFraction: 0.1)
            let cross = try #require(report.cross_shard)
            #expect(cross.committed > 0, "\(cross)")
            #expect(report.agreement && report.replicas_exited.isEmpty)
            #expect(report.timeouts == 0)
            #expect(cross.locks_held_at_end == 0 && cross.in_progress_at_end == 0, "\(cross)")
            #expect(report.single_shard.committed + cross.committed + cross.aborted == report.committed)
            #expect(cross.latency_ms.p50 > 0)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(JSONOutput.encode(report).utf8)) as? [String: Any])
            let crossJSON = try #require(json["cross_shard"] as? [String: Any])
            #expect(crossJSON["committed"] != nil && crossJSON["aborted"] != nil && crossJSON["aborts_by_reason"] != nil)
            #expect(BenchText.render(report).contains("cross-shard committed"))
        }
    }
}
