// `geofabric keys generate` and `geofabric keys show`.

import ArgumentParser
import Foundation
import GeoCore
import GeoCrypto
import GeoTopology
import Logging

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make and inspect replica and client keys.",
        subcommands: [Generate.self, Show.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write fresh Ed25519 keys for every replica and client of a topology.",
            discussion: """
                Writes DIR/replicas/NAME.key and DIR/clients/client-N.key (mode 0600, hex seeds) and \
                DIR/manifest.json (public keys). Point the topology at it with `keys: {directory: DIR}`. \
                Refuses to overwrite an existing manifest.
                """)

        @OptionGroup var file: TopologyFileArgument

        @Option(help: "The directory to write the keys into.")
        var out: String

        @Flag(help: "Print the result as JSON.")
        var json = false

        func run() throws {
            try KeyCommands.generate(topologyPath: file.path, directory: out, json: json).emit()
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the public key of every replica of a topology, from wherever its `keys` setting says.")

        @OptionGroup var file: TopologyFileArgument

        @Flag(help: "Print the keys as JSON.")
        var json = false

        func run() throws {
            try KeyCommands.show(topologyPath: file.path, json: json).emit()
        }
    }
}

/// A required topology file: positional, as in every command, or the older `--topology F`.
struct TopologyFileArgument: ParsableArguments {
    @Argument(help: "The topology file.")
    var topologyFile: String?

    @Option(name: .customLong("topology"), help: .hidden)
    var topologyOption: String?

    var path: String { topologyFile ?? topologyOption ?? "" }

    func validate() throws {
        if topologyFile != nil, topologyOption != nil { throw ValidationError("give the topology once: TOPOLOGY or --topology, not both") }
        if topologyFile == nil, topologyOption == nil { throw ValidationError("missing the topology file (TOPOLOGY)") }
    }
}

public enum KeyCommands {
    static let logger = Logger(label: "geofabric.keys")

    public static func generate(topologyPath: String, directory: String, json: Bool) -> CommandOutput {
        var output = CommandOutput()
        do {
            let topology = try TopologyLoader.load(path: topologyPath)
            try KeyDirectory(path: directory).generate(for: topology)
            let replicas = topology.allReplicas.count
            if json {
                output.out(JSONOutput.encode(["directory": directory, "topology": topology.name,
                                              "replicas": "\(replicas)", "clients": "\(topology.clientCount)"]))
            } else {
                // The topology resolves a relative key directory against its own folder, so print
                // a path that means the same thing there.
                let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
                output.out("wrote keys for \(replicas) replicas and \(topology.clientCount) clients of '\(topology.name)' to \(absolute)")
                output.out("use them with `keys: {directory: \(absolute)}` in the topology file")
            }
        } catch {
            output.exitCode = 1
            output.err("error: \(error)")
        }
        return output
    }

    /// Loads the key ring of a topology, warning when it is made of development keys.
    public static func keyRing(for topology: Topology, topologyPath: String) throws(KeyError) -> KeyRing {
        if topology.keys == .development {
            logger.warning("topology '\(topology.name)' uses development keys (keys: dev): anyone can derive them from the topology; use them on this machine only")
        }
        let base = (topologyPath as NSString).deletingLastPathComponent
        return try KeyRing.load(for: topology, baseDirectory: base.isEmpty ? "." : base)
    }

    public static func show(topologyPath: String, json: Bool) -> CommandOutput {
        var output = CommandOutput()
        do {
            let topology = try TopologyLoader.load(path: topologyPath)
            let ring = try keyRing(for: topology, topologyPath: topologyPath)
            let rows = topology.allReplicas.map { ($0.name, Hex.encode(ring.replicaKeys[Int($0.number)].bytes)) }
            if json {
                output.out(JSONOutput.encode(Dictionary(uniqueKeysWithValues: rows)))
            } else {
                for (name, key) in rows { output.out("\(name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(key)") }
            }
        } catch {
            output.exitCode = 1
            output.err("error: \(error)")
        }
        return output
    }
}
