// `geofabric up [TOPOLOGY] [--data-dir DIR]`: every replica of a topology as its own process on
// this machine, until Ctrl-C or SIGTERM. A second `up` on the same data directory resumes the
// ledgers where they were.

import ArgumentParser
import Foundation
import GeoCore
import GeoNode
import GeoTopology
import Synchronization

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Deploy every replica of a topology on this machine, one process each, until Ctrl-C.",
        discussion: """
            With no topology the embedded default runs (one shard, oregon and iowa, 4 replicas each). \
            Each replica logs to DATA-DIR/logs/<replica>.log and keeps its ledger in DATA-DIR/<replica>/. \
            Query heights with `geofabric status [TOPOLOGY]`, send operations with `geofabric client`.
            """)

    @Argument(help: "The topology file (default: the embedded default topology).")
    var topology: String?

    @Option(name: .customLong("data-dir"), help: "Data directory (default: ./geofabric-data/<topology name>).")
    var dataDirectory: String?

    @Flag(name: .customLong("emulate-wan"), help: "Delay and rate-limit messages between regions as the topology's WAN says.")
    var emulateWAN = false

    @Option(name: .customLong("ready-timeout"), help: "Seconds to wait for every replica to answer on its status port.")
    var readyTimeout: Double = 60

    @Flag(help: "Print the table of replicas as JSON once they are ready.")
    var json = false

    func run() async throws {
        let loaded = try LoadedTopology.load(topology)
        let data = loaded.dataDirectory(dataDirectory)
        let deployment: LocalDeployment
        do {
            deployment = try LocalDeployment.start(loaded, dataDirectory: data, emulateWAN: emulateWAN)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        FileHandle.standardError.write(Data("starting \(deployment.processes.count) replicas of \(loaded.topology.name) (data: \(data))\n".utf8))
        do {
            try await deployment.waitUntilReady(timeout: .milliseconds(Int64(readyTimeout * 1000)))
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            await deployment.stop()
            throw ExitCode(1)
        }
        let rows = deployment.table()
        if json {
            say(JSONOutput.encode(UpSummary(topology: loaded.topology.name, data_dir: data, replicas: rows)))
        } else {
            say(TextTable.render(header: ["replica", "region", "cluster", "address", "status", "pid"],
                                   rows: rows.map { [$0.replica, $0.region, "\($0.cluster)", $0.address, $0.status_url, "\($0.pid)"] }))
            let topologyArgument = loaded.path.map { " \($0)" } ?? ""
            say("ready. `geofabric status\(topologyArgument)` shows the ledger heights; Ctrl-C stops every replica.")
        }
        let reason = await deployment.waitForSignalOrExit()
        FileHandle.standardError.write(Data("\(reason); stopping every replica\n".utf8))
        await deployment.stop()
        FileHandle.standardError.write(Data("stopped\n".utf8))
    }
}

/// Unbuffered: standard output may be a pipe or a file, and the table must be out before the long wait.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

struct UpSummary: Encodable {
    var topology: String
    var data_dir: String
    var replicas: [LocalDeployment.Row]
}

enum DeploymentError: Error, CustomStringConvertible {
    case cannotCreate(String, String)
    case replicaExited(String, status: Int32, log: String, tail: String)
    case notReady([String], after: Duration)

    var description: String {
        switch self {
        case let .cannotCreate(path, reason): return "cannot create \(path): \(reason)"
        case let .replicaExited(name, status, log, tail):
            return "replica \(name) exited with status \(status) before it was ready (log: \(log))" + (tail.isEmpty ? "" : ":\n\(tail)")
        case let .notReady(names, after):
            return "not ready after \(after): \(names.joined(separator: ", ")) (see their logs)"
        }
    }
}

/// The replica processes of one topology on this machine.
final class LocalDeployment: Sendable {
    struct Row: Encodable {
        var replica: String
        var region: String
        var cluster: Int
        var address: String
        var status_url: String
        var pid: Int32
        var log: String
    }

    struct Entry: Sendable {
        var info: ReplicaInfo
        var process: Process
        var log: String
    }

    let loaded: LoadedTopology
    let topologyPath: String
    let dataDirectory: String
    let emulateWAN: Bool
    let executable: String
    /// Appended to every replica's command line (`--pbft-baseline` for the benchmark's baseline).
    let replicaArguments: [String]
    let entries: Mutex<[Entry]>

    var processes: [Entry] { entries.withLock { $0 } }

    private init(loaded: LoadedTopology, topologyPath: String, dataDirectory: String, emulateWAN: Bool, executable: String,
                 replicaArguments: [String]) {
        self.loaded = loaded
        self.topologyPath = topologyPath
        self.dataDirectory = dataDirectory
        self.emulateWAN = emulateWAN
        self.executable = executable
        self.replicaArguments = replicaArguments
        entries = Mutex([])
    }

