// `geofabric simulate`: the deterministic simulator from the command line, in two modes.
// - Benchmark (default): GeoBFT and/or the PBFT baseline, no faults, closed-loop clients in every
//   region, with the WAN of the topology and the CPU cost model; throughput and latency.
// - Faults (`--seeds N`, or `--faults --seed S`): random fault plans, checked for safety and liveness.

import ArgumentParser
import Foundation
import GeoCore
import GeoSim
import GeoTopology

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run GeoBFT (and the PBFT baseline) in the deterministic simulator: a WAN benchmark, or seeds of random faults.",
        discussion: """
            Benchmark (default): runs --protocol geobft, pbft or both for --duration simulated seconds with \
            --clients closed-loop clients per region and prints throughput, latency p50/p90/p99, per-region \
            figures and the GeoBFT/PBFT ratio. --sweep clusters splits the topology's replicas into 1, 2, ... \
            clusters over its regions; --sweep batch varies the batch size.

            Faults: --seeds N runs N seeds (from --first-seed) of random fault plans (a lossy, duplicating, \
            reordering network, crashes and restarts, partitions, up to f Byzantine replicas per cluster), \
            healed after \(FaultPlan.healSeconds) s, then \(FaultPlan.livenessSeconds) s in which liveness \
            must show; exits 1 on any violation and prints the command that replays a failing seed \
            (--faults --seed S).
            """)

    @Argument(help: "The topology file (default: the embedded default topology).")
    var topology: String?

    @Option(name: .customLong("cross-shard"),
            help: "Fault mode: the bank workload with this fraction (0...1) of transfers across shards, checked for atomicity, balance and locks.")
    var crossShard: Double?

    @Option(help: "Fault mode: number of seeds to run.")
    var seeds: Int?

    @Option(name: .customLong("first-seed"), help: "Fault mode: the first seed of a sweep.")
    var firstSeed: UInt64 = 1

    @Flag(help: "Fault mode for a single seed (with --seed): replay one fault plan in detail.")
    var faults = false

    @Flag(help: "Fault mode for a single seed: print the fault plan and every message sent or dropped.")
    var trace = false

    @Option(help: "The seed (benchmark run, or the fault plan with --faults).")
    var seed: UInt64 = 1

    @Option(name: .customLong("protocol"), help: "Benchmark: geobft, pbft or both.")
    var protocolName: String = "both"

    @Option(help: "Benchmark: simulated seconds (default 10; 3 with --sweep).")
    var duration: Double?

    @Option(help: "Benchmark: simulated seconds before measuring (default 2; 1 with --sweep).")
    var warmup: Double?

    @Option(help: "Benchmark: closed-loop clients per region (default 200; 50 with --sweep).")
    var clients: Int?

    /// Sweeps run many configurations, so their defaults are lighter (a sweep stays within minutes).
    var durationSeconds: Double { duration ?? (sweep == nil ? 10 : 3) }
    var warmupSeconds: Double { warmup ?? (sweep == nil ? 2 : 1) }
    var clientsPerRegion: Int { clients ?? (sweep == nil ? 200 : 50) }

    @Option(help: "Benchmark: cores of each replica's machine.")
    var cores: Int = 4

    @Option(name: .customLong("batch-size"), help: "Benchmark: override the topology's batch size.")
    var batchSize: Int?

    @Option(help: "Benchmark: sweep 'clusters', 'batch' or 'clients' (1, 2, 4 and 8 times --clients per region: overload) and print a table.")
    var sweep: String?

    @Flag(name: .customLong("json"), help: "Print the result as JSON on standard output (the text report goes to standard error).")
    var jsonToStandardOutput = false

    @Option(name: .customLong("json-file"), help: "Write the result as JSON to this file ('-': as --json).")
    var jsonFile: String?

    /// Where the JSON goes: "-" for standard output, a file, or nowhere.
    var json: String? { jsonToStandardOutput ? "-" : jsonFile }

    /// A line of the text report: on standard output, or on standard error when standard output
    /// carries the JSON (so that it stays one JSON document).
    func print(_ line: String) {
        if json == "-" {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        } else {
            Swift.print(line)
        }
    }

    @Option(help: "Benchmark sweeps: write the table as CSV to this file.")
    var csv: String?

    @Option(name: .customLong("cost-model"), help: "Benchmark: a cost model JSON file instead of the measured defaults.")
    var costModelFile: String?

    @Option(name: .customLong("cpu-slowdown"),
            help: "Benchmark: make every replica's machine this many times slower than the cost model (8: 16 replica processes sharing 2 cores, as `bench` runs them here).")
    var cpuSlowdown: Double = 1

    @Option(name: .customLong("client-timeout-ms"),
            help: "Benchmark: milliseconds a client waits before resending to every replica (default: the real client's rule, 2 view timeouts + 4 of the longest round trips from its region).")
    var clientTimeoutMilliseconds: Int?

    @Option(name: .customLong("timeline-ms"),
            help: "Benchmark: print the run interval by interval (requests completed, view changes, client resends, the busiest machine's inbox and backlog) every this many simulated milliseconds.")
    var timelineMilliseconds: Int?

    func validate() throws {
        if jsonToStandardOutput, let topology, topology == "-" || topology.hasSuffix(".json") {
            throw ValidationError("--json is a flag (the JSON on standard output, the text on standard error); write a file with --json-file FILE")
        }
        if let seeds, seeds < 1 { throw ValidationError("--seeds must be at least 1") }
        if let crossShard {
            guard (0...1).contains(crossShard) else { throw ValidationError("--cross-shard is a fraction between 0 and 1") }
            guard seeds != nil || faults else { throw ValidationError("--cross-shard needs fault mode (--seeds N, or --faults --seed S)") }
        }
        guard ["geobft", "pbft", "both"].contains(protocolName) else { throw ValidationError("--protocol is geobft, pbft or both") }
        guard durationSeconds > 0, warmupSeconds >= 0, warmupSeconds < durationSeconds else {
            throw ValidationError("need 0 <= --warmup < --duration")
        }
        guard clientsPerRegion >= 1, cores >= 1 else { throw ValidationError("--clients and --cores must be at least 1") }
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        guard cpuSlowdown >= 1, cpuSlowdown <= 1000 else { throw ValidationError("--cpu-slowdown is between 1 and 1000") }
        if let clientTimeoutMilliseconds, clientTimeoutMilliseconds < 1 { throw ValidationError("--client-timeout-ms must be at least 1") }
        if let timelineMilliseconds, timelineMilliseconds < 1 { throw ValidationError("--timeline-ms must be at least 1") }
        if let sweep, !["clusters", "batch", "clients"].contains(sweep) { throw ValidationError("--sweep is clusters, batch or clients") }
    }

    func run() throws {
        let model: Topology
        do {
            model = try topology.map { try TopologyLoader.load(path: $0) } ?? EmbeddedTopology.load()
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let crossShardOption = crossShard.map { " --cross-shard \($0)" } ?? ""
        let replay = (topology.map { "geofabric simulate \($0)" } ?? "geofabric simulate") + crossShardOption
        if let seeds {
            try sweepFaults(model, count: seeds, replay: replay)
        } else if faults {
            try runOne(model, seed: seed)
        } else {
            try benchmark(model)
        }
    }

    // MARK: Output

    func write(_ text: String, to path: String) throws {
        if path == "-" {
            Swift.print(text)
            return
        }
        do {
            try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            FileHandle.standardError.write(Data("error: cannot write \(path): \(error.localizedDescription)\n".utf8))
            throw ExitCode(1)
        }
    }

    func progress(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    // MARK: Faults

    func runOne(_ model: Topology, seed: UInt64) throws {
        let scenario = FaultPlan.random(topology: model, seed: seed, crossShard: crossShard)
        let simulation = Simulation(settings: scenario.settings)
        if trace {
            for (time, action) in scenario.settings.actions {
                print(String(format: "plan %.3f s: ", Double(time) / 1e6) + "\(action)")
            }
            simulation.trace = { print($0) }
        }
        let report = simulation.run()
        if !report.crossShardOutcomes.isEmpty {
            print("cross-shard: " + report.crossShardOutcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        print("seed \(seed): \(report.ok ? "ok" : "VIOLATIONS"); committed \(report.committed) transactions (\(report.committedAfterHeal) after heal), \(report.viewChanges) view changes started, \(report.messagesSent) messages (\(report.messagesDropped) dropped), \(report.events) events")
        print("heights: " + report.heights.sorted { $0.key < $1.key }.map { "\(model.replica($0.key)?.name ?? "?")=\($0.value)" }.joined(separator: " "))
        print("state: \(report.snapshots) snapshots taken, \(report.restartsFromSnapshot) restarts from a snapshot, \(report.snapshotsInstalled) installed by state transfer, at most \(report.blocksInMemoryMax) blocks in a core's memory at the end")
        for violation in report.violations { print("  \(violation)") }
        if let json { try write(JSONOutput.encode(SeedResult(report)), to: json) }
        if !report.ok { throw ExitCode(1) }
    }

    func sweepFaults(_ model: Topology, count: Int, replay: String) throws {
        let clock = ContinuousClock()
        let start = clock.now
        var lastProgress = start
        let seeds = firstSeed..<(firstSeed + UInt64(count))
        let summary = SeedSweep.run(topology: model, seeds: seeds, crossShard: crossShard) { seed, report in
            if !report.ok {
                progress("seed \(seed): \(report.violations.count) violation(s): \(report.violations[0]); replay: \(replay) --faults --seed \(seed)")
            }
            if clock.now - lastProgress > .seconds(2) {
                lastProgress = clock.now
                progress("  ... seed \(seed) of \(seeds.upperBound - 1)")
            }
        }
        let elapsed = clock.now - start
        let seconds = elapsed.seconds
        print("seeds \(summary.seedsRun), violations \(summary.failingSeeds.count), committed \(summary.committed) transactions, \(summary.viewChanges) view changes, \(summary.events) events, \(String(format: "%.1f", seconds)) s")
        if !summary.crossShardOutcomes.isEmpty {
            print("cross-shard: " + summary.crossShardOutcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        for failing in summary.failingSeeds {
            print("  failing seed \(failing.seed): \(failing.violations[0])")
            print("  replay: \(replay) --faults --seed \(failing.seed)")
        }
        if let json { try write(JSONOutput.encode(SweepResult(summary, seconds: seconds, replay: replay)), to: json) }
        if !summary.failingSeeds.isEmpty { throw ExitCode(1) }
    }

    // MARK: Benchmark

    func settings(_ model: Topology) throws -> BenchmarkSettings {
        var settings = BenchmarkSettings(topology: model)
        settings.seed = seed
        settings.durationSeconds = durationSeconds
        settings.warmupSeconds = warmupSeconds
        settings.clientsPerRegion = clientsPerRegion
        settings.cores = cores
        settings.batchSize = batchSize
        settings.clientTimeoutMilliseconds = clientTimeoutMilliseconds
        settings.timelineMilliseconds = timelineMilliseconds
        if let costModelFile {
            guard let data = FileManager.default.contents(atPath: costModelFile),
                  let model = try? JSONDecoder().decode(CostModel.self, from: data) else {
                FileHandle.standardError.write(Data("error: \(costModelFile): not a cost model JSON file\n".utf8))
                throw ExitCode(1)
            }
            settings.costModel = model
        }
        settings.costModel = settings.costModel.slowed(by: cpuSlowdown)
        return settings
    }

    func benchmark(_ model: Topology) throws {
        let base = try settings(model)
        if let sweep {
            try runSweep(sweep, base)
            return
        }
        let kinds: [ProtocolKind] = protocolName == "both" ? [.geobft, .pbft] : [ProtocolKind(rawValue: protocolName)!]
        progress("simulating \(model.name): \(kinds.map(\.rawValue).joined(separator: " and ")), \(durationSeconds) s (warmup \(warmupSeconds) s), \(clientsPerRegion) clients per region, \(cores) cores per replica, batch \(batchSize ?? model.parameters.batchSize); cost model: \(base.costModel.source)")
        var results: [ProtocolResult] = []
        for kind in kinds {
            let result = SimulatedBenchmark.run(base, protocol: kind)
            results.append(result)
            printResult(result)
        }
        var ratio: Double?
        if results.count == 2, results[1].throughput_tps > 0 {
            ratio = results[0].throughput_tps / results[1].throughput_tps
            print(String(format: "GeoBFT/PBFT throughput ratio: %.2f", ratio!))
        }
        let ok = results.allSatisfy(\.invariants_ok)
        if let json {
            try write(JSONOutput.encode(BenchmarkReport(topology: model.name, duration_s: durationSeconds, warmup_s: warmupSeconds, seed: seed,
                                                        clients_per_region: clientsPerRegion, cores: cores, results: results,
                                                        geobft_pbft_ratio: ratio, invariants_ok: ok,
                                                        cost_model: base.costModel)), to: json)
        }
        if !ok { throw ExitCode(1) }
    }

    func printResult(_ result: ProtocolResult) {
        func number(_ value: Double) -> String { String(format: "%.0f", value) }
        func milliseconds(_ value: Double) -> String { String(format: "%.1f", value) }
        print("\(result.protocol): \(number(result.throughput_tps)) txn/s, latency p50 \(milliseconds(result.latency_ms.p50)) ms, p90 \(milliseconds(result.latency_ms.p90)) ms, p99 \(milliseconds(result.latency_ms.p99)) ms; \(result.clusters) cluster(s) of \(result.replicas_per_cluster.map(String.init).joined(separator: "/")) replicas; committed \(result.committed); busiest replica CPU \(String(format: "%.0f", result.busiest_replica_cpu * 100))%; window bound \(number(result.window_bound_tps)) txn/s; \(result.view_changes) view changes\(result.view_change_reasons.isEmpty ? "" : " (" + result.view_change_reasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"); \(result.client_retransmissions) client resends; \(result.busy_answers) busy answers, \(result.backoffs) backoffs; invariants \(result.invariants_ok ? "ok" : "VIOLATED")")
        for region in result.regions {
            print("  \(region.region.padding(toLength: 10, withPad: " ", startingAt: 0)) \(number(region.throughput_tps).leftPad(8)) txn/s  p50 \(milliseconds(region.latency_ms.p50).leftPad(7)) ms  p99 \(milliseconds(region.latency_ms.p99).leftPad(7)) ms\(region.busy_answers > 0 ? "  busy \(region.busy_answers), backoffs \(region.backoffs)" : "")")
        }
        for violation in result.violations.prefix(5) { print("  VIOLATION \(violation)") }
        guard let timeline = result.timeline, let interval = timeline.first?.time, interval > 0 else { return }
        print("  time_s  txn/s  view_changes  client_resends  busiest_inbox  backlog_ms  busiest")
        for sample in timeline {
            print(String(format: "  %6.2f  %5.0f  %12d  %14d  %13d  %10.1f  %@", Double(sample.time) / 1e6,
                         Double(sample.committed) * 1e6 / Double(interval), sample.viewChanges, sample.clientResends,
                         sample.busiestInbox, Double(sample.busiestBacklogMicroseconds) / 1000, sample.busiestReplica))
        }
    }

    func runSweep(_ kind: String, _ base: BenchmarkSettings) throws {
        var rows: [[String]] = []
        let header: [String]
        var all: [ProtocolResult] = []
        if kind == "clusters" {
            header = ["clusters", "replicas_per_cluster", "f", "clients", "throughput_tps", "p50_ms", "p90_ms", "p99_ms", "busiest_cpu"]
            let total = base.topology.allReplicas.count
            for layout in SimulatedBenchmark.clusterLayouts(from: base.topology, total: total) {
                var settings = base
                settings.topology = layout
                let clusters = layout.shards[0].clusters
                // The same clients in every layout: --clients per region of the topology, spread
                // evenly over the regions that host a cluster in this layout.
                settings.clientsPerRegion = max(1, base.clientsPerRegion * base.topology.regions.count / clusters.count)
                progress("  \(clusters.count) cluster(s) of \(clusters[0].n) ...")
                let result = SimulatedBenchmark.run(settings, protocol: .geobft)
                all.append(result)
                rows.append(["\(clusters.count)", "\(clusters[0].n)", "\(clusters[0].f)", "\(settings.clientsPerRegion * clusters.count)",
                             String(format: "%.0f", result.throughput_tps),
                             String(format: "%.1f", result.latency_ms.p50), String(format: "%.1f", result.latency_ms.p90),
                             String(format: "%.1f", result.latency_ms.p99), String(format: "%.2f", result.busiest_replica_cpu)])
            }
        } else if kind == "clients" {
            // Overload: 1, 2, 4 and 8 times --clients per region (the first should saturate).
            header = ["clients_per_region", "protocol", "throughput_tps", "of_peak", "p50_ms", "p99_ms", "view_changes", "client_resends",
                      "busy_answers", "busiest_cpu"]
            for protocolKind in protocolName == "both" ? [ProtocolKind.geobft, .pbft] : [ProtocolKind(rawValue: protocolName)!] {
                var results: [(Int, ProtocolResult)] = []
                for factor in [1, 2, 4, 8] {
                    var settings = base
                    settings.clientsPerRegion = base.clientsPerRegion * factor
                    progress("  \(settings.clientsPerRegion) clients per region, \(protocolKind.rawValue) ...")
                    let result = SimulatedBenchmark.run(settings, protocol: protocolKind)
                    all.append(result)
                    results.append((settings.clientsPerRegion, result))
                }
                let peak = results.map(\.1.throughput_tps).max() ?? 0
                for (clients, result) in results {
                    rows.append(["\(clients)", protocolKind.rawValue, String(format: "%.0f", result.throughput_tps),
                                 String(format: "%.2f", peak > 0 ? result.throughput_tps / peak : 0),
                                 String(format: "%.1f", result.latency_ms.p50), String(format: "%.1f", result.latency_ms.p99),
                                 "\(result.view_changes)", "\(result.client_retransmissions)", "\(result.busy_answers)",
                                 String(format: "%.2f", result.busiest_replica_cpu)])
                }
            }
        } else {
            header = ["batch_size", "protocol", "throughput_tps", "p50_ms", "p90_ms", "p99_ms", "busiest_cpu"]
            for batch in [10, 25, 50, 100, 200, 400] {
                for protocolKind in protocolName == "both" ? [ProtocolKind.geobft, .pbft] : [ProtocolKind(rawValue: protocolName)!] {
                    var settings = base
                    settings.batchSize = batch
                    progress("  batch \(batch), \(protocolKind.rawValue) ...")
                    let result = SimulatedBenchmark.run(settings, protocol: protocolKind)
                    all.append(result)
                    rows.append(["\(batch)", protocolKind.rawValue, String(format: "%.0f", result.throughput_tps),
                                 String(format: "%.1f", result.latency_ms.p50), String(format: "%.1f", result.latency_ms.p90),
                                 String(format: "%.1f", result.latency_ms.p99), String(format: "%.2f", result.busiest_replica_cpu)])
                }
            }
        }
        let widths = header.indices.map { column in max(header[column].count, rows.map { $0[column].count }.max() ?? 0) }
        print(header.enumerated().map { $0.element.leftPad(widths[$0.offset]) }.joined(separator: "  "))
        for row in rows { print(row.enumerated().map { $0.element.leftPad(widths[$0.offset]) }.joined(separator: "  ")) }
        if let csv {
            try write(([header] + rows).map { $0.joined(separator: ",") }.joined(separator: "\n"), to: csv)
        }
        if let json { try write(JSONOutput.encode(all), to: json) }
        if !all.allSatisfy(\.invariants_ok) { throw ExitCode(1) }
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

struct BenchmarkReport: Encodable {
    var topology: String
    var duration_s: Double
    var warmup_s: Double
    var seed: UInt64
    var clients_per_region: Int
    var cores: Int
    var results: [ProtocolResult]
    var geobft_pbft_ratio: Double?
    var invariants_ok: Bool
    var cost_model: CostModel
}

struct SeedResult: Encodable {
    var seed: UInt64
    var ok: Bool
    var committed: Int
    var committed_after_heal: Int
    var view_changes: Int
    var messages: Int
    var dropped: Int
    var violations: [String]
    init(_ report: SimulationReport) {
        seed = report.seed
        ok = report.ok
        committed = report.committed
        committed_after_heal = report.committedAfterHeal
        view_changes = report.viewChanges
        messages = report.messagesSent
        dropped = report.messagesDropped
        violations = report.violations.map(\.description)
    }
}

struct SweepResult: Encodable {
    var seeds: Int
    var violations: Int
    var committed: Int
    var seconds: Double
    var failing_seeds: [UInt64]
    var replay: [String]
    init(_ summary: SweepSummary, seconds: Double, replay: String) {
        seeds = summary.seedsRun
        violations = summary.failingSeeds.count
        committed = summary.committed
        self.seconds = seconds
        failing_seeds = summary.failingSeeds.map(\.seed)
        self.replay = summary.failingSeeds.map { "\(replay) --faults --seed \($0.seed)" }
    }
}
