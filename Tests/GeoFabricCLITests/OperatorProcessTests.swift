// Issue 19, "operator rough edges": one test on real processes (the built `geofabric` binary) per
// item 1-5. Ports 19400-19449 (status ports 50 above: 19450-19499), ten per test, so that no other
// test's deployment and no `geofabric up` on 7000+ is in the way (18400-18403 are the status ports
// of LoopbackDeploymentTests' 17400+, whose status_port_offset is the default 1000).

import Foundation
import GeoClient
import GeoCore
import GeoCrypto
@testable import GeoFabricCLI
import GeoNode
import GeoTopology
import Testing
import GeoTestKit

/// What one run of the tool printed, how it ended and how long it took.
struct ToolRun: CustomStringConvertible, Sendable {
    var status: Int32
    var output: String
    var error: String
    var seconds: Double
    var description: String { "exit \(status) after \(String(format: "%.1f", seconds)) s\nstdout:\n\(output)\nstderr:\n\(error)" }
}

enum Tool {
    /// Runs the built tool to its end, or kills it after `timeout` seconds (status -1 then).
    /// Output goes through files, not pipes, so a chatty process cannot block on a full pipe.
    /// `runBlocking` on a thread of its own: waiting for a process must not hold one of the
    /// cooperative threads, which the other suites' async tests need (a CI run starved a
    /// deployment's readiness polls for 60 s).
    static func run(_ arguments: [String], timeout: Double = 60) async throws -> ToolRun {
        let result: Result<ToolRun, any Error> = await offTheCooperativePool {
            Result { try runBlocking(arguments, timeout: timeout) }
        }
        return try result.get()
    }

    static func runBlocking(_ arguments: [String], timeout: Double = 60) throws -> ToolRun {
        let directory = NSTemporaryDirectory() + "geofabric-tool-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (process, outPath, errPath) = try start(arguments, in: directory)
        let started = Date()
        while process.isRunning, Date().timeIntervalSince(started) < timeout { usleep(50_000) }
        var status: Int32 = -1
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        } else {
            status = process.terminationStatus
        }
        return ToolRun(status: status, output: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                       error: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
                       seconds: Date().timeIntervalSince(started))
    }

    /// Starts the built tool in the background, its output in `directory`/out and /err.
    static func start(_ arguments: [String], in directory: String) throws -> (Process, String, String) {
        let outPath = directory + "/out", errPath = directory + "/err"
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: builtTool)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, outPath, errPath)
    }
}

@Suite(.serialized) struct OperatorProcessTests {
    /// A one-cluster topology on `basePort` (status ports 50 above). Two of them with other names
    /// and the same port are two deployments that share ports, as the embedded default and
    /// local-1x4 do: same replica names, other topology hash.
    static func yaml(name: String, basePort: Int, tls: Bool = true, extra: String = "") -> String {
        """
        name: \(name)
        regions: [local]
        base_port: \(basePort)
        status_port_offset: 50
        shards:
          - name: s0
            clusters:
              - {region: local, replicas: 4}
        keys: dev
        transport: {tls: \(tls)}
        \(extra)
        """
    }

    /// Deploys `yaml` with the test-side LocalDeployment (the code `up` runs), ready.
    func deploy(_ yaml: String, data: String? = nil) async throws -> (LocalDeployment, String) {
        #expect(FileManager.default.isExecutableFile(atPath: builtTool), "build the tool first (swift build): \(builtTool)")
        let path = try TestKit.writeTemporary(yaml, name: "topology.yaml")
        let directory = data ?? ((path as NSString).deletingLastPathComponent + "/data")
        let loaded = try LoadedTopology.load(path)
        let deployment = try LocalDeployment.start(loaded, dataDirectory: directory, emulateWAN: false, executable: builtTool)
        do {
            try await deployment.waitUntilReady(timeout: .seconds(60))
        } catch {
            await deployment.stop()
            throw error
        }
        return (deployment, path)
    }

