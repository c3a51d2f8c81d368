// The `geofabric` tool: everything lives in GeoFabricCLI so tests can drive the commands.
import GeoFabricCLI
import Logging

@main
struct GeoFabricMain {
    /// An explicitly async entry point: the daemons and clients are async commands, and top-level
    /// code would pick the synchronous `main` of ArgumentParser.
    static func main() async {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        await GeoFabricCommand.main(nil)
    }
}
