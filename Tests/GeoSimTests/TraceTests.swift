import Foundation
import GeoCore
import GeoTopology
import Testing
import GeoTestKit

/// Golden trace tests: each file in Tests/GeoSimTests/traces/ is a script of StepHarness
/// commands (lines beginning `> `), each followed by the lines it must produce. A change in the
/// core's behaviour shows as a changed line. After a deliberate change, rewrite the files with
/// `GEOFABRIC_UPDATE_TRACES=1 swift test --filter TraceTests` and read the diff before committing.
///
/// `> topology NAME [key=value ...]` starts a harness on topologies/NAME.yaml, with protocol
/// parameters overridden (batch_size, window, checkpoint_every, snapshot_every, view_timeout_ms,
/// remote_timeout_ms, batch_delay_ms), and `clusters=N` keeps the first N clusters of each shard.
@Suite struct TraceTests {
    static let directory: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("traces")

    static let files: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".trace") }.sorted()
    }()

    struct Block {
        var comments: [String]
        var command: String
        var expected: [String]
    }

    static func parse(_ text: String) -> (blocks: [Block], trailing: [String]) {
        var blocks: [Block] = []
        var comments: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("> ") {
                blocks.append(Block(comments: comments, command: String(line.dropFirst(2)), expected: []))
                comments = []
            } else if line.hasPrefix("#") || blocks.isEmpty {
                comments.append(line)
            } else if !comments.isEmpty {
                comments.append(line)
            } else {
                blocks[blocks.count - 1].expected.append(line)
            }
        }
        // Blank lines separate blocks: they belong to no output.
        for index in blocks.indices {
            while blocks[index].expected.last == "" { blocks[index].expected.removeLast() }
        }
        return (blocks, comments)
    }

    static func topology(_ words: [String]) throws -> Topology {
        guard words.count >= 2 else { throw StepHarness.ScriptError.bad("usage: topology NAME [key=value ...]") }
        var topology = TestKit.shippedTopology(words[1])
        for setting in words.dropFirst(2) {
            let parts = setting.split(separator: "=").map(String.init)
            guard parts.count == 2, let value = Int(parts[1]) else { throw StepHarness.ScriptError.bad("bad setting '\(setting)'") }
            switch parts[0] {
            case "batch_size": topology.parameters.batchSize = value
            case "window": topology.parameters.window = value
            case "checkpoint_every": topology.parameters.checkpointEvery = value
            case "snapshot_every": topology.parameters.snapshotEvery = value
            case "view_timeout_ms": topology.parameters.viewTimeoutMilliseconds = value
            case "remote_timeout_ms": topology.parameters.remoteTimeoutMilliseconds = value
            case "batch_delay_ms": topology.parameters.batchDelayMilliseconds = value
            case "clusters": for index in topology.shards.indices { topology.shards[index].clusters = Array(topology.shards[index].clusters.prefix(value)) }
            default: throw StepHarness.ScriptError.bad("unknown setting '\(parts[0])'")
            }
        }
        return topology
    }

    /// Runs a trace script; returns each block with the lines it actually produced.
    static func run(_ blocks: [Block]) throws -> [Block] {
        var harness: StepHarness?
        var results: [Block] = []
        for block in blocks {
            var actual: [String]
            let words = block.command.split(separator: " ").map(String.init)
            if words.first == "topology" {
                let topology = try Self.topology(words)
                harness = StepHarness(topology)
                actual = topology.shards.flatMap(\.clusters).map { cluster in
                    "\(cluster.id): \(cluster.replicas.map(\.name).joined(separator: " ")) (n \(cluster.n), f \(cluster.f))"
                }
            } else {
                guard let harness else { throw StepHarness.ScriptError.bad("a trace begins with '> topology NAME'") }
                actual = try harness.run(block.command)
            }
            results.append(Block(comments: block.comments, command: block.command, expected: actual))
        }
        return results
    }

    static func render(_ blocks: [Block], trailing: [String]) -> String {
        var lines: [String] = []
        for block in blocks {
            lines += block.comments
            lines.append("> " + block.command)
            lines += block.expected
            lines.append("")
        }
        lines += trailing.filter { !$0.isEmpty }
        return lines.joined(separator: "\n")
    }

    @Test func thereAreTracesToCheck() {
        #expect(Self.files.count >= 12, "traces in \(Self.directory.path): \(Self.files)")
    }

    @Test(arguments: files)
    func traceMatchesItsGoldenFile(file: String) throws {
        let path = Self.directory.appendingPathComponent(file).path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let (blocks, trailing) = Self.parse(text)
        #expect(!blocks.isEmpty, "\(file) holds no commands")
        let actual = try Self.run(blocks)
        if ProcessInfo.processInfo.environment["GEOFABRIC_UPDATE_TRACES"] == "1" {
            try Self.render(actual, trailing: trailing).write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        for (want, got) in zip(blocks, actual) where want.expected != got.expected {
            let index = zip(want.expected, got.expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(want.expected.count, got.expected.count)
            let wanted = index < want.expected.count ? want.expected[index] : "(nothing)"
            let produced = index < got.expected.count ? got.expected[index] : "(nothing)"
            Issue.record("""
                \(file): '> \(want.command)' differs at output line \(index + 1):
                  expected: \(wanted)
                  produced: \(produced)
                (\(got.expected.count) lines produced, \(want.expected.count) expected; if the change is meant, \
                GEOFABRIC_UPDATE_TRACES=1 swift test --filter TraceTests rewrites the file)
                """)
            return
        }
    }

    /// The same script twice in one process gives the same lines: the core is deterministic
    /// (no dictionary order, clock or randomness leaks into its effects).
    @Test func aTraceIsDeterministic() throws {
        guard let file = Self.files.first(where: { $0.contains("view-change") }) ?? Self.files.first else { return }
        let text = try String(contentsOfFile: Self.directory.appendingPathComponent(file).path, encoding: .utf8)
        let blocks = Self.parse(text).blocks
        #expect(try Self.run(blocks).map(\.expected) == Self.run(blocks).map(\.expected))
    }
}
