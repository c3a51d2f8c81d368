// `geofabric bench [TOPOLOGY]`: the benchmark on real replica processes. It deploys the topology
// on this machine (as `up` does), drives closed-loop signed clients in every region that hosts a
// cluster, prints a progress line each second, and reports throughput, latency percentiles
// (HdrHistogram) per region, cluster and shard, the ledger heights, the view changes and whether
// the replicas of each shard agree on their ledger. `--protocol pbft` runs the same replicas as one
// PBFT cluster per shard (the baseline); `both` runs GeoBFT, then the baseline, on fresh ledgers.

import ArgumentParser
import Foundation
import GeoClient
import GeoCore
import GeoCrypto
import GeoNet
import GeoNode
import GeoSim
import Histogram
import Logging
import Synchronization

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark GeoBFT (and the PBFT baseline) on real replica processes on this machine.",
        discussion: """
            With no topology the embedded default runs. Every replica is its own process (as with \
            `geofabric up`) on a fresh data directory. --clients closed-loop clients per region, each \
            with its own key, send signed YCSB-style reads and updates (--read-fraction) and transfers \
            (--transfer-fraction) over --keys keys, uniform or Zipfian (--zipf), to their home cluster. \
            The first --warmup seconds of --duration are not measured. A progress line each second goes \
            to standard error. All replicas share this machine's cores, so the figures measure the \
            protocol under that contention, not a deployment with one machine per replica.
            """)

    @Argument(help: "The topology file (default: the embedded default topology).")
    var topology: String?

    @Option(help: "Seconds of load, warmup included.")
    var duration: Double = 10

    @Option(help: "Seconds at the start that are not measured.")
    var warmup: Double = 2

    @Option(help: "Closed-loop clients per region (default: 256 in all, at least 16 per region; fewer if the topology has too few client keys).")
    var clients: Int?

    @Option(name: .customLong("protocol"), help: "geobft, pbft (one PBFT cluster per shard: the baseline) or both.")
    var protocolName: String = "geobft"

    @Flag(name: .customLong("emulate-wan"), help: "Delay and rate-limit messages between regions as the topology's WAN says.")
    var emulateWAN = false

    @Option(help: "Keys in the key space.")
    var keys: Int = 10_000

    @Option(help: "Zipf skew of key choice, 0 <= THETA < 1 (0: uniform).")
    var zipf: Double = 0.99

    @Option(name: .customLong("read-fraction"), help: "Fraction of reads among reads and updates.")
    var readFraction: Double = 0.5

    @Option(name: .customLong("transfer-fraction"), help: "Fraction of transfers between two keys of one shard.")
    var transferFraction: Double = 0.1

    @Option(name: .customLong("cross-shard"), help: "Fraction of cross-shard transfers (from a key of the client's shard to a key of another; needs two shards or more).")
    var crossShard: Double = 0

    @Option(help: "Seconds a client waits for f + 1 matching replies before counting a timeout.")
    var timeout: Double = 10

    @Option(help: "Seed of the clients' key and operation choices.")
    var seed: UInt64 = 1

    @Option(name: .customLong("data-dir"), help: "Data directory (default: a fresh temporary directory, removed afterwards).")
    var dataDirectory: String?

    @Flag(name: .customLong("keep-data"), help: "Keep the replicas' ledgers and logs after the run.")
    var keepData = false

    @Option(help: "Write the result as JSON to this file ('-': standard output, and the text report to standard error).")
    var json: String?

    @Option(help: "Write the per-second time series as CSV to this file.")
    var csv: String?

    @Option(help: "Draw throughput and p99 latency over time as an SVG file (with --sweep-clients: throughput against latency).")
    var plot: String?

    @Option(name: .customLong("sweep-clients"), parsing: .unconditional,
            help: "Run once per client count (per region), e.g. 16,64,256, and report throughput against latency.")
    var sweepClients: String?

    /// Enough closed-loop clients to load this machine: with one request outstanding each,
    /// fewer leave the replicas waiting for requests rather than for the CPU (throughput is then
    /// clients / latency, not what the fabric can do).
    static let defaultClientsInAll = 256
    static let minimumClientsPerRegion = 16

    func validate() throws {
        guard ["geobft", "pbft", "both"].contains(protocolName) else { throw ValidationError("--protocol is geobft, pbft or both") }
        guard duration > 0, warmup >= 0, warmup < duration else { throw ValidationError("need 0 <= --warmup < --duration") }
        if let clients, clients < 1 { throw ValidationError("--clients must be at least 1") }
        guard keys >= 2 else { throw ValidationError("--keys must be at least 2 (a transfer needs two keys)") }
        guard zipf >= 0, zipf < 1 else { throw ValidationError("--zipf is a skew 0 <= THETA < 1 (0: uniform)") }
        guard (0...1).contains(readFraction), (0...1).contains(transferFraction) else {
            throw ValidationError("--read-fraction and --transfer-fraction are between 0 and 1")
        }
        guard (0...1).contains(crossShard) else { throw ValidationError("--cross-shard is between 0 and 1") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        if sweepClients != nil {
            guard Self.clientCounts(sweepClients)?.isEmpty == false else {
                throw ValidationError("--sweep-clients is a comma-separated list of client counts per region, each at least 1 (e.g. 16,64,256)")
            }
            guard clients == nil else { throw ValidationError("give either --clients or --sweep-clients") }
        }
    }

    /// "16,64,256" -> [16, 64, 256]; nil when any entry is not a positive integer.
    static func clientCounts(_ text: String?) -> [Int]? {
        guard let text else { return nil }
        var counts: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let count = Int(part.trimmingCharacters(in: .whitespaces)), count >= 1 else { return nil }
            counts.append(count)
        }
        return counts
    }

    func run() async throws {
        let loaded = try LoadedTopology.load(topology)
        let model = loaded.topology
        let regions = BenchPlan.clientRegions(of: model)
        let sweep = Self.clientCounts(sweepClients) ?? []
        var perRegion = clients ?? sweep.max() ?? max(Self.minimumClientsPerRegion, Self.defaultClientsInAll / max(1, regions.count))
        let needed = perRegion * regions.count
        if needed > model.clientCount {
            let fits = model.clientCount / regions.count
            let explanation = "\(perRegion) clients in each of \(regions.count) region(s) need \(needed) client keys; \(loaded.displayName) has \(model.clientCount) (`clients:` in the topology file, default 256)"
            guard clients == nil, sweep.isEmpty, fits >= 1 else {
                fail("\(explanation); use --clients \(max(1, fits)) or raise `clients:`")
                throw ExitCode(1)
            }
            perRegion = fits
            progress("note: \(explanation); running \(fits) per region")
        }
        var settings = BenchSettings()
        settings.durationSeconds = duration
        settings.warmupSeconds = warmup
        settings.clientsPerRegion = perRegion
        settings.emulateWAN = emulateWAN
        settings.keyCount = keys
        settings.zipfTheta = zipf
        settings.readFraction = readFraction
        settings.transferFraction = transferFraction
        settings.crossShardFraction = crossShard
        settings.requestTimeoutSeconds = timeout
        settings.seed = seed

        let kinds: [ProtocolKind] = protocolName == "both" ? [.geobft, .pbft] : [ProtocolKind(rawValue: protocolName)!]
        let createdBase = dataDirectory == nil
        let base = dataDirectory.map { loaded.dataDirectory($0) }
            ?? NSTemporaryDirectory() + "geofabric-bench-\(model.name)-\(UInt32.random(in: 0...UInt32.max))"
        // One run per protocol, and per client count when sweeping, each on its own fresh ledgers.
        let runs: [(kind: ProtocolKind, perRegion: Int, directory: String)] = kinds.flatMap { kind in
            (sweep.isEmpty ? [perRegion] : sweep).map { count in
                (kind, count, (base as NSString).appendingPathComponent(sweep.isEmpty ? kind.rawValue : "\(kind.rawValue)-c\(count)"))
            }
        }
        for run in runs {
            let directory = run.directory
            if FileManager.default.fileExists(atPath: directory) {
                fail("\(directory) already exists: the benchmark starts from empty ledgers; remove it or give another --data-dir")
                throw ExitCode(1)
            }
        }

        // Ctrl-C or SIGTERM cancels the run, which stops the clients and every replica before returning.
        let settingsToRun = settings
        let keepData = keepData, emulateWAN = emulateWAN
        let work = Task { () throws -> [BenchReport] in
            var reports: [BenchReport] = []
            for (index, run) in runs.enumerated() {
                let directory = run.directory
                defer { if !keepData { try? FileManager.default.removeItem(atPath: directory) } }
                var settings = settingsToRun
                settings.clientsPerRegion = run.perRegion
                let step = runs.count > 1 ? " [run \(index + 1) of \(runs.count)]" : ""
                progress("bench \(model.name)\(step): \(run.kind.rawValue), \(settings.durationSeconds) s (warmup \(settings.warmupSeconds) s), \(run.perRegion) clients per region in \(regions.joined(separator: ", "))\(emulateWAN ? ", WAN emulated" : ""); data: \(directory)")
                reports.append(try await LiveBenchmark.run(settings, topology: loaded, protocol: run.kind, dataDirectory: directory,
                                                           executable: Executable.path, progress: progress))
            }
            return reports
        }
        let watcher = Task {
            _ = await Signals.waitForTermination()
            work.cancel()
        }
        let outcome = await work.result
        watcher.cancel()
        if createdBase && !keepData { try? FileManager.default.removeItem(atPath: base) }
        if keepData { progress("data kept in \(base)") }
        let reports: [BenchReport]
        do {
            reports = try outcome.get()
        } catch is CancellationError {
            progress("interrupted; every replica stopped")
            throw ExitCode(130)
        } catch {
            fail("\(error)")
            throw ExitCode(1)
        }

        // With `--json -` standard output is the JSON alone, so it can be piped; the text goes to standard error.
        let show: (String) -> Void = json == "-" ? { progress($0) } : { say($0) }
        if !sweep.isEmpty {
            let points = reports.map(BenchSweepPoint.init)
            show(BenchText.sweepTable(points))
            if let json { try write(JSONOutput.encode(BenchSweep(topology: model.name, points: points, results: reports)), to: json) }
            if let csv { try write(BenchText.sweepCSV(points), to: csv) }
            if let plot { try write(BenchPlot.sweepSVG(points, topology: model.name), to: plot) }
            if reports.contains(where: { !$0.agreement }) { throw ExitCode(1) }
            return
        }
        for report in reports { show(BenchText.render(report)) }
        var ratio: Double?
        if reports.count == 2, reports[1].throughput_tps > 0 {
            ratio = reports[0].throughput_tps / reports[1].throughput_tps
            show(String(format: "GeoBFT/PBFT throughput ratio: %.2f", ratio!))
        }
        if let json {
            let text = reports.count == 1
                ? JSONOutput.encode(reports[0])
                : JSONOutput.encode(BenchComparison(topology: model.name, results: reports, geobft_pbft_ratio: ratio))
            try write(text, to: json)
        }
        if let csv { try write(BenchText.csv(reports), to: csv) }
        if let plot { try write(BenchPlot.svg(reports), to: plot) }
        if reports.contains(where: { !$0.agreement }) { throw ExitCode(1) }
    }

    func write(_ text: String, to path: String) throws {
        if path == "-" {
            say(text)
            return
        }
        do {
            try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            fail("cannot write \(path): \(error.localizedDescription)")
            throw ExitCode(1)
        }
    }
}