    static func start(_ loaded: LoadedTopology, dataDirectory data: String, emulateWAN: Bool,
                      executable: String = Executable.path, replicaArguments: [String] = []) throws -> LocalDeployment {
        let files = FileManager.default
        let logs = (data as NSString).appendingPathComponent("logs")
        do {
            try files.createDirectory(atPath: logs, withIntermediateDirectories: true)
        } catch {
            throw DeploymentError.cannotCreate(logs, error.localizedDescription)
        }
        // Replicas read the topology from a file: the embedded default is written out.
        let topologyPath: String
        if let path = loaded.path {
            topologyPath = path
        } else {
            topologyPath = (data as NSString).appendingPathComponent("topology.yaml")
            do {
                try EmbeddedTopology.yaml.write(toFile: topologyPath, atomically: true, encoding: .utf8)
            } catch {
                throw DeploymentError.cannotCreate(topologyPath, error.localizedDescription)
            }
        }
        let deployment = LocalDeployment(loaded: loaded, topologyPath: topologyPath, dataDirectory: data,
                                         emulateWAN: emulateWAN, executable: executable, replicaArguments: replicaArguments)
        for info in loaded.topology.allReplicas {
            do {
                let entry = try deployment.spawn(info)
                deployment.entries.withLock { $0.append(entry) }
            } catch {
                for started in deployment.processes { started.process.terminate() }
                throw error
            }
        }
        return deployment
    }

    /// Starts the process of one replica, its output appended to DATA/logs/<replica>.log.
    func spawn(_ info: ReplicaInfo) throws -> Entry {
        let logs = (dataDirectory as NSString).appendingPathComponent("logs")
        let logPath = (logs as NSString).appendingPathComponent("\(info.name).log")
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: logPath) else { throw DeploymentError.cannotCreate(logPath, "not writable") }
        handle.seekToEndOfFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["replica", "--topology", topologyPath, "--replica", info.name, "--data-dir", dataDirectory]
            + (emulateWAN ? ["--emulate-wan"] : []) + replicaArguments
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw DeploymentError.cannotCreate("replica process \(info.name)", error.localizedDescription)
        }
        return Entry(info: info, process: process, log: logPath)
    }

    /// Kills one replica with SIGKILL (no chance to flush or say goodbye), as a crash would.
    func crash(_ name: String) {
        guard let entry = processes.first(where: { $0.info.name == name }), entry.process.isRunning else { return }
        kill(entry.process.processIdentifier, SIGKILL)
        entry.process.waitUntilExit()
    }

    /// Starts a replica again on its data directory (after `crash`, or after it exited).
    func restart(_ name: String) throws {
        guard let index = processes.firstIndex(where: { $0.info.name == name }) else { return }
        let old = processes[index]
        if old.process.isRunning { return }
        let entry = try spawn(old.info)
        entries.withLock { $0[index] = entry }
    }

    /// Polls every replica's status endpoint until all answer; fails early when a replica exits.
    func waitUntilReady(timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var waiting = processes.map(\.info)
        while !waiting.isEmpty {
            for entry in processes where !entry.process.isRunning {
                throw DeploymentError.replicaExited(entry.info.name, status: entry.process.terminationStatus, log: entry.log,
                                                    tail: Self.tail(of: entry.log))
            }
            let results = await StatusClient.fetchAll(waiting.map { StatusTarget($0) }, timeout: .milliseconds(500))
            let ready = Set(results.compactMap { entry -> String? in
                if case .success = entry.result { return entry.target.name }
                return nil
            })
            waiting.removeAll { ready.contains($0.name) }
            if waiting.isEmpty { return }
            if clock.now >= deadline { throw DeploymentError.notReady(waiting.map(\.name), after: timeout) }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    static func tail(of path: String, lines: Int = 5) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        return text.split(separator: "\n").suffix(lines).map { "  " + $0 }.joined(separator: "\n")
    }

    func table() -> [Row] {
        processes.map { entry in
            Row(replica: entry.info.name, region: entry.info.region, cluster: Int(entry.info.id.cluster.index),
                address: entry.info.address, status_url: "http://\(entry.info.host):\(entry.info.statusPort)/status",
                pid: entry.process.processIdentifier, log: entry.log)
        }
    }

    /// Returns when Ctrl-C or SIGTERM arrives, or when every replica has exited on its own.
    /// A replica that exits while others run is reported and left down.
    func waitForSignalOrExit() async -> String {
        await withTaskGroup(of: String.self) { group in
            group.addTask {
                let signal = await Signals.waitForTermination()
                return signal == SIGINT ? "interrupted" : "terminated"
            }
            group.addTask { [self] in
                var reported = Set<String>()
                while !Task.isCancelled {
                    let processes = self.processes
                    for entry in processes where !entry.process.isRunning && !reported.contains(entry.info.name) {
                        reported.insert(entry.info.name)
                        FileHandle.standardError.write(Data(
                            "warning: replica \(entry.info.name) exited with status \(entry.process.terminationStatus) (log: \(entry.log))\n".utf8))
                    }
                    if reported.count == processes.count { return "every replica exited" }
                    try? await Task.sleep(for: .milliseconds(250))
                }
                return "cancelled"
            }
            let first = await group.next() ?? "stopped"
            group.cancelAll()
            return first
        }
    }

    /// SIGTERM to every replica, then SIGKILL to those still running after a grace period.
    func stop(grace: Duration = .seconds(10)) async {
        let processes = self.processes
        for entry in processes where entry.process.isRunning { entry.process.terminate() }
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        while processes.contains(where: { $0.process.isRunning }), clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for entry in processes where entry.process.isRunning { kill(entry.process.processIdentifier, SIGKILL) }
    }
}

/// Plain aligned columns for terminal tables.
enum TextTable {
    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }
}
