// `geofabric bench --attach` against replicas already running, and `geofabric bench merge`, which
// combines the JSON reports of load generators run in several regions (`--clients-region R` each)
// into one report. Percentiles cannot be averaged, so an attached run writes its latency
// histograms into its JSON (`histograms`, HdrHistogram buckets) and the merge adds them.

import Foundation
import GeoCore
import GeoNode
import Histogram

enum BenchAttach {
    /// Waits until every replica of `topology` answers its status port, at most `timeoutSeconds`.
    /// Then the run goes on if every cluster has n - f replicas answering (it can commit), with a
    /// warning naming the silent ones; otherwise it stops with the clusters that cannot. A replica
    /// that reports another cluster than `topology` gives it runs the other protocol (started with
    /// or without --pbft-baseline): the clients would wait on the wrong primaries, so it stops.
    /// A replica that is down is given this long to answer once every cluster has n - f.
    static let graceSeconds = 5.0

    static func waitForReplicas(_ topology: Topology, timeoutSeconds: Double,
                                progress: @Sendable (String) -> Void) async throws {
        let targets = topology.allReplicas.map { StatusTarget($0) }
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + .milliseconds(Int64(timeoutSeconds * 1000))
        var answering: Set<String> = []
        var statuses: [ReplicaStatus] = []
        func quorate() -> Bool {
            topology.shards.allSatisfy { shard in
                shard.clusters.allSatisfy { cluster in cluster.replicas.filter { answering.contains($0.name) }.count >= cluster.n - cluster.f }
            }
        }
        while !Task.isCancelled {
            let results = await StatusClient.fetchAll(targets, timeout: .seconds(1))
            statuses = results.compactMap { try? $0.result.get() }
            answering = Set(results.filter { (try? $0.result.get()) != nil }.map(\.target.name))
            if answering.count == targets.count || clock.now >= end { break }
            if quorate(), clock.now - start >= .milliseconds(Int64(graceSeconds * 1000)) { break }
            try? await Task.sleep(for: .milliseconds(250))
        }
        if Task.isCancelled { throw CancellationError() }
        for status in statuses {
            guard let info = topology.replica(named: status.replica) else {
                throw BenchError.deployment("a status port of the topology is answered by '\(status.replica)', which the topology does not name: another deployment runs there")
            }
            guard status.cluster == Int(info.id.cluster.index) else {
                throw BenchError.deployment("\(status.replica) reports cluster \(status.cluster), where this protocol puts it in cluster \(info.id.cluster.index): "
                    + "the replicas run the other protocol (--protocol pbft is for replicas started with --pbft-baseline, geobft for the others)")
            }
        }
        let silent = topology.allReplicas.map(\.name).filter { !answering.contains($0) }
        guard !silent.isEmpty else { return }
        var stuck: [String] = []
        for shard in topology.shards {
            for cluster in shard.clusters where cluster.replicas.filter({ answering.contains($0.name) }).count < cluster.n - cluster.f {
                stuck.append("\(shard.name)/\(cluster.region)")
            }
        }
        guard stuck.isEmpty else {
            throw BenchError.deployment("attached replicas not answering their status port after \(timeoutSeconds) s: "
                + silent.joined(separator: ", ") + "; cluster(s) \(stuck.joined(separator: ", ")) have fewer than n - f and cannot commit")
        }
        progress("warning: \(silent.count) replica(s) do not answer their status port: \(silent.joined(separator: ", ")); running anyway")
    }
}

/// An HdrHistogram as its non-empty buckets, [value, count] (value: the bucket's highest
/// equivalent value, which records back into the same bucket).
struct BenchHistogramData: Codable, Sendable, Equatable {
    var buckets: [[UInt64]]

    init(_ histogram: Histogram<UInt64>) {
        buckets = histogram.recordedValues().map { [$0.value, $0.count] }
    }

    var histogram: Histogram<UInt64> {
        var histogram = BenchRecorder.histogram()
        for bucket in buckets where bucket.count == 2 {
            _ = histogram.record(min(bucket[0], BenchRecorder.latencyMicrosecondsMax), count: bucket[1])
        }
        return histogram
    }
}

struct BenchHistograms: Codable, Sendable {
    var total: BenchHistogramData
    var by_region: [String: BenchHistogramData]
    var by_cluster: [String: BenchHistogramData]
    var by_shard: [String: BenchHistogramData]
    var single_shard: BenchHistogramData
    var cross_shard_committed: BenchHistogramData
    var cross_shard_aborted: BenchHistogramData

    init(_ state: BenchRecorder.State) {
        total = BenchHistogramData(state.total)
        by_region = state.byRegion.mapValues(BenchHistogramData.init)
        by_cluster = state.byCluster.mapValues(BenchHistogramData.init)
        by_shard = state.byShard.mapValues(BenchHistogramData.init)
        single_shard = BenchHistogramData(state.singleShard)
        cross_shard_committed = BenchHistogramData(state.crossShardCommitted)
        cross_shard_aborted = BenchHistogramData(state.crossShardAborted)
    }
}

