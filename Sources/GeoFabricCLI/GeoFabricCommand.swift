// The root of the command line. Each subcommand is thin: it parses arguments, calls the library
// targets, and formats the result (text for people, --json for tools).

import ArgumentParser

public struct GeoFabricCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "geofabric",
        abstract: "GeoFabric: a geo-aware, sharded, permissioned blockchain fabric (GeoBFT).",
        discussion: """
            Topologies are YAML files (see topologies/ and the README); every command takes one as \
            its positional TOPOLOGY argument (the embedded default when it is optional and absent). \
            --json prints the command's result as JSON on standard output instead of text (bench and \
            simulate then print their text report on standard error; --json-file FILE writes the JSON \
            to a file instead).
            """,
        version: GeoFabricVersion.text,
        subcommands: [UpCommand.self, StatusCommand.self, BenchCommand.self, ReplicaCommand.self, ClientCommand.self, TopologyCommand.self, KeysCommand.self, DeployCommand.self, CalibrateCommand.self, SimulateCommand.self, LedgerCommand.self])

    public init() {}
}

/// What `geofabric --version` prints.
public enum GeoFabricVersion {
    public static let text = "geofabric 0.9.0 (topology hash: binding v2, block format v2)"
}