private func fail(_ message: String) {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
}

private func progress(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// What one benchmark run does; the command's options, checked.
struct BenchSettings: Sendable {
    var durationSeconds = 10.0
    var warmupSeconds = 2.0
    var clientsPerRegion = 16
    var emulateWAN = false
    var keyCount = 10_000
    var zipfTheta = 0.99
    var readFraction = 0.5
    var transferFraction = 0.1
    var crossShardFraction = 0.0
    var requestTimeoutSeconds = 10.0
    var seed: UInt64 = 1
    var readyTimeoutSeconds = 60.0
    /// Seconds of the verify-rate measurement before the replicas start (0: skip, bound unknown).
    var calibrationSeconds = 0.5
    /// How long the replicas get, once the clients stop, to reach one height per shard.
    var settleSeconds = 5.0
    /// Bounds every status poll, so a silent replica cannot hold up the progress line.
    var statusTimeoutSeconds = 0.7
}

/// Who the clients are: identity, region, the shard whose keys they use and their home cluster.
struct BenchClientPlan: Sendable {
    var client: ClientID
    var region: String
    var shard: Int
    var cluster: Cluster
    /// "shard/region" of the home cluster, the key of the per-cluster figures.
    var clusterLabel: String
}

enum BenchPlan {
    /// The regions that host a cluster of the topology (clients live where the replicas are).
    static func clientRegions(of topology: Topology) -> [String] {
        topology.regions.map(\.name).filter { region in topology.shards.contains { $0.clusters.contains { $0.region == region } } }
    }

    /// `perRegion` clients in each region of `original`, spread round-robin over the shards that
    /// have a cluster there; each homed at its shard's cluster of that region in `deployed` (for the
    /// PBFT baseline: the shard's single cluster, wherever its primary is).
    static func clients(original: Topology, deployed: Topology, perRegion: Int) -> [BenchClientPlan] {
        var plans: [BenchClientPlan] = []
        for region in clientRegions(of: original) {
            let shardsHere = original.shards.indices.filter { original.shards[$0].clusters.contains { $0.region == region } }
            for index in 0..<perRegion {
                let shard = shardsHere[index % shardsHere.count]
                let clusters = deployed.shards[shard].clusters
                let cluster = clusters.first { $0.region == region } ?? clusters[0]
                plans.append(BenchClientPlan(client: ClientID(UInt32(plans.count)), region: region, shard: shard, cluster: cluster,
                                             clusterLabel: "\(deployed.shards[shard].name)/\(cluster.region)"))
            }
        }
        return plans
    }

    /// What a client sends crosses the emulated link from its region to the replica's: replicas
    /// emulate links between replicas only (clients have no region in the topology), so replies to
    /// clients are not delayed. That favours the PBFT baseline, whose far clients reach a remote
    /// primary, so a GeoBFT advantage is not overstated.
    static func emulation(for region: String, in topology: Topology) -> WANEmulation {
        let regions = topology.allReplicas.map(\.region)
        var profiles: [String: LinkProfile] = [:]
        for other in Set(regions) {
            guard let link = topology.link(from: region, to: other) else { continue }
            profiles[other] = LinkProfile(oneWayDelay: .nanoseconds(Int64(link.rttMilliseconds / 2 * 1_000_000)),
                                          bytesPerSecond: link.megabitsPerSecond * 125_000)
        }
        let table = profiles
        return WANEmulation { peer in
            guard let number = peer.replicaNumber, regions.indices.contains(Int(number)) else { return nil }
            return table[regions[Int(number)]]
        }
    }
}

/// Latencies of completed transactions, overall and per region, cluster, shard and second.
final class BenchRecorder: Sendable {
    /// Microseconds; an hour is far above any timeout, so nothing measured is out of range.
    static let latencyMicrosecondsMax: UInt64 = 3_600_000_000

    static func histogram(digits: SignificantDigits = .three) -> Histogram<UInt64> {
        Histogram(lowestDiscernibleValue: 1, highestTrackableValue: latencyMicrosecondsMax, numberOfSignificantValueDigits: digits)
    }

    struct State {
        var total = BenchRecorder.histogram()
        var byRegion: [String: Histogram<UInt64>] = [:]
        var byCluster: [String: Histogram<UInt64>] = [:]
        var byShard: [String: Histogram<UInt64>] = [:]
        /// One per second of the run, warmup included; two digits are plenty for a time series.
        var seconds: [Histogram<UInt64>]
        var refused = 0
        var refusedByReason: [String: Int] = [:]
        var timeouts = 0
        var errors: [String: Int] = [:]
        /// Single-shard transactions apart from cross-shard ones, and the latter by outcome.
        var singleShard = BenchRecorder.histogram()
        var crossShardCommitted = BenchRecorder.histogram()
        var crossShardAborted = BenchRecorder.histogram()
        var abortsByReason: [String: Int] = [:]
    }

    /// What kind of transaction completed, and how.
    enum Outcome: Sendable {
        /// A single-shard transaction; with the reason when the state machine refused it.
        case singleShard(refusal: String?)
        case crossShardCommitted
        case crossShardAborted(reason: String)
    }

    let warmupSeconds: Double
    let durationSeconds: Double
    let state: Mutex<State>

    init(warmupSeconds: Double, durationSeconds: Double) {
        self.warmupSeconds = warmupSeconds
        self.durationSeconds = durationSeconds
        let count = Int(durationSeconds.rounded(.up))
        state = Mutex(State(seconds: (0..<count).map { _ in BenchRecorder.histogram(digits: .two) }))
    }

    /// A transaction completed `elapsed` seconds into the run; only those within the run count,
    /// and only those after the warmup count in the totals.
    func record(elapsed: Double, latency: Duration, plan: BenchClientPlan, shardName: String, outcome: Outcome) {
        guard elapsed >= 0, elapsed < durationSeconds else { return }
        let micros = min(Self.latencyMicrosecondsMax, max(1, UInt64(latency.seconds * 1_000_000)))
        state.withLock { state in
            state.seconds[min(state.seconds.count - 1, Int(elapsed))].record(micros)
            guard elapsed >= warmupSeconds else { return }
            state.total.record(micros)
            state.byRegion[plan.region, default: Self.histogram()].record(micros)
            state.byCluster[plan.clusterLabel, default: Self.histogram()].record(micros)
            state.byShard[shardName, default: Self.histogram()].record(micros)
            switch outcome {
            case let .singleShard(refusal):
                state.singleShard.record(micros)
                if let refusal {
                    state.refused += 1
                    state.refusedByReason[refusal, default: 0] += 1
                }
            case .crossShardCommitted:
                state.crossShardCommitted.record(micros)
            case let .crossShardAborted(reason):
                state.crossShardAborted.record(micros)
                state.abortsByReason[reason, default: 0] += 1
            }
        }
    }

    func timedOut() { state.withLock { $0.timeouts += 1 } }
    func failed(_ reason: String) { state.withLock { $0.errors[reason, default: 0] += 1 } }

    /// Completions and percentiles of second `index` (0-based).
    func second(_ index: Int) -> (committed: Int, p50: Double, p99: Double) {
        state.withLock { state in
            guard state.seconds.indices.contains(index) else { return (0, 0, 0) }
            let histogram = state.seconds[index]
            return (Int(histogram.totalCount), LatencySummary.milliseconds(histogram, 50), LatencySummary.milliseconds(histogram, 99))
        }
    }

    func snapshot() -> State { state.withLock { $0 } }
}

// MARK: Report

struct LatencySummary: Encodable, Sendable {
    var p50: Double
    var p90: Double
    var p99: Double
    var max: Double

    init(_ histogram: Histogram<UInt64>) {
        p50 = Self.milliseconds(histogram, 50)
        p90 = Self.milliseconds(histogram, 90)
        p99 = Self.milliseconds(histogram, 99)
        max = histogram.totalCount == 0 ? 0 : Double(histogram.maxRecorded) / 1000
    }

    static func milliseconds(_ histogram: Histogram<UInt64>, _ percentile: Double) -> Double {
        histogram.totalCount == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
    }
}

struct BenchGroup: Encodable, Sendable {
    var name: String
    var clients: Int
    var committed: Int
    var throughput_tps: Double
    var latency_ms: LatencySummary
}

struct BenchClusterLine: Encodable, Sendable {
    var cluster: String
    var region: String
    var n: Int
    var f: Int
    /// The highest view any of its replicas reported: the view changes it went through.
    var view: UInt64
    var clients: Int
    var committed: Int
    var throughput_tps: Double
    var latency_ms: LatencySummary
}

struct BenchShardLine: Encodable, Sendable {
    var shard: String
    var height: UInt64
    var replicas: Int
    var replicas_answered: Int
    /// Every reachable replica at the end reported the same height.
    var settled: Bool
    /// No two replicas of the shard reported different heads at the same height, in any status
    /// poll of the run (every second) or of the final check.
    var agreement: Bool
    /// (height, replica) reports that another replica's report at that height could be checked against.
    var heads_compared: Int
    var committed: Int
    var throughput_tps: Double
    var latency_ms: LatencySummary
}

struct BenchSecond: Encodable, Sendable {
    var second: Int
    /// Completed transactions since the start, warmup included.
    var committed: Int
    var throughput_tps: Double
    var p50_ms: Double
    var p99_ms: Double
    var views: UInt64
    var heights: [String: UInt64]
    var warmup: Bool
}

struct BenchWorkloadSummary: Encodable, Sendable {
    var keys: Int
    var zipf_theta: Double
    var read_fraction: Double
    var transfer_fraction: Double
    var cross_shard_fraction: Double
    var seed: UInt64
}

struct BenchReport: Encodable, Sendable {
    var `protocol`: String
    var topology: String
    var replicas: Int
    var cluster_count: Int
    var shard_count: Int
    var batch_size: Int
    var emulate_wan: Bool
    var duration_s: Double
    var warmup_s: Double
    var measured_s: Double
    var clients: Int
    var clients_per_region: Int
    var workload: BenchWorkloadSummary
    var committed: Int
    /// Ordered and executed, but refused by the state machine (a transfer without enough balance,
    /// a key locked by a cross-shard transaction in progress), in all and by reason.
    var refused: Int
    var refused_by_reason: [String: Int]
    var timeouts: Int
    var errors: [String: Int]
    var throughput_tps: Double
    var latency_ms: LatencySummary
    var regions: [BenchGroup]
    var clusters: [BenchClusterLine]
    var shards: [BenchShardLine]
    /// Single-shard transactions (reads, updates, transfers inside one shard).
    var single_shard: BenchKindLine
    /// Cross-shard transfers, when the run had any: committed and aborted apart, aborts by reason.
    var cross_shard: BenchCrossShardLine?
    var view_changes: UInt64
    /// The machine's ceiling for this run: every client transaction is verified (Ed25519) by each
    /// replica of its home cluster, and all replicas share this machine's cores, so at most
    /// (verify rate of all cores) / (replicas of a home cluster) transactions a second.
    var bound: BenchBound
    var agreement: Bool
    var replicas_exited: [String]
    var timeline: [BenchSecond]
}

struct BenchBound: Encodable, Sendable {
    var cores: Int
    /// Measured on this machine just before the run, on all its cores together.
    var verify_per_second_all_cores: Double
    /// Mean size of the clients' home clusters: the verifications each transaction costs.
    var verifications_per_transaction: Double
    var verification_bound_tps: Double
    /// throughput_tps / verification_bound_tps.
    var achieved_of_bound: Double
}

struct BenchKindLine: Encodable, Sendable {
    var committed: Int
    var throughput_tps: Double
    var latency_ms: LatencySummary
}

struct BenchCrossShardLine: Encodable, Sendable {
    /// Committed on every shard they touch.
    var committed: Int
    /// Aborted on every shard they touch (the client's one answer), counted by reason below.
    var aborted: Int
    var aborts_by_reason: [String: Int]
    /// Committed cross-shard transfers per measured second.
    var throughput_tps: Double
    /// Latency of the committed ones (client's submit to its f + 1 matching answers).
    var latency_ms: LatencySummary
    var aborted_latency_ms: LatencySummary
    /// Summed over the replicas' final status: keys still locked and transactions unfinished once
    /// the run settled (0 and 0 when every transaction ran to its end).
    var locks_held_at_end: Int
    var in_progress_at_end: Int
}

/// One run of a client sweep: what a throughput-against-latency curve needs.
struct BenchSweepPoint: Encodable, Sendable {
    var `protocol`: String
    var clients_per_region: Int
    var clients: Int
    var throughput_tps: Double
    var latency_ms: LatencySummary
    var achieved_of_bound: Double
    var view_changes: UInt64
    var agreement: Bool

    init(protocol: String, clients_per_region: Int, clients: Int, throughput_tps: Double, latency_ms: LatencySummary,
         achieved_of_bound: Double, view_changes: UInt64, agreement: Bool) {
        self.protocol = `protocol`
        self.clients_per_region = clients_per_region
        self.clients = clients
        self.throughput_tps = throughput_tps
        self.latency_ms = latency_ms
        self.achieved_of_bound = achieved_of_bound
        self.view_changes = view_changes
        self.agreement = agreement
    }

    init(_ report: BenchReport) {
        self.protocol = report.protocol
        clients_per_region = report.clients_per_region
        clients = report.clients
        throughput_tps = report.throughput_tps
        latency_ms = report.latency_ms
        achieved_of_bound = report.bound.achieved_of_bound
        view_changes = report.view_changes
        agreement = report.agreement
    }
}

struct BenchSweep: Encodable {
    var topology: String
    var points: [BenchSweepPoint]
    /// Every run's full report, in the order of `points`.
    var results: [BenchReport]
}

struct BenchComparison: Encodable {
    var topology: String
    var results: [BenchReport]
    var geobft_pbft_ratio: Double?
}

// MARK: Run

enum LiveBenchmark {
    /// Deploys `topology` (or its PBFT baseline) from `executable`'s replica processes on
    /// `dataDirectory`, runs the workload, checks the ledgers, stops every replica and reports.
    /// Cancelling the calling task ends the run early: clients and replicas are stopped, then it
    /// throws CancellationError.
    static func run(_ settings: BenchSettings, topology loaded: LoadedTopology, protocol kind: ProtocolKind, dataDirectory: String,
                    executable: String, progress: @escaping @Sendable (String) -> Void) async throws -> BenchReport {
        let original = loaded.topology
        let deployed = kind == .pbft ? original.pbftBaseline() : original
        let plans = BenchPlan.clients(original: original, deployed: deployed, perRegion: settings.clientsPerRegion)
        guard plans.count <= original.clientCount else {
            throw BenchError.invalid("\(plans.count) clients need \(plans.count) client keys; the topology has \(original.clientCount)")
        }
        let workload = try BenchWorkload.make(topology: original, keyCount: settings.keyCount, zipfTheta: settings.zipfTheta,
                                              readFraction: settings.readFraction, transferFraction: settings.transferFraction,
                                              crossShardFraction: settings.crossShardFraction).get()
        let keyRing: KeyRing
        var signingKeys: [SigningKey] = []
        do {
            keyRing = try KeyRing.load(for: deployed, baseDirectory: loaded.directory)
            for plan in plans {
                signingKeys.append(try IdentityKeys.signingKey(for: deployed, identity: Topology.clientName(plan.client), isClient: true,
                                                               baseDirectory: loaded.directory))
            }
        } catch {
            throw BenchError.invalid("client keys: \(error)")
        }

        // Before any replica runs, so the measurement has the cores to itself.
        let verifyRate = settings.calibrationSeconds > 0 ? CryptoCalibration.verifyRateAllCores(seconds: settings.calibrationSeconds) : 0

        var deployedLoaded = loaded
        deployedLoaded.topology = deployed
        let deployment: LocalDeployment
        do {
            deployment = try LocalDeployment.start(deployedLoaded, dataDirectory: dataDirectory, emulateWAN: settings.emulateWAN,
                                                   executable: executable, replicaArguments: kind == .pbft ? ["--pbft-baseline"] : [])
        } catch {
            throw BenchError.deployment("\(error)")
        }
        // Stopping must happen even when the run was cancelled: a fresh task does not inherit that.
        func stopDeployment() async { await Task { await deployment.stop() }.value }
        do {
            try await deployment.waitUntilReady(timeout: .milliseconds(Int64(settings.readyTimeoutSeconds * 1000)))
        } catch {
            await stopDeployment()
            if Task.isCancelled { throw CancellationError() }
            throw BenchError.deployment("\(error)")
        }

        var logger = Logger(label: "geofabric.bench")
        logger.logLevel = .critical
        var clients: [FabricClient] = []
        for (plan, key) in zip(plans, signingKeys) {
            let client = FabricClient(topology: deployed, keys: keyRing, client: plan.client, key: key, cluster: plan.cluster,
                                      wanEmulation: settings.emulateWAN ? BenchPlan.emulation(for: plan.region, in: deployed) : nil,
                                      logger: logger)
            await client.start()
            clients.append(client)
        }

        let recorder = BenchRecorder(warmupSeconds: settings.warmupSeconds, durationSeconds: settings.durationSeconds)
        let observer = LedgerObserver(topology: deployed)
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + .milliseconds(Int64(settings.durationSeconds * 1000))
        let log = BenchRunLog()
        let startedClients = clients
        let timeout = Duration.milliseconds(Int64(settings.requestTimeoutSeconds * 1000))
        let statusTimeout = Duration.milliseconds(Int64(settings.statusTimeoutSeconds * 1000))

        await withDiscardingTaskGroup { group in
            for (index, (plan, client)) in zip(plans, clients).enumerated() {
                let shardName = original.shards[plan.shard].name
                group.addTask {
                    var random = BenchRandom(seed: settings.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index))
                    var operation = workload.next(shard: plan.shard, &random)
                    while !Task.isCancelled, clock.now < end {
                        do {
                            let completion = try await client.submit(operation, timeout: timeout)
                            let outcome: BenchRecorder.Outcome
                            switch completion.result {
                            case .crossShardCommitted: outcome = .crossShardCommitted
                            case let .crossShardAborted(reason): outcome = .crossShardAborted(reason: "\(reason)")
                            case let .refused(refusal): outcome = .singleShard(refusal: "\(refusal)")
                            default: outcome = .singleShard(refusal: nil)
                            }
                            recorder.record(elapsed: (clock.now - start).seconds, latency: completion.latency, plan: plan,
                                            shardName: shardName, outcome: outcome)
                        } catch ClientError.busy {
                            // After a timeout the client keeps resending until it hears f + 1
                            // replies; only then may the next request go.
                            try? await Task.sleep(for: .milliseconds(20))
                            continue
                        } catch ClientError.timedOut {
                            recorder.timedOut()
                        } catch is CancellationError {
                            return
                        } catch {
                            recorder.failed("\(error)")
                        }
                        operation = workload.next(shard: plan.shard, &random)
                    }
                }
            }
            group.addTask {
                let seconds = Int(settings.durationSeconds.rounded(.up))
                var reported = Set<String>()
                for second in 1...seconds {
                    let due = min(end, start + .seconds(second))
                    try? await Task.sleep(until: due, clock: clock)
                    if Task.isCancelled { break }
                    let statuses = await StatusClient.fetchAll(deployed.allReplicas.map { StatusTarget($0) }, timeout: statusTimeout)
                    let view = observer.observe(statuses)
                    let figures = recorder.second(second - 1)
                    let length = min(1, settings.durationSeconds - Double(second - 1))
                    let point = BenchSecond(second: second, committed: (log.timeline.withLock { $0.last?.committed ?? 0 }) + figures.committed,
                                            throughput_tps: Double(figures.committed) / length, p50_ms: figures.p50, p99_ms: figures.p99,
                                            views: view.views, heights: view.heights,
                                            warmup: Double(second) <= settings.warmupSeconds)
                    log.timeline.withLock { $0.append(point) }
                    progress(String(format: "[%3lds] ", second) + "\(grouped(point.throughput_tps)) txn/s  p50 \(String(format: "%.1f", point.p50_ms)) ms  p99 \(String(format: "%.1f", point.p99_ms)) ms  views \(view.views)  heights "
                             + deployed.shards.map { "\($0.name)=\(view.heights[$0.name].map { "\($0)" } ?? "?")" }.joined(separator: " ")
                             + (point.warmup ? "  (warmup)" : "") + (view.unreachable > 0 ? "  \(view.unreachable) unreachable" : ""))
                    for entry in deployment.processes where !entry.process.isRunning && !reported.contains(entry.info.name) {
                        reported.insert(entry.info.name)
                        log.exited.withLock { $0.append(entry.info.name) }
                        progress("warning: replica \(entry.info.name) exited with status \(entry.process.terminationStatus) (log: \(entry.log))")
                    }
                }
                // The measurement is over: what is still in flight is abandoned, not awaited.
                for client in startedClients { await client.shutdown() }
            }
        }
        if Task.isCancelled {
            await stopDeployment()
            throw CancellationError()
        }

        // The replicas get a few seconds to finish what was in flight and reach one height per shard.
        let settleEnd = clock.now + .milliseconds(Int64(settings.settleSeconds * 1000))
        var final = await StatusClient.fetchAll(deployed.allReplicas.map { StatusTarget($0) }, timeout: statusTimeout)
        var finalView = observer.observe(final)
        while !finalView.settled, clock.now < settleEnd, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            final = await StatusClient.fetchAll(deployed.allReplicas.map { StatusTarget($0) }, timeout: statusTimeout)
            finalView = observer.observe(final)
        }
        for entry in deployment.processes where !entry.process.isRunning && !log.exited.withLock({ $0.contains(entry.info.name) }) {
            log.exited.withLock { $0.append(entry.info.name) }
        }
        await stopDeployment()
        if Task.isCancelled { throw CancellationError() }

        return report(settings: settings, kind: kind, original: original, deployed: deployed, plans: plans, recorder: recorder,
                      observer: observer, finalView: finalView, timeline: log.timeline.withLock { $0 }, exited: log.exited.withLock { $0 },
                      verifyRate: verifyRate)
    }

    static func report(settings: BenchSettings, kind: ProtocolKind, original: Topology, deployed: Topology, plans: [BenchClientPlan],
                       recorder: BenchRecorder, observer: LedgerObserver, finalView: LedgerObserver.View,
                       timeline: [BenchSecond], exited: [String], verifyRate: Double) -> BenchReport {
        let state = recorder.snapshot()
        let measured = settings.durationSeconds - settings.warmupSeconds
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let verifications = plans.isEmpty ? 1 : Double(plans.reduce(0) { $0 + $1.cluster.n }) / Double(plans.count)
        let boundTPS = verifyRate / verifications
        let throughput = Double(state.total.totalCount) / measured
        func group(_ name: String, _ histogram: Histogram<UInt64>?, clients: Int) -> BenchGroup {
            let histogram = histogram ?? BenchRecorder.histogram()
            return BenchGroup(name: name, clients: clients, committed: Int(histogram.totalCount),
                              throughput_tps: Double(histogram.totalCount) / measured, latency_ms: LatencySummary(histogram))
        }
        let regions = BenchPlan.clientRegions(of: original).map { region in
            group(region, state.byRegion[region], clients: plans.filter { $0.region == region }.count)
        }
        var clusters: [BenchClusterLine] = []
        for shard in deployed.shards {
            for cluster in shard.clusters {
                let label = "\(shard.name)/\(cluster.region)"
                let figures = group(label, state.byCluster[label], clients: plans.filter { $0.clusterLabel == label }.count)
                clusters.append(BenchClusterLine(cluster: label, region: cluster.region, n: cluster.n, f: cluster.f,
                                                 view: observer.maxView(cluster.id), clients: figures.clients, committed: figures.committed,
                                                 throughput_tps: figures.throughput_tps, latency_ms: figures.latency_ms))
            }
        }
        let shards = deployed.shards.map { shard -> BenchShardLine in
            let figures = group(shard.name, state.byShard[shard.name], clients: plans.filter { $0.shard == Int(shard.id.rawValue) }.count)
            let replicas = shard.clusters.flatMap(\.replicas)
            return BenchShardLine(shard: shard.name, height: finalView.heights[shard.name] ?? 0, replicas: replicas.count,
                                  replicas_answered: finalView.answered[shard.name] ?? 0, settled: finalView.settledShards.contains(shard.name),
                                  agreement: observer.agrees(shard.name) && (finalView.answered[shard.name] ?? 0) > 0,
                                  heads_compared: observer.compared(shard.name), committed: figures.committed,
                                  throughput_tps: figures.throughput_tps, latency_ms: figures.latency_ms)
        }
        let committed = Int(state.total.totalCount)
        return BenchReport(
            protocol: kind.rawValue, topology: original.name, replicas: deployed.allReplicas.count,
            cluster_count: deployed.shards.reduce(0) { $0 + $1.clusters.count }, shard_count: deployed.shards.count,
            batch_size: deployed.parameters.batchSize, emulate_wan: settings.emulateWAN, duration_s: settings.durationSeconds,
            warmup_s: settings.warmupSeconds, measured_s: measured, clients: plans.count, clients_per_region: settings.clientsPerRegion,
            workload: BenchWorkloadSummary(keys: settings.keyCount, zipf_theta: settings.zipfTheta, read_fraction: settings.readFraction,
                                           transfer_fraction: settings.transferFraction, cross_shard_fraction: settings.crossShardFraction,
                                           seed: settings.seed),
            committed: committed, refused: state.refused, refused_by_reason: state.refusedByReason, timeouts: state.timeouts, errors: state.errors,
            throughput_tps: Double(committed) / measured, latency_ms: LatencySummary(state.total), regions: regions,
            clusters: clusters, shards: shards,
            single_shard: BenchKindLine(committed: Int(state.singleShard.totalCount),
                                        throughput_tps: Double(state.singleShard.totalCount) / measured,
                                        latency_ms: LatencySummary(state.singleShard)),
            cross_shard: settings.crossShardFraction > 0 || state.crossShardCommitted.totalCount + state.crossShardAborted.totalCount > 0
                ? BenchCrossShardLine(committed: Int(state.crossShardCommitted.totalCount), aborted: Int(state.crossShardAborted.totalCount),
                                      aborts_by_reason: state.abortsByReason,
                                      throughput_tps: Double(state.crossShardCommitted.totalCount) / measured,
                                      latency_ms: LatencySummary(state.crossShardCommitted),
                                      aborted_latency_ms: LatencySummary(state.crossShardAborted),
                                      locks_held_at_end: finalView.crossShardLocks, in_progress_at_end: finalView.crossShardInProgress)
                : nil,
            view_changes: clusters.reduce(0) { $0 + $1.view },
            bound: BenchBound(cores: cores, verify_per_second_all_cores: verifyRate, verifications_per_transaction: verifications,
                              verification_bound_tps: boundTPS, achieved_of_bound: boundTPS > 0 ? throughput / boundTPS : 0),
            agreement: shards.allSatisfy(\.agreement), replicas_exited: exited.sorted(), timeline: timeline)
    }
}

