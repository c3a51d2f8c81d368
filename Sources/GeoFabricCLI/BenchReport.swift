// What `geofabric bench` reports: the JSON shape (its keys are the operator interface, so they are
// spelled as they appear), and its renderings as text, CSV and SVG.

import Foundation
import GeoCore
import Histogram

// MARK: Report

struct LatencySummary: Codable, Sendable {
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

struct BenchGroup: Codable, Sendable {
    var name: String
    var clients: Int
    var committed: Int
    var throughput_tps: Double
    var latency_ms: LatencySummary
}

struct BenchClusterLine: Codable, Sendable {
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

struct BenchShardLine: Codable, Sendable {
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

struct BenchSecond: Codable, Sendable {
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

struct BenchWorkloadSummary: Codable, Sendable {
    var keys: Int
    var zipf_theta: Double
    var read_fraction: Double
    var transfer_fraction: Double
    var cross_shard_fraction: Double
    var seed: UInt64
}

struct BenchReport: Codable, Sendable {
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
    /// Admission control: busy answers the clients got from replicas with no room, and the
    /// backoffs they waited (jittered, exponential), per client region.
    var busy_answers_by_region: [String: Int] = [:]
    var backoffs_by_region: [String: Int] = [:]
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
    /// Seconds from the clients' stop until the replicas settled (or were given up on).
    var settle_s: Double
    /// Each replica's resident memory when the warmup ended and when the measurement ended: a
    /// replica whose memory grows with the ledger shows here (Linux; empty elsewhere).
    var replica_memory: [BenchReplicaMemory] = []
    var timeline: [BenchSecond]
    /// `bench --attach`: the clients ran against replicas already running (the bound is then
    /// unknown: the replicas verify on their own machines); `--clients-region`: only that region's.
    var attached: Bool?
    var clients_region: String?
    /// With --attach: the latency histograms behind the percentiles, so `bench merge` can combine
    /// load generators exactly (BenchMerge.swift).
    var histograms: BenchHistograms?
    /// `bench merge`: the files combined.
    var merged_from: [String]?
}

struct BenchReplicaMemory: Codable, Sendable {
    var replica: String
    var rss_start_mib: Double
    /// A minute into the run (nil in a shorter one): what the end is to be compared with, since
    /// the first minute fills caches and the state.
    var rss_60s_mib: Double?
    var rss_end_mib: Double
}

struct BenchBound: Codable, Sendable {
    var cores: Int
    /// Measured on this machine on all its cores together: the median of `verify_samples` slices,
    /// half just before the run and half just after it, between `verify_min` and `verify_max`;
    /// `verify_spread` = (max - min) / median.
    var verify_per_second_all_cores: Double
    var verify_samples: Int? = nil
    var verify_min: Double? = nil
    var verify_max: Double? = nil
    var verify_spread: Double? = nil
    /// Client-signature verifications per committed transaction, as the replicas counted them
    /// (`verifications_measured`), else the designated f + 1.
    var verifications_per_transaction: Double
    /// f + 1 of the clients' home clusters, averaged over the clients: what each transaction
    /// costs without faults (GeoCore's SignatureDuty).
    var verifications_designated: Double? = nil
    var verifications_measured: Bool? = nil
    var verification_bound_tps: Double
    /// throughput_tps / verification_bound_tps.
    var achieved_of_bound: Double
}

struct BenchKindLine: Codable, Sendable {
    var committed: Int
    var throughput_tps: Double
    var latency_ms: LatencySummary
}

struct BenchCrossShardLine: Codable, Sendable {
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
    /// What the replicas said of those ("s0-east-1: coordinator of xs(0:3#7) since round 41,
    /// waiting for shard#1"), the oldest few per replica; empty when the run settled.
    var unfinished_at_end: [String]
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

// MARK: Text, CSV and SVG

enum BenchText {
    static func render(_ report: BenchReport) -> String {
        func ms(_ value: Double) -> String { String(format: "%.1f", value) }
        var lines: [String] = []
        let latency = report.latency_ms
        lines.append("\(report.protocol) on \(report.topology): \(grouped(report.throughput_tps)) txn/s, latency p50 \(ms(latency.p50)) ms, p90 \(ms(latency.p90)) ms, p99 \(ms(latency.p99)) ms, max \(ms(latency.max)) ms; committed \(grouped(Double(report.committed))) in \(String(format: "%.1f", report.measured_s)) s after a \(String(format: "%.1f", report.warmup_s)) s warmup")
        lines.append("  configuration: \(report.replicas) replicas in \(report.cluster_count) cluster(s) of \(report.shard_count) shard(s), batch \(report.batch_size), WAN \(report.emulate_wan ? "emulated" : "not emulated"); \(report.clients) clients (\(report.clients_per_region) per region); \(grouped(Double(report.workload.keys))) keys, zipf \(report.workload.zipf_theta), reads \(Int(report.workload.read_fraction * 100))% of reads and updates, transfers \(Int(report.workload.transfer_fraction * 100))%")
        if report.attached == true {
            let whose = report.clients_region.map { "only the clients of \($0)" } ?? "the clients of every region"
            lines.append("  attached to replicas already running (\(whose)); the verification bound of their machines is not measured"
                         + (report.merged_from.map { "; merged from \($0.joined(separator: ", "))" } ?? ""))
        }
        let errors = report.errors.values.reduce(0, +)
        if report.bound.verification_bound_tps > 0 {
            let bound = report.bound
            lines.append("  bound: \(grouped(bound.verification_bound_tps)) txn/s = \(grouped(bound.verify_per_second_all_cores)) Ed25519 verifications/s on this machine's \(bound.cores) cores\(bound.verifySamplesText) / \(String(format: "%.2f", bound.verifications_per_transaction)) verifications per transaction (\(bound.verifications_measured == true ? "counted by the replicas" : "not counted: f + 1 assumed")\(bound.verifications_designated.map { String(format: "; f + 1 = %.1f", $0) } ?? "")); achieved \(String(format: "%.0f", bound.achieved_of_bound * 100))% of it")
        }
        if !report.replica_memory.isEmpty {
            let start = report.replica_memory.map(\.rss_start_mib), end = report.replica_memory.map(\.rss_end_mib)
            let minute = report.replica_memory.compactMap(\.rss_60s_mib)
            lines.append(String(format: "  replica memory (RSS) %.0f-%.0f MiB after the warmup, ", start.min()!, start.max()!)
                         + (minute.isEmpty ? "" : String(format: "%.0f-%.0f MiB a minute in, ", minute.min()!, minute.max()!))
                         + String(format: "%.0f-%.0f MiB at the end", end.min()!, end.max()!))
        }
        let busy = report.busy_answers_by_region.values.reduce(0, +)
        if busy > 0 {
            lines.append("  busy answers \(busy), backoffs \(report.backoffs_by_region.values.reduce(0, +)) ("
                         + report.busy_answers_by_region.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")")
        }
        lines.append("  timeouts \(report.timeouts), other client errors \(errors), refused \(report.refused)\(report.refused_by_reason.isEmpty ? "" : " (" + report.refused_by_reason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"), view changes \(report.view_changes), replicas exited: \(report.replicas_exited.isEmpty ? "none" : report.replicas_exited.joined(separator: ", "))")
        for (reason, count) in report.errors.sorted(by: { $0.key < $1.key }) { lines.append("    \(count) x \(reason)") }
        lines.append("  agreement: " + (report.agreement ? "yes" : "NO") + " (" + report.shards.map { shard in
            "\(shard.shard) height \(shard.height) on \(shard.replicas_answered)/\(shard.replicas) replicas\(shard.settled ? "" : ", not settled")\(shard.agreement ? "" : ", HEADS DIFFER")"
        }.joined(separator: "; ") + ")" + String(format: ", %.1f s after the clients stopped", report.settle_s))
        func row(_ name: String, _ extra: [String], _ committed: Int, _ tps: Double, _ latency: LatencySummary) -> [String] {
            [name] + extra + [grouped(Double(committed)), grouped(tps), ms(latency.p50), ms(latency.p90), ms(latency.p99), ms(latency.max)]
        }
        let figures = ["committed", "txn/s", "p50 ms", "p90 ms", "p99 ms", "max ms"]
        var tables: [String] = []
        if let cross = report.cross_shard {
            let reasons = cross.aborts_by_reason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            lines.append("  cross-shard (\(Int((report.workload.cross_shard_fraction * 100).rounded()))% of operations): committed \(grouped(Double(cross.committed))), aborted \(grouped(Double(cross.aborted)))\(reasons.isEmpty ? "" : " (\(reasons))"); at the end \(cross.locks_held_at_end) locks held, \(cross.in_progress_at_end) unfinished")
            for line in cross.unfinished_at_end { lines.append("    unfinished: \(line)") }
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

extension BenchBound {
    /// ", median of 10 before and after the run, 24,100 to 26,900: spread 11%", or nothing.
    var verifySamplesText: String {
        guard let samples = verify_samples, samples > 1, let low = verify_min, let high = verify_max, let spread = verify_spread else { return "" }
        return " (median of \(samples) before and after the run, \(grouped(low)) to \(grouped(high)): spread \(String(format: "%.0f", spread * 100))%)"
    }
}
