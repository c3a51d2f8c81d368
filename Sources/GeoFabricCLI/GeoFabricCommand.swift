// The root of the command line. Each subcommand is thin: it parses arguments, calls the library
// targets, and formats the result (text for people, --json for tools).

import ArgumentParser

public struct GeoFabricCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "geofabric",
        abstract: "GeoFabric: a geo-aware, sharded, permissioned blockchain fabric (GeoBFT).",
        discussion: """
            Topologies are YAML files (see topologies/ and the README). Every command that reports \
            accepts --json.
            """,
        subcommands: [UpCommand.self, StatusCommand.self, BenchCommand.self, ReplicaCommand.self, ClientCommand.self, TopologyCommand.self, KeysCommand.self, DeployCommand.self, CalibrateCommand.self, SimulateCommand.self])

    public init() {}
}