/// What the progress task collects for the report.
final class BenchRunLog: Sendable {
    let timeline = Mutex<[BenchSecond]>([])
    let exited = Mutex<[String]>([])
}

/// Watches the replicas' status reports over a run: views, heights, and whether two replicas of a
/// shard ever reported different heads at one height (equal heads at equal heights mean equal ledgers).
final class LedgerObserver: Sendable {
    struct View {
        var views: UInt64 = 0
        var heights: [String: UInt64] = [:]
        var answered: [String: Int] = [:]
        var settledShards: Set<String> = []
        var unreachable = 0
        /// Summed over the replicas that answered (0 with one shard).
        var crossShardLocks = 0
        var crossShardInProgress = 0
        /// One height per shard, and no cross-shard transaction left unfinished.
        var settled = false
    }

    struct State {
        var maxView: [ClusterID: UInt64] = [:]
        /// Per shard, the first head reported at each height. A run of seconds has at most a few
        /// thousand heights per shard, so this stays small.
        var heads: [String: [UInt64: String]] = [:]
        var conflicts: [String: Int] = [:]
        var compared: [String: Int] = [:]
    }

    let topology: Topology
    let state = Mutex(State())

    init(topology: Topology) { self.topology = topology }

    func observe(_ results: [(target: StatusTarget, result: Result<ReplicaStatus, StatusFetchError>)]) -> View {
        var view = View()
        var heightsSeen: [String: Set<UInt64>] = [:]
        state.withLock { state in
            for (target, result) in results {
                guard case let .success(status) = result, let info = topology.replica(named: target.name) else {
                    view.unreachable += 1
                    continue
                }
                let shard = topology.shard(info.id.cluster.shard)?.name ?? status.shard
                state.maxView[info.id.cluster] = max(state.maxView[info.id.cluster] ?? 0, status.view)
                view.heights[shard] = max(view.heights[shard] ?? 0, status.height)
                view.answered[shard, default: 0] += 1
                heightsSeen[shard, default: []].insert(status.height)
                view.crossShardLocks += status.crossShardLocks ?? 0
                view.crossShardInProgress += status.crossShardInProgress ?? 0
                if let known = state.heads[shard]?[status.height] {
                    state.compared[shard, default: 0] += 1
                    if known != status.head { state.conflicts[shard, default: 0] += 1 }
                } else {
                    state.heads[shard, default: [:]][status.height] = status.head
                }
            }
            view.views = state.maxView.values.reduce(0, +)
        }
        view.settledShards = Set(topology.shards.map(\.name).filter { heightsSeen[$0]?.count == 1 })
        view.settled = view.settledShards.count == topology.shards.count && view.crossShardInProgress == 0
        return view
    }

