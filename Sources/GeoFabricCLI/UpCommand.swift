// `geofabric up [TOPOLOGY] [--data-dir DIR]`: every replica of a topology as its own process on
// this machine, until Ctrl-C or SIGTERM. A second `up` on the same data directory resumes the
// ledgers where they were.

import ArgumentParser
import Foundation
import GeoCore
import GeoCrypto
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

    @Option(name: .customLong("log-level"), help: "The replicas' log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Flag(help: "Print the table of replicas as JSON on standard output once they are ready.")
    var json = false

    func validate() throws {
        guard ReplicaCommand.logLevels.contains(logLevel) else {
            throw ValidationError("--log-level must be one of \(ReplicaCommand.logLevels.joined(separator: ", "))")
        }
    }

    func run() async throws {
        let loaded = try LoadedTopology.load(topology)
        loaded.warnIfDevelopmentKeys()
        let data = loaded.dataDirectory(dataDirectory)
        let deployment: LocalDeployment
        do {
            deployment = try LocalDeployment.start(loaded, dataDirectory: data, emulateWAN: emulateWAN,
                                                   replicaArguments: ["--log-level", logLevel])
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
        // The replicas ending on their own is a failure (each was reported with its log); a
        // signal from the operator is the ordinary end.
        if reason == LocalDeployment.everyReplicaExited { throw ExitCode(1) }
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
    case keys(String)
    /// Replicas that exited before they were ready: name, exit status, log and its last lines.
    case replicasExited([ExitedReplica], of: Int)
    /// Replicas that did not answer in time, with what answered at their address instead.
    case notReady([String], after: Duration, others: [String])

    struct ExitedReplica: Sendable {
        var name: String
        var status: Int32
        var log: String
        var tail: String
    }

    var description: String {
        switch self {
        case let .cannotCreate(path, reason): return "cannot create \(path): \(reason)"
        case let .keys(reason): return "keys: \(reason)"
        case let .replicasExited(exited, total):
            return "\(exited.count) of \(total) replicas exited before they were ready:\n" + exited.map { replica in
                "replica \(replica.name) exited with status \(replica.status) (log: \(replica.log))"
                    + (replica.tail.isEmpty ? "" : ":\n\(replica.tail)")
            }.joined(separator: "\n")
        case let .notReady(names, after, others):
            return "not ready after \(after): \(names.joined(separator: ", ")) (see their logs)"
                + others.map { "\n  \($0)" }.joined()
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
    /// The topology hash the replicas run under (of the PBFT baseline with `--pbft-baseline`):
    /// a status answer with another hash or another name is some other deployment's.
    let topologyHash: Digest
    let entries: Mutex<[Entry]>

    var processes: [Entry] { entries.withLock { $0 } }

    private init(loaded: LoadedTopology, topologyPath: String, dataDirectory: String, emulateWAN: Bool, executable: String,
                 replicaArguments: [String], topologyHash: Digest) {
        self.loaded = loaded
        self.topologyHash = topologyHash
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
        let deployed = replicaArguments.contains("--pbft-baseline") ? loaded.topology.pbftBaseline() : loaded.topology
        let topologyHash: Digest
        do {
            topologyHash = TopologyFingerprint.digest(of: deployed, keys: try KeyRing.load(for: deployed, baseDirectory: loaded.directory))
        } catch {
            throw DeploymentError.keys("\(error)")
        }
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
                                         emulateWAN: emulateWAN, executable: executable, replicaArguments: replicaArguments,
                                         topologyHash: topologyHash)
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
        process.arguments = ["replica", topologyPath, "--replica", info.name, "--data-dir", dataDirectory]
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

    /// How long, after the first replica exits early, the others get to fail too, so that one
    /// report names every replica that could not start (they usually fail together: ports or a
    /// data directory in use).
    static let exitReportGrace: Duration = .seconds(2)

    /// Polls every replica's status endpoint until all answer as themselves: the replica's name
    /// and this deployment's topology hash (another deployment on the same ports answers too,
    /// and is not ours). Fails when a replica exits, naming every replica that exited by then.
    func waitUntilReady(timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var waiting = processes.map(\.info)
        var firstExit: ContinuousClock.Instant?
        var others: [String: String] = [:]
        while !waiting.isEmpty {
            let exited = processes.filter { !$0.process.isRunning }
            if !exited.isEmpty {
                let now = clock.now
                if firstExit == nil { firstExit = now }
                if let first = firstExit, now - first >= Self.exitReportGrace || exited.count == processes.count {
                    throw DeploymentError.replicasExited(exited.map {
                        .init(name: $0.info.name, status: $0.process.terminationStatus, log: $0.log, tail: Self.tail(of: $0.log))
                    }, of: processes.count)
                }
            }
            let results = await StatusClient.fetchAll(waiting.map { StatusTarget($0) }, timeout: .milliseconds(500))
            var ready = Set<String>()
            let pids = Dictionary(processes.map { ($0.info.name, $0.process.processIdentifier) }, uniquingKeysWith: { $1 })
            for entry in results {
                guard case let .success(status) = entry.result else { continue }
                if let mismatch = mismatch(status, expected: entry.target.name, pid: pids[entry.target.name]) {
                    others[entry.target.name] = "\(entry.target.name) (\(entry.target.host):\(entry.target.port)): \(mismatch)"
                } else {
                    ready.insert(entry.target.name)
                    others[entry.target.name] = nil
                }
            }
            waiting.removeAll { ready.contains($0.name) }
            if waiting.isEmpty { return }
            if clock.now >= deadline {
                throw DeploymentError.notReady(waiting.map(\.name), after: timeout, others: others.keys.sorted().compactMap { others[$0] })
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Why a status answer at a replica's address is not that replica of this deployment; nil when it is.
    /// `pid`: the process started for it, which must be the one answering (the same topology
    /// may run already from another data directory, or from this one, holding the ports).
    func mismatch(_ status: ReplicaStatus, expected name: String, pid: Int32?) -> String? {
        guard let hash = status.topologyHash else {
            return "answered by \(status.replica) that names no topology hash (an older GeoFabric?), not this deployment's"
        }
        if status.replica != name || hash != topologyHash.hex {
            return "answered by \(status.replica) of topology \(status.topology ?? "?") (hash \(hash.prefix(12))), "
                + "not \(name) of this deployment (hash \(topologyHash.shortHex)): another deployment holds this address"
        }
        if let pid, let answering = status.pid, answering != pid {
            return "answered by process \(answering), not the replica process \(pid) started: "
                + "another run of this topology holds this address"
        }
        return nil
    }

    /// The last lines of a replica's log, and before them its last "error:" line when that is
    /// further up (a log the replica shares with an earlier run, or with a process still running).
    static func tail(of path: String, lines: Int = 5) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        let all = text.split(separator: "\n")
        var shown = Array(all.suffix(lines))
        if let error = all.suffix(200).last(where: { $0.hasPrefix("error:") }), !shown.contains(error) {
            shown.insert(error, at: 0)
        }
        return shown.map { "  " + $0 }.joined(separator: "\n")
    }

    func table() -> [Row] {
        processes.map { entry in
            Row(replica: entry.info.name, region: entry.info.region, cluster: Int(entry.info.id.cluster.index),
                address: entry.info.address, status_url: "http://\(entry.info.host):\(entry.info.statusPort)/status",
                pid: entry.process.processIdentifier, log: entry.log)
        }
    }

    static let everyReplicaExited = "every replica exited"

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
                        let tail = Self.tail(of: entry.log)
                        FileHandle.standardError.write(Data(
                            ("warning: replica \(entry.info.name) exited with status \(entry.process.terminationStatus) (log: \(entry.log))"
                                + (tail.isEmpty ? "" : ":\n\(tail)") + "\n").utf8))
                    }
                    if reported.count == processes.count { return Self.everyReplicaExited }
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
