// `bench --attach` (clients only, against replicas already running), `--clients-region`, and
// `bench merge` of two regions' load generators run at the same time.

import ArgumentParser
import Foundation
import GeoCore
@testable import GeoFabricCLI
import Testing
import GeoTestKit

@Suite(.serialized) struct BenchAttachTests {
    static let yaml = """
        name: attach-2x4
        regions: [oregon, iowa]
        wan:
          - {between: [oregon, iowa], rtt_ms: 38, mbit_s: 669}
        clients: 16
        base_port: 18650
        shards:
          - name: s0
            clusters:
              - {region: oregon, replicas: 4}
              - {region: iowa, replicas: 4}
        protocol: {batch_size: 20, batch_delay_ms: 2}
        keys: dev
        """

    func settings(region: String?) -> BenchSettings {
        var settings = BenchSettings()
        settings.durationSeconds = 3
        settings.warmupSeconds = 1
        settings.clientsPerRegion = 4
        settings.keyCount = 100
        settings.attach = true
        settings.clientsRegion = region
        settings.readyTimeoutSeconds = 30
        return settings
    }

    @Test func twoRegionsLoadGeneratorsAttachAndMerge() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: builtTool), "build the tool first (swift build): \(builtTool)")
        let path = try TestKit.writeTemporary(Self.yaml, name: "topology.yaml")
        let directory = (path as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let loaded = try LoadedTopology.load(path)
        let deployment = try LocalDeployment.start(loaded, dataDirectory: directory + "/data", emulateWAN: false, executable: builtTool)
        do {
            try await deployment.waitUntilReady(timeout: .seconds(60))
        } catch {
            await deployment.stop()
            throw error
        }

        // One load generator per region, at the same time, as operators would run them.
        async let oregonRun = LiveBenchmark.run(settings(region: "oregon"), topology: loaded, protocol: .geobft, dataDirectory: directory + "/unused-a",
                                                executable: "/nonexistent", progress: { _ in })
        async let iowaRun = LiveBenchmark.run(settings(region: "iowa"), topology: loaded, protocol: .geobft, dataDirectory: directory + "/unused-b",
                                              executable: "/nonexistent", progress: { _ in })
        let (oregon, iowa) = try await (oregonRun, iowaRun)
        // It deployed nothing and removed nothing: the replicas run on, their data is there.
        #expect(deployment.processes.allSatisfy { $0.process.isRunning }, "attached runs leave the replicas running")
        #expect(FileManager.default.fileExists(atPath: directory + "/data/s0-oregon-0/replica.log"))
        #expect(!FileManager.default.fileExists(atPath: directory + "/unused-a") && !FileManager.default.fileExists(atPath: directory + "/unused-b"))

        for (report, region) in [(oregon, "oregon"), (iowa, "iowa")] {
            #expect(report.attached == true && report.clients_region == region && report.histograms != nil)
            #expect(report.clients == 4 && report.committed > 0 && report.agreement, "\(region): \(report.committed) committed")
            #expect(report.regions.map { $0.name == region ? $0.clients : -$0.clients } == (region == "oregon" ? [4, 0] : [0, 4]))
            #expect(report.bound.verification_bound_tps == 0, "attached: the replicas' machines are not measured")
        }

        // Through the files, as `bench merge A.json B.json` reads them.
        let fileA = directory + "/oregon.json", fileB = directory + "/iowa.json"
        try JSONOutput.encode(oregon).write(toFile: fileA, atomically: true, encoding: .utf8)
        try JSONOutput.encode(iowa).write(toFile: fileB, atomically: true, encoding: .utf8)
        let output = BenchMergeCommand.merge(files: [fileA, fileB], json: directory + "/merged.json")
        #expect(output.exitCode == 0, "\(output.standardError)")
        #expect(output.standardOutput.contains("merged 2 report(s)"))
        let merged = try BenchMerge.read(directory + "/merged.json")
        #expect(merged.committed == oregon.committed + iowa.committed)
        #expect(merged.clients == 8 && merged.regions.map(\.clients) == [4, 4])
        #expect(merged.regions.map(\.committed) == [oregon.committed, iowa.committed])
        #expect(abs(merged.throughput_tps - (oregon.throughput_tps + iowa.throughput_tps)) < 1e-6)
        // Histograms hold 3 significant digits: a merged figure is exact to 0.1%.
        let partsMax = max(oregon.latency_ms.max, iowa.latency_ms.max)
        #expect(merged.latency_ms.max >= partsMax && merged.latency_ms.max <= partsMax * 1.001, "\(merged.latency_ms.max) vs \(partsMax)")
        #expect(merged.latency_ms.p50 >= min(oregon.latency_ms.p50, iowa.latency_ms.p50) * 0.99
                && merged.latency_ms.p50 <= max(oregon.latency_ms.p50, iowa.latency_ms.p50) * 1.01)
        #expect(merged.agreement && merged.merged_from == [fileA, fileB])
        #expect(merged.clusters.map(\.committed) == [oregon.committed, iowa.committed], "each region's clients use their own cluster")

        // A second attached run reuses the same client ids on the same ledgers (all regions now).
        let again = try await LiveBenchmark.run(settings(region: nil), topology: loaded, protocol: .geobft, dataDirectory: directory + "/unused-c",
                                                executable: "/nonexistent", progress: { _ in })
        #expect(again.committed > 0 && again.timeouts == 0 && again.agreement, "second attached run: \(again.committed) committed, \(again.timeouts) timeouts")
        #expect(again.shards.allSatisfy { $0.settled }, "with every region's clients the run settles")
        #expect(deployment.processes.allSatisfy { $0.process.isRunning })
        // Attached with the other protocol than the replicas run: refused before any client starts.
        await #expect(throws: BenchError.self) {
            try await LiveBenchmark.run(settings(region: nil), topology: loaded, protocol: .pbft, dataDirectory: directory + "/unused-d",
                                        executable: "/nonexistent", progress: { _ in })
        }
        await deployment.stop()

        // Refusals: a report without histograms, one region twice, another topology.
        var plain = oregon
        plain.histograms = nil
        #expect(throws: BenchMergeError.notAttached(file: "plain")) { try BenchMerge.merge([("a", oregon), ("plain", plain)]) }
        #expect(throws: BenchMergeError.regionTwice(region: "oregon", files: ["a", "b"])) { try BenchMerge.merge([("a", oregon), ("b", oregon)]) }
        var other = iowa
        other.topology = "elsewhere"
        #expect(throws: BenchMergeError.self) { try BenchMerge.merge([("a", oregon), ("b", other)]) }
        let missing = BenchMergeCommand.merge(files: [directory + "/nope.json"], json: nil)
        #expect(missing.exitCode == 1 && missing.standardError.contains("nope.json"))
    }

    @Test func theCommandLineParsesAttachAndMerge() throws {
        let merge = try GeoFabricCommand.parseAsRoot(["bench", "merge", "a.json", "b.json", "--json-file", "m.json"])
        #expect((merge as? BenchCommand)?.topology == "merge" && (merge as? BenchCommand)?.reports == ["a.json", "b.json"])
        #expect((merge as? BenchCommand)?.json == "m.json")
        let attach = try GeoFabricCommand.parseAsRoot(["bench", "t.yaml", "--attach", "--clients-region", "iowa"])
        #expect((attach as? BenchCommand)?.attach == true && (attach as? BenchCommand)?.clientsRegion == "iowa")
        #expect((attach as? BenchCommand)?.topology == "t.yaml")
        for refused in [["bench", "--attach", "--sweep-clients", "4,8"], ["bench", "--attach", "--protocol", "both"],
                        ["bench", "--attach", "--data-dir", "x"], ["bench", "merge"], ["bench", "t.yaml", "extra.json"]] {
            #expect(throws: (any Error).self, "\(refused)") { try GeoFabricCommand.parseAsRoot(refused) }
        }
    }
}