    /// Polls until `file` contains `text` (at most `seconds`).
    func wait(for text: String, in file: String, seconds: Double = 10) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let contents = try? String(contentsOfFile: file, encoding: .utf8), contents.contains(text) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    // Item 1: a client and `status` started from another topology than the one running on the
    // ports are told at once, by name, on both sides; with TLS (the certificate names the
    // topology hash) and without (the GEOH Hello carries it).
    @Test(.timeLimit(.minutes(3)), arguments: [true, false])
    func aTopologyMismatchIsNamedAtOnceOnBothSides(tls: Bool) async throws {
        let base = tls ? 19400 : 19405
        let (deployment, running) = try await deploy(Self.yaml(name: "op-running", basePort: base, tls: tls))
        let otherPath = try TestKit.writeTemporary(Self.yaml(name: "op-other", basePort: base, tls: tls), name: "other.yaml")
        do {
            let ours = try await Tool.run(["client", "put", "k", "v", running, "--timeout", "20"])
            #expect(ours.status == 0, "\(ours)")

            let client = try await Tool.run(["client", "put", "k", "v", otherPath, "--timeout", "15"], timeout: 30)
            #expect(client.status == 1, "\(client)")
            #expect(client.seconds < 8, "the client waited instead of failing at once: \(client)")
            // It gives up once f + 1 matching replies cannot come: 3 of the 4 replicas refused,
            // whichever 3 answered first, each named with its address.
            let named = (0..<4).filter { client.error.contains("has topology hash ") && client.error.contains("replica s0-local-\($0) at 127.0.0.1:\(base + $0) has ") }
            #expect(client.error.components(separatedBy: "topology mismatch: this client has topology hash").count - 1 >= 3, "\(client)")
            #expect(named.count >= 3, "\(client)")

            // The replicas' side: logged with both hashes and counted (by every replica the
            // client reached before it gave up, so by one at least).
            var logged = 0, counted = 0
            for (entry, replica) in zip(deployment.processes, deployment.loaded.topology.allReplicas) {
                if await wait(for: "different topology: the peer's topology hash is", in: entry.log, seconds: 3) { logged += 1 }
                counted += await TLSProcessTests().wireErrors("topology_mismatch", at: replica)
            }
            #expect(logged >= 1, "no replica's log names the mismatch")
            #expect(counted >= logged)

            // Same topology hash (the client count is free), but a client the replicas have no key
            // for: they refuse its certificate (TLS) or its Hello (a Reject record), and it says so
            // at once.
            let more = try TestKit.writeTemporary(Self.yaml(name: "op-running", basePort: base, tls: tls, extra: "clients: 400"), name: "more.yaml")
            let unknown = try await Tool.run(["client", "put", "k", "v", more, "--client", "350", "--timeout", "15"], timeout: 30)
            #expect(unknown.status == 1, "\(unknown)")
            #expect(unknown.seconds < 8, "\(unknown)")
            let told = tls ? "refused this client's certificate" : "refused this client (unknown_identity): its topology has no key for this client"
            #expect(unknown.error.components(separatedBy: told).count - 1 >= 3, "\(unknown)")

            let status = try await Tool.run(["status", otherPath], timeout: 30)
            #expect(status.status == 1, "\(status)")
            #expect(status.output.contains("OTHER DEPLOYMENT"), "\(status)")
            #expect(status.output.contains(tls ? "it names topology hash" : "answered by s0-local-0 of topology op-running"), "\(status)")
            #expect(status.error.contains("answered as another deployment"), "\(status)")
            let statusOurs = try await Tool.run(["status", running, "--json"], timeout: 30)
            #expect(statusOurs.status == 0, "\(statusOurs)")
            #expect(!statusOurs.output.contains("other_deployment"), "\(statusOurs)")
        } catch {
            await deployment.stop()
            throw error
        }
        await deployment.stop()
    }