enum BenchMergeError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case notAttached(file: String)
    case mismatch(file: String, reason: String)
    case regionTwice(region: String, files: [String])
    case noFiles

    var description: String {
        switch self {
        case let .unreadable(file, reason): return "\(file): not a bench report: \(reason)"
        case let .notAttached(file):
            return "\(file) has no latency histograms: merge combines reports of `bench --attach --json FILE` (the percentiles of other runs cannot be combined)"
        case let .mismatch(file, reason): return "\(file): \(reason)"
        case let .regionTwice(region, files):
            return "region \(region) has clients in \(files.joined(separator: " and ")): one load generator per region (they would share client ids)"
        case .noFiles: return "no report to merge"
        }
    }
}

enum BenchMerge {
    static func read(_ file: String) throws(BenchMergeError) -> BenchReport {
        guard let data = FileManager.default.contents(atPath: file) else { throw .unreadable(file: file, reason: "no such file") }
        do {
            return try JSONDecoder().decode(BenchReport.self, from: data)
        } catch {
            throw .unreadable(file: file, reason: "\(error)")
        }
    }

    /// One report from the reports of load generators that ran at the same time against one
    /// deployment, each with the clients of other regions: counts and rates add up, latencies
    /// come from the added histograms, views and heights are the highest seen, agreement holds if
    /// it held in every part. The per-second series is left out (each part has its own clock).
    static func merge(_ parts: [(file: String, report: BenchReport)]) throws(BenchMergeError) -> BenchReport {
        guard let (firstFile, first) = parts.first else { throw .noFiles }
        var histograms: [BenchHistograms] = []
        var regionOwner: [String: String] = [:]
        for (file, report) in parts {
            guard let recorded = report.histograms else { throw .notAttached(file: file) }
            histograms.append(recorded)
            guard report.topology == first.topology, report.protocol == first.protocol else {
                throw .mismatch(file: file, reason: "\(report.protocol) on \(report.topology), but \(firstFile) is \(first.protocol) on \(first.topology)")
            }
            guard report.duration_s == first.duration_s, report.warmup_s == first.warmup_s else {
                throw .mismatch(file: file, reason: "measured \(report.duration_s) s with a \(report.warmup_s) s warmup, \(firstFile) \(first.duration_s) s and \(first.warmup_s) s: "
                    + "run every load generator with the same --duration and --warmup")
            }
            for region in report.regions where region.clients > 0 {
                if let owner = regionOwner[region.name] { throw .regionTwice(region: region.name, files: [owner, file]) }
                regionOwner[region.name] = file
            }
        }
        func added(_ pick: (BenchHistograms) -> BenchHistogramData?) -> Histogram<UInt64> {
            var sum = BenchRecorder.histogram()
            for part in histograms { if let data = pick(part) { sum.add(data.histogram) } }
            return sum
        }
        let measured = first.measured_s
        func count(_ histogram: Histogram<UInt64>) -> Int { Int(histogram.totalCount) }
        func rate(_ histogram: Histogram<UInt64>) -> Double { Double(histogram.totalCount) / measured }
        let reports = parts.map(\.report)
        func sum(_ value: (BenchReport) -> Int) -> Int { reports.reduce(0) { $0 + value($1) } }
        func union(_ value: (BenchReport) -> [String: Int]) -> [String: Int] {
            reports.reduce(into: [:]) { merged, report in merged.merge(value(report)) { $0 + $1 } }
        }

        var merged = first
        let total = added { $0.total }
        merged.clients = sum(\.clients)
        merged.committed = count(total)
        merged.refused = sum(\.refused)
        merged.refused_by_reason = union(\.refused_by_reason)
        merged.timeouts = sum(\.timeouts)
        merged.errors = union(\.errors)
        merged.busy_answers_by_region = union(\.busy_answers_by_region)
        merged.backoffs_by_region = union(\.backoffs_by_region)
        merged.throughput_tps = rate(total)
        merged.latency_ms = LatencySummary(total)
        merged.regions = first.regions.map { line in
            let histogram = added { $0.by_region[line.name] }
            let clients = reports.flatMap(\.regions).filter { $0.name == line.name }.reduce(0) { $0 + $1.clients }
            return BenchGroup(name: line.name, clients: clients, committed: count(histogram), throughput_tps: rate(histogram),
                              latency_ms: LatencySummary(histogram))
        }
        merged.clusters = first.clusters.map { line in
            let histogram = added { $0.by_cluster[line.cluster] }
            var result = line
            let same = reports.flatMap(\.clusters).filter { $0.cluster == line.cluster }
            result.view = same.map(\.view).max() ?? line.view
            result.clients = same.reduce(0) { $0 + $1.clients }
            result.committed = count(histogram)
            result.throughput_tps = rate(histogram)
            result.latency_ms = LatencySummary(histogram)
            return result
        }
        merged.shards = first.shards.map { line in
            let histogram = added { $0.by_shard[line.shard] }
            let same = reports.flatMap(\.shards).filter { $0.shard == line.shard }
            var result = line
            result.height = same.map(\.height).max() ?? line.height
            result.replicas_answered = same.map(\.replicas_answered).max() ?? line.replicas_answered
            result.settled = same.allSatisfy(\.settled)
            result.agreement = same.allSatisfy(\.agreement)
            result.heads_compared = same.reduce(0) { $0 + $1.heads_compared }
            result.committed = count(histogram)
            result.throughput_tps = rate(histogram)
            result.latency_ms = LatencySummary(histogram)
            return result
        }
        let single = added { $0.single_shard }
        merged.single_shard = BenchKindLine(committed: count(single), throughput_tps: rate(single), latency_ms: LatencySummary(single))
        let crossLines = reports.compactMap(\.cross_shard)
        if var cross = crossLines.first {
            let committed = added { $0.cross_shard_committed }, aborted = added { $0.cross_shard_aborted }
            cross.committed = count(committed)
            cross.aborted = count(aborted)
            cross.aborts_by_reason = crossLines.reduce(into: [:]) { merged, line in merged.merge(line.aborts_by_reason) { $0 + $1 } }
            cross.throughput_tps = rate(committed)
            cross.latency_ms = LatencySummary(committed)
            cross.aborted_latency_ms = LatencySummary(aborted)
            cross.locks_held_at_end = crossLines.map(\.locks_held_at_end).max() ?? 0
            cross.in_progress_at_end = crossLines.map(\.in_progress_at_end).max() ?? 0
            cross.unfinished_at_end = Array(Set(crossLines.flatMap(\.unfinished_at_end))).sorted()
            merged.cross_shard = cross
        }
        merged.view_changes = merged.clusters.reduce(0) { $0 + $1.view }
        merged.bound = BenchBound(cores: 0, verify_per_second_all_cores: 0, verifications_per_transaction: first.bound.verifications_per_transaction,
                                  verification_bound_tps: 0, achieved_of_bound: 0)
        merged.agreement = reports.allSatisfy(\.agreement)
        merged.replicas_exited = Array(Set(reports.flatMap(\.replicas_exited))).sorted()
        merged.settle_s = reports.map(\.settle_s).max() ?? 0
        merged.replica_memory = []
        merged.timeline = []
        merged.clients_region = nil
        merged.histograms = BenchHistograms(total: total, byRegion: Dictionary(uniqueKeysWithValues: first.regions.map { region in
            (region.name, added { $0.by_region[region.name] })
        }), byCluster: Dictionary(uniqueKeysWithValues: first.clusters.map { line in (line.cluster, added { $0.by_cluster[line.cluster] }) }),
            byShard: Dictionary(uniqueKeysWithValues: first.shards.map { line in (line.shard, added { $0.by_shard[line.shard] }) }),
            singleShard: single, crossShardCommitted: added { $0.cross_shard_committed }, crossShardAborted: added { $0.cross_shard_aborted })
        merged.merged_from = parts.map(\.file)
        return merged
    }
}

