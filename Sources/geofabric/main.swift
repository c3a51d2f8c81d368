// The `geofabric` tool: everything lives in GeoFabricCLI so tests can drive the commands.
import GeoFabricCLI
import Logging

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .info
    return handler
}
GeoFabricCommand.main()