    // Item 2: `up` of a deployment whose replicas cannot start (the ports held by another
    // deployment, which answers the readiness polls; or the data directory in use) prints each
    // replica's failure and exits 1, never "ready".
    @Test(.timeLimit(.minutes(3))) func upFailsNamingEachReplicaThatCouldNotStart() async throws {
        let (deployment, running) = try await deploy(Self.yaml(name: "op-held", basePort: 19410))
        let scratch = NSTemporaryDirectory() + "geofabric-up-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        do {
            let otherPath = try TestKit.writeTemporary(Self.yaml(name: "op-intruder", basePort: 19410), name: "other.yaml")
            let ports = try await Tool.run(["up", otherPath, "--data-dir", scratch, "--ready-timeout", "30"], timeout: 60)
            #expect(ports.status == 1, "\(ports)")
            #expect(!ports.output.contains("ready."), "\(ports)")
            #expect(ports.error.contains("4 of 4 replicas exited before they were ready"), "\(ports)")
            for index in 0..<4 {
                #expect(ports.error.contains("cannot listen on 127.0.0.1:\(19410 + index)"), "replica \(index): \(ports)")
            }

            let dataInUse = deployment.dataDirectory
            let locked = try await Tool.run(["up", running, "--data-dir", dataInUse, "--ready-timeout", "30"], timeout: 60)
            #expect(locked.status == 1, "\(locked)")
            #expect(!locked.output.contains("ready."), "\(locked)")
            #expect(locked.error.contains("locked by another process"), "\(locked)")
        } catch {
            await deployment.stop()
            throw error
        }
        await deployment.stop()
    }

    // Item 3: numbers are decimal text (put then add), reads print numbers as numbers and an
    // absent key as null, refusals in words.
    @Test(.timeLimit(.minutes(3))) func valuesAreNumbersTextAndNullAndReasonsAreWords() async throws {
        let (deployment, path) = try await deploy(Self.yaml(name: "op-values", basePort: 19420))
        func client(_ arguments: [String]) async throws -> ToolRun {
            try await Tool.run(["client"] + arguments + [path, "--timeout", "20"], timeout: 40)
        }
        func json(_ run: ToolRun) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any], "\(run)")
        }
        do {
            #expect(try await client(["put", "n", "100"]).status == 0)
            let added = try await client(["add", "n", "1"])
            #expect(added.status == 0, "\(added)")
            #expect(added.output.hasPrefix("101\n"), "\(added)")
            let read = try await client(["get", "n"])
            #expect(read.output.hasPrefix("101\n"), "\(read)")
            let readJSON = try json(try await client(["get", "n", "--json"]))
            #expect(readJSON["result"] as? Int == 101 && readJSON["outcome"] as? String == "value", "\(readJSON)")
            let absent = try json(try await client(["get", "nothing-here", "--json"]))
            #expect(absent["result"] is NSNull, "\(absent)")

            let text = try await client(["put", "zip", "02139", "--json"])
            #expect(text.status == 0)
            let zip = try json(try await client(["get", "zip", "--json"]))
            #expect(zip["result"] as? String == "02139", "a leading zero keeps the value text: \(zip)")
            let notANumber = try await client(["add", "zip", "1"])
            #expect(notANumber.status == 2, "\(notANumber)")
            #expect(notANumber.output.contains("refused: not a number"), "\(notANumber)")

            let poor = try await client(["transfer", "n", "m", "1000"])
            #expect(poor.status == 2, "\(poor)")
            #expect(poor.output.hasPrefix("refused: insufficient balance"), "\(poor)")
            let poorJSON = try json(try await client(["transfer", "n", "m", "1000", "--json"]))
            #expect(poorJSON["reason"] as? String == "insufficient balance" && poorJSON["outcome"] as? String == "refused", "\(poorJSON)")
            let moved = try json(try await client(["transfer", "n", "m", "1", "--json"]))
            #expect((moved["result"] as? [String: Any])?["to_balance"] as? Int == 1, "\(moved)")
            #expect(try await client(["get", "n"]).output.hasPrefix("100\n"))
        } catch {
            await deployment.stop()
            throw error
        }
        await deployment.stop()
    }

    // Item 4: the development-key warning on `up` (console) and `replica` (its log), and on
    // `topology validate`, louder for hosts that are not loopback.
    @Test(.timeLimit(.minutes(3))) func developmentKeysAreWarnedAbout() async throws {
        let path = try TestKit.writeTemporary(Self.yaml(name: "op-devkeys", basePort: 19430), name: "topology.yaml")
        let directory = (path as NSString).deletingLastPathComponent
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (up, outPath, errPath) = try Tool.start(["up", path, "--data-dir", directory + "/data", "--log-level", "notice"], in: directory)
        let ready = await wait(for: "ready.", in: outPath, seconds: 60)
        kill(up.processIdentifier, SIGTERM)
        up.waitUntilExit()
        let console = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        #expect(ready, "up did not get ready: \(console)")
        #expect(up.terminationStatus == 0, "up ended by SIGTERM exits 0: \(console)")
        #expect(console.contains("topology.yaml uses development keys (keys: dev)"), "\(console)")
        #expect(!console.contains("not loopback"), "\(console)")
        let replicaLog = (try? String(contentsOfFile: directory + "/data/logs/s0-local-0.log", encoding: .utf8)) ?? ""
        #expect(replicaLog.contains("uses development keys (keys: dev)"), "\(replicaLog)")

        let remote = try TestKit.writeTemporary("""
            name: op-remote
            regions: [a]
            shards: [{name: s0, clusters: [{region: a, replicas: ["10.1.0.1:7000", "10.1.0.2:7000", "10.1.0.3:7000", "10.1.0.4:7000"]}]}]
            keys: dev
            """)
        let validated = try await Tool.run(["topology", "validate", remote])
        #expect(validated.status == 0, "\(validated)")
        #expect(validated.error.contains("uses development keys"), "\(validated)")
        #expect(validated.error.contains("its replicas listen on 10.1.0.1, 10.1.0.2, 10.1.0.3, 10.1.0.4, not loopback"), "\(validated)")
        let keyed = try await Tool.run(["topology", "validate", "\(TestKit.repositoryRoot)/topologies/local-1x4.yaml", "--json"])
        #expect(keyed.status == 0 && keyed.error.contains("development keys"), "\(keyed)")
    }

    // Item 5: timings, the client count and the WAN figures may change across a restart (the
    // same data directory, the ledger kept); a safety-relevant field (batch_size) may not, and
    // the refusal says so.
    @Test(.timeLimit(.minutes(4))) func aTimingEditKeepsTheDataAndALayoutEditIsRefused() async throws {
        let scratch = NSTemporaryDirectory() + "geofabric-edit-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let before = Self.yaml(name: "op-edit", basePort: 19440)
        let (first, firstPath) = try await deploy(before, data: scratch)
        let put = try await Tool.run(["client", "put", "kept", "across-edits", firstPath, "--timeout", "20"], timeout: 40)
        await first.stop()
        #expect(put.status == 0, "\(put)")

        let timings = Self.yaml(name: "op-edit", basePort: 19440, extra: """
            clients: 300
            lan: {rtt_ms: 1, mbit_s: 1000}
            protocol: {view_timeout_ms: 900, remote_timeout_ms: 3000, tick_ms: 20, batch_delay_ms: 5}
            """)
        let (second, secondPath) = try await deploy(timings, data: scratch)
        let read = try await Tool.run(["client", "get", "kept", secondPath, "--client", "299", "--timeout", "20"], timeout: 40)
        await second.stop()
        #expect(read.status == 0, "\(read)")
        #expect(read.output.hasPrefix("across-edits\n"), "\(read)")

        let layout = Self.yaml(name: "op-edit", basePort: 19440, extra: "protocol: {batch_size: 50}")
        let path = try TestKit.writeTemporary(layout, name: "topology.yaml")
        let deployment = try LocalDeployment.start(try LoadedTopology.load(path), dataDirectory: scratch, emulateWAN: false,
                                                   executable: builtTool)
        var refusal = ""
        do {
            try await deployment.waitUntilReady(timeout: .seconds(60))
        } catch {
            refusal = "\(error)"
        }
        await deployment.stop()
        #expect(refusal.contains("4 of 4 replicas exited before they were ready"), "\(refusal)")
        #expect(refusal.contains("or the topology changed a field the data is bound to"), "\(refusal)")
    }
}

