import Foundation
import GeoCore
@testable import GeoFabricCLI
import Testing
import GeoTestKit

@Suite struct TopologyValidateCommandTests {
    @Test func validFileSummarises() async {
        let output = await TopologyValidation.run(path: "\(TestKit.repositoryRoot)/topologies/geo-4x4.yaml", json: false)
        #expect(output.exitCode == 0)
        #expect(output.standardOutput.contains("valid topology 'geo-4x4'"))
        #expect(output.standardOutput.contains("cluster 3 in belgium: n=4 f=1"))
        #expect(output.standardOutput.contains("s0-belgium-3"))
        // geo-4x4 uses development keys: validate warns (issue 19), and says nothing else.
        #expect(output.standardError.split(separator: "\n").map { $0.hasPrefix("warning: ") && $0.contains("uses development keys") } == [true])
    }

    @Test func validFileAsJSON() async throws {
        let output = await TopologyValidation.run(path: "\(TestKit.repositoryRoot)/topologies/paper-6x10.yaml", json: true)
        #expect(output.exitCode == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.standardOutput.utf8)) as? [String: Any])
        #expect(object["valid"] as? Bool == true)
        #expect(object["replicas"] as? Int == 60)
        let shards = try #require(object["shards"] as? [[String: Any]])
        let clusters = try #require(shards.first?["clusters"] as? [[String: Any]])
        #expect(clusters.map { $0["f"] as? Int } == Array(repeating: 3, count: 6))
    }

    @Test func invalidFileExitsOneNamingLineAndField() async throws {
        let path = try TestKit.writeTemporary("name: t\nregions: [a]\nshards:\n  - name: s0\n    clusters:\n      - {region: a, replicas: 2}\n")
        let output = await TopologyValidation.run(path: path, json: false)
        #expect(output.exitCode == 1)
        #expect(output.standardError.contains("\(path):6:"))
        #expect(output.standardError.contains("shards[0].clusters[0].replicas"))
        #expect(output.standardOutput.isEmpty)
        let json = await TopologyValidation.run(path: path, json: true)
        #expect(json.exitCode == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [String: Any])
        let error = try #require(object["error"] as? [String: Any])
        #expect(error["problem"] as? String == "too_few_replicas")
        #expect(error["line"] as? Int == 6)
    }

    @Test func missingFileExitsOne() async {
        let output = await TopologyValidation.run(path: "/nonexistent.yaml", json: false)
        #expect(output.exitCode == 1)
        #expect(output.standardError.contains("/nonexistent.yaml: no such file"))
    }

    @Test func argumentParsingReachesTheCommand() throws {
        let command = try GeoFabricCommand.parseAsRoot(["topology", "validate", "x.yaml", "--json"])
        let validate = try #require(command as? TopologyCommand.Validate)
        #expect(validate.file == "x.yaml" && validate.json)
        #expect(throws: (any Error).self) { try GeoFabricCommand.parseAsRoot(["topology", "validate"]) }
    }
}

@Suite struct KeysCommandTests {
    @Test func generateThenShowUsesTheGeneratedKeys() throws {
        let directory = NSTemporaryDirectory() + "geofabric-keys-cli-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let topologyText = """
            name: keyed
            regions: [a]
            clients: 2
            shards: [{name: s0, clusters: [{region: a, replicas: 4}]}]
            keys: {directory: \(directory)}
            """
        let path = try TestKit.writeTemporary(topologyText)
        let generated = KeyCommands.generate(topologyPath: path, directory: directory, json: false)
        #expect(generated.exitCode == 0, "\(generated.standardError)")
        #expect(FileManager.default.fileExists(atPath: directory + "/replicas/s0-a-3.key"))
        #expect(FileManager.default.fileExists(atPath: directory + "/clients/client-1.key"))
        let shown = KeyCommands.show(topologyPath: path, json: true)
        #expect(shown.exitCode == 0, "\(shown.standardError)")
        let keys = try #require(try JSONSerialization.jsonObject(with: Data(shown.standardOutput.utf8)) as? [String: String])
        #expect(keys.count == 4)
        let manifest = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: directory + "/manifest.json"))) as? [String: Any])
        let replicas = try #require(manifest["replicas"] as? [String: String])
        #expect(replicas == keys)
        // A second generate refuses to overwrite.
        #expect(KeyCommands.generate(topologyPath: path, directory: directory, json: false).exitCode == 1)
    }
}

/// Runs the built `geofabric` binary, as a user would.
@Suite struct BinaryTests {
    func binary() throws -> String {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [directory.appendingPathComponent("geofabric").path,
                          directory.deletingLastPathComponent().appendingPathComponent("geofabric").path]
        return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) },
                            "geofabric binary not found next to the test bundle (\(candidates))")
    }

    func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try binary())
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
    }

    @Test func validateExitCodes() throws {
        let good = try run(["topology", "validate", "\(TestKit.repositoryRoot)/topologies/local-1x4.yaml"])
        #expect(good.status == 0)
        #expect(good.output.contains("valid topology 'local-1x4'"))
        let path = try TestKit.writeTemporary("name: t\nregions: [a]\nshards: [{name: s0, clusters: [{region: b, replicas: 4}]}]\n")
        let bad = try run(["topology", "validate", path])
        #expect(bad.status == 1)
        #expect(bad.error.contains("\(path):3:"))
        #expect(bad.error.contains("unknown region 'b'"))
    }

    @Test func helpListsOnlyBuiltCommands() throws {
        let help = try run(["--help"])
        #expect(help.status == 0)
        for command in ["topology", "keys", "calibrate", "simulate"] { #expect(help.output.contains(command)) }
    }

    @Test func simulateSweepPrintsItsSummaryLine() throws {
        let result = try run(["simulate", "\(TestKit.repositoryRoot)/topologies/local-1x4.yaml", "--seeds", "3"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.hasPrefix("seeds 3, violations 0, committed "))
    }

    @Test func simulateRefusesBadOptions() throws {
        #expect(try run(["simulate", "--protocol", "raft"]).status != 0)
        #expect(try run(["simulate", "--sweep", "regions"]).status != 0)
    }
}