    func maxView(_ cluster: ClusterID) -> UInt64 { state.withLock { $0.maxView[cluster] ?? 0 } }
    func agrees(_ shard: String) -> Bool { state.withLock { ($0.conflicts[shard] ?? 0) == 0 } }
    func compared(_ shard: String) -> Int { state.withLock { $0.compared[shard] ?? 0 } }
}

/// "12,345": figures people read at a glance.
func grouped(_ value: Double) -> String {
    let formatter = NumberFormatter()
    formatter.numberStyle = .decimal
    formatter.maximumFractionDigits = 0
    formatter.usesGroupingSeparator = true
    formatter.groupingSeparator = ","
    formatter.groupingSize = 3
    return formatter.string(from: NSNumber(value: value.rounded())) ?? String(format: "%.0f", value)
}

// MARK: Text, CSV and SVG

enum BenchText {
    static func render(_ report: BenchReport) -> String {
        func ms(_ value: Double) -> String { String(format: "%.1f", value) }
        var lines: [String] = []
        let latency = report.latency_ms
        lines.append("\(report.protocol) on \(report.topology): \(grouped(report.throughput_tps)) txn/s, latency p50 \(ms(latency.p50)) ms, p90 \(ms(latency.p90)) ms, p99 \(ms(latency.p99)) ms, max \(ms(latency.max)) ms; committed \(grouped(Double(report.committed))) in \(String(format: "%.1f", report.measured_s)) s after a \(String(format: "%.1f", report.warmup_s)) s warmup")
        lines.append("  configuration: \(report.replicas) replicas in \(report.cluster_count) cluster(s) of \(report.shard_count) shard(s), batch \(report.batch_size), WAN \(report.emulate_wan ? "emulated" : "not emulated"); \(report.clients) clients (\(report.clients_per_region) per region); \(grouped(Double(report.workload.keys))) keys, zipf \(report.workload.zipf_theta), reads \(Int(report.workload.read_fraction * 100))% of reads and updates, transfers \(Int(report.workload.transfer_fraction * 100))%")
        let errors = report.errors.values.reduce(0, +)
        if report.bound.verification_bound_tps > 0 {
            let bound = report.bound
            lines.append("  bound: \(grouped(bound.verification_bound_tps)) txn/s = \(grouped(bound.verify_per_second_all_cores)) Ed25519 verifications/s on this machine's \(bound.cores) cores / \(String(format: "%.1f", bound.verifications_per_transaction)) replicas verifying each transaction; achieved \(String(format: "%.0f", bound.achieved_of_bound * 100))% of it")
        }
        lines.append("  timeouts \(report.timeouts), other client errors \(errors), refused \(report.refused)\(report.refused_by_reason.isEmpty ? "" : " (" + report.refused_by_reason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"), view changes \(report.view_changes), replicas exited: \(report.replicas_exited.isEmpty ? "none" : report.replicas_exited.joined(separator: ", "))")
        for (reason, count) in report.errors.sorted(by: { $0.key < $1.key }) { lines.append("    \(count) x \(reason)") }
        lines.append("  agreement: " + (report.agreement ? "yes" : "NO") + " (" + report.shards.map { shard in
            "\(shard.shard) height \(shard.height) on \(shard.replicas_answered)/\(shard.replicas) replicas\(shard.settled ? "" : ", not settled")\(shard.agreement ? "" : ", HEADS DIFFER")"
        }.joined(separator: "; ") + ")")
        func row(_ name: String, _ extra: [String], _ committed: Int, _ tps: Double, _ latency: LatencySummary) -> [String] {
            [name] + extra + [grouped(Double(committed)), grouped(tps), ms(latency.p50), ms(latency.p90), ms(latency.p99), ms(latency.max)]
        }
        let figures = ["committed", "txn/s", "p50 ms", "p90 ms", "p99 ms", "max ms"]
        var tables: [String] = []
        if let cross = report.cross_shard {
            let reasons = cross.aborts_by_reason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            lines.append("  cross-shard (\(Int((report.workload.cross_shard_fraction * 100).rounded()))% of operations): committed \(grouped(Double(cross.committed))), aborted \(grouped(Double(cross.aborted)))\(reasons.isEmpty ? "" : " (\(reasons))"); at the end \(cross.locks_held_at_end) locks held, \(cross.in_progress_at_end) unfinished")
            tables.append(TextTable.render(header: ["transactions"] + figures, rows: [
                row("single-shard", [], report.single_shard.committed, report.single_shard.throughput_tps, report.single_shard.latency_ms),
                row("cross-shard committed", [], cross.committed, cross.throughput_tps, cross.latency_ms),
                row("cross-shard aborted", [], cross.aborted, Double(cross.aborted) / max(report.measured_s, 1e-9), cross.aborted_latency_ms),
            ]))
        }
        tables.append(TextTable.render(header: ["region", "clients"] + figures,
                                       rows: report.regions.map { row($0.name, ["\($0.clients)"], $0.committed, $0.throughput_tps, $0.latency_ms) }))
        tables.append(TextTable.render(header: ["cluster", "n", "f", "view", "clients"] + figures,
                                       rows: report.clusters.map { row($0.cluster, ["\($0.n)", "\($0.f)", "\($0.view)", "\($0.clients)"],
                                                                       $0.committed, $0.throughput_tps, $0.latency_ms) }))
        tables.append(TextTable.render(header: ["shard", "height", "agreement"] + figures,
                                       rows: report.shards.map { row($0.shard, ["\($0.height)", $0.agreement ? "yes" : "NO"],
                                                                     $0.committed, $0.throughput_tps, $0.latency_ms) }))
        for table in tables {
            lines.append("")
            lines.append(table.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func sweepTable(_ points: [BenchSweepPoint]) -> String {
        let rows = points.map { point -> [String] in
            [point.protocol, "\(point.clients_per_region)", "\(point.clients)", grouped(point.throughput_tps),
             String(format: "%.1f", point.latency_ms.p50), String(format: "%.1f", point.latency_ms.p99),
             String(format: "%.0f%%", point.achieved_of_bound * 100), "\(point.view_changes)", point.agreement ? "yes" : "NO"]
        }
        return TextTable.render(header: ["protocol", "per region", "clients", "txn/s", "p50 ms", "p99 ms", "of bound", "view changes", "agreement"],
                                rows: rows)
    }

    static func sweepCSV(_ points: [BenchSweepPoint]) -> String {
        var lines = ["protocol,clients_per_region,clients,throughput_tps,p50_ms,p90_ms,p99_ms,achieved_of_bound,agreement"]
        for point in points {
            lines.append([point.protocol, "\(point.clients_per_region)", "\(point.clients)", String(format: "%.1f", point.throughput_tps),
                          String(format: "%.2f", point.latency_ms.p50), String(format: "%.2f", point.latency_ms.p90),
                          String(format: "%.2f", point.latency_ms.p99), String(format: "%.3f", point.achieved_of_bound),
                          point.agreement ? "1" : "0"].joined(separator: ","))
        }
        return lines.joined(separator: "\n")
    }

    static func csv(_ reports: [BenchReport]) -> String {
        var lines = ["protocol,second,committed,throughput_tps,p50_ms,p99_ms,views,warmup"]
        for report in reports {
            for point in report.timeline {
                lines.append([report.protocol, "\(point.second)", "\(point.committed)", String(format: "%.1f", point.throughput_tps),
                              String(format: "%.2f", point.p50_ms), String(format: "%.2f", point.p99_ms), "\(point.views)",
                              point.warmup ? "1" : "0"].joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// A self-contained SVG: throughput above, p99 latency below, one line per protocol, warmup shaded.
enum BenchPlot {
    static let colors = ["geobft": "#1f77b4", "pbft": "#d62728"]

    static func svg(_ reports: [BenchReport]) -> String {
        let width = 760.0, panelHeight = 220.0, left = 70.0, right = 20.0, top = 40.0, gap = 50.0
        let seconds = Double(reports.map { $0.timeline.count }.max() ?? 1)
        let plotWidth = width - left - right
        var parts: [String] = []
        let height = top + 2 * panelHeight + gap + 40
        parts.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">")
        parts.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>")
        let title = reports.first.map { "geofabric bench \($0.topology): \($0.clients) clients\($0.emulate_wan ? ", WAN emulated" : "")" } ?? "geofabric bench"
        parts.append("<text x=\"\(left)\" y=\"20\" font-size=\"14\">\(escape(title))</text>")
        func x(_ second: Double) -> Double { left + plotWidth * second / max(1, seconds) }
        func panel(_ index: Int, label: String, value: (BenchSecond) -> Double) {
            let y0 = top + Double(index) * (panelHeight + gap)
            let peak = max(1, reports.flatMap { $0.timeline.map(value) }.max() ?? 1) * 1.1
            func y(_ v: Double) -> Double { y0 + panelHeight - panelHeight * v / peak }
            if let warmup = reports.first?.warmup_s, warmup > 0 {
                parts.append("<rect x=\"\(f(x(0)))\" y=\"\(f(y0))\" width=\"\(f(x(warmup) - x(0)))\" height=\"\(f(panelHeight))\" fill=\"#eeeeee\"/>")
                parts.append("<text x=\"\(f(x(0) + 4))\" y=\"\(f(y0 + 14))\" fill=\"#888888\">warmup</text>")
            }
            parts.append("<rect x=\"\(f(left))\" y=\"\(f(y0))\" width=\"\(f(plotWidth))\" height=\"\(f(panelHeight))\" fill=\"none\" stroke=\"#444444\"/>")
            for step in 0...4 {
                let v = peak * Double(step) / 4
                parts.append("<line x1=\"\(f(left))\" y1=\"\(f(y(v)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y(v)))\" stroke=\"#dddddd\"/>")
                parts.append("<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(escape(v >= 100 ? grouped(v) : String(format: "%.1f", v)))</text>")
            }
            let tickEvery = max(1, Int((seconds / 10).rounded(.up)))
            for second in stride(from: 0, through: Int(seconds), by: tickEvery) {
                parts.append("<text x=\"\(f(x(Double(second))))\" y=\"\(f(y0 + panelHeight + 16))\" text-anchor=\"middle\">\(second)</text>")
            }
            parts.append("<text x=\"\(f(left))\" y=\"\(f(y0 - 8))\">\(escape(label))</text>")
            for report in reports {
                // Each point sits at the end of the second it measures.
                let points = report.timeline.map { "\(f(x(Double($0.second)))),\(f(y(value($0))))" }.joined(separator: " ")
                parts.append("<polyline fill=\"none\" stroke=\"\(colors[report.protocol] ?? "#333333")\" stroke-width=\"2\" points=\"\(points)\"/>")
            }
        }
        panel(0, label: "throughput (txn/s per second)", value: \.throughput_tps)
        panel(1, label: "p99 latency (ms) of the transactions completed in each second", value: \.p99_ms)
        let legendY = top + 2 * panelHeight + gap + 30
        for (index, report) in reports.enumerated() {
            let lx = left + Double(index) * 200
            parts.append("<line x1=\"\(f(lx))\" y1=\"\(f(legendY - 4))\" x2=\"\(f(lx + 24))\" y2=\"\(f(legendY - 4))\" stroke=\"\(colors[report.protocol] ?? "#333333")\" stroke-width=\"3\"/>")
            parts.append("<text x=\"\(f(lx + 30))\" y=\"\(f(legendY))\">\(escape("\(report.protocol): \(grouped(report.throughput_tps)) txn/s"))</text>")
        }
        parts.append("<text x=\"\(f(left + plotWidth))\" y=\"\(f(legendY))\" text-anchor=\"end\">seconds</text>")
        parts.append("</svg>")
        return parts.joined(separator: "\n")
    }

    /// Throughput (x) against p50 and p99 latency (y), one line per protocol through its client
    /// counts: where the curve turns up is where the fabric saturates.
    static func sweepSVG(_ points: [BenchSweepPoint], topology: String) -> String {
        let width = 760.0, height = 460.0, left = 70.0, right = 20.0, top = 40.0, bottom = 70.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let maxX = max(1, points.map(\.throughput_tps).max() ?? 1) * 1.1
        let maxY = max(1, points.map(\.latency_ms.p99).max() ?? 1) * 1.1
        func x(_ v: Double) -> Double { left + plotWidth * v / maxX }
        func y(_ v: Double) -> Double { top + plotHeight - plotHeight * v / maxY }
        var parts = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">",
                     "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
                     "<text x=\"\(left)\" y=\"20\" font-size=\"14\">\(escape("geofabric bench \(topology): throughput against latency, by clients per region"))</text>",
                     "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#444444\"/>"]
        for step in 0...4 {
            let vx = maxX * Double(step) / 4, vy = maxY * Double(step) / 4
            parts.append("<line x1=\"\(f(left))\" y1=\"\(f(y(vy)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y(vy)))\" stroke=\"#dddddd\"/>")
            parts.append("<text x=\"\(f(left - 6))\" y=\"\(f(y(vy) + 4))\" text-anchor=\"end\">\(escape(String(format: "%.0f", vy)))</text>")
            parts.append("<text x=\"\(f(x(vx)))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\">\(escape(grouped(vx)))</text>")
        }
        parts.append("<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(top + plotHeight + 36))\" text-anchor=\"middle\">throughput (txn/s)</text>")
        parts.append("<text x=\"\(f(left))\" y=\"\(f(top - 8))\">latency (ms): p50 solid, p99 dashed</text>")
        for name in ["geobft", "pbft"] {
            let line = points.filter { $0.protocol == name }.sorted { $0.clients < $1.clients }
            guard !line.isEmpty else { continue }
            let color = colors[name] ?? "#333333"
            for (value, dash) in [(\BenchSweepPoint.latency_ms.p50, ""), (\BenchSweepPoint.latency_ms.p99, " stroke-dasharray=\"6 4\"")] {
                let coordinates = line.map { "\(f(x($0.throughput_tps))),\(f(y($0[keyPath: value])))" }.joined(separator: " ")
                parts.append("<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash) points=\"\(coordinates)\"/>")
            }
            for point in line {
                parts.append("<circle cx=\"\(f(x(point.throughput_tps)))\" cy=\"\(f(y(point.latency_ms.p50)))\" r=\"3\" fill=\"\(color)\"/>")
                parts.append("<text x=\"\(f(x(point.throughput_tps) + 5))\" y=\"\(f(y(point.latency_ms.p50) - 5))\" fill=\"\(color)\">\(point.clients_per_region)</text>")
            }
        }
        let legendY = height - 14
        for (index, name) in ["geobft", "pbft"].enumerated() where points.contains(where: { $0.protocol == name }) {
            let lx = left + Double(index) * 200
            parts.append("<line x1=\"\(f(lx))\" y1=\"\(f(legendY - 4))\" x2=\"\(f(lx + 24))\" y2=\"\(f(legendY - 4))\" stroke=\"\(colors[name] ?? "#333333")\" stroke-width=\"3\"/>")
            parts.append("<text x=\"\(f(lx + 30))\" y=\"\(f(legendY))\">\(name) (labels: clients per region)</text>")
        }
        parts.append("</svg>")
        return parts.joined(separator: "\n")
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
