// `geofabric bench [TOPOLOGY]`: the benchmark on real replica processes. It deploys the topology
// on this machine (as `up` does), drives closed-loop signed clients in every region that hosts a
// cluster, prints a progress line each second, and reports throughput, latency percentiles
// (HdrHistogram) per region, cluster and shard, the ledger heights, the view changes and whether
// the replicas of each shard agree on their ledger. `--protocol pbft` runs the same replicas as one
// PBFT cluster per shard (the baseline); `both` runs GeoBFT, then the baseline, on fresh ledgers;
// `--sweep-clients` runs once per client count. This file is the command (options, the runs, the
// output files); BenchRun.swift runs one benchmark, BenchReport.swift is what it reports.

import ArgumentParser
import Foundation
import GeoCore
import GeoSim

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
            protocol under that contention, not a deployment with one machine per replica. \
            --attach runs the clients only, against replicas already running at the topology's \
            addresses (deployed by `up`, bundles or Kubernetes; nothing is started or removed, the \
            client keys must be in the topology's key directory); --clients-region R runs only R's \
            clients, so that a load generator in each region can be combined with `bench merge`. \
            `geofabric bench merge A.json B.json ... [--json | --json-file FILE]` combines the --json-file reports of \
            attached load generators run at the same time (same topology, protocol, --duration and \
            --warmup; clients in different regions) into one report: counts and throughput add up, \
            latency percentiles come from the added histograms.
            """)

    @Argument(help: "The topology file (default: the embedded default topology); or `merge`, then the reports to combine.")
    var topology: String?

    @Argument(help: ArgumentHelp("With `merge`: the JSON reports of `bench --attach --json-file FILE` to combine.", valueName: "report"))
    var reports: [String] = []

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

    @Flag(name: .customLong("json"), help: "Print the result as JSON on standard output (the text report goes to standard error).")
    var jsonToStandardOutput = false

    @Option(name: .customLong("json-file"), help: "Write the result as JSON to this file ('-': as --json).")
    var jsonFile: String?

    /// Where the JSON goes: "-" for standard output, a file, or nowhere.
    var json: String? { jsonToStandardOutput ? "-" : jsonFile }

    @Option(help: "Write the per-second time series as CSV to this file.")
    var csv: String?

    @Option(help: "Draw throughput and p99 latency over time as an SVG file (with --sweep-clients: throughput against latency).")
    var plot: String?

    @Flag(help: "Run the clients against replicas already running at the topology's addresses: deploy nothing, remove nothing.")
    var attach = false

    @Option(name: .customLong("clients-region"), help: "Run only the clients of this region (one load generator per region; combine the --json reports with `bench merge`).")
    var clientsRegion: String?

    @Option(name: .customLong("sweep-clients"), parsing: .unconditional,
            help: "Run once per client count (per region), e.g. 16,64,256, and report throughput against latency.")
    var sweepClients: String?

    /// Enough closed-loop clients to load this machine: with one request outstanding each,
    /// fewer leave the replicas waiting for requests rather than for the CPU (throughput is then
    /// clients / latency, not what the fabric can do).
    static let defaultClientsInAll = 256
    static let minimumClientsPerRegion = 16

    func validate() throws {
        if topology == "merge" {
            guard !reports.isEmpty else { throw ValidationError("bench merge needs the JSON reports to combine: bench merge A.json B.json ...") }
            return
        }
        guard reports.isEmpty else { throw ValidationError("unexpected argument(s) after the topology: \(reports.joined(separator: " "))") }
        if jsonToStandardOutput, let topology, topology == "-" || topology.hasSuffix(".json") {
            throw ValidationError("--json is a flag (the JSON on standard output, the text on standard error); write a file with --json-file FILE")
        }
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
        if attach {
            guard sweepClients == nil else { throw ValidationError("--sweep-clients needs fresh ledgers for each run; it does not go with --attach") }
            guard protocolName != "both" else {
                throw ValidationError("--protocol both deploys each protocol in turn; with --attach give the protocol the replicas run (geobft, or pbft for replicas started with --pbft-baseline)")
            }
            guard dataDirectory == nil, !keepData else { throw ValidationError("--data-dir and --keep-data are for the replicas bench deploys; --attach deploys none") }
        }
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
        if topology == "merge" {
            try BenchMergeCommand.merge(files: reports, json: json).emit()
            return
        }
        let loaded = try LoadedTopology.load(topology)
        let model = loaded.topology
        let regions = BenchPlan.clientRegions(of: model)
        if let clientsRegion, !regions.contains(clientsRegion) {
            fail("--clients-region \(clientsRegion): no cluster of \(loaded.displayName) is in that region (regions with clusters: \(regions.joined(separator: ", ")))")
            throw ExitCode(1)
        }
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
        settings.attach = attach
        settings.clientsRegion = clientsRegion

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
                let clientRegions = clientsRegion.map { [$0] } ?? regions
                let target = attach ? "attached to the running replicas" : "data: \(directory)"
                progress("bench \(model.name)\(step): \(run.kind.rawValue), \(settings.durationSeconds) s (warmup \(settings.warmupSeconds) s), \(run.perRegion) clients per region in \(clientRegions.joined(separator: ", "))\(emulateWAN ? ", WAN emulated" : ""); \(target)")
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

        // With `--json` standard output is the JSON alone, so it can be piped; the text goes to standard error.
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