// Item 6: one convention across the tool (parsing only; the binary for --version).
@Suite struct ConventionTests {
    @Test func theTopologyIsPositionalEverywhereAndTheOldOptionStillReads() throws {
        let replica = try #require(try GeoFabricCommand.parseAsRoot(["replica", "t.yaml", "--replica", "s0-a-0"]) as? ReplicaCommand)
        #expect(replica.topology == "t.yaml")
        let old = try #require(try GeoFabricCommand.parseAsRoot(["replica", "--topology", "t.yaml", "--replica", "s0-a-0"]) as? ReplicaCommand)
        #expect(old.topology == "t.yaml")
        #expect(throws: (any Error).self) { try GeoFabricCommand.parseAsRoot(["replica", "a.yaml", "--topology", "b.yaml", "--replica", "x"]) }
        let put = try #require(try GeoFabricCommand.parseAsRoot(["client", "put", "k", "v", "t.yaml", "--json"]) as? ClientCommand.Put)
        #expect(put.key == "k" && put.value == "v" && put.options.topology == "t.yaml" && put.options.json)
        let get = try #require(try GeoFabricCommand.parseAsRoot(["client", "get", "k", "--topology", "t.yaml"]) as? ClientCommand.Get)
        #expect(get.options.topology == "t.yaml")
        let show = try #require(try GeoFabricCommand.parseAsRoot(["keys", "show", "t.yaml"]) as? KeysCommand.Show)
        #expect(show.file.path == "t.yaml")
        #expect(throws: (any Error).self) { try GeoFabricCommand.parseAsRoot(["keys", "show"]) }
        // `--help` of replica no longer shows --topology (hidden), and shows the positional.
        let help = ReplicaCommand.helpMessage()
        #expect(help.contains("<topology-file>") && !help.contains("--topology"), "\(help)")
    }