extension BenchHistograms {
    init(total: Histogram<UInt64>, byRegion: [String: Histogram<UInt64>], byCluster: [String: Histogram<UInt64>],
         byShard: [String: Histogram<UInt64>], singleShard: Histogram<UInt64>, crossShardCommitted: Histogram<UInt64>,
         crossShardAborted: Histogram<UInt64>) {
        self.total = BenchHistogramData(total)
        by_region = byRegion.mapValues(BenchHistogramData.init)
        by_cluster = byCluster.mapValues(BenchHistogramData.init)
        by_shard = byShard.mapValues(BenchHistogramData.init)
        single_shard = BenchHistogramData(singleShard)
        cross_shard_committed = BenchHistogramData(crossShardCommitted)
        cross_shard_aborted = BenchHistogramData(crossShardAborted)
    }
}

/// `geofabric bench merge A.json B.json ... [--json FILE]`. Parsed by BenchCommand (a subcommand
/// cannot follow a command that takes a positional argument, the topology, in ArgumentParser):
/// `merge` in the topology's place, then the reports.
enum BenchMergeCommand {
    static func merge(files: [String], json: String?) -> CommandOutput {
        var output = CommandOutput()
        do {
            var parts: [(file: String, report: BenchReport)] = []
            for file in files { parts.append((file, try BenchMerge.read(file))) }
            let merged = try BenchMerge.merge(parts)
            let text = "merged \(files.count) report(s): \(files.joined(separator: ", "))\n" + BenchText.render(merged)
            if json == "-" { output.err(text) } else { output.out(text) }
            if let json {
                let encoded = JSONOutput.encode(merged)
                if json == "-" {
                    output.out(encoded)
                } else {
                    do {
                        try (encoded + "\n").write(toFile: json, atomically: true, encoding: .utf8)
                    } catch {
                        throw BenchMergeError.unreadable(file: json, reason: "cannot write: \(error.localizedDescription)")
                    }
                }
            }
            if !merged.agreement { output.exitCode = 1 }
        } catch {
            output.exitCode = 1
            output.err("error: \(error)")
        }
        return output
    }
}
