// `geofabric replica [TOPOLOGY] --replica NAME [--data-dir DIR]`: one replica daemon, for a
// multi-host deployment (one per host) and as the process `geofabric up` starts for each replica.

import ArgumentParser
import Foundation
import GeoCore
import GeoNode
import Logging

struct ReplicaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica",
        abstract: "Run one replica of a topology until Ctrl-C or SIGTERM.",
        discussion: """
            The replica keeps its durable log in DATA-DIR/<replica name>/ and resumes from it when \
            started again. It listens on the address the topology gives it and serves GET /status \
            and GET /metrics on its status port.
            """)

    @Argument(help: "The topology file (default: the embedded default topology).")
    var topologyFile: String?

    /// The spelling before the topology became positional in every command; still read.
    @Option(name: .customLong("topology"), help: .hidden)
    var topologyOption: String?

    var topology: String? { topologyFile ?? topologyOption }

    static let logLevels = Logger.Level.allCases.map(\.rawValue)

    @Option(help: "The replica's name in the topology (as `geofabric topology validate` lists them).")
    var replica: String

    @Option(name: .customLong("data-dir"), help: "Data directory (default: ./geofabric-data/<topology name>).")
    var dataDirectory: String?

    @Flag(name: .customLong("emulate-wan"), help: "Delay and rate-limit messages to other regions as the topology's WAN says.")
    var emulateWAN = false

    @Option(name: .customLong("listen-host"), help: "Listen on this address (e.g. 0.0.0.0) instead of the topology's host; peers still dial the topology's address (a Kubernetes Service name, a NAT address).")
    var listenHost: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    // Derived in the replica rather than written out as a file: a topology file gives every
    // replica of a cluster the cluster's region, and the baseline must keep each replica's own
    // region, or WAN emulation would put the whole baseline cluster in one region.
    @Flag(name: .customLong("pbft-baseline"), help: "Run in the PBFT baseline of the topology: each shard's replicas as one PBFT cluster (`geofabric bench --protocol pbft`).")
    var pbftBaseline = false

    func validate() throws {
        if topologyFile != nil, topologyOption != nil { throw ValidationError("give the topology once: TOPOLOGY or --topology, not both") }
        guard Self.logLevels.contains(logLevel) else {
            throw ValidationError("--log-level must be one of \(Self.logLevels.joined(separator: ", "))")
        }
    }

    func run() async throws {
        var loaded = try LoadedTopology.load(topology)
        loaded.warnIfDevelopmentKeys()
        if pbftBaseline { loaded.topology = loaded.topology.pbftBaseline() }
        let info = try loaded.replica(named: replica)
        var logger = Logger(label: "geofabric.replica")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        var options = DaemonOptions(dataDirectory: loaded.dataDirectory(dataDirectory), topologyDirectory: loaded.directory)
        options.emulateWAN = emulateWAN
        options.listenHost = listenHost
        let daemon: ReplicaDaemon
        do {
            daemon = try await ReplicaDaemon.start(topology: loaded.topology, replica: info.name, options: options, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("error: \(info.name): \(error)\n".utf8))
            throw ExitCode(1)
        }
        let received = await Signals.waitForTermination()
        logger.info("stopping", metadata: ["signal": "\(received)"])
        await daemon.shutdown()
    }
}