    @Test func jsonIsAFlagEverywhereAndUpTakesALogLevel() async throws {
        let bench = try #require(try GeoFabricCommand.parseAsRoot(["bench", "--json"]) as? BenchCommand)
        #expect(bench.json == "-")
        let file = try #require(try GeoFabricCommand.parseAsRoot(["bench", "--json-file", "out.json"]) as? BenchCommand)
        #expect(file.json == "out.json")
        #expect(throws: (any Error).self) { try GeoFabricCommand.parseAsRoot(["simulate", "--json", "out.json"]) }
        let simulate = try #require(try GeoFabricCommand.parseAsRoot(["simulate", "--json"]) as? SimulateCommand)
        #expect(simulate.json == "-")
        let up = try #require(try GeoFabricCommand.parseAsRoot(["up", "--log-level", "debug", "--json"]) as? UpCommand)
        #expect(up.logLevel == "debug" && up.json)
        #expect(throws: (any Error).self) { try GeoFabricCommand.parseAsRoot(["up", "--log-level", "loud"]) }
        let version = try await Tool.run(["--version"], timeout: 20)
        #expect(version.status == 0 && version.output.hasPrefix("geofabric "), "\(version)")
    }

    @Test func simulateWithJSONPrintsOneJSONDocument() async throws {
        let run = try await Tool.run(["simulate", "\(TestKit.repositoryRoot)/topologies/local-1x4.yaml", "--duration", "1", "--warmup", "0.2",
                                "--clients", "4", "--protocol", "geobft", "--json"], timeout: 120)
        #expect(run.status == 0, "\(run)")
        #expect(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) is [String: Any], "\(run)")
        #expect(run.error.contains("txn/s"), "the text report goes to standard error: \(run)")
    }
}
