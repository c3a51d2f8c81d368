// tools/netns-rehearsal.sh end to end: a two-region topology with explicit addresses
// (10.82.x.y:7000) runs as eight network-namespace hosts started from `deploy bundles` alone;
// `bench --attach` from a region's client namespace commits; the oregon primary's host is killed;
// commits continue (after a view change) and the seven others agree on one head. Needs root,
// network namespaces and the geofabric binary next to the tests; skipped, saying which, without.

import Foundation
import GeoCore
import GeoCrypto
@testable import GeoFabricCLI
import GeoTopology
import Testing
import GeoTestKit

private enum Rehearsal {
    static let script = TestKit.repositoryRoot + "/tools/netns-rehearsal.sh"

    static let missingPrerequisite: String? = {
        if geteuid() != 0 { return "not running as root (network namespaces need root)" }
        if !FileManager.default.isExecutableFile(atPath: builtTool) { return "no geofabric binary next to the tests (swift build --build-tests)" }
        for tool in ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"] where FileManager.default.isExecutableFile(atPath: tool) {
            // A namespace can be made here (not inside a container that forbids it).
            let probe = "gf15probe\(getpid())"
            let (status, _) = run(tool, ["netns", "add", probe])
            _ = run(tool, ["netns", "del", probe])
            return status == 0 ? nil : "cannot create network namespaces here"
        }
        return "no `ip` tool (iproute2)"
    }()

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // A file, not a pipe: the replicas `up` starts in the background would hold a pipe open.
        let log = NSTemporaryDirectory() + "netns-rehearsal-\(UInt64.random(in: 0...UInt64.max)).log"
        guard FileManager.default.createFile(atPath: log, contents: nil), let handle = FileHandle(forWritingAtPath: log) else {
            return (-1, "cannot create \(log)")
        }
        defer { try? FileManager.default.removeItem(atPath: log) }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return (-1, "\(error)") }
        process.waitUntilExit()
        try? handle.close()
        return (process.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }
}

@Suite(.serialized) struct NetnsRehearsalTests {
    @Test(.enabled(if: Rehearsal.missingPrerequisite == nil, "\(Rehearsal.missingPrerequisite ?? "")"))
    func eightNamespaceHostsFromBundlesCommitThroughAKilledPrimary() async throws {
        let source = try KeyedTopology("""
            name: netns-2x4
            regions: [oregon, iowa]
            wan:
              - {between: [oregon, iowa], rtt_ms: 38, mbit_s: 669}
            clients: 32
            shards:
              - name: s0
                clusters:
                  - {region: oregon, replicas: ["10.82.1.1:7000", "10.82.1.2:7000", "10.82.1.3:7000", "10.82.1.4:7000"]}
                  - {region: iowa,   replicas: ["10.82.2.1:7000", "10.82.2.2:7000", "10.82.2.3:7000", "10.82.2.4:7000"]}
            protocol: {view_timeout_ms: 500}
            """)
        defer { try? FileManager.default.removeItem(atPath: source.directory) }
        let bundles = source.directory + "/bundles"
        _ = try DeployBundles.write(topologyPath: source.path, output: bundles, options: BundleOptions())
        let environment = ["GEOFABRIC_REHEARSAL_DIR": source.directory + "/state"]
        func rehearsalBlocking(_ arguments: [String]) -> (Int32, String) {
            // The subcommand, then the namespace prefix of this test, then the rest (which may end in `-- COMMAND`).
            Rehearsal.run("/bin/bash", [Rehearsal.script, arguments[0], "--name", "t15"] + arguments.dropFirst(), environment: environment)
        }
        /// On a thread of its own: a bench run must not hold a cooperative thread other suites need.
        func rehearsal(_ arguments: [String]) async -> (Int32, String) {
            let argv = [Rehearsal.script, arguments[0], "--name", "t15"] + arguments.dropFirst()
            let environment = environment
            return await offTheCooperativePool { Rehearsal.run("/bin/bash", argv, environment: environment) }
        }
        defer { _ = rehearsalBlocking(["down"]) }

        let (upStatus, upOutput) = await rehearsal(["up", bundles, "--binary", builtTool])
        #expect(upStatus == 0, "up: \(upOutput)")
        guard upStatus == 0 else { return }
        #expect(upOutput.contains("8 replicas on 8 hosts in 2 regions answer; WAN: emulate"))

        /// `bench --attach` from a region's client namespace, as an operator there would run it.
        func bench(from region: String, seconds: Int, json: String) async throws -> BenchReport? {
            let (status, output) = await rehearsal(["exec", region, "--", "geofabric", "bench", source.path, "--attach", "--emulate-wan",
                                              "--clients", "8", "--duration", "\(seconds)", "--warmup", "1", "--timeout", "20", "--json-file", json])
            #expect(status == 0, "bench from \(region): \(output)")
            return status == 0 ? try BenchMerge.read(json) : nil
        }
        let before = try #require(try await bench(from: "oregon", seconds: 4, json: source.directory + "/before.json"))
        #expect(before.committed > 0 && before.timeouts == 0 && before.agreement, "\(before.committed) committed before")
        #expect(before.shards[0].replicas_answered == 8)

        // The oregon cluster's primary (view 0) loses its host.
        let (killStatus, _) = await rehearsal(["kill", "s0-oregon-0"])
        #expect(killStatus == 0)
        let after = try #require(try await bench(from: "iowa", seconds: 8, json: source.directory + "/after.json"))
        #expect(after.committed > 0, "commits continue without the oregon primary")
        #expect(after.clusters.first { $0.region == "oregon" }?.view ?? 0 >= 1, "oregon changed view")
        #expect(after.shards[0].replicas_answered == 7)
        #expect(after.shards[0].agreement && after.shards[0].settled, "the seven others agree on one head: \(after.shards[0])")
        #expect(after.shards[0].height > before.shards[0].height)
    }
}
