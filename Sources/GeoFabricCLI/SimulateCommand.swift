// `geofabric simulate`: the deterministic simulator from the command line.

import ArgumentParser
import Foundation
import GeoCore
import GeoSim
import GeoTopology

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run replicas in the deterministic simulator under seeded faults and check safety and liveness.",
        discussion: """
            With --seeds N, runs N seeds (from --first-seed), each with a random fault plan: a lossy, \
            duplicating, reordering network, crashes and restarts, partitions, and up to f Byzantine \
            replicas per cluster, healed after \(FaultPlan.healSeconds) s, then \(FaultPlan.livenessSeconds) s in \
            which liveness must show. Exits 1 on any violation and prints the command that replays \
            the failing seed. With --seed S alone, runs and reports that one seed.
            """)

    @Argument(help: "The topology file (default: the embedded default topology).")
    var topology: String?

    @Option(help: "Number of seeds to run.")
    var seeds: Int?

    @Option(name: .customLong("first-seed"), help: "The first seed of a sweep.")
    var firstSeed: UInt64 = 1

    @Option(help: "Run this one seed and report it in detail.")
    var seed: UInt64?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if let seeds, seeds < 1 { throw ValidationError("--seeds must be at least 1") }
        if seeds != nil && seed != nil { throw ValidationError("give --seeds N or --seed S, not both") }
    }

    func run() throws {
        let model: Topology
        do {
            model = try topology.map { try TopologyLoader.load(path: $0) } ?? EmbeddedTopology.load()
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let replay = topology.map { "geofabric simulate \($0)" } ?? "geofabric simulate"
        if let seed {
            try runOne(model, seed: seed, replay: replay)
        } else {
            try sweep(model, count: seeds ?? 100, replay: replay)
        }
    }

    func runOne(_ model: Topology, seed: UInt64, replay: String) throws {
        let report = FaultPlan.random(topology: model, seed: seed).run()
        if json {
            print(JSONOutput.encode(SeedResult(report)))
        } else {
            print("seed \(seed): \(report.ok ? "ok" : "VIOLATIONS"); committed \(report.committed) transactions (\(report.committedAfterHeal) after heal), \(report.viewChanges) view changes started, \(report.messagesSent) messages (\(report.messagesDropped) dropped), \(report.events) events")
            print("heights: " + report.heights.sorted { $0.key < $1.key }.map { "\(model.replica($0.key)?.name ?? "?")=\($0.value)" }.joined(separator: " "))
            for violation in report.violations { print("  \(violation)") }
        }
        if !report.ok { throw ExitCode(1) }
    }

    func sweep(_ model: Topology, count: Int, replay: String) throws {
        let clock = ContinuousClock()
        let start = clock.now
        var lastProgress = start
        let seeds = firstSeed..<(firstSeed + UInt64(count))
        let summary = SeedSweep.run(topology: model, seeds: seeds) { seed, report in
            if !report.ok {
                FileHandle.standardError.write(Data("seed \(seed): \(report.violations.count) violation(s): \(report.violations[0]); replay: \(replay) --seed \(seed)\n".utf8))
            }
            if !json, clock.now - lastProgress > .seconds(2) {
                lastProgress = clock.now
                FileHandle.standardError.write(Data("  ... seed \(seed) of \(seeds.upperBound - 1)\n".utf8))
            }
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if json {
            print(JSONOutput.encode(SweepResult(summary, seconds: seconds, replay: replay)))
        } else {
            print("seeds \(summary.seedsRun), violations \(summary.failingSeeds.count), committed \(summary.committed) transactions, \(summary.viewChanges) view changes, \(summary.events) events, \(String(format: "%.1f", seconds)) s")
            for failing in summary.failingSeeds {
                print("  failing seed \(failing.seed): \(failing.violations[0])")
                print("  replay: \(replay) --seed \(failing.seed)")
            }
        }
        if !summary.failingSeeds.isEmpty { throw ExitCode(1) }
    }
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
        self.replay = summary.failingSeeds.map { "\(replay) --seed \($0.seed)" }
    }
}
